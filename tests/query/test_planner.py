"""The planner picks the coarsest tier that answers exactly."""

from __future__ import annotations

import pytest

from vigil.core.errors import InvalidInput
from vigil.query.model import Query
from vigil.query.planner import plan

DAY = 86_400_000
H = 3_600_000
M5 = 300_000
NOW = 100 * DAY + 7 * M5 + 1234  # not aligned to anything


@pytest.mark.parametrize(("start", "end", "step", "fn", "tier"), [
    (10 * DAY, 20 * DAY, DAY, "avg", "1d"),
    (10 * DAY, 20 * DAY, 2 * DAY, "max", "1d"),
    (10 * DAY, 20 * DAY, H, "avg", "1h"),
    (10 * DAY + H, 11 * DAY, H, "avg", "1h"),  # start not on a day edge
    (10 * DAY, 11 * DAY, 15 * 60_000, "avg", "5m"),
    (10 * DAY, 11 * DAY, 60_000, "avg", "raw"),  # step finer than 5m
    (10 * DAY + 1000, 11 * DAY, H, "avg", "raw"),  # start off every edge
    (10 * DAY, 11 * DAY + 1, H, "avg", "raw"),  # end off every edge, in the past
    (99 * DAY, NOW, H, "avg", "1h"),  # end after now counts as aligned
    (99 * DAY, NOW + 5, DAY, "quantile", "1d"),
    (99 * DAY, 99 * DAY + 6 * H, H, "quantile", "raw"),  # short: exact from raw
    (99 * DAY, 99 * DAY + 7 * H, H, "quantile", "1h"),  # long: sketches
    (10 * DAY, 11 * DAY, H, "rate", "raw"),  # counters need raw samples
    (10 * DAY, 11 * DAY, H, "increase", "raw"),
])
def test_plan(start: int, end: int, step: int, fn: str, tier: str) -> None:
    q = Query("m", start, end, step, fn, q=0.5 if fn == "quantile" else None)  # type: ignore[arg-type]
    assert plan(q, NOW) == tier


def test_an_end_left_to_now_is_aligned_when_planned_a_moment_later() -> None:
    """Parsed at NOW without ``end`` (a dashboard's "last 6 hours"), planned 3 ms later:
    still the rollup tier (it used to flip to raw whenever the clock ticked between)."""
    params = {"name": "m", "start": str(99 * DAY / 1000), "step": "1h"}
    q = Query.from_params(params, NOW)
    assert q.end_now and plan(q, NOW + 3) == "1h"
    past = Query.from_params({**params, "end": str((NOW - 1) / 1000)}, NOW)
    assert not past.end_now and plan(past, NOW + 3) == "raw"


def test_forced_tier_must_fit() -> None:
    q = Query("m", 10 * DAY, 11 * DAY, 60_000, tier="1h")
    with pytest.raises(InvalidInput, match="tier 1h cannot answer"):
        plan(q, NOW)
    assert plan(Query("m", 10 * DAY, 11 * DAY, H, tier="5m"), NOW) == "5m"


@pytest.mark.parametrize(("params", "field"), [
    ({}, "name"),
    ({"name": "m", "fn": "median"}, "fn"),
    ({"name": "m", "fn": "quantile"}, "q"),
    ({"name": "m", "fn": "quantile", "q": "1.5"}, "q"),
    ({"name": "m", "start": "10", "end": "5"}, "start"),
    ({"name": "m", "start": "yesterday"}, "start"),
    ({"name": "m", "step": "fast"}, "step"),
    ({"name": "m", "start": "0", "end": "86400", "step": "1s"}, "step"),  # too many points
    ({"name": "m", "match": ["host"]}, "match"),
    ({"name": "m", "match": ["host=~("]}, "match"),
    ({"name": "m", "window": "1s", "step": "1m"}, "window"),
    ({"name": "m", "tier": "2h"}, "tier"),
])
def test_bad_parameters_name_the_field(params: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        Query.from_params(params, NOW)  # type: ignore[arg-type]
    assert err.value.problems[0].field == field
