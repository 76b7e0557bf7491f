"""The maintenance schedule: rollups and retention run, and yield to a busy writer."""

from __future__ import annotations

import time

import numpy as np

from tests.storage.test_rollups import FAR, random_batch
from vigil.storage.duckdb_store import DuckDBStore
from vigil.storage.maintenance import Maintenance, Schedule

DAY = 86_400_000


def schedule(max_defer_s: float) -> Schedule:
    return Schedule(interval_s=1, quiet_s=0, max_defer_s=max_defer_s,
                    retention_interval_s=3600, retention_ms={"raw": 0, "5m": 0, "1h": 0,
                                                             "1d": 0})


def stale(store: DuckDBStore) -> int:
    return sum(t["stale_buckets"] for t in store.rollup_status()["tiers"].values())  # type: ignore[attr-defined]


def pretend_busy(m: Maintenance, store: DuckDBStore) -> None:
    """As if the writer had spent 0.9 of the last second committing."""
    m._last_tick = (time.monotonic() - 1.0, store.stats()["commit_seconds"] - 0.9)


def test_rollups_wait_for_a_busy_writer_then_catch_up(store: DuckDBStore) -> None:
    store.submit("t", random_batch(np.random.default_rng(4), 200, DAY)).result()
    m = Maintenance(store, schedule(max_defer_s=3600), clock=lambda: FAR)
    pretend_busy(m, store)
    m.run_once()
    assert stale(store) > 0  # deferred
    m.run_once()  # the writer went idle since the last tick
    assert stale(store) == 0


def test_deferral_is_bounded(store: DuckDBStore) -> None:
    store.submit("t", random_batch(np.random.default_rng(5), 200, DAY)).result()
    m = Maintenance(store, schedule(max_defer_s=0), clock=lambda: FAR)
    pretend_busy(m, store)
    m.run_once()
    assert stale(store) == 0


def test_retention_runs_on_its_interval(store: DuckDBStore) -> None:
    start = FAR // DAY * DAY - 10 * DAY
    batch = random_batch(np.random.default_rng(6), 10, DAY)
    shifted = type(batch)(batch.series, batch.series_idx, batch.ts_ms - batch.ts_ms.min() + start,
                          batch.value)
    store.submit("t", shifted).result()
    sched = Schedule(1, 0, 0, 3600, {"raw": DAY, "5m": 0, "1h": 0, "1d": 0})
    Maintenance(store, sched, clock=lambda: FAR).run_once()
    [info] = store.find_series("t", "m", [])[:1]
    assert store.raw("t", np.array([info.id], np.int32), 0, 2**62).value.size == 0
