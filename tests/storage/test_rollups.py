"""Rollups equal exact numpy results, including late samples, before and after refresh;
merge(A, B) equals the rollup of A ∪ B; quantiles hold the 1 % bound."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.core.types import SampleBatch, SeriesKey, SeriesMeta
from vigil.storage.duckdb_store import DuckDBStore
from vigil.storage.rollups import distinct_buckets
from vigil.storage.store import TIER_MS, Selection

T0 = 1_700_000_000_000 // 86_400_000 * 86_400_000  # a day boundary
SERIES = [SeriesMeta(SeriesKey.of("m", {"i": str(i)})) for i in range(3)]
FAR = 2**53


def random_batch(rng: np.random.Generator, n: int, span_ms: int) -> SampleBatch:
    return SampleBatch(
        SERIES,
        rng.integers(0, len(SERIES), n).astype(np.int32),
        (T0 + rng.integers(0, span_ms, n)).astype(np.int64),
        np.round(rng.normal(50, 30, n), 2),
    )


def exact(batches: list[SampleBatch], step: int) -> dict[tuple[int, int], np.ndarray]:
    """Values per (series index, bucket), in time order (ties by arrival)."""
    b = SampleBatch.concat(batches)
    order = np.lexsort((np.arange(len(b)), b.ts_ms))
    out: dict[tuple[int, int], list[float]] = {}
    for i in order:
        key = (int(b.series_idx[i]) % len(SERIES), int(b.ts_ms[i]) // step * step)
        out.setdefault(key, []).append(float(b.value[i]))
    return {k: np.array(v) for k, v in out.items()}


def check(store: DuckDBStore, batches: list[SampleBatch], tier: str, step: int) -> None:
    ids = [store.find_series("t", "m", [])[i].id for i in range(len(SERIES))]
    order = {sid: n for n, sid in enumerate(ids)}
    sel = Selection.each(ids)
    b = store.buckets("t", tier, sel, T0, T0 + 2 * 86_400_000, step)  # type: ignore[arg-type]
    want = exact(batches, step)
    got = {(int(g), int(t)): i for i, (g, t) in enumerate(zip(b.group, b.t_ms, strict=True))}
    assert set(got) == {(order[ids[s]], t) for s, t in want}
    for (s, t), vals in want.items():
        i = got[(s, t)]
        assert b.count[i] == len(vals)
        assert b.sum[i] == pytest.approx(vals.sum())
        assert b.min[i] == vals.min() and b.max[i] == vals.max()
        assert b.last[i] in vals  # ties in time may resolve to either
    q = store.quantiles("t", tier, sel, T0, T0 + 2 * 86_400_000, step, 0.9)  # type: ignore[arg-type]
    for g, t, v in zip(q.key, q.t_ms, q.value, strict=True):
        vals = want[(int(g), int(t))]
        if tier == "raw":
            assert v == pytest.approx(np.quantile(vals, 0.9))
        else:
            lower = np.quantile(vals, 0.9, method="lower")
            assert abs(v - lower) <= 0.01 * abs(lower) + 1e-9


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), late=st.booleans())
def test_rollups_equal_exact_results_before_and_after_refresh(
    tmp_path_factory: pytest.TempPathFactory, seed: int, late: bool
) -> None:
    rng = np.random.default_rng(seed)
    store = DuckDBStore(tmp_path_factory.mktemp("r") / "s.duckdb")
    try:
        batches = [random_batch(rng, 400, 86_400_000)]
        store.submit("t", batches[0]).result()
        for tier, step in (("5m", 300_000), ("1h", 3_600_000), ("1d", 86_400_000)):
            check(store, batches, tier, step)  # stale buckets answer from raw
        store.refresh_rollups(FAR)
        assert store.rollup_status()["tiers"]["5m"]["stale_buckets"] == 0  # type: ignore[index]
        if late:  # late samples land in buckets that were already rolled up
            batches.append(random_batch(rng, 100, 86_400_000))
            store.submit("t", batches[1]).result()
            check(store, batches, "1h", 3_600_000)
            store.refresh_rollups(FAR)
        for tier, step in (("raw", 600_000), ("5m", 900_000), ("1h", 3_600_000),
                           ("1d", 86_400_000)):
            check(store, batches, tier, step)
    finally:
        store.close()


def test_merge_of_parts_equals_rollup_of_union(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    a, b = random_batch(rng, 500, 86_400_000), random_batch(rng, 500, 86_400_000)
    split, whole = DuckDBStore(tmp_path / "a.duckdb"), DuckDBStore(tmp_path / "b.duckdb")
    try:
        split.submit("t", a).result()
        split.refresh_rollups(FAR)
        split.submit("t", b).result()
        split.refresh_rollups(FAR)
        whole.submit("t", SampleBatch.concat([a, b])).result()
        whole.refresh_rollups(FAR)
        for tier in ("5m", "1h", "1d"):
            sql = (f"SELECT series_id, bucket, cnt, round(total, 6), min, max, last_ts, sk_keys,"
                   f" sk_counts FROM rollup_{tier} ORDER BY 1, 2")
            assert split._cursor().execute(sql).fetchall() == whole._cursor().execute(sql
                                                                                   ).fetchall()
    finally:
        split.close()
        whole.close()


def test_rollups_survive_restart_and_stale_marks_persist(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    batch = random_batch(rng, 300, 86_400_000)
    s = DuckDBStore(tmp_path / "s.duckdb")
    s.submit("t", batch).result()
    stale = s.dirty.counts()
    s.close()
    s = DuckDBStore(tmp_path / "s.duckdb")
    try:
        assert s.dirty.counts() == stale  # rebuilt after a restart, not forgotten
        s.refresh_rollups(FAR)
        check(s, [batch], "1h", TIER_MS["1h"])
    finally:
        s.close()


def test_recompute_rebuilds_a_range_from_raw(store: DuckDBStore) -> None:
    batch = random_batch(np.random.default_rng(1), 300, 86_400_000)
    store.submit("t", batch).result()
    store.refresh_rollups(FAR)
    store._cursor().execute("DELETE FROM rollup_5m")  # damage the tier
    marked = store.recompute_rollups(T0, T0 + 86_400_000)
    assert marked > 0
    store.refresh_rollups(FAR)
    check(store, [batch], "5m", TIER_MS["5m"])


def test_quiet_period_defers_buckets_still_being_written(store: DuckDBStore) -> None:
    batch = random_batch(np.random.default_rng(2), 200, 86_400_000)
    store.submit("t", batch).result()
    assert store.refresh_rollups(FAR, quiet_s=3600) == 0  # just written: wait
    assert store.rollup_status()["tiers"]["5m"]["stale_buckets"] > 0  # type: ignore[index]
    assert store.refresh_rollups(FAR, quiet_s=0) > 0
    assert store.rollup_status()["tiers"]["1d"]["stale_buckets"] == 0  # type: ignore[index]


@given(st.lists(st.integers(0, 2**45), min_size=0, max_size=300),
       st.sampled_from([300_000, 3_600_000, 86_400_000]))
def test_distinct_buckets_equals_unique(ts: list[int], width: int) -> None:
    arr = np.array(ts, np.int64)
    want = np.unique(arr // width) * width
    assert distinct_buckets(arr, width).tolist() == want.tolist()
