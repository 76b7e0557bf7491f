"""The health score follows its documented formula; insights fire on planted findings
and stay quiet on clean data."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.analytics.correlation import correlation_matrix, significant_pairs
from vigil.analytics.health import health, status_of
from vigil.analytics.insights import (
    correlation_insights,
    from_anomalies,
    from_correlations,
    from_trends,
    ranked,
)
from vigil.analytics.trend import trend

RNG = np.random.default_rng(8)
T = np.arange(0, 3600_000, 60_000, dtype=np.int64)  # an hour at 1 min


@pytest.mark.parametrize(("scores", "capacity", "expected", "status"), [
    # weights: anomalies 0.5, freshness 0.25, capacity 0.25, renormalised over those present
    ([np.zeros(10), np.zeros(10)], (), 100.0, "healthy"),
    ([np.zeros(10), np.r_[np.zeros(9), 1.0]], (), (50 * 0.5 + 100 * 0.25) / 0.75, "degraded"),
    ([np.ones(10), np.ones(10)], (), (0 * 0.5 + 100 * 0.25) / 0.75, "critical"),
    ([np.zeros(10), np.full(10, np.nan)], (), (100 * 0.5 + 50 * 0.25) / 0.75, "healthy"),
    ([np.zeros(10)], (0.8,), 100 * 0.5 + 100 * 0.25 + 20 * 0.25, "healthy"),
    ([], (1.0,), 0.0, "critical"),
    ([], (), 100.0, "healthy"),
])
def test_health_formula(scores: list[np.ndarray], capacity: tuple[float, ...],
                        expected: float, status: str) -> None:
    h = health(scores, recent=3, capacity_probabilities=capacity)
    assert h.score == pytest.approx(expected)
    assert h.status == status == status_of(h.score)
    assert all(0 <= c.score <= 100 for c in h.components)


def test_health_rejects_bad_window() -> None:
    with pytest.raises(ValueError, match="recent"):
        health([np.zeros(3)], recent=0)


def test_anomaly_insights_only_for_hot_series() -> None:
    hot = np.r_[np.zeros(50), 0.99, 0.95, np.zeros(8)]
    found = from_anomalies("cpu", [{"host": "a"}, {"host": "b"}], [T, T],
                           [hot, np.zeros(60)])
    assert [i.affected for i in found] == [[{"host": "a"}]]
    assert found[0].severity == "critical" and found[0].evidence["points"] == 2
    assert found[0].evidence["peak_t_ms"] == int(T[50])


def test_trend_insights_need_significance_and_size() -> None:
    rising = 50 + 0.5 * np.arange(60) + RNG.normal(0, 1, 60)  # +30 over the hour
    flat = 50 + RNG.normal(0, 1, 60)
    trends = [trend(rising, T), trend(flat, T)]
    found = from_trends("disk", [{"d": "rising"}, {"d": "flat"}], trends,
                        [float(np.mean(rising)), float(np.mean(flat))], window_s=3600)
    assert [i.affected for i in found] == [[{"d": "rising"}]]
    assert found[0].recommendation and "capacity" in found[0].recommendation


def test_correlation_insights_and_ranking() -> None:
    a = RNG.normal(0, 1, 200)
    b = a * 2 + RNG.normal(0, 0.1, 200)
    c = RNG.normal(0, 1, 200)
    m = correlation_matrix(np.vstack([a, b, c]), ["a", "b", "c"])
    pairs = significant_pairs(m, min_strength=0.5, min_confidence=0.99)
    found = from_correlations("rps", pairs, {"a": {"h": "a"}, "b": {"h": "b"}})
    assert [(i.affected[0]["h"], i.affected[1]["h"]) for i in found] == [("a", "b")]
    anomalies = from_anomalies("cpu", [{"h": "x"}], [T], [np.r_[np.zeros(59), 0.99]])
    order = ranked([*found, *anomalies])
    assert [i.type for i in order] == ["anomaly", "correlation"]


def daily_pair(shared_movement: bool, seed: int) -> np.ndarray:
    """Two hourly series over 14 days with the same daily cycle and their own noise; with
    ``shared_movement`` both also follow the same slow random wander."""
    rng = np.random.default_rng(seed)
    t = np.arange(14 * 24)
    cycle = 10 * np.sin(2 * np.pi * t / 24)
    wander = np.convolve(np.cumsum(rng.normal(0, 1, len(t))), np.ones(6) / 6, "same")
    rows = [cycle + rng.normal(0, 1.5, len(t)) for _ in range(2)]
    if shared_movement:
        rows = [r + 3 * wander for r in rows]
    return np.vstack(rows)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(("shared_movement", "expected"), [(False, 0), (True, 1)])
def test_correlation_insights_ignore_a_shared_seasonality(shared_movement: bool,
                                                         expected: int, seed: int) -> None:
    values = daily_pair(shared_movement, seed)
    raw = significant_pairs(correlation_matrix(values, ["a", "b"]), min_strength=0.8,
                            min_confidence=0.99)
    assert len(raw) == 1  # the raw series correlate strongly either way
    found = correlation_insights("rps", values, ["a", "b"], {"a": {"h": "a"}, "b": {"h": "b"}})
    assert len(found) == expected
    for i in found:
        assert i.type == "correlation" and float(i.evidence["residual_r"]) >= 0.3  # type: ignore[arg-type]
