"""The query cache: repeated queries are answered from memory, and every answer from the
cache equals the answer computed from the store at that moment (never stale)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import Server, batch_of, make_settings
from vigil.app import Components, build
from vigil.query.cache import QueryCache
from vigil.query.engine import QueryEngine, QueryResult
from vigil.query.model import Query
from vigil.storage.store import Buckets, Store

DAY = 86_400_000
HOUR = 3_600_000
T0 = 1_700_000_000_000 // DAY * DAY  # a day boundary, long past
NOW = T0 + 10 * DAY
FAR = 2**53

Answer = tuple[str, list[tuple[dict[str, str], list[int], list[float]]]]


def write(c: Components, rows: list[tuple[str, dict[str, str], int, float]],
          tenant: str = "default") -> None:
    c.pipeline.write_sync(tenant, batch_of(rows), "test")


def query(**params: object) -> Query:
    p: dict[str, Any] = {"name": "cpu", "start": str(T0 / 1000),
                         "end": str((T0 + 2 * HOUR) / 1000), "step": "5m"}
    p.update({k: (v if isinstance(v, list) else str(v)) for k, v in params.items()})
    return Query.from_params(p, NOW)


def plain(r: QueryResult) -> Answer:
    return r.tier, [(s.labels, s.t_ms.tolist(), s.values.tolist()) for s in r.series]


def answer(engine: QueryEngine, q: Query, tenant: str = "default") -> Answer:
    """The answer through the cache, checked against the one computed from the store."""
    cached = plain(engine.run(tenant, q))
    assert cached == plain(engine.run(tenant, q, use_cache=False))
    return cached


def stats(c: Components) -> dict[str, float]:
    assert c.engine.cache is not None
    return c.engine.cache.stats()


@pytest.fixture
def c(components: Components) -> Components:
    """Components with two hosts' ``cpu`` every minute for two hours from T0 (integer
    values, so every aggregate is exact whichever path computes it)."""
    write(components, [("cpu", {"host": h}, T0 + i * 60_000, float(i % 7 + k))
                       for k, h in enumerate(("a", "b")) for i in range(120)])
    return components


def test_a_repeated_query_is_answered_from_the_cache(c: Components) -> None:
    q = query(fn="avg", group_by="")
    first = c.engine.run("default", q)
    assert c.engine.run("default", q) is first
    assert c.engine.cached("default", q) is first
    assert plain(first) == plain(c.engine.run("default", q, use_cache=False))
    assert stats(c)["hits"] == 2 and stats(c)["misses"] == 1
    with pytest.raises(ValueError):  # shared: nobody may change a cached answer
        first.series[0].values[0] = 0.0


@pytest.mark.parametrize(("params", "late_ts", "dropped"), [
    ({"fn": "avg"}, T0 + 30 * 60_000 + 1, True),  # inside the range
    ({"fn": "avg"}, T0 + 2 * HOUR, False),  # at end: outside (half-open)
    ({"fn": "avg"}, T0 - 1, False),  # before start
    ({"fn": "min", "tier": "raw"}, T0 + HOUR, True),
    ({"fn": "rate"}, T0 - 1, True),  # rate reads one step before start
    ({"fn": "rate"}, T0 - 5 * 60_000 - 1, False),
    ({"fn": "increase", "window": "15m"}, T0 - 14 * 60_000, True),  # ... a window's worth
    ({"fn": "quantile", "q": "0.9", "group_by": ""}, T0 + 1, True),
    ({"fn": "count", "step": "1h", "end": str((T0 + HOUR + 60_000) / 1000)},
     T0 + HOUR + 60_000, False),  # raw tier (end is not on a bucket edge): outside
])
def test_a_late_sample_drops_exactly_the_answers_that_read_its_time(
        c: Components, params: dict[str, str], late_ts: int, dropped: bool) -> None:
    q = query(**params)
    before = answer(c.engine, q)
    write(c, [("cpu", {"host": "a"}, late_ts, -1000.0)])  # below all: no counter reset
    assert (c.engine.cached("default", q) is None) == dropped
    after = answer(c.engine, q)  # equal to the answer computed from the store
    assert (after != before) == dropped


def test_a_sample_of_another_tenant_keeps_the_answer(c: Components) -> None:
    q = query(fn="sum")
    answer(c.engine, q)
    write(c, [("cpu", {"host": "a"}, T0 + 60_000, 5.0)], tenant="other")
    assert c.engine.cached("default", q) is not None
    assert answer(c.engine, q, tenant="other") != answer(c.engine, q)


def test_a_rollup_bucket_reaching_past_end_counts(components: Components) -> None:
    """The planner takes an end in the future as aligned, so the last 5m row read may
    hold samples after end: one arriving there drops the answer."""
    now = T0 + HOUR + 2 * 60_000
    cache: QueryCache[QueryResult] = QueryCache(100, 1 << 20)
    components.store.listeners.insert(0, cache.committed)
    components.store.rewrite_listeners.append(cache.rewritten)
    engine = QueryEngine(components.store, clock=lambda: now, cache=cache)
    write(components, [("cpu", {"host": "a"}, T0 + i * 60_000, 1.0) for i in range(62)])
    components.store.refresh_rollups(FAR)
    q = Query.from_params({"name": "cpu", "start": str(T0 / 1000),
                           "end": str((now + 60_000) / 1000), "step": "5m", "fn": "count"}, now)
    assert answer(engine, q)[0] == "5m"
    write(components, [("cpu", {"host": "a"}, now + 2 * 60_000, 1.0)])  # after end
    assert engine.cached("default", q) is None
    assert answer(engine, q)[1][0][2][-1] == 2.0  # a stale bucket is read from raw ...
    components.store.refresh_rollups(FAR)
    assert answer(engine, q)[1][0][2][-1] == 3.0  # ... its rebuilt row holds the sample


def test_rollup_rebuilds_retention_and_recompute_drop_what_they_touch(c: Components) -> None:
    early, late = query(end=str((T0 + HOUR) / 1000)), query(start=str((T0 + HOUR) / 1000))
    answer(c.engine, early), answer(c.engine, late)
    c.store.refresh_rollups(FAR)  # rebuilds both hours: reads move from raw to rollups
    assert c.engine.cached("default", early) is None
    assert c.engine.cached("default", late) is None
    answer(c.engine, early), answer(c.engine, late)
    c.store.recompute_rollups(T0 + HOUR, T0 + 2 * HOUR)
    assert c.engine.cached("default", early) is not None
    assert c.engine.cached("default", late) is None
    answer(c.engine, late)
    c.store.refresh_rollups(FAR)
    answer(c.engine, early), answer(c.engine, late)
    # 8.5 days at NOW = T0 + 10 days deletes the whole days before T0 + 1 day: all of it
    deleted = c.store.apply_retention(NOW, {"raw": int(8.5 * DAY), "5m": int(8.5 * DAY)})
    assert deleted["raw"] == 240
    assert c.engine.cached("default", early) is None
    assert answer(c.engine, early) == ("5m", [])


class CommitWhileReading:
    """The store, except that ``commit`` runs after the engine's first bucket read and
    before the read returns: as if the commit landed while the query was running."""

    def __init__(self, store: Store, commit: Callable[[], None]) -> None:
        self._store, self._commit = store, commit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def buckets(self, *args: Any) -> Buckets:
        got = self._store.buckets(*args)
        commit, self._commit = self._commit, lambda: None
        commit()
        return got


@pytest.mark.parametrize(("late_ts", "kept"), [(T0 + 60_000, False), (T0 - DAY, True)])
def test_an_answer_read_before_a_commit_is_not_kept(c: Components, late_ts: int,
                                                    kept: bool) -> None:
    assert c.engine.cache is not None
    racing = QueryEngine(cast(Store, CommitWhileReading(
        c.store, lambda: write(c, [("cpu", {"host": "a"}, late_ts, 1000.0)]))),
        cache=c.engine.cache)
    q = query(fn="max")
    stale = plain(racing.run("default", q))
    assert (c.engine.cached("default", q) is not None) == kept
    assert stats(c)["refused"] == (not kept)
    assert (answer(c.engine, q) == stale) == kept  # the next answer has the sample


def test_when_the_log_no_longer_reaches_back_the_answer_is_not_kept(
        components: Components) -> None:
    cache: QueryCache[QueryResult] = QueryCache(100, 1 << 20, log_size=2)
    components.store.listeners.insert(0, cache.committed)
    elsewhere = [("cpu", {"host": "z"}, T0 - DAY - i, 1.0) for i in range(3)]

    def three_commits() -> None:  # none overlaps the query, but the log keeps two
        for row in elsewhere:
            write(components, [row])

    write(components, [("cpu", {"host": "a"}, T0, 1.0)])
    engine = QueryEngine(cast(Store, CommitWhileReading(components.store, three_commits)),
                         cache=cache)
    engine.run("default", query())
    assert len(cache) == 0 and cache.stats()["refused"] == 1
    engine.run("default", query())  # no commit this time
    assert len(cache) == 1


def test_bounded_by_entries_and_bytes_least_recently_used_first(c: Components) -> None:
    cache: QueryCache[QueryResult] = QueryCache(2, 1 << 20)
    engine = QueryEngine(c.store, cache=cache)
    q1, q2, q3 = query(fn="min"), query(fn="max"), query(fn="sum")
    engine.run("default", q1), engine.run("default", q2)
    engine.run("default", q1)  # q1 used last: q2 goes first
    engine.run("default", q3)
    assert [engine.cached("default", q) is not None for q in (q1, q2, q3)] == [
        True, False, True]
    assert cache.stats()["evicted"] == 1
    one = cache.stats()["bytes"] / 2
    small: QueryCache[QueryResult] = QueryCache(100, int(one * 4.5))
    engine = QueryEngine(c.store, cache=small)
    five = (q1, q2, q3, query(fn="avg"), query(fn="count"))  # answers of one size
    for q in five:
        engine.run("default", q)
    assert [engine.cached("default", q) is not None for q in five] == [False] + [True] * 4
    assert small.stats()["bytes"] <= one * 4.5
    tiny: QueryCache[QueryResult] = QueryCache(100, int(one * 3))  # over a quarter
    QueryEngine(c.store, cache=tiny).run("default", q1)
    assert len(tiny) == 0


def test_off_when_sized_zero(tmp_path: Path) -> None:
    for off in ({"query_cache_max_entries": 0}, {"query_cache_max_bytes": 0}):
        c = build(make_settings(tmp_path / next(iter(off)), retention_raw=0, **off),
                  start_maintenance=False)
        try:
            assert c.engine.cache is None
            write(c, [("cpu", {"host": "a"}, T0, 1.0)])
            q = query(fn="count", group_by="")
            assert c.engine.cached("default", q) is None
            assert plain(c.engine.run("default", q))[1][0][2] == [1.0]
            write(c, [("cpu", {"host": "a"}, T0 + 1, 1.0)])
            assert plain(c.engine.run("default", q))[1][0][2] == [2.0]
        finally:
            c.close()


QUERIES = [query(fn="avg"), query(fn="sum", group_by=""), query(fn="rate", step="10m"),
           query(fn="quantile", q="0.5", group_by=""), query(fn="max", step="1h"),
           query(fn="count", window="30m", match=["host=a"]),
           query(fn="last", start=str((T0 + HOUR) / 1000), end=str((T0 + 3 * HOUR) / 1000))]


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_every_cached_answer_equals_the_computed_one(
        tmp_path_factory: pytest.TempPathFactory, seed: int) -> None:
    """Random writes (either tenant, any time around the queries' ranges), rollup
    refreshes and repeated queries: the cache never answers differently from the store."""
    rng = np.random.default_rng(seed)
    c = build(make_settings(tmp_path_factory.mktemp("q"), retention_raw=0),
              start_maintenance=False)
    try:
        for _ in range(40):
            op = rng.integers(10)
            if op < 4:
                n = int(rng.integers(1, 20))
                ts = T0 + rng.integers(-HOUR, 4 * HOUR, n)
                write(c, [("cpu", {"host": str(rng.choice(["a", "b"]))}, int(t),
                           float(rng.integers(0, 100))) for t in ts],
                      tenant=str(rng.choice(["default", "other"])))
            elif op == 4:
                c.store.refresh_rollups(FAR)
            else:
                q = QUERIES[int(rng.integers(len(QUERIES)))]
                answer(c.engine, q)
                assert c.engine.cached("default", q) is not None  # kept until a change
    finally:
        c.close()


# ---------------------------------------------------------------------------- over HTTP
@pytest.fixture
def http_c(c: Components) -> Iterator[tuple[httpx.Client, Components]]:
    """The seeded components served over real HTTP, and a client."""
    with Server(c) as s, httpx.Client(base_url=s.url, timeout=30) as client:
        yield client, c


def test_http_answers_from_the_cache_unless_nocache(
        http_c: tuple[httpx.Client, Components]) -> None:
    http, c = http_c
    params = {"name": "cpu", "start": T0 / 1000, "end": (T0 + 2 * HOUR) / 1000, "step": "5m",
              "fn": "avg", "match": "host=a"}
    first = http.get("/api/v1/query", params=params)
    assert first.status_code == 200
    assert http.get("/api/v1/query", params=params).content == first.content
    assert stats(c)["hits"] == 1
    fresh = http.get("/api/v1/query", params={**params, "nocache": "1"})
    assert fresh.content == first.content and stats(c)["hits"] == 1
    late = {"samples": [{"name": "cpu", "value": 999, "labels": {"host": "a"},
                         "timestamp": T0 + 61_000}]}
    assert http.post("/api/v1/metrics", json=late).status_code in (200, 202, 204)
    after = http.get("/api/v1/query", params=params).json()
    assert after == http.get("/api/v1/query", params={**params, "nocache": "1"}).json()
    assert after != first.json()
    posted = http.post("/api/v1/query", json={**params, "nocache": True})
    assert posted.json() == after
    text = http.get("/metrics").text
    assert "vigil_query_cache_hits_total 1.0" in text
    assert "vigil_query_cache_invalidated_total 1.0" in text
    bad = http.get("/api/v1/query", params={**params, "nocache": "yes"})
    assert bad.status_code == 400 and "nocache" in bad.text
