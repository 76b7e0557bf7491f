"""Closed days move to Parquet files and answer exactly as before; late samples bring a
day back; failures and restarts leave every sample readable once; values round-trip
bit for bit."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.storage.test_rollups import SERIES, T0, check, random_batch
from vigil.core.errors import StoreUnavailable
from vigil.core.types import SampleBatch, SeriesKey, SeriesMeta
from vigil.storage import closed_days, day_closer
from vigil.storage.closed_days import CLOSE_AFTER_MS, DAY_MS, assign_parts, pick_scale
from vigil.storage.duckdb_store import DuckDBStore
from vigil.storage.hot_files import HotFiles
from vigil.storage.store import TIER_MS, TIERS, Selection

CLOSED = T0 + DAY_MS + CLOSE_AFTER_MS  # the first moment day T0 may close


def rows_in_tables(store: DuckDBStore) -> dict[str, int]:
    cur = store._cursor()
    return {t: cur.execute(f"SELECT count(*) FROM {closed_days.table(t)}").fetchall()[0][0]
            for t in TIERS}


def files(store: DuckDBStore) -> list[Path]:
    return sorted(store.days.closed_root.glob("*/*.parquet"))


def answers(store: DuckDBStore) -> list[list[float]]:
    """Every read path over two days: columns as plain lists, sums last."""
    ids = [i.id for i in store.find_series("t", "m")]
    sel = Selection.each(ids)
    out: list[list[float]] = []
    sums: list[list[float]] = []
    for tier in TIERS:
        for step in (TIER_MS["1h"], DAY_MS):
            b = store.buckets("t", tier, sel, T0, T0 + 2 * DAY_MS, step)
            out += [b.group.tolist(), b.t_ms.tolist(), b.count.tolist(), b.min.tolist(),
                    b.max.tolist(), b.last.tolist()]
            sums.append(b.sum.tolist())
            q = store.quantiles("t", tier, sel, T0, T0 + 2 * DAY_MS, step, 0.9)
            out += [q.key.tolist(), q.t_ms.tolist(), q.value.tolist()]
    r = store.raw("t", np.array(ids, np.int32), T0, T0 + 2 * DAY_MS)
    return [*out, r.key.tolist(), r.t_ms.tolist(), r.value.tolist(), *sums]


def same(a: list[list[float]], b: list[list[float]]) -> None:
    """Equal, but for sums, which may add up in another order (last bits)."""
    n = len(TIERS) * 2 * 9 + 3  # the columns before the sums
    assert a[:n] == b[:n]
    for x, y in zip(a[n:], b[n:], strict=True):
        assert x == pytest.approx(y, rel=1e-12)


def closed_then_late(store: DuckDBStore, seed: int, n: int, late: int) -> list[SampleBatch]:
    """``n`` samples over day T0, closed; then ``late`` more for it. Returns both."""
    rng = np.random.default_rng(seed)
    batches = [random_batch(rng, n, DAY_MS)]
    store.submit("t", batches[0]).result()
    store.refresh_rollups(CLOSED)
    batches.append(random_batch(rng, late, DAY_MS))
    store.submit("t", batches[1]).result()
    return batches


def test_a_closed_day_moves_to_files_and_answers_the_same(store: DuckDBStore) -> None:
    batch = random_batch(np.random.default_rng(1), 3000, DAY_MS)
    store.submit("t", batch).result()
    store.refresh_rollups(CLOSED - 1)  # rolled up, not yet closed
    assert all(rows_in_tables(store).values())
    assert files(store) == []
    before = answers(store)
    rewrites: list[tuple[int, int]] = []
    store.rewrite_listeners.append(lambda lo, hi: rewrites.append((lo, hi)))
    store.refresh_rollups(CLOSED)
    assert rows_in_tables(store) == dict.fromkeys(TIERS, 0)
    assert [p.name.split("-")[0] for p in files(store)] == ["1d", "1h", "5m", "raw"]
    assert rewrites == [(T0, T0 + DAY_MS)]  # cached answers over the day are dropped
    same(answers(store), before)
    for tier in ("raw", "5m", "1h", "1d"):
        check(store, [batch], tier, TIER_MS[tier] or TIER_MS["5m"])
    status = store.rollup_status()["tiers"]["5m"]  # type: ignore[index]
    assert status["rows"] == status["rows_in_closed_files"] > 0
    assert status["first_bucket_ms"] >= T0


def test_a_day_closes_only_when_over_and_rolled_up(store: DuckDBStore) -> None:
    batch = random_batch(np.random.default_rng(2), 500, DAY_MS)
    store.submit("t", batch).result()
    store.refresh_rollups(CLOSED, quiet_s=3600)  # just written: not rolled up, stays
    assert files(store) == [] and rows_in_tables(store)["raw"] == 500
    store.refresh_rollups(CLOSED)
    assert rows_in_tables(store)["raw"] == 0 and files(store)


def test_late_samples_reopen_a_closed_day_which_closes_again(store: DuckDBStore) -> None:
    batches = closed_then_late(store, 3, 2000, 30)
    first = files(store)  # the late samples are not in files yet
    for tier in ("raw", "5m", "1h", "1d"):  # stale buckets come from raw meanwhile
        check(store, batches, tier, TIER_MS[tier] or TIER_MS["5m"])
    store.refresh_rollups(CLOSED)
    second = files(store)
    assert len(second) == 4 and not set(first) & set(second)  # a new generation
    assert rows_in_tables(store) == dict.fromkeys(TIERS, 0)
    for tier in ("raw", "5m", "1h", "1d"):
        check(store, batches, tier, TIER_MS[tier] or TIER_MS["5m"])


def test_a_failed_close_keeps_the_day_in_the_tables(
        store: DuckDBStore, monkeypatch: pytest.MonkeyPatch) -> None:
    batch = random_batch(np.random.default_rng(4), 1000, DAY_MS)
    store.submit("t", batch).result()
    store.refresh_rollups(CLOSED - 1)
    before = answers(store)
    calls: list[Path] = []

    def full_disk(path: Path) -> None:
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(closed_days, "sync", full_disk)
    with pytest.raises(OSError, match="No space"):
        store.refresh_rollups(CLOSED)
    assert files(store) == []  # the files written before the failure are gone
    assert rows_in_tables(store)["raw"] == 1000
    same(answers(store), before)
    monkeypatch.undo()
    store.refresh_rollups(CLOSED)
    assert rows_in_tables(store)["raw"] == 0
    check(store, [batch], "5m", TIER_MS["5m"])


def test_closed_days_survive_a_restart_and_stray_files_go(tmp_path: Path) -> None:
    s = DuckDBStore(tmp_path / "s.duckdb")
    batch = random_batch(np.random.default_rng(5), 800, 2 * DAY_MS)
    s.submit("t", batch).result()
    s.refresh_rollups(CLOSED)  # day one closes, day two stays
    before = answers(s)
    kept = files(s)
    s.close()
    stray = s.days.closed_root / str(T0) / "raw-1.parquet"  # a close that never committed
    stray.write_bytes(b"PAR1")
    s = DuckDBStore(tmp_path / "s.duckdb")
    try:
        assert files(s) == kept
        same(answers(s), before)
        assert rows_in_tables(s)["raw"] > 0  # the second day
    finally:
        s.close()


def test_retention_deletes_closed_files(store: DuckDBStore) -> None:
    batch = random_batch(np.random.default_rng(6), 600, 3 * DAY_MS)
    store.submit("t", batch).result()
    store.refresh_rollups(T0 + 4 * DAY_MS)
    assert len({p.parent.name for p in files(store)}) == 3
    deleted = store.apply_retention(T0 + 4 * DAY_MS,
                                    {"raw": 2 * DAY_MS, "5m": 0, "1h": 0, "1d": 0})
    assert deleted["raw"] == int((batch.ts_ms < T0 + 2 * DAY_MS).sum())
    assert {p.name.split("-")[0] for p in files(store) if p.parent.name == str(T0)} == {
        "5m", "1h", "1d"}
    ids = np.array([i.id for i in store.find_series("t", "m")], np.int32)
    assert store.raw("t", ids, 0, 2**62).t_ms.min() >= T0 + 2 * DAY_MS


def test_migrating_below_closed_files_is_refused_while_they_exist(
        store: DuckDBStore) -> None:
    store.submit("t", random_batch(np.random.default_rng(7), 50, DAY_MS)).result()
    store.refresh_rollups(CLOSED)
    with pytest.raises(StoreUnavailable, match="Parquet files"):
        store.migrate(4)
    assert store.schema_version() == 5


def test_reads_during_closes_and_reopens_see_every_sample_once(store: DuckDBStore) -> None:
    rng = np.random.default_rng(8)
    batch = random_batch(rng, 2000, DAY_MS)
    store.submit("t", batch).result()
    ids = np.array([i.id for i in store.find_series("t", "m")], np.int32)
    sel = Selection(ids, np.zeros(len(ids), np.int32))
    seen: list[int] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            b = store.buckets("t", "5m", sel, T0, T0 + DAY_MS, DAY_MS)
            seen.append(int(b.count.sum()))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        total = len(batch)
        for _ in range(3):  # close, then a late sample reopens it, and so on
            store.refresh_rollups(CLOSED)
            late = SampleBatch(SERIES, np.zeros(1, np.int32), np.array([T0 + 7], np.int64),
                               np.ones(1))
            store.submit("t", late).result()
            total += 1
        store.refresh_rollups(CLOSED)
    finally:
        stop.set()
        reader.join()
    assert seen and set(seen) <= set(range(len(batch), total + 1))
    assert seen == sorted(seen)  # never a sample twice, never one lost and back


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(  # finite: the pipeline refuses others before the store
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(-10**6, 10**6, places=2, allow_nan=False).map(float),
    st.sampled_from([0.0, -0.0, 4.36, 0.1, 1e300, -1e-300, 2.0**53, 123456.789]),
), min_size=1, max_size=60))
def test_values_come_back_from_files_bit_for_bit(tmp_path_factory: pytest.TempPathFactory,
                                                  values: list[float]) -> None:
    s = DuckDBStore(tmp_path_factory.mktemp("v") / "s.duckdb")
    try:
        v = np.array(values, np.float64)
        ts = T0 + np.arange(len(v), dtype=np.int64) * 1000
        s.submit("t", SampleBatch(SERIES[:1], np.zeros(len(v), np.int32), ts, v)).result()
        s.refresh_rollups(CLOSED)
        assert rows_in_tables(s)["raw"] == 0
        [info] = s.find_series("t", "m")
        got = s.raw("t", np.array([info.id], np.int32), T0, T0 + DAY_MS).value
        assert got.view(np.int64).tolist() == v.view(np.int64).tolist()
    finally:
        s.close()


def test_the_scale_is_the_smallest_power_of_ten_keeping_values_exact() -> None:
    assert pick_scale((100, 10, 50, 100, 100, 100, 100, 100)) == 100
    assert pick_scale((100, 100, 100, 100, 100, 100, 100, 100)) == 1
    assert pick_scale((100, 0, 0, 0, 0, 0, 0, 3)) == 1_000_000  # mostly floats: the best
    assert pick_scale((0, 0, 0, 0, 0, 0, 0, 0)) == 1


def quantiles_5m(store: DuckDBStore) -> list[list[float]]:
    ids = [i.id for i in store.find_series("t", "m")]
    out = []
    for sel in (Selection.each(ids), Selection(np.array(ids, np.int32),
                                               np.zeros(len(ids), np.int32))):
        for step in (TIER_MS["5m"], TIER_MS["1h"]):
            q = store.quantiles("t", "5m", sel, T0, T0 + 2 * DAY_MS, step, 0.5)
            out += [q.key.tolist(), q.t_ms.tolist(), q.value.tolist()]
    return out


def test_5m_sketches_are_written_from_raw_before_raw_expires(
        store: DuckDBStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """While raw samples are kept, a closed day's 5m quantiles come from them (its 5m
    files hold no sketches); retention writes the sketches before deleting raw, a range
    of series per file, and the answers never change."""
    monkeypatch.setattr(day_closer, "_CLOSE_PART_ROWS", 400)
    batch = random_batch(np.random.default_rng(9), 2000, 2 * DAY_MS)
    store.submit("t", batch).result()
    store.refresh_rollups(CLOSED - 1)
    before = quantiles_5m(store)
    store.refresh_rollups(CLOSED + DAY_MS)  # both days closed
    assert store.days.manifest.without_sketches() == [T0, T0 + DAY_MS]
    assert len(store.days.manifest.paths("raw", T0, T0 + 1)) == 2  # ≈ 1,000 rows, in parts
    assert quantiles_5m(store) == before
    store.apply_retention(T0 + 3 * DAY_MS, {"raw": 2 * DAY_MS, "5m": 0, "1h": 0, "1d": 0})
    assert store.days.manifest.without_sketches() == [T0 + DAY_MS]  # the day keeping raw
    assert store.days.manifest.paths("raw", T0, T0 + 1) == []
    assert len(store.days.manifest.paths("5m", T0, T0 + 1, sketches=True)) == 2
    assert quantiles_5m(store) == before
    check(store, [batch], "5m", TIER_MS["5m"])
    store.close()  # the manifest on disk says the same
    s = DuckDBStore(store.path)
    try:
        assert s.days.manifest.without_sketches() == [T0 + DAY_MS]
        assert quantiles_5m(s) == before
    finally:
        s.close()


def test_a_day_past_5m_retention_gets_no_sketches(store: DuckDBStore) -> None:
    store.submit("t", random_batch(np.random.default_rng(10), 500, DAY_MS)).result()
    store.refresh_rollups(CLOSED)
    store.apply_retention(T0 + 3 * DAY_MS, {"raw": DAY_MS, "5m": DAY_MS, "1h": 0, "1d": 0})
    assert store.days.manifest.paths("5m", T0, T0 + 1) == []
    assert [p.name.split("-")[0] for p in files(store)] == ["1d", "1h"]


def test_a_failed_sketch_write_keeps_raw_and_the_answers(
        store: DuckDBStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.submit("t", random_batch(np.random.default_rng(11), 800, DAY_MS)).result()
    store.refresh_rollups(CLOSED)
    before, kept = quantiles_5m(store), files(store)

    def full_disk(path: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(closed_days, "sync", full_disk)
    with pytest.raises(OSError, match="No space"):
        store.apply_retention(T0 + 3 * DAY_MS, {"raw": DAY_MS, "5m": 0, "1h": 0, "1d": 0})
    assert files(store) == kept and store.days.manifest.without_sketches() == [T0]
    assert quantiles_5m(store) == before
    monkeypatch.undo()
    store.apply_retention(T0 + 3 * DAY_MS, {"raw": DAY_MS, "5m": 0, "1h": 0, "1d": 0})
    assert store.days.manifest.without_sketches() == [] and quantiles_5m(store) == before


def test_a_closed_day_is_reopened_from_raw_and_its_rollups_rebuilt(
        store: DuckDBStore) -> None:
    batches = closed_then_late(store, 12, 1500, 5)
    store.refresh_rollups(CLOSED, quiet_s=3600)  # reopened; the rebuild waits
    assert store.days.manifest.days() == set() and rows_in_tables(store)["raw"] == 1505
    assert store.rollup_status()["tiers"]["5m"]["stale_buckets"] == 288  # type: ignore[index]
    for tier in ("5m", "1h", "1d"):  # stale: from raw
        check(store, batches, tier, TIER_MS[tier])
    store.refresh_rollups(CLOSED)
    assert store.days.manifest.without_sketches() == [T0]
    for tier in ("5m", "1h", "1d"):
        check(store, batches, tier, TIER_MS[tier])


def test_files_are_sorted_by_metric_then_series_and_read_per_metric(
        store: DuckDBStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A host's fields arrive together, so a metric's series are not adjacent ids; files
    put each metric's series together (keyed by its first series id, per tenant) so a
    read of one metric decodes its row groups only. Answers per metric are unchanged."""
    monkeypatch.setattr(day_closer, "_CLOSE_PART_ROWS", 500)
    rng = np.random.default_rng(13)
    metas = [SeriesMeta(SeriesKey.of(m, {"host": str(h)})) for h in range(4) for m in "ab"]
    n = 2000
    batch = SampleBatch(metas, rng.integers(0, len(metas), n).astype(np.int32),
                        (T0 + rng.integers(0, DAY_MS, n)).astype(np.int64),
                        np.round(rng.normal(50, 30, n), 2))
    for tenant in ("t", "u"):
        store.submit(tenant, batch).result()
    store.refresh_rollups(CLOSED - 1)

    def per_metric() -> list[list[float]]:
        out: list[list[float]] = []
        for tenant in ("t", "u"):
            for m in "ab":
                ids = np.array([i.id for i in store.find_series(tenant, m)], np.int32)
                r = store.raw(tenant, ids, T0, T0 + DAY_MS)
                b = store.buckets(tenant, "5m", Selection.each(ids.tolist()), T0,
                                  T0 + DAY_MS, TIER_MS["1h"])
                out += [r.key.tolist(), r.value.tolist(), b.count.tolist(), b.max.tolist()]
        return out

    before = per_metric()
    store.refresh_rollups(CLOSED)
    assert per_metric() == before
    first = {(tenant, m): min(i.id for i in store.find_series(tenant, m))
             for tenant in ("t", "u") for m in "ab"}
    paths = store.days.manifest.paths("raw", T0, T0 + 1)
    assert len(paths) > 1  # in parts
    rows = duckdb.connect().execute(
        "SELECT name_key, series_id, ts FROM read_parquet(?) ORDER BY filename, file_row_number",
        [paths]).fetchall()
    assert rows == sorted(rows) and {r[0] for r in rows} == set(first.values())
    one = store.days.manifest.paths("raw", T0, T0 + 1, keys=[first[("t", "a")]])
    assert one and len(one) < len(paths)  # a metric's reads open its files only
    for tenant in ("t", "u"):
        for m in "ab":
            ids = np.array([i.id for i in store.find_series(tenant, m)], np.int32)
            assert store.index.name_keys(ids) == [first[(tenant, m)]]


def test_late_samples_in_a_closed_day_are_not_rolled_up_into_the_tables(
        store: DuckDBStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Samples that reach a closed day after this run's reopen wait for the next one:
    rolling up their buckets alone would put a closed day's buckets in the tables too."""
    batches = closed_then_late(store, 14, 1000, 5)
    monkeypatch.setattr(store.days, "reopen_dirty_days", lambda: None)  # came just after it
    store.refresh_rollups(CLOSED)
    counts = rows_in_tables(store)
    assert counts["raw"] == 5 and counts["5m"] == counts["1h"] == counts["1d"] == 0
    for tier in ("5m", "1h", "1d"):
        check(store, batches, tier, TIER_MS[tier])
    monkeypatch.undo()
    store.refresh_rollups(CLOSED)
    assert rows_in_tables(store) == dict.fromkeys(TIERS, 0)
    for tier in ("5m", "1h", "1d"):
        check(store, batches, tier, TIER_MS[tier])


def test_a_close_that_would_lose_rows_is_refused(
        store: DuckDBStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.submit("t", random_batch(np.random.default_rng(15), 300, DAY_MS)).result()
    store.refresh_rollups(CLOSED - 1)
    before = answers(store)
    # a catalogue that misses a series: its rows would be in no file
    monkeypatch.setattr(closed_days, "ORDER_SQL", closed_days.ORDER_SQL + " WHERE id > "
                        f"{min(i.id for i in store.find_series('t', 'm'))}")
    with pytest.raises(StoreUnavailable, match="rows to move but"):
        store.refresh_rollups(CLOSED)
    assert files(store) == [] and rows_in_tables(store)["raw"] == 300
    same(answers(store), before)


def test_parts_cut_the_metric_then_series_order_into_runs_of_rows() -> None:
    ids = np.array([1, 2, 3, 4, 5], np.int64)
    keys = np.array([1, 2, 1, 2, 1], np.int64)  # metric 1: series 1, 3, 5; metric 2: 2, 4
    rows = np.array([3, 3, 3, 3, 3], np.int64)
    order, part = assign_parts(ids, keys, rows, 6)
    assert ids[order].tolist() == [1, 3, 5, 2, 4]
    assert part.tolist() == [0, 0, 1, 1, 2]
    assert assign_parts(ids, keys, rows, 100)[1].tolist() == [0] * 5


def test_days_stay_in_the_tables_when_closing_is_off(tmp_path: Path) -> None:
    s = DuckDBStore(tmp_path / "s.duckdb", close_after_ms=0)
    try:
        s.submit("t", random_batch(np.random.default_rng(16), 300, DAY_MS)).result()
        s.refresh_rollups(CLOSED + 30 * DAY_MS)
        assert files(s) == [] and rows_in_tables(s)["raw"] == 300
    finally:
        s.close()


def test_latest_finds_series_last_seen_in_recent_and_in_old_closed_days(
        store: DuckDBStore) -> None:
    early = SampleBatch(SERIES[:1], np.zeros(2, np.int32),
                        np.array([T0 + 5, T0 + 9], np.int64), np.array([1.0, 2.0]))
    later = SampleBatch(SERIES[1:2], np.zeros(1, np.int32),
                        np.array([T0 + 20 * DAY_MS + 7], np.int64), np.array([3.0]))
    store.submit("t", early).result()
    store.submit("t", later).result()
    store.refresh_rollups(T0 + 21 * DAY_MS + CLOSE_AFTER_MS)  # both days closed
    assert store.days.manifest.days() == {T0, T0 + 20 * DAY_MS}
    ids = np.array([i.id for i in store.find_series("t", "m")], np.int32)
    got = store.latest("t", ids)
    assert got.key.tolist() == sorted(ids.tolist())
    assert got.value.tolist() == [2.0, 3.0] and got.t_ms.tolist() == [T0 + 9,
                                                                        T0 + 20 * DAY_MS + 7]


def test_the_database_file_shrinks_once_closes_empty_the_tables(tmp_path: Path) -> None:
    """DuckDB cuts its file only after the last block in use: the store moves what sits
    past the closed day's freed blocks (metadata, its small tables) so it can."""
    s = DuckDBStore(tmp_path / "s.duckdb")
    try:
        rng = np.random.default_rng(17)
        for _ in range(4):
            s.submit("t", random_batch(rng, 100_000, DAY_MS)).result()
        s.refresh_rollups(CLOSED - 1)
        s.checkpoint()
        before = s.path.stat().st_size
        s.refresh_rollups(CLOSED)
        assert rows_in_tables(s) == dict.fromkeys(TIERS, 0)
        assert s.path.stat().st_size < before / 4
    finally:
        s.close()


_CRASH = """
import os, sys
import numpy as np
from pathlib import Path
from tests.storage.test_closed_days import CLOSED
from tests.storage.test_rollups import random_batch
from vigil.storage import closed_days
from vigil.storage.closed_days import Manifest
from vigil.storage.duckdb_store import DuckDBStore

where, seed = sys.argv[1], int(sys.argv[2])
s = DuckDBStore(Path(sys.argv[3]))
s.submit("t", random_batch(np.random.default_rng(seed), 3000, 86_400_000)).result()
s.refresh_rollups(CLOSED - 1)
if where == "writing":  # the process dies while the second file is written
    calls = []
    def die(path):
        calls.append(path)
        if len(calls) == 2:
            os._exit(3)
    closed_days.sync = die
else:  # it dies right after the commit, before the files are in the manifest
    Manifest.add = lambda self, f: os._exit(3)
s.refresh_rollups(CLOSED)
"""


@pytest.mark.parametrize("where", ["writing", "committed"])
def test_a_process_killed_during_a_close_loses_nothing(tmp_path: Path, where: str) -> None:
    """A real process exits in the middle of closing a day (no cleanup, no checkpoint);
    the next one finds every sample once, and no file that no commit names."""
    path = tmp_path / "s.duckdb"
    r = subprocess.run([sys.executable, "-c", _CRASH, where, "18", str(path)],
                       cwd=Path(__file__).parent.parent.parent, capture_output=True, timeout=120)
    assert r.returncode == 3, r.stderr.decode()[-2000:]
    want = random_batch(np.random.default_rng(18), 3000, DAY_MS)
    s = DuckDBStore(path)
    try:
        named = {f.path for f in s.days.manifest.all()}
        assert {str(p) for p in files(s)} == named
        assert bool(named) == (where == "committed")
        for tier in ("raw", "5m", "1h", "1d"):
            check(s, [want], tier, TIER_MS[tier] or TIER_MS["5m"])
        s.refresh_rollups(CLOSED)  # and the day closes now if it had not
        assert rows_in_tables(s) == dict.fromkeys(TIERS, 0)
        check(s, [want], "raw", TIER_MS["5m"])
    finally:
        s.close()


def hot_tables(store: DuckDBStore) -> set[str]:
    return {r[0] for r in store._cursor().execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = 'hot'").fetchall()}


def test_days_just_closed_are_kept_decoded_in_memory_and_dropped_with_their_files(
        store: DuckDBStore) -> None:
    batches = [random_batch(np.random.default_rng(19), 2000, DAY_MS)]
    store.submit("t", batches[0]).result()
    store.refresh_rollups(CLOSED)
    paths = [f.path for f in store.days.manifest.all()]
    names = {store.days.hot.table(p) for p in paths}
    assert None not in names and names == hot_tables(store)  # every file, in memory
    assert 0 < store.days.hot.size() <= store.days.hot.budget
    for tier in ("raw", "5m", "1h", "1d"):
        check(store, batches, tier, TIER_MS[tier] or TIER_MS["5m"])
    late = SampleBatch(SERIES, np.zeros(1, np.int32), np.array([T0 + 3], np.int64),
                       np.ones(1))
    store.submit("t", late).result()
    store.refresh_rollups(CLOSED)  # reopened and closed again: new files, new tables
    assert not {store.days.hot.table(p) for p in paths} - {None}
    assert hot_tables(store) == {store.days.hot.table(f.path) for f in store.days.manifest.all()}
    check(store, [*batches, late], "5m", TIER_MS["5m"])


def test_closed_files_read_from_disk_are_loaded_at_the_next_refresh_within_the_budget(
        tmp_path: Path) -> None:
    s = DuckDBStore(tmp_path / "s.duckdb", hot_bytes=1)  # nothing fits
    try:
        batch = random_batch(np.random.default_rng(20), 2000, 2 * DAY_MS)
        s.submit("t", batch).result()
        s.refresh_rollups(CLOSED + DAY_MS)
        assert hot_tables(s) == set() and s.days.hot.size() == 0
        for tier in ("raw", "5m", "1h", "1d"):
            check(s, [batch], tier, TIER_MS[tier] or TIER_MS["5m"])
        s.days.hot.budget = 64 * 1024 * 1024
        s.refresh_rollups(CLOSED + DAY_MS)  # the reads above asked for them
        assert len(hot_tables(s)) == len(s.days.manifest.all())
        check(s, [batch], "raw", TIER_MS["5m"])
    finally:
        s.close()


def test_hot_files_drop_the_least_recently_used_beyond_the_budget() -> None:
    hot = HotFiles(100)
    assert hot.add("a", "f1", 40) == [] and hot.add("b", "f2", 40) == []
    assert hot.table("a") == "f1"  # a is now the most recently used
    assert hot.add("c", "f3", 40) == ["f2"]
    assert hot.table("b") is None and hot.size() == 80
    assert hot.add("d", "f4", 500) == ["f1", "f3", "f4"]  # alone over the budget
    assert hot.forget(["a", "x"]) == [] and hot.size() == 0
    hot.want(["p", "q"])
    hot.want(["q"], make_room=True)
    assert hot.take_wanted() == {"p": False, "q": True} and hot.take_wanted() == {}
    assert hot.free() == 100


def test_files_read_from_disk_are_loaded_only_into_free_room(store: DuckDBStore) -> None:
    """A day just closed pushes out the least recently used copies; a file a read took
    from disk does not, so reads over more days than fit do not churn the copies."""
    batch = random_batch(np.random.default_rng(22), 3000, 2 * DAY_MS)
    store.submit("t", batch).result()
    store.refresh_rollups(CLOSED)  # day one closes and is loaded
    first = {f.path for f in store.days.manifest.all()}
    store.days.hot.budget = store.days.hot.size()  # full
    store.refresh_rollups(CLOSED + DAY_MS)  # day two closes, pushing day one out
    second = {f.path for f in store.days.manifest.all()} - first
    assert {p for p in first | second if store.days.hot.table(p)} == second
    check(store, [batch], "raw", TIER_MS["5m"])  # reads day one from disk: wanted
    store.refresh_rollups(CLOSED + DAY_MS)
    assert {p for p in first | second if store.days.hot.table(p)} == second


def test_a_failure_after_the_close_commits_keeps_the_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = DuckDBStore(tmp_path / "s.duckdb")
    batch = random_batch(np.random.default_rng(21), 800, DAY_MS)
    s.submit("t", batch).result()
    s.refresh_rollups(CLOSED - 1)

    def broken(self: object, f: object) -> None:
        raise RuntimeError("manifest")

    monkeypatch.setattr("vigil.storage.closed_days.Manifest.add", broken)
    with pytest.raises(RuntimeError, match="manifest"):
        s.refresh_rollups(CLOSED)
    written = files(s)
    assert written  # committed: closed_files names them, so they stay
    s.close()
    monkeypatch.undo()
    s = DuckDBStore(tmp_path / "s.duckdb")
    try:
        assert files(s) == written
        for tier in ("raw", "5m", "1h", "1d"):
            check(s, [batch], tier, TIER_MS[tier] or TIER_MS["5m"])
    finally:
        s.close()
