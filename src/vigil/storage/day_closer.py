"""Moving days in and out of Parquet files, and reading them back: the store's closed
days (storage/closed_days.py has the file layout and SQL, docs/storage.md the design).

``DayCloser`` runs on the store's maintenance cursor, always under the store's
maintenance lock (the caller holds it); reads call ``relation`` under ``guard.reading()``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from vigil.core.errors import StoreUnavailable
from vigil.storage import closed_days, rollups
from vigil.storage.closed_days import DAY_MS, ClosedFile, FileGuard, Manifest
from vigil.storage.hot_files import EXPANSION, HotFiles
from vigil.storage.rollups import DirtyBuckets
from vigil.storage.store import TIER_MS, TIERS, Tier

log = logging.getLogger(__name__)

# Memory for closed files kept decoded (setting ``closed_days_memory``; hot_files.py).
HOT_BYTES = 64 * 1024 * 1024
# The tables of metric data, each with a row no read ever selects (see _give_back_blocks).
_METRIC = {
    "samples": "(-1, -1, 0)",
    **{f"rollup_{t}": "(-1, -1, 0, 0, 0, 0, 0, 0, [], [])" for t in ("5m", "1h", "1d")},
    "rollup_dirty": "('-', -1)",
}
_SENTINEL = {t: "tier = '-'" if t == "rollup_dirty" else "series_id = -1" for t in _METRIC}
# Ranges up to this many days are checked for being wholly closed (see ``relation``).
_SKIP_TABLE_MAX_DAYS = 400
# Raw rows per closed file (a range of series each): bounds the sort before the write
# (≈ 36 MB for 1 M rows) and the sketch merge when 5m sketches are written from them.
_CLOSE_PART_ROWS = 1_000_000


@dataclass
class _NewFiles:
    files: list[ClosedFile] = field(default_factory=list)
    committed: bool = False


class DayCloser:
    def __init__(self, con: duckdb.DuckDBPyConnection, root: Path, dirty: DirtyBuckets, *,
                 close_after_ms: int, hot_bytes: int,
                 transaction: Callable[..., None],
                 rewritten: Callable[[int, int], None]) -> None:
        self._con = con
        self.closed_root = root
        self._dirty = dirty
        self.close_after_ms = close_after_ms  # 0: days are never closed
        self._transaction = transaction
        self._rewritten = rewritten
        self.manifest = Manifest()
        self.guard = FileGuard()
        self.hot = HotFiles(hot_bytes)
        if hot_bytes:  # compressed, as a file's tables are (≈ 10x less than plain)
            con.execute("ATTACH ':memory:' AS hot (COMPRESS)")

    def load(self) -> None:
        """The manifest of closed files; files it does not name (written by a close or
        left by a reopen or retention that did not finish) are deleted, as are sentinel
        rows a crash left behind (see ``_give_back_blocks``)."""
        self._drop_sentinels()
        rows = self._con.execute("SELECT tier, day, path, rows, sketches, key_lo, key_hi "
                                 "FROM closed_files").fetchall()
        self.manifest = Manifest([ClosedFile(t, d, p, n, k, None if lo is None else (lo, hi))
                                  for t, d, p, n, k, lo, hi in rows])
        named = {f.path for f in self.manifest.all()}
        if self.closed_root.is_dir():
            closed_days.remove([str(p) for p in self.closed_root.glob("*/*.parquet")
                                if str(p) not in named])

    def relation(self, tier: Tier, start_ms: int, end_ms: int,
                 keys: list[int] | None = None, sketches: bool = False) -> str:
        """``tier``'s table, with the closed files of days overlapping the range (only
        the rows of metrics ``keys``, and files with sketches if ``sketches``); the caller
        holds ``self.guard.reading()`` until its statement has run.

        The table is left out when every day of the range is closed and none has stale
        buckets: a closed day's rows are in the tables only while it has (late samples
        mark them; its rollups are rebuilt only once it is reopened)."""
        hot, cold = [], []
        for f in self.manifest.files(tier, start_ms, end_ms, sketches, keys):
            table = self.hot.table(f.path)
            if table:
                hot.append(closed_days.read_hot_sql(tier, f"hot.{table}", keys))
            else:
                cold.append(f.path)
        name = closed_days.table(tier)
        if not hot and not cold:
            return name
        if cold:
            self.hot.want(cold)
        files = " UNION ALL ".join(
            [*hot, *([closed_days.read_sql(tier, cold, keys)] if cold else [])])
        first, last = start_ms // DAY_MS * DAY_MS, (end_ms - 1) // DAY_MS * DAY_MS
        if last - first <= _SKIP_TABLE_MAX_DAYS * DAY_MS:
            days = set(range(first, last + 1, DAY_MS))
            if days <= self.manifest.days() and not days & self._dirty.days():
                return f"({files})"
        return f"(SELECT * FROM {name} UNION ALL {files})"

    def close_days(self, now_ms: int) -> None:
        """Move every day that ended ``close_after_ms`` ago and has no stale bucket from
        the tables to Parquet files, a day per transaction (storage/closed_days.py).

        The files are written inside the transaction that deletes the day's rows, so
        they hold exactly the rows it deletes: samples committed meanwhile stay in the
        table (and, being late for a closed day, reopen it at the next refresh)."""
        if self.close_after_ms <= 0:
            return
        horizon = (now_ms - self.close_after_ms) // DAY_MS * DAY_MS
        stale = self._dirty.days()
        union = " UNION ".join(
            f"SELECT DISTINCT {closed_days.time_column(t)} // {DAY_MS} * {DAY_MS} AS day "
            f"FROM {closed_days.table(t)} WHERE {closed_days.time_column(t)} < {horizon}"
            for t in TIERS)
        days = [d for (d,) in self._con.execute(union).fetchall() if d not in stale]
        for day in sorted(days):
            self._close_day(day)
        if days:
            self._give_back_blocks()

    def _give_back_blocks(self) -> None:
        """Let the database file shrink once closes left the metric tables empty (a
        backfill, or an import, is over), when nothing else is writing.

        DuckDB frees a closed day's blocks at the next checkpoint and cuts the file after
        its last block in use. What keeps the end of the file in use is metadata: each
        table's is rewritten, to the lowest free blocks, only when the table changed
        since the last checkpoint; and a table's rows stay where they were written. So
        every metric table is changed once (a sentinel row added, then deleted, each
        committed; no read selects series -1), the store's small tables are rewritten
        whole (to the lowest free blocks), and the file checkpointed. On the TSBS day:
        44 MB → 0.3 MB.
        With live data in the tables the freed blocks are reused by later writes, and
        this is skipped, as it is when a write is in flight."""
        con = self._con
        if any(con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in _METRIC):
            return
        try:
            con.execute("CHECKPOINT")
            for t, row in _METRIC.items():
                con.execute(f"INSERT INTO {t} VALUES {row}")
            for t in ("closed_files", "series", "schema_migrations"):
                self._transaction(f"CREATE TEMP TABLE _rows AS SELECT * FROM {t}",
                                  f"DELETE FROM {t}",
                                  f"INSERT INTO {t} SELECT * FROM _rows",
                                  "DROP TABLE _rows")
            self._drop_sentinels()
            con.execute("CHECKPOINT")
        except duckdb.TransactionException:
            log.debug("checkpoint after close skipped: a write was in flight")
        finally:
            self._drop_sentinels()

    def _drop_sentinels(self) -> None:
        for t in _METRIC:
            self._con.execute(f"DELETE FROM {t} WHERE {_SENTINEL[t]}")

    def _close_day(self, day: int) -> None:
        con = self._con
        generation = time.time_ns()
        with self._writing_files() as new:
            files = new.files
            raw_day = f"ts >= {day} AND ts < {day + DAY_MS}"
            scale = closed_days.pick_scale(tuple(con.execute(
                closed_days.scale_sql(raw_day)).fetchall()[0]))
            for tier in TIERS:
                col, table = closed_days.time_column(tier), closed_days.table(tier)
                where = f"{col} >= {day} AND {col} < {day + DAY_MS}"
                # While the day's raw samples are kept, its 5m quantiles are read from
                # them: the 5m sketches (0.64 B/sample on the TSBS day, as much as half
                # the raw samples) are written when raw expires (keep_sketches).
                sketches = tier != "5m" or not any(f.tier == "raw" for f in files)
                keyed = tier in closed_days.KEYED
                parts = self._register_order(f"{table} WHERE {where}") if keyed else 1
                copied = 0
                for part in range(parts):
                    source = (f"(SELECT t.*, o.name_key FROM {table} t "
                              f"JOIN _order o USING (series_id) WHERE o.part = {part})"
                              if keyed else None)
                    path = self._file(ClosedFile(tier, day, "", 0, sketches), generation,
                                      part, files)
                    copied += self._write_file(files, closed_days.copy_sql(
                        tier, where, scale, path, source=source, sketches=sketches))
                [(deleted,)] = con.execute(f"DELETE FROM {table} WHERE {where}").fetchall()
                if deleted != copied:  # never delete a row no file holds
                    raise StoreUnavailable(f"closing day {day}: {deleted} {tier} rows to "
                                           f"move but {copied} written")
            with self._committing(new):
                for f in files:
                    self.manifest.add(f)
        # Same rows, now summed in another order (last bits): cached answers go.
        self._rewritten(day, day + DAY_MS)
        # a day just over is the likeliest read
        self.hot.want([f.path for f in files], make_room=True)

    @contextmanager
    def _writing_files(self) -> Iterator[_NewFiles]:
        """A transaction on the maintenance cursor that writes closed files (into the
        list it gives): a failure before its commit rolls it back and deletes them."""
        con = self._con
        new = _NewFiles()
        con.execute("BEGIN")
        try:
            yield new
        except BaseException:
            if not new.committed:  # after the commit, closed_files names them: keep them
                con.execute("ROLLBACK")
                closed_days.remove([f.path for f in new.files])
            raise
        finally:
            with contextlib.suppress(duckdb.Error):
                con.unregister("_order")

    @contextmanager
    def _committing(self, new: _NewFiles) -> Iterator[None]:
        """Record the files and commit; the body swaps the manifest, still holding the
        guard exclusively, so no read sees the tables and the manifest disagree."""
        self._record(new.files)
        with self.guard.writing():
            self._con.execute("COMMIT")
            new.committed = True
            yield

    def _file(self, like: ClosedFile, generation: int, part: int,
              files: list[ClosedFile]) -> str:
        """A new closed file's path, added to ``files`` (where a failure finds it)."""
        path = closed_days.file_path(self.closed_root, like.tier, like.day, generation, part)
        path.parent.mkdir(parents=True, exist_ok=True)
        files.append(replace(like, path=str(path)))
        return str(path)

    def _write_file(self, files: list[ClosedFile], copy: str) -> int:
        """Write ``files[-1]`` with the ``COPY`` statement ``copy`` and make it durable;
        drop it from ``files`` if empty. For the tiers sorted by metric, the file's range
        of ``name_key`` lets reads of other metrics skip it. Returns its rows."""
        f = files[-1]
        [(n,)] = self._con.execute(copy).fetchall()
        if not n:
            files.pop()
            Path(f.path).unlink()
            return 0
        closed_days.sync(Path(f.path))
        keys = None
        if f.tier in closed_days.KEYED:
            [keys] = self._con.execute(closed_days.key_range_sql(f.path)).fetchall()
        files[-1] = replace(f, rows=int(n), keys=keys)
        return int(n)

    def _record(self, files: list[ClosedFile]) -> None:
        """Add ``files`` to ``closed_files`` (in the caller's transaction)."""
        self._con.executemany(
            "INSERT INTO closed_files VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(f.tier, f.day, f.path, f.rows, f.sketches, *(f.keys or (None, None)))
             for f in files])

    def _register_order(self, rows_from: str) -> int:
        """Register ``_order`` (series_id, name_key, part) on the maintenance cursor for
        every series: its metric's key and its part of a closed day's files (series in
        (metric, series) order, about ``_CLOSE_PART_ROWS`` raw rows of ``rows_from`` a
        part, bounding the sort before each file is written). Returns how many parts."""
        con = self._con
        keys = con.execute(closed_days.ORDER_SQL).fetchnumpy()
        counts = con.execute(f"SELECT series_id, count(*) AS n FROM {rows_from} "
                             "GROUP BY 1").fetchnumpy()
        by_id = np.argsort(keys["series_id"])
        ids = keys["series_id"][by_id].astype(np.int64)
        name_key = keys["name_key"][by_id].astype(np.int64)
        rows = np.zeros(len(ids), np.int64)
        rows[np.searchsorted(ids, counts["series_id"])] = counts["n"]
        order, part = closed_days.assign_parts(ids, name_key, rows, _CLOSE_PART_ROWS)
        con.register("_order", pa.table({"series_id": ids[order].astype(np.int32),
                                         "name_key": name_key[order].astype(np.int32),
                                         "part": part}))
        return int(part[-1]) + 1 if len(part) else 1

    def reopen_dirty_days(self) -> None:
        """Bring closed days that received samples since back into the tables, so their
        stale buckets are rebuilt as any others; they close again once rolled up.

        Their raw samples go back into ``samples`` and every bucket of the day is marked
        stale (in the same transaction), so the rollups are rebuilt from raw rather than
        read back (the 5m files may hold no sketches)."""
        con = self._con
        for day in sorted(self.manifest.days() & self._dirty.days()):
            marks = DirtyBuckets.touched(day + np.arange(0, DAY_MS, TIER_MS["5m"]))
            con.execute("BEGIN")
            try:
                paths = self.manifest.paths("raw", day, day + 1)
                if paths:
                    con.execute("INSERT INTO samples "
                                f"SELECT * FROM {closed_days.read_sql('raw', paths)}")
                con.execute(rollups.dirty_rows_sql(marks))
                con.execute(f"DELETE FROM closed_files WHERE day = {day}")
                with self.guard.writing():
                    con.execute("COMMIT")
                    self._dirty.mark(dict(marks))
                    self.delete([f.path for f in self.manifest.drop_day(day)])
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def keep_sketches(self, raw_cutoff: int, keep_5m_from: int) -> None:
        """Before the raw samples of closed days before ``raw_cutoff`` are deleted, write
        the 5m files of those the 5m tier keeps again, with sketches computed from them
        (a range of series at a time, bounding the sketch merge's memory)."""
        con = self._con
        for day in self.manifest.without_sketches():
            if not keep_5m_from <= day < raw_cutoff:
                continue
            paths = self.manifest.paths("raw", day, day + 1)
            raw = closed_days.read_sql("raw", paths)
            generation = time.time_ns()
            with self._writing_files() as new:
                files = new.files
                [(scale,)] = con.execute(closed_days.scale_of_sql(paths)).fetchall()
                for part in range(self._register_order(raw)):
                    rolled = rollups.rebuild_from_raw_sql(
                        f"series_id IN (SELECT series_id FROM _order WHERE part = {part})", raw)
                    source = (f"(SELECT r.*, o.name_key FROM ({rolled}) r "
                              "JOIN _order o USING (series_id))")
                    path = self._file(ClosedFile("5m", day, "", 0), generation, part, files)
                    self._write_file(files, closed_days.copy_sql(
                        "5m", "TRUE", int(scale), path, source=source))
                con.execute(f"DELETE FROM closed_files WHERE tier = '5m' AND day = {day}")
                with self._committing(new):
                    self.delete([f.path for f in self.manifest.replace("5m", day, files)])
            # No rewrite to announce: quantiles read the same keys from the sketches as
            # they did from the raw samples.

    def delete(self, paths: list[str]) -> None:
        """Delete closed files no longer named, and their in-memory copies (the caller
        holds ``self.guard.writing()``)."""
        for table in self.hot.forget(paths):
            self._con.execute(f"DROP TABLE hot.{table}")
        closed_days.remove(paths)

    def warm(self) -> None:
        """Load the closed files reads wanted (and days just closed) into memory, within
        ``hot_bytes`` (see storage/hot_files.py): days just closed push out the least
        recently used copies; files reads took from disk go only into free room."""
        if not self.hot.budget:
            return
        con = self._con
        wanted = self.hot.take_wanted()
        for f in self.manifest.all():
            make_room = wanted.get(f.path)
            if make_room is None or (not make_room and self.hot.free() <
                                     EXPANSION * Path(f.path).stat().st_size):
                continue
            before = self._hot_memory()
            table = self.hot.new_name()
            con.execute(closed_days.load_sql(f, f"hot.{table}"))
            with contextlib.suppress(duckdb.Error):  # compresses; skipped if reads overlap
                con.execute("CHECKPOINT hot")
            with self.guard.writing():
                size = max(self._hot_memory() - before, 1)  # others may free meanwhile
                for old in self.hot.add(f.path, table, size):
                    con.execute(f"DROP TABLE hot.{old}")

    def _hot_memory(self) -> int:
        [(n,)] = self._con.execute(
            "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory() "
            "WHERE tag = 'IN_MEMORY_TABLE'").fetchall()
        return int(n)
