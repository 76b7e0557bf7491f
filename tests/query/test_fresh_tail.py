"""A range reaching into the present: the part older than ``FRESH_MS`` is kept in the
cache under its own range, the fresh tail is computed each time, and the answer always
equals the one computed whole from the store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import batch_of, make_settings
from vigil.app import Components, build
from vigil.query.engine import (
    FRESH_MS,
    UNALIGNED_MIN_CACHED_MS,
    QueryEngine,
    QueryResult,
    fresh_cut,
)
from vigil.query.model import Query

MIN = 60_000
HOUR = 60 * MIN
NOW = 1_700_000_000_000 // HOUR * HOUR + 17 * MIN + 12_345  # not on any step edge


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


def query(clock: Clock, **params: object) -> Query:
    """``start`` (default: 2 h ago, on the 5m grid, as the overview sends it) to now."""
    p: dict[str, Any] = {"name": "cpu", "start": str((clock.now - 2 * HOUR) // 300_000 * 300),
                         "end": str(clock.now / 1000), "step": "5m"}
    p.update({k: (v if isinstance(v, list) else str(v)) for k, v in params.items()})
    return Query.from_params(p, clock.now)


def plain(r: QueryResult) -> tuple[str, list[tuple[dict[str, str], list[int], list[float]]]]:
    return r.tier, [(s.labels, s.t_ms.tolist(), s.values.tolist()) for s in r.series]


def write(c: Components, rows: list[tuple[str, dict[str, str], int, float]]) -> None:
    c.pipeline.write_sync("default", batch_of(rows), "test")


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Components, QueryEngine, Clock]]:
    """Two hosts' ``cpu`` every 10 s for the last three hours (integer values: every
    aggregate is exact whichever part computes it), and an engine on a clock of its own."""
    c = build(make_settings(tmp_path, retention_raw=0), start_maintenance=False)
    write(c, [("cpu", {"host": h}, NOW - 3 * HOUR + i * 10_000, float(i % 11 + k))
              for k, h in enumerate(("a", "b")) for i in range(3 * 360)])
    clock = Clock()
    engine = QueryEngine(c.store, clock=clock, cache=c.engine.cache)  # told of commits
    try:
        yield c, engine, clock
    finally:
        c.close()


def answer(engine: QueryEngine, q: Query) -> Any:
    got = plain(engine.run("default", q))
    assert got == plain(engine.run("default", q, use_cache=False))
    return got


def test_the_cut_falls_on_step_edges_and_only_where_it_is_exact_and_pays() -> None:
    clock = Clock()
    q = query(clock)
    assert fresh_cut(q, clock.now) == (q.start_ms, (clock.now - FRESH_MS) // 300_000 * 300_000)
    # off the grid: a partial first step, only when enough is kept to pay for it
    assert fresh_cut(query(clock, start=str((clock.now - 2 * HOUR) / 1000)), clock.now) is None
    q = query(clock, start=str((clock.now - 13 * HOUR) / 1000))
    a, b = fresh_cut(q, clock.now)  # type: ignore[misc]
    assert a % q.step_ms == 0 and b % q.step_ms == 0 and b - a >= UNALIGNED_MIN_CACHED_MS
    assert q.start_ms < a < q.start_ms + q.step_ms
    assert a < b <= clock.now - FRESH_MS < b + q.step_ms
    for later in (query(clock, fn="rate"), query(clock, fn="increase"),
                  query(clock, window="15m")):
        assert fresh_cut(later, clock.now) is None
    old = query(clock, end=str((clock.now - HOUR) / 1000))
    assert fresh_cut(old, clock.now) is None  # nothing fresh: cached whole, as before
    short = query(clock, start=str((clock.now - 7 * MIN) / 1000))
    assert fresh_cut(short, clock.now) is None  # no whole step older than the tail


def test_a_commit_in_the_fresh_tail_keeps_the_older_steps_cached(
        live: tuple[Components, QueryEngine, Clock]) -> None:
    c, engine, clock = live
    assert engine.cache is not None
    q = query(clock, fn="avg", group_by="")
    first = answer(engine, q)
    hits = engine.cache.hits
    write(c, [("cpu", {"host": "a"}, clock.now - MIN, 1000.0)])  # drops the whole answer
    clock.now += 1_000
    second = answer(engine, replace(q, end_ms=clock.now))
    assert engine.cache.hits == hits + 1  # the older steps, from the cache
    assert second != first  # with the new sample


def test_a_late_sample_among_the_older_steps_is_seen(
        live: tuple[Components, QueryEngine, Clock]) -> None:
    c, engine, clock = live
    q = query(clock, fn="max")
    answer(engine, q)
    write(c, [("cpu", {"host": "b"}, clock.now - HOUR, 5000.0)])
    got = answer(engine, q)
    assert 5000.0 in got[1][1][2]


def test_as_the_clock_moves_the_cut_moves_and_answers_stay_exact(
        live: tuple[Components, QueryEngine, Clock]) -> None:
    c, engine, clock = live
    for k in range(8):  # past a step edge or two
        clock.now += 80_000
        write(c, [("cpu", {"host": "a"}, clock.now - 5_000, float(k))])
        off_grid = str((clock.now - 13 * HOUR) / 1000)  # a partial first step
        for params in ({"fn": "sum"}, {"fn": "last", "group_by": "host"},
                       {"fn": "quantile", "q": "0.9", "group_by": ""},
                       {"fn": "count", "start": off_grid}, {"fn": "min", "start": off_grid}):
            answer(engine, query(clock, **params))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_every_answer_with_a_fresh_tail_equals_the_whole_one(
        tmp_path_factory: pytest.TempPathFactory, seed: int) -> None:
    """Random writes (mostly near now, some late, a new series now and then), a clock
    that moves, rollup refreshes and random queries reaching into the present (their
    start on the step grid or not)."""
    rng = np.random.default_rng(seed)
    c = build(make_settings(tmp_path_factory.mktemp("f"), retention_raw=0),
              start_maintenance=False)
    clock = Clock()
    engine = QueryEngine(c.store, clock=clock, cache=c.engine.cache)  # told of commits
    hosts = ["a", "b"]
    try:
        for _ in range(40):
            op = rng.integers(10)
            if op < 4:
                ago = rng.integers(0, 10 * MIN if op < 3 else 3 * HOUR, int(rng.integers(1, 9)))
                write(c, [("cpu", {"host": str(rng.choice(hosts))}, int(clock.now - t),
                           float(rng.integers(0, 100))) for t in ago])
            elif op == 4:
                clock.now += int(rng.integers(1_000, 4 * MIN))
            elif op == 5:
                c.store.refresh_rollups(clock.now)
                if rng.random() < 0.3:
                    hosts.append(f"h{len(hosts)}")
            else:
                step = str(rng.choice(["1m", "5m", "15m"]))
                fn = str(rng.choice(["avg", "sum", "min", "max", "count", "last", "quantile"]))
                extra = {"q": "0.75"} if fn == "quantile" else {}
                group = rng.choice([None, "", "host"])
                if group is not None:
                    extra["group_by"] = str(group)
                start = clock.now - int(rng.integers(20 * MIN, 14 * HOUR))
                if rng.random() < 0.6:  # on the step grid, else a partial first step
                    start = start // 900_000 * 900_000
                answer(engine, query(clock, fn=fn, step=step, start=str(start / 1000),
                                     **extra))
    finally:
        c.close()

