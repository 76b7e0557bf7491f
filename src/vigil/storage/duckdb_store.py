"""The embedded store: one DuckDB file in the data directory, and Parquet files beside it
for the days that are over (storage/closed_days.py, docs/storage.md).

One writer connection, driven by the group-commit ``WriteBuffer`` thread; reads use
thread-local cursors on the same database, so they see committed data and never wait
for the writer (DuckDB is MVCC). Rollup maintenance, and moving days in and out of
files, runs on its own cursor.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from vigil.core.errors import SeriesLimitExceeded, StoreUnavailable
from vigil.core.matchers import Matcher
from vigil.core.types import Int32Array, SampleBatch, SeriesKey
from vigil.storage import closed_days, rollups
from vigil.storage.closed_days import CLOSE_AFTER_MS, DAY_MS
from vigil.storage.day_closer import HOT_BYTES, DayCloser
from vigil.storage.migrations import LATEST, MIGRATIONS
from vigil.storage.rollups import DirtyBuckets, merge_ranges, merge_ranges_of, range_filter
from vigil.storage.series_index import SeriesIndex
from vigil.storage.sketch import key_sql, representative
from vigil.storage.store import (
    ROLLUP_TIERS,
    TIER_MS,
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
# "Before: block size and backfilled days".
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
        self.days = DayCloser(self._maint, path.parent / f"{path.stem}-closed", self.dirty,
                              close_after_ms=close_after_ms, hot_bytes=hot_bytes,
                              transaction=self._transaction, rewritten=self._rewritten)
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
                f"Parquet files under {self.days.closed_root}, which older versions cannot read")
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
            self.days.load()

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

    def _sources(
        self, tier: Tier, start_ms: int, end_ms: int, series: str, rollup_cols: str,
        raw_cols: str, keys: list[int], *, sketches: bool = False,
    ) -> str:
        """Rows of ``tier`` in range, with still-dirty buckets read from raw samples (and,
        when reading ``sketches``, closed days whose 5m files hold none)."""
        raw = (f"SELECT series_id, ts AS t0, {raw_cols} "
               f"FROM {self.days.relation('raw', start_ms, end_ms, keys)} "
               f"WHERE {series} AND ts >= {start_ms} AND ts < {end_ms}")
        if tier == "raw":
            return raw
        dirty = self.dirty.ranges(tier, start_ms, end_ms)
        if sketches and tier == "5m":
            dirty = merge_ranges_of([*dirty, *(
                (d, d + DAY_MS) for d in self.days.manifest.without_sketches()
                if d < end_ms and d + DAY_MS > start_ms)])
        rolled = (f"SELECT series_id, bucket AS t0, {rollup_cols} "
                  f"FROM {self.days.relation(tier, start_ms, end_ms, keys, sketches)} "
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
        with self.days.guard.reading(), self._selected(cur, sel) as s:
            keys = self.index.name_keys(sel.series_ids)
            cols = "cnt, total, min, max, last_ts, last"
            if (tier != "raw" and step_ms == TIER_MS[tier] and not s.join
                    and (s.lut is not None or len(sel.series_ids) == 1)
                    and not self.dirty.ranges(tier, start_ms, end_ms)):
                # Each rollup row is already one output point (a group is one series):
                # no grouping needed.
                c = self._fetch(cur, s, f"""
                    SELECT {s.grp} AS grp, bucket AS t, {cols}
                    FROM {self.days.relation(tier, start_ms, end_ms, keys)}
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
        with self.days.guard.reading(), self._selected(cur, sel) as s:
            keys = self.index.name_keys(sel.series_ids)
            raw = self.days.relation("raw", start_ms, end_ms, keys)
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
        with self.days.guard.reading(), self._selected(cur, Selection(sel.series_ids,
                                                                 sel.series_ids)) as s:
            raw = self.days.relation("raw", start_ms, end_ms, self.index.name_keys(sel.series_ids))
            c = self._fetch(cur, s, f"SELECT series_id AS k, ts AS t, value FROM {raw} "
                                    f"WHERE {s.where} AND ts >= {start_ms} AND ts < {end_ms} "
                                    f"ORDER BY series_id, ts")
        return Points(c["k"].astype(np.int32), c["t"].astype(np.int64), c["value"])

    def latest(self, tenant: str, series_ids: Int32Array) -> Points:
        """From the 1d tier: the last week of closed days and the open days first, and
        only the series not found there from every closed day (a file each)."""
        ids = np.asarray(series_ids, np.int32)
        whole = TIER_MS["1d"] * 400_000  # every day bucket since the epoch, in one step
        recent = max(self.days.manifest.days(), default=0) - 7 * DAY_MS
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
            self.days.reopen_dirty_days()
            closed = self.days.manifest.days()  # samples that came since: reopened next run
            for tier in ROLLUP_TIERS:
                done: set[int] = set()  # a bucket written again meanwhile waits for next run
                while snap := self.dirty.snapshot(tier, now_ms, quiet_s, _REBUILD_CHUNK[tier],
                                                  exclude=done):
                    done.update(snap)
                    snap = {b: v for b, v in snap.items() if b // DAY_MS * DAY_MS not in closed}
                    if snap:
                        self._rebuild(tier, snap)
                        rebuilt += len(snap)
            self.days.close_days(now_ms)
            self.days.warm()
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
        with self.days.guard.reading():
            row = self._cursor().execute(
                f"SELECT min(ts), max(ts) FROM {self.days.relation('raw', start_ms, end_ms)} "
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
            with self.days.guard.reading():
                row = cur.execute(f"SELECT count(*), min(bucket), max(bucket) "
                                  f"FROM {self.days.relation(tier, -(2**62), 2**62)}").fetchall()[0]
                files = self.days.manifest.rows(tier)
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
                    self.days.keep_sketches(cutoff, (now_ms - keep_5m) // DAY_MS * DAY_MS
                                        if keep_5m > 0 else -(2**62))
                col = closed_days.time_column(tier)
                con.execute("BEGIN")
                try:
                    [(n,)] = con.execute(f"DELETE FROM {closed_days.table(tier)} "
                                         f"WHERE {col} < {cutoff}").fetchall()
                    con.execute(f"DELETE FROM closed_files WHERE tier = '{tier}' "
                                f"AND day < {cutoff}")
                    with self.days.guard.writing():
                        con.execute("COMMIT")
                        gone = self.days.manifest.drop_before(tier, cutoff)
                        self.days.delete([f.path for f in gone])
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
