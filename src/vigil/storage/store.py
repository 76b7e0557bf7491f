"""The ``Store`` protocol every backend implements (DuckDB now, PostgreSQL later).

Contract for every method: ``tenant`` is required and every read and write is confined
to it; series ids of another tenant are silently ignored. Times are int64 epoch ms,
ranges are half-open ``[start_ms, end_ms)``. Methods are thread-safe. Reads never wait
for the writer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from vigil.core.matchers import Matcher
from vigil.core.types import (
    Category,
    Float64Array,
    Int32Array,
    Int64Array,
    MetricType,
    SampleBatch,
    SeriesKey,
)

Tier = Literal["raw", "5m", "1h", "1d"]
TIERS: tuple[Tier, ...] = ("raw", "5m", "1h", "1d")
ROLLUP_TIERS: tuple[Tier, ...] = ("5m", "1h", "1d")
TIER_MS: dict[Tier, int] = {"raw": 0, "5m": 300_000, "1h": 3_600_000, "1d": 86_400_000}


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    id: int
    key: SeriesKey
    type: MetricType
    category: Category


@dataclass(frozen=True, slots=True)
class MetricInfo:
    name: str
    type: MetricType
    category: Category
    series: int


@dataclass(frozen=True, slots=True)
class Selection:
    """Series to read and the output group each belongs to (parallel arrays)."""

    series_ids: Int32Array
    groups: Int32Array

    @classmethod
    def each(cls, ids: Sequence[int]) -> Selection:
        """Every series its own group, in the given order."""
        return cls(np.asarray(ids, np.int32), np.arange(len(ids), dtype=np.int32))


@dataclass(frozen=True, slots=True)
class Buckets:
    """Mergeable partial aggregates per (group, bucket start), sorted by group then time."""

    group: Int32Array
    t_ms: Int64Array
    count: Int64Array
    sum: Float64Array
    min: Float64Array
    max: Float64Array
    last_ts: Int64Array
    last: Float64Array


@dataclass(frozen=True, slots=True)
class Points:
    """Values per (group or series, time), sorted by key then time."""

    key: Int32Array
    t_ms: Int64Array
    value: Float64Array


# Called on the writer thread after each commit, with the store's id of each of the
# batch's series (aligned with ``batch.series``); must be quick and never block.
CommitListener = Callable[[str, SampleBatch, Int32Array], None]
# Called with ``(start_ms, end_ms)`` once reads see that stored data of any tenant in
# that range changed for another cause than a commit: rollup rebuilds and recomputes,
# retention. On the thread that made the change (maintenance); must be quick.
RewriteListener = Callable[[int, int], None]


class Store(Protocol):
    listeners: list[CommitListener]
    rewrite_listeners: list[RewriteListener]

    def submit(self, tenant: str, batch: SampleBatch) -> Future[int]:
        """Queue ``batch`` for the next group commit; the future resolves to the number of
        samples stored once they are durable, or fails (``SeriesLimitExceeded``,
        ``StoreUnavailable``) with nothing of the batch stored."""
        ...

    def find_series(
        self, tenant: str, name: str | None, matchers: Sequence[Matcher] = ()
    ) -> list[SeriesInfo]:
        """Series of ``name`` (any name if None) whose labels satisfy all ``matchers``."""
        ...

    def buckets(
        self, tenant: str, tier: Tier, sel: Selection, start_ms: int, end_ms: int, step_ms: int
    ) -> Buckets:
        """Partial aggregates per group and step-aligned bucket, from ``tier``."""
        ...

    def quantiles(
        self, tenant: str, tier: Tier, sel: Selection, start_ms: int, end_ms: int,
        step_ms: int, q: float,
    ) -> Points:
        """The q-quantile per group and bucket: exact (interpolated) on ``raw``, within 1 %
        relative error (of the lower-rank element) on rollup tiers."""
        ...

    def raw(self, tenant: str, series_ids: Int32Array, start_ms: int, end_ms: int) -> Points:
        """Raw samples, ``key`` = series id, sorted by series then time."""
        ...

    def latest(self, tenant: str, series_ids: Int32Array) -> Points:
        """The most recent sample of each series that has one."""
        ...

    def metric_names(self, tenant: str, category: str | None = None) -> list[MetricInfo]: ...

    def label_names(self, tenant: str, name: str | None = None) -> list[str]: ...

    def label_values(self, tenant: str, label: str, name: str | None = None) -> list[str]: ...

    def cardinality(self, tenant: str, limit: int = 10) -> dict[str, object]:
        """Series counts: total, top metric names, top label names and label pairs."""
        ...

    def rollup_status(self) -> dict[str, object]: ...

    def refresh_rollups(self, now_ms: int, quiet_s: float = 0.0) -> int:
        """Rebuild stale buckets that closed by ``now_ms`` and received no sample for
        ``quiet_s``; returns how many."""
        ...

    def recompute_rollups(self, start_ms: int, end_ms: int) -> int:
        """Mark every bucket overlapping the range (for all tenants) for a rebuild from raw
        samples; returns the 5m buckets marked. The caller keeps the range inside raw
        retention."""
        ...

    def apply_retention(self, now_ms: int, retention_ms: dict[Tier, int]) -> dict[str, int]:
        """Delete data older than each tier's retention (0 = keep forever)."""
        ...

    def schema_version(self) -> int: ...

    def stats(self) -> dict[str, float]:
        """Counters and gauges for Vigil's own /metrics (commits, latency, buffer depth)."""
        ...

    def check_writable(self) -> None: ...

    def close(self) -> None:
        """Commit everything queued, checkpoint, release files."""
        ...
