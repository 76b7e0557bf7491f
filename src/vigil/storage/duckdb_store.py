"""The embedded store: one DuckDB file in the data directory, and Parquet files beside it
for the days that are over (storage/closed_days.py, docs/storage.md).

One writer connection, driven by the group-commit ``WriteBuffer`` thread; reads use
thread-local cursors on the same database, so they see committed data and never wait
for the writer (DuckDB is MVCC). Rollup maintenance, and moving days in and out of
files, runs on its own cursor.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from vigil.core.errors import SeriesLimitExceeded, StoreUnavailable
from vigil.core.matchers import Matcher
from vigil.core.types import Int32Array, SampleBatch, SeriesKey
from vigil.storage import closed_days, rollups
from vigil.storage.closed_days import CLOSE_AFTER_MS, DAY_MS, ClosedFile, FileGuard, Manifest
from vigil.storage.hot_files import HotFiles
from vigil.storage.migrations import LATEST, MIGRATIONS
from vigil.storage.rollups import DirtyBuckets, merge_ranges, merge_ranges_of, range_filter
from vigil.storage.series_index import SeriesIndex
from vigil.storage.sketch import key_sql, representative
from vigil.storage.store import (
    ROLLUP_TIERS,
    TIER_MS,
    TIERS,
    Buckets,
    CommitListener,
    MetricInfo,
    Points,
    RewriteListener,
    Selection,
    SeriesInfo,
    Tier,
)
from vigil.storage.write_buffer import WriteBuffer

log = logging.getLogger(__name__)

_Item = tuple[str, SampleBatch]


@dataclass(frozen=True, slots=True)
class _Sel:
    where: str  # predicate on series_id
    grp: str  # SQL expression giving a row's group
    join: str  # join clause that ``grp`` needs, or ""
    lut: np.ndarray | None  # series id -> group, when grp is series_id
    one_group: bool = False  # grp is a constant: every series in one group


# Blocks of a new database file (the default of setting ``duckdb_block_size``). DuckDB's
# own 256 kB leave much of a block empty after a compressed column segment (a row
# group's 122,880 series ids take ≈ 150 kB, alone in their block): the TSBS day took
# 6.92 B/sample in 256 kB blocks, 5.72 in 128 kB, 5.56 in 64 kB; at 32 kB some columns
# no longer fit compressed (6.48), at 16 kB most (13.4). See docs/benchmarks.md,
# "Latest: block size and backfilled days".
BLOCK_SIZE = 65_536
# Above this many series a selection is a semi-join on a registered table (behind a
# cheap id-range prefilter) instead of an IN list, which DuckDB evaluates per row.
_IN_LIST_MAX = 16
# Buckets rebuilt per transaction: bounds memory and how long one rebuild holds the
# maintenance cursor (1 h of 5m buckets, 3 h of hours, one day). DuckDB's hash tables for
# the sketch merge grow with the rows of a chunk: on the TSBS day (1,000 series) a whole
# day of 1h buckets at once took ≈ 240 MB, 3 hours ≈ 60 MB, and smaller chunks were no
# slower (docs/benchmarks.md, peak RSS).
_REBUILD_CHUNK: dict[Tier, int] = {"5m": 12, "1h": 3, "1d": 1}
# The schema version that added ``closed_files`` (storage/closed_days.py).
_CLOSED_FILES = 5
# The tables of metric data, each with a row no read ever selects (see _give_back_blocks).
_METRIC = {
    "samples": "(-1, -1, 0)",
    **{f"rollup_{t}": "(-1, -1, 0, 0, 0, 0, 0, 0, [], [])" for t in ("5m", "1h", "1d")},
    "rollup_dirty": "('-', -1)",
}
# Memory for closed files kept decoded (setting ``closed_days_memory``; hot_files.py).
HOT_BYTES = 64 * 1024 * 1024
# Ranges up to this many days are checked for being wholly closed (see ``_rel``).
_SKIP_TABLE_MAX_DAYS = 400
# Raw rows per closed file (a range of series each): bounds the sort before the write
# (≈ 36 MB for 1 M rows) and the sketch merge when 5m sketches are written from them.
_CLOSE_PART_ROWS = 1_000_000
_SENTINEL = {t: "tier = '-'" if t == "rollup_dirty" else "series_id = -1" for t in _METRIC}


class DuckDBStore:
    def __init__(
        self,
        path: Path,
        *,
        max_series_per_tenant: int = 1_000_000,
        memory_limit: str = "256MB",
        threads: int | None = None,
        block_size: int = BLOCK_SIZE,
        close_after_ms: int = CLOSE_AFTER_MS,
        hot_bytes: int = HOT_BYTES,
        migrate: bool = True,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_series_per_tenant = max_series_per_tenant
        config: dict[str, str | bool | int | float | list[str]] = {
            "memory_limit": memory_limit,
            "preserve_insertion_order": False,
            "default_block_size": block_size,  # for a new file; a file keeps its own
        }
        if threads:
            config["threads"] = threads
        self._db = duckdb.connect(str(path), config=config)
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursors_lock = threading.Lock()
        self._closed = False
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER, applied_ms BIGINT)"
        )
        if migrate:
            self.migrate(LATEST)
        self._maint_lock = threading.Lock()
        self._maint = self._db.cursor()
        self.index = SeriesIndex()
        self.dirty = DirtyBuckets()
        self.listeners: list[CommitListener] = []
        self.rewrite_listeners: list[RewriteListener] = []
        self.refresh_stats: dict[str, float] = {"runs": 0, "buckets": 0, "seconds": 0.0,
                                                 "last_run_ms": 0}
        self.close_after_ms = close_after_ms  # 0: days are never closed
        self.closed_root = path.parent / f"{path.stem}-closed"
        self.manifest = Manifest()
        self.guard = FileGuard()
        self.hot = HotFiles(hot_bytes)
        if hot_bytes:  # compressed, as a file's tables are (≈ 10x less than plain)
            self._db.execute("ATTACH ':memory:' AS hot (COMPRESS)")
        if self.schema_version() >= 1:
            self._load()
        self._writer: WriteBuffer[_Item] = WriteBuffer(self._commit, lambda it: len(it[1]))

    # ------------------------------------------------------------------ schema
    def schema_version(self) -> int:
        [(version,)] = self._cursor().execute(
            "SELECT max(version) FROM schema_migrations").fetchall()
        return int(version) if version is not None else 0

    def migrate(self, target: int) -> list[str]:
        """Apply up or down steps until the schema is at ``target``; returns what ran."""
        done: list[str] = []
        current = self.schema_version()
        if target < _CLOSED_FILES <= current and self._db.execute(
                "SELECT count(*) FROM closed_files").fetchall()[0][0]:
            raise StoreUnavailable(
                f"cannot migrate below version {_CLOSED_FILES}: closed days are stored in "
                f"Parquet files under {self.closed_root}, which older versions cannot read")
        steps = (
            [(m.version, m.up, m.description) for m in MIGRATIONS if current < m.version <= target]
            if target >= current
            else [(m.version - 1, m.down, f"undo {m.description}")
                  for m in reversed(MIGRATIONS) if target < m.version <= current]
        )
        for version, statements, description in steps:
            self._db.execute("BEGIN")
            try:
                for sql in statements:
                    self._db.execute(sql)
                self._db.execute("DELETE FROM schema_migrations")
                self._db.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?)",
                    [version, int(time.time() * 1000)],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            done.append(f"{version}: {description}")
        return done

    def _load(self) -> None:
        rows = self._db.execute(
            "SELECT tenant, id, name, labels, type, category FROM series ORDER BY id"
        ).fetchall()
        by_tenant: dict[str, list[SeriesInfo]] = {}
        for tenant, sid, name, labels, mtype, category in rows:
            key = SeriesKey.of(name, json.loads(labels))
            by_tenant.setdefault(tenant, []).append(SeriesInfo(sid, key, mtype, category))
        for tenant, infos in by_tenant.items():
            self.index.add(tenant, infos)
        marks: dict[Tier, Iterable[int]] = {}
        for tier in ROLLUP_TIERS:
            rows = self._db.execute(
                "SELECT DISTINCT bucket FROM rollup_dirty WHERE tier = ?", [tier]).fetchall()
            marks[tier] = [r[0] for r in rows]
        self.dirty.mark(marks)
        if self.schema_version() >= _CLOSED_FILES:
            self._load_closed()

    def _load_closed(self) -> None:
        """The manifest of closed files; files it does not name (written by a close or
        left by a reopen or retention that did not finish) are deleted, as are sentinel
        rows a crash left behind (see ``_give_back_blocks``)."""
        self._drop_sentinels()
        rows = self._db.execute("SELECT tier, day, path, rows, sketches, key_lo, key_hi "
                                "FROM closed_files").fetchall()
        self.manifest = Manifest([ClosedFile(t, d, p, n, k, None if lo is None else (lo, hi))
                                  for t, d, p, n, k, lo, hi in rows])
        named = {f.path for f in self.manifest.all()}
        if self.closed_root.is_dir():
            closed_days.remove([str(p) for p in self.closed_root.glob("*/*.parquet")
                                if str(p) not in named])

    # ------------------------------------------------------------------ writes
    def submit(self, tenant: str, batch: SampleBatch) -> Future[int]:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        return self._writer.submit((tenant, batch))

    def _commit(self, items: Sequence[_Item]) -> list[int | BaseException]:
        outcomes: list[int | BaseException] = []
        pending: dict[str, dict[SeriesKey, SeriesInfo]] = {}
        new_rows: list[tuple[str, SeriesInfo]] = []
        next_id = self.index.next_id
        sids, tss, vals = [], [], []
        stored: list[tuple[str, SampleBatch, Int32Array]] = []
        for tenant, batch in items:
            mine = pending.setdefault(tenant, {})
            ids, new = self.index.resolve(tenant, batch.series, mine, next_id)
            total = self.index.count(tenant) + len(mine) + len(new)
            if new and total > self.max_series_per_tenant:
                outcomes.append(SeriesLimitExceeded(
                    tenant, self.max_series_per_tenant, str(new[0].key), len(new)))
                continue
            for info in new:
                mine[info.key] = info
                new_rows.append((tenant, info))
            next_id += len(new)
            sids.append(ids[batch.series_idx])
            stored.append((tenant, batch, ids))
            tss.append(batch.ts_ms)
            vals.append(batch.value)
            outcomes.append(len(batch))
        if not sids:
            return outcomes
        ts = np.concatenate(tss)
        table = pa.table({
            "series_id": np.concatenate(sids),
            "ts": ts,
            "value": np.concatenate(vals),
        })
        touched = DirtyBuckets.touched(ts)
        con = self._db
        con.execute("BEGIN")
        try:
            if new_rows:
                now = int(time.time() * 1000)
                con.executemany(
                    "INSERT INTO series VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(i.id, tenant, i.key.name, json.dumps(i.key.label_dict()), i.type,
                      i.category, now) for tenant, i in new_rows],
                )
            con.from_arrow(table).insert_into("samples")
            if len(ts):  # an empty batch (e.g. {"samples": []}) touches no bucket
                con.execute(rollups.dirty_rows_sql(touched))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        for tenant, info in new_rows:
            self.index.add(tenant, [info])
        self.dirty.mark(dict(touched))
        for tenant, batch, ids in stored:
            for listener in self.listeners:
                try:
                    listener(tenant, batch, ids)
                except Exception:
                    log.exception("commit listener failed", extra={"listener": repr(listener)})
        return outcomes

    # ------------------------------------------------------------------ catalogue
    def find_series(
        self, tenant: str, name: str | None, matchers: Sequence[Matcher] = ()
    ) -> list[SeriesInfo]:
        return [self.index.info(i) for i in self.index.find(tenant, name, matchers)]

    def metric_names(self, tenant: str, category: str | None = None) -> list[MetricInfo]:
        by_name: dict[str, list[SeriesInfo]] = {}
        for info in self.index.infos(tenant):
            by_name.setdefault(info.key.name, []).append(info)
        return [
            MetricInfo(name, infos[0].type, infos[0].category, len(infos))
            for name, infos in sorted(by_name.items())
            if category is None or infos[0].category == category
        ]

    def label_names(self, tenant: str, name: str | None = None) -> list[str]:
        return self.index.label_names(tenant, name)

    def label_values(self, tenant: str, label: str, name: str | None = None) -> list[str]:
        return self.index.label_values(tenant, label, name)

    def cardinality(self, tenant: str, limit: int = 10) -> dict[str, object]:
        out = self.index.cardinality(tenant, limit)
        out["limit"] = self.max_series_per_tenant
        return out

    # ------------------------------------------------------------------ siblings
    def connection(self) -> duckdb.DuckDBPyConnection:
        """A cursor of its own on this database, for a sibling store that keeps other
        tables in the same file (alert state, task events). Closed with this store; the
        sibling must not use it after ``close``."""
        if self._closed:
            raise StoreUnavailable("the store is closed")
        cur = self._db.cursor()
        with self._cursors_lock:
            self._cursors.append(cur)
        return cur

    # ------------------------------------------------------------------ reads
    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cur: duckdb.DuckDBPyConnection | None = getattr(self._local, "cur", None)
        if cur is None:
            if self._closed:
                raise StoreUnavailable("the store is closed")
            cur = self._local.cur = self._db.cursor()
            with self._cursors_lock:
                self._cursors.append(cur)
        return cur

    def _own(self, tenant: str, sel: Selection) -> Selection:
        keep = self.index.owned(tenant, sel.series_ids)
        return Selection(sel.series_ids[keep], sel.groups[keep])

    @contextmanager
    def _selected(self, cur: duckdb.DuckDBPyConnection, sel: Selection) -> Iterator[_Sel]:
        """SQL for reading ``sel``: a predicate on series_id and the group of each row.

        The common shapes need no join: every series in one group (a constant) or each
        series its own group (``series_id``, mapped back to groups in numpy). Only other
        groupings and very long selections register ``sel`` as the table ``_sel``.
        """
        ids, groups = sel.series_ids, sel.groups
        one_group = bool((groups == groups[0]).all())
        per_series = not one_group and len(np.unique(groups)) == len(ids)
        distinct = np.unique(ids)
        lo, hi = int(distinct[0]), int(distinct[-1])
        # Every id from lo to hi selected (the series of one metric that appeared together
        # get adjacent ids): a range, which DuckDB evaluates in the scan itself.
        id_range = hi - lo + 1 == len(distinct)
        registered = not (one_group or per_series) or (
            len(distinct) > _IN_LIST_MAX and not id_range)
        if registered:
            cur.register("_sel", pa.table({"series_id": ids, "grp": groups}))
        try:
            where = (f"series_id BETWEEN {lo} AND {hi}" if id_range else
                     f"series_id IN ({','.join(map(str, distinct.tolist()))})"
                     if len(distinct) <= _IN_LIST_MAX else
                     f"series_id BETWEEN {lo} AND {hi} "
                     "AND series_id IN (SELECT series_id FROM _sel)")
            if one_group:
                yield _Sel(where, str(int(groups[0])), "", None, one_group=True)
            elif per_series:
                lut = np.zeros(int(ids.max()) + 1, np.int32)
                lut[ids] = groups
                yield _Sel(where, "series_id", "", lut)
            else:
                yield _Sel(where, "_sel.grp", "JOIN _sel USING (series_id)", None)
        finally:
            if registered:
                cur.unregister("_sel")

    def _rel(self, tier: Tier, start_ms: int, end_ms: int, keys: list[int] | None = None,
             sketches: bool = False) -> str:
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
            if days <= self.manifest.days() and not days & self.dirty.days():
                return f"({files})"
        return f"(SELECT * FROM {name} UNION ALL {files})"

    def _sources(
        self, tier: Tier, start_ms: int, end_ms: int, series: str, rollup_cols: str,
        raw_cols: str, keys: list[int], *, sketches: bool = False,
    ) -> str:
        """Rows of ``tier`` in range, with still-dirty buckets read from raw samples (and,
        when reading ``sketches``, closed days whose 5m files hold none)."""
        raw = (f"SELECT series_id, ts AS t0, {raw_cols} "
               f"FROM {self._rel('raw', start_ms, end_ms, keys)} "
               f"WHERE {series} AND ts >= {start_ms} AND ts < {end_ms}")
        if tier == "raw":
            return raw
        dirty = self.dirty.ranges(tier, start_ms, end_ms)
        if sketches and tier == "5m":
            dirty = merge_ranges_of([*dirty, *(
                (d, d + DAY_MS) for d in self.manifest.without_sketches()
                if d < end_ms and d + DAY_MS > start_ms)])
        rolled = (f"SELECT series_id, bucket AS t0, {rollup_cols} "
                  f"FROM {self._rel(tier, start_ms, end_ms, keys, sketches)} "
                  f"WHERE {series} AND bucket >= {start_ms} AND bucket < {end_ms}")
        if not dirty:
            return rolled
        return (f"{rolled} AND NOT {range_filter('bucket', dirty)} "
                f"UNION ALL {raw} AND {range_filter('ts', dirty)}")

    def _fetch(self, cur: duckdb.DuckDBPyConnection, sel: _Sel, sql: str
               ) -> dict[str, np.ndarray]:
        """Run ``sql`` (first two columns: group, t; no ORDER BY needed) and return its
        columns sorted by group then time, with groups mapped back when rows were grouped
        per series."""
        # execute + fetchnumpy: ≈ 1 ms less per statement than a relation's Arrow table
        # converted to numpy (one bind, no Arrow step). Aggregates over non-empty groups
        # of NOT NULL columns give no NULLs, so no masked arrays come back. Sorting the
        # (small) result here is cheaper than an ORDER BY, which costs DuckDB a pipeline
        # breaker: ≈ 1 ms on Q1's 144 rows.
        cols = cur.execute(sql).fetchnumpy()
        names = list(cols)
        if sel.lut is not None:
            cols[names[0]] = sel.lut[cols[names[0]]]
        g, t = cols[names[0]], cols[names[1]]
        if len(g) > 1 and not _sorted(g, t):
            order = np.lexsort((t, g))
            cols = {k: v[order] for k, v in cols.items()}
        return cols

    def buckets(
        self, tenant: str, tier: Tier, sel: Selection, start_ms: int, end_ms: int, step_ms: int
    ) -> Buckets:
        sel = self._own(tenant, sel)
        if not len(sel.series_ids):
            return _empty_buckets()
        cur = self._cursor()
        with self.guard.reading(), self._selected(cur, sel) as s:
            keys = self.index.name_keys(sel.series_ids)
            cols = "cnt, total, min, max, last_ts, last"
            if (tier != "raw" and step_ms == TIER_MS[tier] and not s.join
                    and (s.lut is not None or len(sel.series_ids) == 1)
                    and not self.dirty.ranges(tier, start_ms, end_ms)):
                # Each rollup row is already one output point (a group is one series):
                # no grouping needed.
                c = self._fetch(cur, s, f"""
                    SELECT {s.grp} AS grp, bucket AS t, {cols}
                    FROM {self._rel(tier, start_ms, end_ms, keys)}
                    WHERE {s.where} AND bucket >= {start_ms} AND bucket < {end_ms}""")
                return _buckets(c)
            src = self._sources(
                tier, start_ms, end_ms, s.where, cols,
                "1 AS cnt, value AS total, value AS min, value AS max, ts AS last_ts, "
                "value AS last", keys,
            )
            c = self._fetch(cur, s, f"""
                SELECT {s.grp} AS grp, t0 // {step_ms} * {step_ms} AS t,
                       sum(cnt)::BIGINT AS cnt, sum(total) AS total, min(min) AS min,
                       max(max) AS max, max(last_ts) AS last_ts, arg_max(last, last_ts) AS last
                FROM ({src}) s {s.join}
                GROUP BY 1, 2""")
        return _buckets(c)

    def quantiles(
        self, tenant: str, tier: Tier, sel: Selection, start_ms: int, end_ms: int,
        step_ms: int, q: float,
    ) -> Points:
        sel = self._own(tenant, sel)
        if not len(sel.series_ids):
            return _empty_points()
        cur = self._cursor()
        with self.guard.reading(), self._selected(cur, sel) as s:
            keys = self.index.name_keys(sel.series_ids)
            raw = self._rel("raw", start_ms, end_ms, keys)
            t0 = start_ms // step_ms * step_ms
            if tier == "raw" and s.one_group and (end_ms - 1) // step_ms * step_ms == t0:
                # One group, one step bucket (a dashboard's "p95 of the last hour"): one
                # aggregate, no GROUP BY, ≈ 1 ms less; HAVING keeps "no samples, no row".
                sql = f"""
                    SELECT {s.grp} AS k, {t0} AS t, quantile_cont(value, {q!r}) AS v
                    FROM {raw}
                    WHERE {s.where} AND ts >= {start_ms} AND ts < {end_ms}
                    HAVING count(*) > 0"""
            elif tier == "raw":
                sql = f"""
                    SELECT {s.grp} AS k, ts // {step_ms} * {step_ms} AS t,
                           quantile_cont(value, {q!r}) AS v
                    FROM {raw} {s.join}
                    WHERE {s.where} AND ts >= {start_ms} AND ts < {end_ms}
                    GROUP BY 1, 2"""
            else:
                src = self._sources(
                    tier, start_ms, end_ms, s.where,
                    "unnest(sk_keys) AS sk, unnest(sk_counts) AS c",
                    f"{key_sql('value')} AS sk, 1 AS c", keys, sketches=True,
                )
                sql = f"""
                    WITH m AS (SELECT {s.grp} AS k, t0 // {step_ms} * {step_ms} AS t, sk,
                                      sum(c) AS c
                               FROM ({src}) s {s.join} GROUP BY ALL),
                    w AS (SELECT k, t, sk, sum(c) OVER (PARTITION BY k, t ORDER BY sk) AS cum,
                                 sum(c) OVER (PARTITION BY k, t) AS n FROM m)
                    SELECT k, t, min(sk) AS v FROM w WHERE cum > floor({q!r} * (n - 1))
                    GROUP BY 1, 2"""
            c = self._fetch(cur, s, sql)
        v = c["v"] if tier == "raw" else representative(c["v"].astype(np.int64))
        return Points(c["k"].astype(np.int32), c["t"].astype(np.int64), v.astype(np.float64))

    def raw(self, tenant: str, series_ids: Int32Array, start_ms: int, end_ms: int) -> Points:
        sel = self._own(tenant, Selection.each(series_ids.tolist()))
        if not len(sel.series_ids):
            return _empty_points()
        cur = self._cursor()
        with self.guard.reading(), self._selected(cur, Selection(sel.series_ids,
                                                                 sel.series_ids)) as s:
            raw = self._rel("raw", start_ms, end_ms, self.index.name_keys(sel.series_ids))
            c = self._fetch(cur, s, f"SELECT series_id AS k, ts AS t, value FROM {raw} "
                                    f"WHERE {s.where} AND ts >= {start_ms} AND ts < {end_ms} "
                                    f"ORDER BY series_id, ts")
        return Points(c["k"].astype(np.int32), c["t"].astype(np.int64), c["value"])

    def latest(self, tenant: str, series_ids: Int32Array) -> Points:
        """From the 1d tier: the last week of closed days and the open days first, and
        only the series not found there from every closed day (a file each)."""
        ids = np.asarray(series_ids, np.int32)
        whole = TIER_MS["1d"] * 400_000  # every day bucket since the epoch, in one step
        recent = max(self.manifest.days(), default=0) - 7 * DAY_MS
        b = self.buckets(tenant, "1d", Selection(ids, ids), recent, whole, whole)
        missing = np.setdiff1d(ids, b.group)
        if len(missing) and recent > 0:
            old = self.buckets(tenant, "1d", Selection(missing, missing), 0, recent, whole)
            key = np.concatenate([b.group, old.group])
            order = np.argsort(key, kind="stable")
            return Points(key[order], np.concatenate([b.last_ts, old.last_ts])[order],
                          np.concatenate([b.last, old.last])[order])
        return Points(b.group, b.last_ts, b.last)

    # ------------------------------------------------------------------ rollups
    def refresh_rollups(self, now_ms: int, quiet_s: float = 0.0) -> int:
        """Rebuild stale buckets that closed by ``now_ms`` and received nothing for
        ``quiet_s``, finest tier first, a bounded number of buckets per transaction; then
        move days that are over and rolled up to Parquet files (``close_days``)."""
        t0 = time.perf_counter()
        rebuilt = 0
        with self._maint_lock:
            self._reopen_dirty_days()
            closed = self.manifest.days()  # samples that came since: reopened next run
            for tier in ROLLUP_TIERS:
                done: set[int] = set()  # a bucket written again meanwhile waits for next run
                while snap := self.dirty.snapshot(tier, now_ms, quiet_s, _REBUILD_CHUNK[tier],
                                                  exclude=done):
                    done.update(snap)
                    snap = {b: v for b, v in snap.items() if b // DAY_MS * DAY_MS not in closed}
                    if snap:
                        self._rebuild(tier, snap)
                        rebuilt += len(snap)
            self._close_days(now_ms)
            self._warm()
        st = self.refresh_stats
        st["runs"] += 1
        st["buckets"] += rebuilt
        st["seconds"] += time.perf_counter() - t0
        st["last_run_ms"] = now_ms
        return rebuilt

    def _rebuild(self, tier: Tier, snap: dict[int, int]) -> None:
        """Replace the rows of the buckets in ``snap`` with ones computed from the finer
        tier, in one transaction; then forget them unless written again meanwhile."""
        w = TIER_MS[tier]
        ranges = merge_ranges(snap, w)
        child = rollups.PARENT[tier]
        select = (
            rollups.rebuild_from_raw_sql(range_filter("ts", ranges))
            if child == "raw"
            else rollups.rebuild_from_tier_sql(child, w, range_filter("bucket", ranges))
        )
        self._transaction(
            f"DELETE FROM rollup_{tier} WHERE {range_filter('bucket', ranges)}",
            f"INSERT INTO rollup_{tier} {select}",
            f"DELETE FROM rollup_dirty WHERE tier = '{tier}' "
            f"AND {range_filter('bucket', ranges)}")
        self.dirty.clear(tier, snap)
        for lo, hi in ranges:
            self._rewritten(lo, hi)

    def _close_days(self, now_ms: int) -> None:
        """Move every day that ended ``close_after_ms`` ago and has no stale bucket from
        the tables to Parquet files, a day per transaction (storage/closed_days.py).

        The files are written inside the transaction that deletes the day's rows, so
        they hold exactly the rows it deletes: samples committed meanwhile stay in the
        table (and, being late for a closed day, reopen it at the next refresh)."""
        if self.close_after_ms <= 0:
            return
        horizon = (now_ms - self.close_after_ms) // DAY_MS * DAY_MS
        stale = self.dirty.days()
        union = " UNION ".join(
            f"SELECT DISTINCT {closed_days.time_column(t)} // {DAY_MS} * {DAY_MS} AS day "
            f"FROM {closed_days.table(t)} WHERE {closed_days.time_column(t)} < {horizon}"
            for t in TIERS)
        days = [d for (d,) in self._maint.execute(union).fetchall() if d not in stale]
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
        con = self._maint
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
            self._maint.execute(f"DELETE FROM {t} WHERE {_SENTINEL[t]}")

    def _close_day(self, day: int) -> None:
        con = self._maint
        generation = time.time_ns()
        files: list[ClosedFile] = []
        con.execute("BEGIN")
        try:
            raw_day = f"ts >= {day} AND ts < {day + DAY_MS}"
            scale = closed_days.pick_scale(tuple(con.execute(
                closed_days.scale_sql(raw_day)).fetchall()[0]))
            for tier in TIERS:
                col, table = closed_days.time_column(tier), closed_days.table(tier)
                where = f"{col} >= {day} AND {col} < {day + DAY_MS}"
                # While the day's raw samples are kept, its 5m quantiles are read from
                # them: the 5m sketches (0.64 B/sample on the TSBS day, as much as half
                # the raw samples) are written when raw expires (_keep_sketches).
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
            self._record(files)
            with self.guard.writing():
                con.execute("COMMIT")
                for f in files:
                    self.manifest.add(f)
        except BaseException:
            con.execute("ROLLBACK")
            closed_days.remove([f.path for f in files])
            raise
        finally:
            with contextlib.suppress(duckdb.Error):
                con.unregister("_order")
        # Same rows, now summed in another order (last bits): cached answers go.
        self._rewritten(day, day + DAY_MS)
        self.hot.want([f.path for f in files])  # a day just over is the likeliest read

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
        [(n,)] = self._maint.execute(copy).fetchall()
        if not n:
            files.pop()
            Path(f.path).unlink()
            return 0
        closed_days.sync(Path(f.path))
        keys = None
        if f.tier in closed_days.KEYED:
            [keys] = self._maint.execute(closed_days.key_range_sql(f.path)).fetchall()
        files[-1] = replace(f, rows=int(n), keys=keys)
        return int(n)

    def _record(self, files: list[ClosedFile]) -> None:
        """Add ``files`` to ``closed_files`` (in the caller's transaction)."""
        self._maint.executemany(
            "INSERT INTO closed_files VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(f.tier, f.day, f.path, f.rows, f.sketches, *(f.keys or (None, None)))
             for f in files])

    def _register_order(self, rows_from: str) -> int:
        """Register ``_order`` (series_id, name_key, part) on the maintenance cursor for
        every series: its metric's key and its part of a closed day's files (series in
        (metric, series) order, about ``_CLOSE_PART_ROWS`` raw rows of ``rows_from`` a
        part, bounding the sort before each file is written). Returns how many parts."""
        con = self._maint
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

    def _reopen_dirty_days(self) -> None:
        """Bring closed days that received samples since back into the tables, so their
        stale buckets are rebuilt as any others; they close again once rolled up.

        Their raw samples go back into ``samples`` and every bucket of the day is marked
        stale (in the same transaction), so the rollups are rebuilt from raw rather than
        read back (the 5m files may hold no sketches)."""
        con = self._maint
        for day in sorted(self.manifest.days() & self.dirty.days()):
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
                    self.dirty.mark(dict(marks))
                    self._delete([f.path for f in self.manifest.drop_day(day)])
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def _keep_sketches(self, raw_cutoff: int, keep_5m_from: int) -> None:
        """Before the raw samples of closed days before ``raw_cutoff`` are deleted, write
        the 5m files of those the 5m tier keeps again, with sketches computed from them
        (a range of series at a time, bounding the sketch merge's memory)."""
        con = self._maint
        for day in self.manifest.without_sketches():
            if not keep_5m_from <= day < raw_cutoff:
                continue
            paths = self.manifest.paths("raw", day, day + 1)
            raw = closed_days.read_sql("raw", paths)
            generation = time.time_ns()
            files: list[ClosedFile] = []
            con.execute("BEGIN")
            try:
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
                self._record(files)
                with self.guard.writing():
                    con.execute("COMMIT")
                    self._delete([f.path for f in self.manifest.replace("5m", day, files)])
            except BaseException:
                con.execute("ROLLBACK")
                closed_days.remove([f.path for f in files])
                raise
            finally:
                with contextlib.suppress(duckdb.Error):
                    con.unregister("_order")
            # No rewrite to announce: quantiles read the same keys from the sketches as
            # they did from the raw samples.

    def _delete(self, paths: list[str]) -> None:
        """Delete closed files no longer named, and their in-memory copies (the caller
        holds ``self.guard.writing()``)."""
        for table in self.hot.forget(paths):
            self._maint.execute(f"DROP TABLE hot.{table}")
        closed_days.remove(paths)

    def _warm(self) -> None:
        """Load the closed files reads wanted (and days just closed) into memory, within
        ``hot_bytes`` (see storage/hot_files.py); least recently used ones make room."""
        if not self.hot.budget:
            return
        con = self._maint
        wanted = set(self.hot.take_wanted())
        for f in self.manifest.all():
            if f.path not in wanted or self.hot.table(f.path):
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
        [(n,)] = self._maint.execute(
            "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory() "
            "WHERE tag = 'IN_MEMORY_TABLE'").fetchall()
        return int(n)

    def _transaction(self, *statements: str) -> None:
        """Run ``statements`` on the maintenance cursor in one transaction."""
        con = self._maint
        con.execute("BEGIN")
        try:
            for sql in statements:
                con.execute(sql)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def recompute_rollups(self, start_ms: int, end_ms: int) -> int:
        w = TIER_MS["5m"]
        starts = np.arange(start_ms // w * w, end_ms, w, dtype=np.int64)
        with self.guard.reading():
            row = self._cursor().execute(
                f"SELECT min(ts), max(ts) FROM {self._rel('raw', start_ms, end_ms)} "
                "WHERE ts >= ? AND ts < ?", [start_ms, end_ms]).fetchall()[0]
        if row[0] is None:
            return 0
        starts = starts[(starts + w > row[0]) & (starts <= row[1])]
        marks = DirtyBuckets.touched(starts)
        if not len(starts):
            return 0
        with self._maint_lock:
            self._maint.execute(rollups.dirty_rows_sql(marks))
            self.dirty.mark(dict(marks))
        self._rewritten(int(starts[0]), int(starts[-1]) + w)
        return len(starts)

    def rollup_status(self) -> dict[str, object]:
        cur = self._cursor()
        dirty = self.dirty.counts()
        tiers = {}
        for tier in ROLLUP_TIERS:
            with self.guard.reading():
                row = cur.execute(f"SELECT count(*), min(bucket), max(bucket) "
                                  f"FROM {self._rel(tier, -(2**62), 2**62)}").fetchall()[0]
                files = self.manifest.rows(tier)
            tiers[tier] = {"rows": row[0], "first_bucket_ms": row[1], "last_bucket_ms": row[2],
                           "stale_buckets": dirty[tier], "rows_in_closed_files": files}
        return {"tiers": tiers, "refresh": dict(self.refresh_stats)}

    def apply_retention(self, now_ms: int, retention_ms: dict[Tier, int]) -> dict[str, int]:
        deleted: dict[str, int] = {}
        con = self._maint
        with self._maint_lock:
            for tier, keep in retention_ms.items():
                if keep <= 0:
                    continue
                # Whole days only, so no rollup bucket ever loses half of its raw samples.
                cutoff = (now_ms - keep) // DAY_MS * DAY_MS
                if tier == "raw":
                    keep_5m = retention_ms.get("5m", 0)
                    self._keep_sketches(cutoff, (now_ms - keep_5m) // DAY_MS * DAY_MS
                                        if keep_5m > 0 else -(2**62))
                col = closed_days.time_column(tier)
                con.execute("BEGIN")
                try:
                    [(n,)] = con.execute(f"DELETE FROM {closed_days.table(tier)} "
                                         f"WHERE {col} < {cutoff}").fetchall()
                    con.execute(f"DELETE FROM closed_files WHERE tier = '{tier}' "
                                f"AND day < {cutoff}")
                    with self.guard.writing():
                        con.execute("COMMIT")
                        gone = self.manifest.drop_before(tier, cutoff)
                        self._delete([f.path for f in gone])
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                deleted[tier] = int(n) + sum(f.rows for f in gone)
                if deleted[tier]:
                    self._rewritten(-(2**63), cutoff)
        return deleted

    def _rewritten(self, start_ms: int, end_ms: int) -> None:
        """Tell the rewrite listeners, after reads see the change."""
        for listener in self.rewrite_listeners:
            try:
                listener(start_ms, end_ms)
            except Exception:
                log.exception("rewrite listener failed", extra={"listener": repr(listener)})

    # ------------------------------------------------------------------ operations
    def stats(self) -> dict[str, float]:
        w = self._writer.stats
        return {
            "commits": w.commits, "committed_batches": w.items, "committed_samples": w.samples,
            "failed_batches": w.failed_items, "commit_seconds": w.commit_seconds,
            "last_commit_seconds": w.last_commit_seconds, "buffer_samples": self._writer.depth,
            "stale_buckets": sum(self.dirty.counts().values()),
        }

    def check_writable(self) -> None:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        self._cursor().execute("SELECT count(*) FROM schema_migrations").fetchall()

    def checkpoint(self) -> bool:
        """Fold the WAL into the database file; False if a write was in flight."""
        with self._maint_lock:
            try:
                self._maint.execute("CHECKPOINT")
            except duckdb.TransactionException:
                return False
            return True

    def close(self) -> None:
        if self._closed:
            return
        self._writer.close()
        self._closed = True
        with self._maint_lock:
            try:
                self._maint.execute("CHECKPOINT")
            except duckdb.Error:
                log.warning("checkpoint at close failed", exc_info=True)
            with self._cursors_lock:
                for cur in self._cursors:
                    cur.close()
            self._maint.close()
            self._db.close()


def _sorted(g: np.ndarray, t: np.ndarray) -> bool:
    """Whether rows are in (g, t) order already."""
    dg = np.diff(g)
    return bool((dg >= 0).all() and ((dg > 0) | (np.diff(t) >= 0)).all())


def _buckets(c: dict[str, np.ndarray]) -> Buckets:
    return Buckets(c["grp"].astype(np.int32), c["t"].astype(np.int64),
                   c["cnt"].astype(np.int64), c["total"].astype(np.float64),
                   c["min"].astype(np.float64), c["max"].astype(np.float64),
                   c["last_ts"].astype(np.int64), c["last"].astype(np.float64))


def _empty_buckets() -> Buckets:
    i64, f64 = np.empty(0, np.int64), np.empty(0, np.float64)
    return Buckets(np.empty(0, np.int32), i64, i64, f64, f64, f64, i64, f64)


def _empty_points() -> Points:
    return Points(np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, np.float64))
