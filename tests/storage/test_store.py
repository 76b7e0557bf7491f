"""Store contract: interning, atomic group commit, limits, tenancy, retention, migrations."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest

from tests.conftest import batch_of
from vigil.core.errors import SeriesLimitExceeded
from vigil.core.matchers import Matcher
from vigil.storage.duckdb_store import DuckDBStore
from vigil.storage.migrations import LATEST
from vigil.storage.store import Selection

T = 1_700_000_000_000


def test_series_are_interned_once_and_reloaded(tmp_path: Path) -> None:
    s = DuckDBStore(tmp_path / "s.duckdb")
    rows = [("cpu", {"host": "a"}, T + i, float(i)) for i in range(5)]
    s.submit("t", batch_of(rows)).result()
    s.submit("t", batch_of(rows)).result()
    assert len(s.find_series("t", "cpu")) == 1
    s.close()
    s = DuckDBStore(tmp_path / "s.duckdb")
    try:
        [info] = s.find_series("t", "cpu")
        assert info.key.label_dict() == {"host": "a"}
        s.submit("t", batch_of([("cpu", {"host": "b"}, T, 1.0)])).result()
        assert {i.id for i in s.find_series("t", "cpu")} == {info.id, info.id + 1}
    finally:
        s.close()


def block_size(path: Path) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        [(size,)] = con.execute("SELECT block_size FROM pragma_database_size()").fetchall()
        return int(size)
    finally:
        con.close()


def test_a_new_file_takes_small_blocks_and_an_older_file_keeps_its_own(tmp_path: Path) -> None:
    """Files made before the smaller blocks (DuckDB's default 256 kB) open, take writes
    and keep their block size; new files get 64 kB blocks (docs/benchmarks.md)."""
    duckdb.connect(str(tmp_path / "old.duckdb")).close()
    for name, size in (("old.duckdb", 262_144), ("new.duckdb", 65_536)):
        s = DuckDBStore(tmp_path / name)
        s.submit("t", batch_of([("cpu", {"host": "a"}, T + i, float(i)) for i in range(5)])
                 ).result()
        s.close()
        assert block_size(tmp_path / name) == size
        s = DuckDBStore(tmp_path / name)
        try:
            [info] = s.find_series("t", "cpu")
            assert s.raw("t", np.array([info.id], np.int32), T, T + 5).value.tolist() == [
                0.0, 1.0, 2.0, 3.0, 4.0]
        finally:
            s.close()


def test_new_series_of_a_batch_get_ids_in_name_and_label_order(store: DuckDBStore) -> None:
    """The series of one metric that first appear together get adjacent ids, whatever
    order the batch lists them in."""
    rows = [(name, {"host": h}, T, 1.0) for h in "cab" for name in ("mem", "cpu")]
    store.submit("t", batch_of([*rows, ("cpu", {"host": "b"}, T + 1, 2.0)])).result()
    ids = {(i.key.name, i.key.label_dict()["host"]): i.id
           for i in store.find_series("t", None)}
    first = min(ids.values())
    assert ids == {(n, h): first + k for k, (n, h) in enumerate(
        [("cpu", "a"), ("cpu", "b"), ("cpu", "c"), ("mem", "a"), ("mem", "b"), ("mem", "c")])}


@pytest.mark.parametrize("pattern", [
    "0[0-9]",  # ten adjacent ids: a range
    "0[0-4]|2[0-4]",  # ten ids with a hole: an IN list
    "0.|2.",  # twenty ids with a hole: a semi-join on a registered table
    "0.|1.|2.|3.",  # all of them: a range again
])
def test_reads_select_exactly_the_series_asked_for(store: DuckDBStore, pattern: str) -> None:
    # Written in three batches, so the ids of "m" have a hole (the series of "n").
    batches = [[("m", {"i": f"{i:02d}"}, T + i, float(i)) for i in range(20)],
               [("n", {"i": f"{i:02d}"}, T, 100.0) for i in range(5)],
               [("m", {"i": f"{i:02d}"}, T + i, float(i)) for i in range(20, 40)]]
    for rows in batches:
        store.submit("t", batch_of(rows)).result()
    infos = store.find_series("t", "m", [Matcher.parse(f"i=~{pattern}")])
    want = sorted(int(i.key.label_dict()["i"]) for i in infos)
    ids = [i.id for i in sorted(infos, key=lambda i: i.key.labels)]
    b = store.buckets("t", "raw", Selection.each(ids), T, T + 100, 1000)
    assert b.group.tolist() == list(range(len(ids)))
    assert b.sum.tolist() == [float(i) for i in want]
    one = store.buckets("t", "raw", Selection(np.array(ids, np.int32),
                                              np.zeros(len(ids), np.int32)), T, T + 100, 1000)
    assert one.count.tolist() == [len(want)] and one.sum.tolist() == [float(sum(want))]
    q = store.quantiles("t", "raw", Selection(np.array(ids, np.int32),
                                              np.zeros(len(ids), np.int32)), T, T + 100, 1000, 1.0)
    assert q.value.tolist() == [float(max(want))]


@pytest.mark.parametrize(("matcher", "hosts"), [
    ("host=a", {"a"}),
    ("host!=a", {"b", "c", ""}),
    ("host=~a|b", {"a", "b"}),
    ("host!~a|b", {"c", ""}),
    ("host=", {""}),
    ("dc=~.+", {"a", "b"}),
])
def test_matchers(store: DuckDBStore, matcher: str, hosts: set[str]) -> None:
    store.submit("t", batch_of([
        ("cpu", {"host": "a", "dc": "x"}, T, 1.0), ("cpu", {"host": "b", "dc": "y"}, T, 1.0),
        ("cpu", {"host": "c"}, T, 1.0), ("cpu", {"zone": "z"}, T, 1.0),
        ("mem", {"host": "a"}, T, 1.0),
    ])).result()
    found = store.find_series("t", "cpu", [Matcher.parse(matcher)])
    assert {i.key.label_dict().get("host", "") for i in found} == hosts


def test_series_limit_refuses_new_series_but_not_existing(tmp_path: Path) -> None:
    s = DuckDBStore(tmp_path / "s.duckdb", max_series_per_tenant=2)
    try:
        s.submit("t", batch_of([("m", {"i": "1"}, T, 1.0), ("m", {"i": "2"}, T, 1.0)])).result()
        with pytest.raises(SeriesLimitExceeded, match="limit of 2 series"):
            s.submit("t", batch_of([("m", {"i": "1"}, T + 1, 1.0),
                                    ("m", {"i": "3"}, T + 1, 1.0)])).result()
        # nothing of the refused batch was stored
        ids = np.array([i.id for i in s.find_series("t", "m")], np.int32)
        assert len(s.raw("t", ids, 0, 2**62).value) == 2
        s.submit("t", batch_of([("m", {"i": "1"}, T + 2, 1.0)])).result()  # existing: fine
        s.submit("other", batch_of([("m", {"i": "3"}, T, 1.0)])).result()  # per tenant
    finally:
        s.close()


def test_group_commit_keeps_batches_atomic_and_separate(tmp_path: Path) -> None:
    s = DuckDBStore(tmp_path / "s.duckdb", max_series_per_tenant=3)
    try:
        futures = [s.submit("t", batch_of([("m", {"i": str(i)}, T, float(i))]))
                   for i in range(6)]
        outcomes = [f.exception() is None for f in futures]
        assert outcomes.count(True) == 3
        assert len(s.find_series("t", "m")) == 3
    finally:
        s.close()


def test_tenants_are_isolated(store: DuckDBStore) -> None:
    store.submit("a", batch_of([("m", {}, T, 1.0)])).result()
    store.submit("b", batch_of([("m", {}, T, 2.0)])).result()
    [a] = store.find_series("a", "m")
    [b] = store.find_series("b", "m")
    ids = np.array([a.id, b.id], np.int32)
    assert store.raw("a", ids, 0, 2**62).value.tolist() == [1.0]
    assert store.latest("b", ids).value.tolist() == [2.0]
    assert store.buckets("a", "raw", Selection.each([b.id]), 0, 2**62, 2**61).count.size == 0
    assert store.metric_names("c") == []
    assert store.label_names("a") == []


def test_retention_deletes_whole_days_per_tier(store: DuckDBStore) -> None:
    day = 86_400_000
    start = T // day * day
    store.submit("t", batch_of([("m", {}, start + i * day // 2, 1.0) for i in range(8)])).result()
    store.refresh_rollups(2**53)
    now = start + 4 * day
    deleted = store.apply_retention(now, {"raw": 2 * day, "5m": 0, "1h": 3 * day, "1d": 0})
    assert deleted == {"raw": 4, "1h": 2}
    [info] = store.find_series("t", "m")
    assert store.raw("t", np.array([info.id], np.int32), 0, 2**62).t_ms.min() == start + 2 * day


def test_migrations_go_down_and_up(tmp_path: Path) -> None:
    s = DuckDBStore(tmp_path / "s.duckdb")
    try:
        assert s.schema_version() == LATEST
        undone = s.migrate(0)
        assert len(undone) == LATEST
        assert undone[-1] == "0: undo series catalogue, raw samples, 5m/1h/1d rollups, " \
                             "dirty-bucket log"
        tables = {r[0] for r in s._cursor().execute("SHOW TABLES").fetchall()}
        assert tables == {"schema_migrations"}
        s.migrate(LATEST)
        assert s.schema_version() == LATEST
    finally:
        s.close()


def test_cardinality_reports_top_metrics_and_labels(store: DuckDBStore) -> None:
    store.submit("t", batch_of([("m", {"user": str(i), "dc": "x"}, T, 1.0) for i in range(5)]
                               + [("n", {"dc": "x"}, T, 1.0)])).result()
    c = store.cardinality("t", limit=2)
    assert c["series"] == 6
    assert c["metrics"] == [{"name": "m", "series": 5}, {"name": "n", "series": 1}]
    assert c["labels"][0] == {"label": "dc", "series": 6, "values": 1}  # type: ignore[index]
    assert c["labels"][1] == {"label": "user", "series": 5, "values": 5}  # type: ignore[index]


def test_commit_listeners_get_each_committed_batch_with_its_series_ids(tmp_path: Path) -> None:
    s = DuckDBStore(tmp_path / "s.duckdb", max_series_per_tenant=2)
    seen: list[tuple[str, list[str], list[int]]] = []
    s.listeners.append(lambda tenant, batch, ids: seen.append(
        (tenant, [str(m.key) for m in batch.series], ids.tolist())))
    try:
        s.submit("t", batch_of([("cpu", {"host": "a"}, T, 1.0),
                                ("cpu", {"host": "b"}, T, 2.0)])).result()
        with pytest.raises(SeriesLimitExceeded):  # refused: not passed on
            s.submit("t", batch_of([("cpu", {"host": "c"}, T, 3.0)])).result()
        s.submit("t", batch_of([("cpu", {"host": "b"}, T + 1, 4.0)])).result()
        ids = {str(i.key): i.id for i in s.find_series("t", "cpu")}
        assert seen == [
            ("t", ['cpu{host="a"}', 'cpu{host="b"}'], [ids['cpu{host="a"}'], ids['cpu{host="b"}']]),
            ("t", ['cpu{host="b"}'], [ids['cpu{host="b"}']]),
        ]
    finally:
        s.close()


def test_rewrite_listeners_hear_of_rebuilds_recomputes_and_deletes(store: DuckDBStore) -> None:
    day, w = 86_400_000, 300_000
    start = T // day * day
    heard: list[tuple[int, int]] = []
    store.rewrite_listeners.append(lambda lo, hi: heard.append((lo, hi)))
    store.submit("t", batch_of([("m", {}, start + 1, 1.0), ("m", {}, start + day + 1, 1.0)])
                 ).result()
    assert heard == []  # commits are the commit listeners' concern
    store.refresh_rollups(2**53)
    assert sorted(heard) == sorted([(start, start + w), (start + day, start + day + w),
                                    (start, start + 3_600_000),
                                    (start + day, start + day + 3_600_000),
                                    (start, start + day), (start + day, start + 2 * day),
                                    # the days closed into files
                                    (start, start + day), (start + day, start + 2 * day)])
    heard.clear()
    store.recompute_rollups(start + day, start + 2 * day)
    assert heard == [(start + day, start + day + w)]
    heard.clear()
    store.apply_retention(start + 3 * day, {"raw": 2 * day, "5m": 0, "1h": 0, "1d": 0})
    assert heard == [(-(2**63), start + day)]
    store.apply_retention(start + 3 * day, {"raw": 2 * day, "5m": 0, "1h": 0, "1d": 0})
    assert len(heard) == 1  # nothing more deleted, nothing heard


@pytest.mark.parametrize(("start", "end", "step"), [
    (T, T + 3_600_000, 3_600_000),  # one step bucket
    (T + 60_000, T + 1_000_000, 3_600_000),  # inside one step bucket
    (T, T + 3_600_000, 600_000),  # six step buckets
    (T + 7_200_000, T + 10_800_000, 3_600_000),  # no samples: no points
])
def test_raw_quantiles_of_one_group_equal_numpy(
        store: DuckDBStore, start: int, end: int, step: int) -> None:
    rng = np.random.default_rng(4)
    ts = T + rng.integers(0, 3_600_000, 2000)
    vals = np.round(rng.normal(50, 20, 2000), 2)
    rows = [("m", {"i": str(k % 7)}, int(t), float(v))
            for k, (t, v) in enumerate(zip(ts, vals, strict=True))]
    store.submit("t", batch_of(rows)).result()
    ids = np.array([i.id for i in store.find_series("t", "m")], np.int32)
    p = store.quantiles("t", "raw", Selection(ids, np.zeros(len(ids), np.int32)), start, end,
                        step, 0.95)
    first = start // step * step
    want = {b: np.quantile(vals[(ts >= start) & (ts < end) & (ts // step * step == b)], 0.95)
            for b in range(first, end, step)
            if ((ts >= start) & (ts < end) & (ts // step * step == b)).any()}
    assert p.key.tolist() == [0] * len(want)
    assert p.t_ms.tolist() == sorted(want)
    assert p.value.tolist() == pytest.approx([want[b] for b in sorted(want)])
