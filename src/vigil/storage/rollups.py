"""Continuous rollups: which buckets are stale, and the set-wise SQL that rebuilds them.

Every commit marks the 5m, 1h and 1d buckets its samples fall in as dirty (in memory
with a version, and in the ``rollup_dirty`` table inside the same transaction, so a
crash never loses the fact). The refresher rebuilds closed dirty buckets: 5m from raw
samples, 1h from 5m, 1d from 1h. Until a bucket is rebuilt, reads take it from raw, so
a rollup tier always answers exactly. Late samples simply make their buckets dirty again
(and first bring a closed day back into the tables: storage/closed_days.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping

import numpy as np

from vigil.core.types import Int64Array
from vigil.storage.sketch import key_sql
from vigil.storage.store import ROLLUP_TIERS, TIER_MS, Tier

PARENT: dict[Tier, Tier] = {"5m": "raw", "1h": "5m", "1d": "1h"}


class DirtyBuckets:
    """Per tier: bucket start → version of the last write into it, and when it was
    written (monotonic seconds). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version = 0
        self._dirty: dict[Tier, dict[int, int]] = {t: {} for t in ROLLUP_TIERS}
        self._written: dict[Tier, dict[int, float]] = {t: {} for t in ROLLUP_TIERS}

    @staticmethod
    def touched(ts_ms: Int64Array) -> dict[Tier, Int64Array]:
        """Distinct bucket starts per tier for a batch's timestamps (vectorised)."""
        fine = distinct_buckets(ts_ms, TIER_MS["5m"])
        hours = distinct_buckets(fine, TIER_MS["1h"])
        return {"5m": fine, "1h": hours, "1d": distinct_buckets(hours, TIER_MS["1d"])}

    def mark(self, buckets: Mapping[Tier, Iterable[int]]) -> None:
        now = time.monotonic()
        with self._lock:
            for tier, starts in buckets.items():
                d, written = self._dirty[tier], self._written[tier]
                for b in starts:
                    self._version += 1
                    d[int(b)] = self._version
                    written[int(b)] = now

    def snapshot(self, tier: Tier, closed_before_ms: int, quiet_s: float = 0.0,
                 limit: int | None = None, exclude: set[int] | None = None) -> dict[int, int]:
        """Dirty buckets of ``tier`` (oldest first, at most ``limit``) that ended before
        ``closed_before_ms`` and received nothing for ``quiet_s``, with their versions.

        A bucket waits while any of its children in the finer tier is still dirty; the
        quiet period keeps a backfill from rebuilding a bucket once per incoming batch."""
        w = TIER_MS[tier]
        settled = time.monotonic() - quiet_s
        with self._lock:
            children = self._dirty.get(PARENT[tier], {}) if tier != "5m" else {}
            blocked = {(c // w) * w for c in children}
            written = self._written[tier]
            ready = sorted(
                b for b in self._dirty[tier]
                if b + w <= closed_before_ms and b not in blocked and written[b] <= settled
                and not (exclude and b in exclude)
            )[:limit]
            return {b: self._dirty[tier][b] for b in ready}

    def days(self) -> set[int]:
        """Starts of the days holding any stale bucket, of any tier."""
        day = TIER_MS["1d"]
        with self._lock:
            return {b // day * day for d in self._dirty.values() for b in d}

    def clear(self, tier: Tier, done: dict[int, int]) -> None:
        """Forget buckets rebuilt from a snapshot unless written again since."""
        with self._lock:
            d = self._dirty[tier]
            for b, v in done.items():
                if d.get(b) == v:
                    del d[b]
                    del self._written[tier][b]

    def ranges(self, tier: Tier, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
        """Merged ``[lo, hi)`` ranges of dirty buckets of ``tier`` overlapping the range."""
        w = TIER_MS[tier]
        with self._lock:
            starts = [b for b in self._dirty[tier] if b + w > start_ms and b < end_ms]
        return merge_ranges(starts, w)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {t: len(d) for t, d in self._dirty.items()}


def distinct_buckets(ts_ms: Int64Array, width: int) -> Int64Array:
    """Sorted distinct starts of the ``width`` buckets holding ``ts_ms``: a presence mask
    over the batch's span (O(n), no sort) unless the span is sparse."""
    if not len(ts_ms):
        return np.empty(0, np.int64)
    idx = ts_ms // width
    lo, hi = int(idx.min()), int(idx.max())
    if hi - lo > 4 * len(idx) + 1024:
        return np.unique(idx) * width
    present = np.zeros(hi - lo + 1, bool)
    present[idx - lo] = True
    return (np.flatnonzero(present) + lo).astype(np.int64) * width


def dirty_rows_sql(buckets: Mapping[Tier, Int64Array]) -> str:
    """``INSERT`` of the dirty-bucket log rows for ``buckets`` (a handful per batch)."""
    rows = ",".join(f"('{tier}',{b})" for tier, starts in buckets.items()
                    for b in starts.tolist())
    return f"INSERT INTO rollup_dirty VALUES {rows}"


def merge_ranges(starts: Iterable[int], width: int) -> list[tuple[int, int]]:
    """The buckets of ``width`` at ``starts`` as merged half-open ranges."""
    return merge_ranges_of((b, b + width) for b in starts)


def merge_ranges_of(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Half-open ranges merged where they overlap or touch, in order."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def range_filter(col: str, ranges: list[tuple[int, int]]) -> str:
    """SQL predicate: ``col`` lies in one of the half-open ranges (FALSE if none)."""
    if not ranges:
        return "FALSE"
    return "(" + " OR ".join(f"({col} >= {lo} AND {col} < {hi})" for lo, hi in ranges) + ")"


def rebuild_from_raw_sql(where: str, source: str = "samples") -> str:
    """Rows of ``rollup_5m`` computed from raw samples (of ``source``) matching ``where``."""
    w = TIER_MS["5m"]
    return f"""
    WITH s AS (SELECT series_id, ts // {w} * {w} AS bucket, ts, value, {key_sql("value")} AS k
               FROM {source} WHERE {where}),
    a AS (SELECT series_id, bucket, count(*) AS cnt, sum(value) AS total, min(value) AS min,
                 max(value) AS max, max(ts) AS last_ts, arg_max(value, ts) AS last
          FROM s GROUP BY series_id, bucket),
    c AS (SELECT series_id, bucket, k, count(*)::INTEGER AS c FROM s GROUP BY ALL),
    sk AS (SELECT series_id, bucket, list(k ORDER BY k) AS sk_keys,
                  list(c ORDER BY k) AS sk_counts FROM c GROUP BY series_id, bucket)
    SELECT a.*, sk.sk_keys, sk.sk_counts FROM a JOIN sk USING (series_id, bucket)"""


def rebuild_from_tier_sql(child: Tier, width: int, where: str) -> str:
    """Rows of the tier of ``width`` merged from rows of the finer ``child`` tier."""
    return f"""
    WITH r AS (SELECT * REPLACE (bucket // {width} * {width} AS bucket)
               FROM rollup_{child} WHERE {where}),
    a AS (SELECT series_id, bucket, sum(cnt)::BIGINT AS cnt, sum(total) AS total,
                 min(min) AS min, max(max) AS max, max(last_ts) AS last_ts,
                 arg_max(last, last_ts) AS last FROM r GROUP BY series_id, bucket),
    e AS (SELECT series_id, bucket, unnest(sk_keys) AS k, unnest(sk_counts) AS c FROM r),
    c AS (SELECT series_id, bucket, k, sum(c)::INTEGER AS c FROM e GROUP BY ALL),
    sk AS (SELECT series_id, bucket, list(k ORDER BY k) AS sk_keys,
                  list(c ORDER BY k) AS sk_counts FROM c GROUP BY series_id, bucket)
    SELECT a.*, sk.sk_keys, sk.sk_counts FROM a JOIN sk USING (series_id, bucket)"""
