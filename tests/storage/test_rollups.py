"""Rollups equal exact numpy results, including late samples, before and after refresh;
merge(A, B) equals the rollup of A ∪ B; quantiles hold the 1 % bound."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.core.types import SampleBatch, SeriesKey, SeriesMeta
from vigil.storage import duckdb_store
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


def in_series_order(store: DuckDBStore, before_ms: int = FAR) -> bool:
    """Whether the 5m rows before ``before_ms`` are stored in (series, bucket) order."""
    rows = store._cursor().execute(
        f"SELECT series_id, bucket FROM rollup_5m WHERE bucket < {before_ms} "
        "ORDER BY rowid").fetchall()
    assert len({r[0] for r in rows}) > 1
    return rows == sorted(rows)


def count_transactions(store: DuckDBStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The first statement of each maintenance transaction, from now on."""
    seen: list[str] = []
    run = store._transaction

    def counted(*statements: str) -> None:
        seen.append(statements[0].split("(")[0].strip())
        run(*statements)

    monkeypatch.setattr(store, "_transaction", counted)
    return seen


def test_a_day_written_at_once_is_rolled_up_in_series_order_a_range_at_a_time(
        store: DuckDBStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backfilled day is rolled up a range of series per transaction (bounded raw rows
    each), its 5m rows stored in series order the first time: no rewrite."""
    monkeypatch.setattr(duckdb_store, "_WHOLE_DAY_ROWS", 1000)
    batch = random_batch(np.random.default_rng(3), 3000, 86_400_000)
    store.submit("t", batch).result()
    rewrites: list[tuple[int, int]] = []
    store.rewrite_listeners.append(lambda lo, hi: rewrites.append((lo, hi)))
    txns = count_transactions(store, monkeypatch)
    store.refresh_rollups(FAR)
    # one transaction a series (1,000 raw rows each), then the stale marks go
    assert txns[:4] == ["INSERT INTO rollup_5m SELECT * FROM"] * 3 + [
        "DELETE FROM rollup_dirty WHERE tier = '5m' AND"]
    assert not any(t.startswith("CREATE TEMP TABLE _cluster") for t in txns)
    # 5m once for the whole day, 1h three hours at a time, 1d: no clustering pass
    assert sorted(hi - lo for lo, hi in rewrites) == [3 * 3_600_000] * 8 + [86_400_000] * 2
    assert in_series_order(store)
    for tier in ("5m", "1h", "1d"):
        check(store, [batch], tier, TIER_MS[tier])


def test_a_day_rolled_up_as_it_closes_is_rewritten_in_series_order(
        store: DuckDBStore) -> None:
    """Rolled up an hour of 5m buckets at a time as they close, a day's 5m rows are in
    time order; once its 1d bucket is rolled up they are rewritten clustered by series
    (so zone maps skip the other series), with the same values; the day still open is
    left in time order."""
    batch = random_batch(np.random.default_rng(5), 4000, 86_400_000)
    hour = (batch.ts_ms - T0) // 3_600_000
    for h in range(24):  # live: each hour's samples, then its buckets rolled up
        rows = hour == h
        store.submit("t", SampleBatch(SERIES, batch.series_idx[rows], batch.ts_ms[rows],
                                      batch.value[rows])).result()
        store.refresh_rollups(T0 + (h + 1) * 3_600_000 - 1)
        if h == 12:
            assert not in_series_order(store)
    tomorrow = SampleBatch(SERIES, np.arange(3, dtype=np.int32),
                           np.full(3, T0 + 86_400_000 + 5, np.int64), np.ones(3))
    store.submit("t", tomorrow).result()
    store.refresh_rollups(T0 + 86_400_000)  # the day is closed, the next one is not
    assert in_series_order(store, T0 + 86_400_000)
    for tier in ("5m", "1h", "1d"):
        check(store, [batch, tomorrow], tier, TIER_MS[tier])


def test_late_samples_in_a_clustered_day_are_rolled_up_and_clustered_again(
        store: DuckDBStore) -> None:
    rng = np.random.default_rng(8)
    batches = [random_batch(rng, 3000, 86_400_000)]
    store.submit("t", batches[0]).result()
    store.refresh_rollups(FAR)
    batches.append(random_batch(rng, 20, 86_400_000))  # late: a few buckets
    store.submit("t", batches[1]).result()
    store.refresh_rollups(FAR)
    assert in_series_order(store)
    for tier in ("5m", "1h", "1d"):
        check(store, batches, tier, TIER_MS[tier])


def test_a_day_rolled_up_part_way_answers_from_raw_and_is_finished_later(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure (or a crash) between the ranges of a day leaves its buckets stale:
    reads take them from raw, and the next refresh, or the next process, redoes them."""
    store = DuckDBStore(tmp_path / "s.duckdb")
    monkeypatch.setattr(duckdb_store, "_WHOLE_DAY_ROWS", 1000)
    batch = random_batch(np.random.default_rng(9), 3000, 86_400_000)
    store.submit("t", batch).result()
    run = store._transaction
    calls: list[int] = []

    def fails_second(*statements: str) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        run(*statements)

    monkeypatch.setattr(store, "_transaction", fails_second)
    with pytest.raises(RuntimeError, match="disk full"):
        store.refresh_rollups(FAR)
    assert store.rollup_status()["tiers"]["5m"]["stale_buckets"] > 0  # type: ignore[index]
    for tier in ("5m", "1h", "1d"):
        check(store, [batch], tier, TIER_MS[tier])
    store.close()
    store = DuckDBStore(tmp_path / "s.duckdb")  # the stale marks were kept on disk
    try:
        store.refresh_rollups(FAR)
        assert store.rollup_status()["tiers"]["5m"]["stale_buckets"] == 0  # type: ignore[index]
        for tier in ("5m", "1h", "1d"):
            check(store, [batch], tier, TIER_MS[tier])
    finally:
        store.close()


def test_a_day_with_too_many_5m_rows_is_left_in_time_order(
        store: DuckDBStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(duckdb_store, "_CLUSTER_MAX_ROWS", 100)
    monkeypatch.setattr(duckdb_store, "_WHOLE_DAY_MAX_ROWS", 100)
    batch = random_batch(np.random.default_rng(6), 3000, 86_400_000)
    store.submit("t", batch).result()
    store.refresh_rollups(FAR)
    assert not in_series_order(store)
    check(store, [batch], "5m", TIER_MS["5m"])


@given(st.lists(st.integers(0, 2**45), min_size=0, max_size=300),
       st.sampled_from([300_000, 3_600_000, 86_400_000]))
def test_distinct_buckets_equals_unique(ts: list[int], width: int) -> None:
    arr = np.array(ts, np.int64)
    want = np.unique(arr // width) * width
    assert distinct_buckets(arr, width).tolist() == want.tolist()
