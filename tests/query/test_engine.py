"""Query semantics against direct numpy computations over the same samples."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import batch_of
from vigil.app import Components
from vigil.query.model import Query

DAY = 86_400_000
T0 = 1_700_000_000_000 // DAY * DAY
HOSTS = ("a", "b", "c")


def load(c: Components, rows: list[tuple[str, dict[str, str], int, float]]) -> None:
    c.pipeline.write_sync("default", batch_of(rows), "test")


def run(c: Components, **params: object) -> dict[str, dict[int, float]]:
    p = {k: (v if isinstance(v, list) else str(v)) for k, v in params.items()}
    result = c.engine.run("default", Query.from_params(p, T0 + 10 * DAY))
    return {",".join(f"{k}={v}" for k, v in sorted(s.labels.items())):
            dict(zip(s.t_ms.tolist(), s.values.tolist(), strict=True)) for s in result.series}


@pytest.fixture
def gauges(components: Components) -> dict[str, np.ndarray]:
    """Three hosts × 360 samples every 10 s (one hour), values a random walk."""
    rng = np.random.default_rng(5)
    vals = {h: np.round(50 + np.cumsum(rng.normal(0, 1, 360)), 2) for h in HOSTS}
    load(components, [("cpu", {"host": h, "dc": "x" if h != "c" else "y"}, T0 + i * 10_000,
                       float(v)) for h in HOSTS for i, v in enumerate(vals[h])])
    return vals


@pytest.mark.parametrize(("fn", "ref"), [
    ("avg", np.mean), ("sum", np.sum), ("min", np.min), ("max", np.max),
    ("count", len), ("last", lambda v: v[-1]),
])
def test_per_series_buckets(components: Components, gauges: dict[str, np.ndarray], fn: str,
                            ref: object) -> None:
    got = run(components, name="cpu", start=T0 / 1000, end=(T0 + 3_600_000) / 1000,
              step="5m", fn=fn)
    for h in HOSTS:
        series = got[f"dc={'x' if h != 'c' else 'y'},host={h}"]
        for k, t in enumerate(sorted(series)):
            assert series[t] == pytest.approx(ref(gauges[h][k * 30:(k + 1) * 30]))  # type: ignore[operator]


def test_group_by_pools_samples_of_the_group(components: Components,
                                             gauges: dict[str, np.ndarray]) -> None:
    got = run(components, name="cpu", start=T0 / 1000, end=(T0 + 3_600_000) / 1000,
              step="1h", fn="avg", group_by="dc")
    assert got["dc=x"][T0] == pytest.approx(np.mean(np.r_[gauges["a"], gauges["b"]]))
    assert got["dc=y"][T0] == pytest.approx(np.mean(gauges["c"]))
    together = run(components, name="cpu", start=T0 / 1000, end=(T0 + 3_600_000) / 1000,
                   step="1h", fn="max", group_by="")
    assert together == {"": {T0: max(v.max() for v in gauges.values())}}


@pytest.mark.parametrize("group_by", ["", "dc", None])
def test_groups_from_a_rolled_up_tier_equal_groups_from_raw(
        components: Components, gauges: dict[str, np.ndarray], group_by: str | None) -> None:
    """At the tier's own step a rollup row is a point only when its group is one series;
    several series in one group are merged as from raw samples."""
    params = {"name": "cpu", "start": T0 / 1000, "end": (T0 + 3_600_000) / 1000,
              "step": "5m", "fn": "sum"}
    if group_by is not None:
        params["group_by"] = group_by
    stale = run(components, **params)  # no rollup yet: from raw samples
    components.store.refresh_rollups(2**53)
    rolled = run(components, **params)
    assert rolled.keys() == stale.keys()
    for k in stale:
        assert rolled[k] == pytest.approx(stale[k])


def test_quantile_exact_on_raw_and_within_1pct_on_rollups(
        components: Components, gauges: dict[str, np.ndarray]) -> None:
    pooled = np.concatenate(list(gauges.values()))
    raw = run(components, name="cpu", start=T0 / 1000, end=(T0 + 3_600_000) / 1000,
              step="1h", fn="quantile", q=0.95, group_by="", tier="raw")
    assert raw[""][T0] == pytest.approx(np.quantile(pooled, 0.95))
    components.store.refresh_rollups(2**53)
    exact = run(components, name="cpu", start=T0 / 1000, end=(T0 + 3_600_000) / 1000,
                step="1h", fn="quantile", q=0.95, group_by="")
    assert exact == raw  # short ranges are computed exactly
    tiered = run(components, name="cpu", start=T0 / 1000, end=(T0 + 3_600_000) / 1000,
                 step="1h", fn="quantile", q=0.95, group_by="", tier="1h")
    lower = np.quantile(pooled, 0.95, method="lower")
    assert abs(tiered[""][T0] - lower) <= 0.01 * lower


def test_rolling_window(components: Components, gauges: dict[str, np.ndarray]) -> None:
    got = run(components, name="cpu", match=["host=a"], start=T0 / 1000,
              end=(T0 + 3_600_000) / 1000, step="5m", fn="avg", window="15m")["dc=x,host=a"]
    for k in range(12):
        window = gauges["a"][max(0, (k - 2) * 30):(k + 1) * 30]
        assert got[T0 + k * 300_000] == pytest.approx(window.mean())


def test_rate_and_increase_handle_counter_resets(components: Components) -> None:
    values = [0.0, 10, 20, 30, 5, 15, 25, 35, 45, 55, 65, 75]  # reset after 30
    load(components, [("jobs_total", {}, T0 + i * 60_000, v) for i, v in enumerate(values)])
    inc = run(components, name="jobs_total", start=(T0 + 1) / 1000,
              end=(T0 + 12 * 60_000) / 1000, step="6m", fn="increase")[""]
    # deltas 10,10,10,(reset)5,10 | 10,10,10,10,10,10 by the later sample's bucket
    assert inc == {T0: 45.0, T0 + 360_000: 60.0}
    rate = run(components, name="jobs_total", start=(T0 + 1) / 1000,
               end=(T0 + 12 * 60_000) / 1000, step="6m", fn="rate")[""]
    assert rate[T0 + 360_000] == pytest.approx(60.0 / 360)


def test_no_match_gives_no_series(components: Components) -> None:
    assert run(components, name="nothing") == {}
