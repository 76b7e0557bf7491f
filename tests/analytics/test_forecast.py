"""Forecasts, their intervals, the seasonal-naive baseline and capacity planning."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from vigil.analytics.capacity import time_to_threshold
from vigil.analytics.forecast import detect_period, forecast, mase, seasonal_naive
from vigil.core.errors import InvalidInput
from vigil.core.types import Float64Array

M = 24  # hourly data, daily period
T0_MS = 1_700_006_400_000
HOUR_MS = 3_600_000


def ets_like(seed: int, n: int, alpha: float = 0.3, gamma: float = 0.1) -> Float64Array:
    """An additive-error local level + seasonal process (the ETS(A,N,A) model itself)."""
    rng = np.random.default_rng(seed)
    level, season = 10.0, list(3 * np.sin(2 * np.pi * np.arange(M) / M))
    y = np.empty(n)
    for t, e in enumerate(rng.normal(0, 1, n)):
        s = season[t % M]
        y[t] = level + s + e
        level += alpha * e
        season[t % M] = s + gamma * e
    return y


def random_walk(seed: int, n: int) -> Float64Array:
    return np.asarray(np.cumsum(np.random.default_rng(seed).normal(0, 1, n)), np.float64)


def seasonal_noise(seed: int, n: int) -> Float64Array:
    t = np.arange(n)
    return 5 * np.sin(2 * np.pi * t / M) + np.random.default_rng(seed).normal(0, 1, n)


def trending_seasonal(seed: int, n: int) -> Float64Array:
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    y = 50 + 0.2 * t + 8 * np.sin(2 * np.pi * t / M) + 3 * (t % M < 4) + rng.normal(0, 1, n)
    return np.asarray(y, np.float64)


@pytest.mark.parametrize(("make", "method", "seeds"), [
    (ets_like, "ets", 12),
    (ets_like, "auto", 8),
    (seasonal_noise, "seasonal_naive", 30),
    (random_walk, "naive", 30),
])
def test_intervals_cover_at_the_stated_rate(make: Callable[[int, int], Float64Array],
                                            method: str, seeds: int) -> None:
    inside = []
    for seed in range(seeds):
        y = make(seed, 9 * M)
        f = forecast(y[:-M], horizon=M, method=method, period=M, interval=0.95)
        tail = y[-M:]
        inside.append(np.mean((tail >= f.lower) & (tail <= f.upper)))
    assert 0.88 <= float(np.mean(inside)) <= 0.99


def test_wider_interval_contains_the_narrower() -> None:
    y = ets_like(1, 8 * M)
    f80 = forecast(y, horizon=M, method="ets", period=M, interval=0.8)
    f99 = forecast(y, horizon=M, method="ets", period=M, interval=0.99)
    np.testing.assert_allclose(f80.values, f99.values)
    assert np.all(f99.lower < f80.lower) and np.all(f80.upper < f99.upper)
    assert np.all(np.diff(f99.upper - f99.lower) >= -1e-9)  # uncertainty grows with h


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auto_beats_seasonal_naive_on_trending_seasonal_data(seed: int) -> None:
    y = trending_seasonal(seed, 10 * M)
    hist, tail = y[:-M], y[-M:]
    ts = T0_MS + HOUR_MS * np.arange(len(hist))
    f = forecast(hist, ts, horizon=M)
    assert f.period == M and f.method == "ets"
    auto = mase(tail, f.values, hist, M)
    baseline = mase(tail, seasonal_naive(hist, M, M), hist, M)
    assert auto < 1.0 and auto < baseline
    scores = dict(f.validation_mase)
    assert scores[f.method] <= scores["seasonal_naive"]


def test_auto_falls_back_to_naive_on_very_short_series() -> None:
    f = forecast([3.0, 4.0, 5.0, 4.0, 5.0], horizon=3)
    assert f.method == "naive" and f.period is None
    np.testing.assert_allclose(f.values, [5.0, 5.0, 5.0])
    assert np.all(f.lower < 5.0) and np.all(f.upper > 5.0)


def test_future_timestamps_continue_the_grid_through_gaps() -> None:
    y = seasonal_noise(0, 6 * M)
    ts = T0_MS + HOUR_MS * np.arange(len(y))
    y[[3, 40, 41, 42]] = np.nan  # gaps as NaN values
    keep = np.ones(len(y), bool)
    keep[[70, 71]] = False  # gaps as missing rows
    y[-1] = np.nan  # a trailing gap: the forecast starts after the last finite sample
    f = forecast(y[keep], ts[keep], horizon=5, method="seasonal_naive")
    assert f.step_ms == HOUR_MS and f.period == M
    assert f.t_ms is not None
    np.testing.assert_array_equal(f.t_ms, ts[-2] + HOUR_MS * np.arange(1, 6))
    assert np.all(np.isfinite(f.values)) and f.n_used == len(y) - 1


def test_flat_series_forecasts_itself_with_zero_width() -> None:
    f = forecast(np.full(50, 7.0), horizon=4)
    assert f.values.tolist() == [7.0] * 4 and f.lower.tolist() == f.upper.tolist()


def test_arima_fits_quietly() -> None:
    f = forecast(seasonal_noise(3, 4 * M), horizon=M, method="arima", period=M, n_paths=2000)
    assert f.method == "arima" and f.aic is not None and f.paths is not None
    assert np.all(f.lower < f.values) and np.all(f.values < f.upper)
    inside = np.mean((f.paths >= f.lower) & (f.paths <= f.upper), axis=0)
    assert np.all(np.abs(inside - 0.95) < 0.025)


@pytest.mark.parametrize("method", ["ets", "seasonal_naive", "naive"])
def test_paths_are_seeded_and_agree_with_the_intervals(method: str) -> None:
    y = ets_like(4, 5 * M)
    a = forecast(y, horizon=30, method=method, period=M, n_paths=2000, seed=7)
    b = forecast(y, horizon=30, method=method, period=M, n_paths=2000, seed=7)
    assert a.paths is not None and b.paths is not None and a.paths.shape == (2000, 30)
    np.testing.assert_array_equal(a.paths, b.paths)
    inside = np.mean((a.paths >= a.lower) & (a.paths <= a.upper), axis=0)
    assert np.all(np.abs(inside - 0.95) < 0.025)
    np.testing.assert_allclose(a.paths.mean(axis=0), a.values, atol=0.15 * float(np.ptp(y)))


def test_as_dict_is_json() -> None:
    f = forecast(seasonal_noise(0, 4 * M), T0_MS + HOUR_MS * np.arange(4 * M), horizon=3)
    doc = json.loads(json.dumps(f.as_dict()))
    assert doc["method"] == f.method and len(doc["t_ms"]) == len(doc["values"]) == 3


@pytest.mark.parametrize(("make", "step_ms", "expected"), [
    (lambda: np.sin(2 * np.pi * np.arange(240) / 24), None, 24),
    (lambda: seasonal_noise(0, 10 * M), None, 24),
    (lambda: trending_seasonal(0, 10 * M), None, 24),
    (lambda: np.tile([0, 0, 0, 0, 5.0, 0, 0, 0, 0, 0], 20), None, 10),
    (lambda: np.random.default_rng(0).normal(0, 1, 500), None, None),
    (lambda: random_walk(0, 500), None, None),
    (lambda: np.arange(100.0), None, None),
    (lambda: np.full(100, 3.0), None, None),
    # 4 days at 5 min with a 30-minute spike at midnight: snapped to the day
    (lambda: (np.arange(1152) % 288 < 6) * 5.0 + np.random.default_rng(1).normal(0, 1, 1152),
     300_000, 288),
])
def test_detect_period(make: Callable[[], Float64Array], step_ms: int | None,
                       expected: int | None) -> None:
    assert detect_period(make(), step_ms=step_ms) == expected


@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=40), st.integers(1, 60),
       st.integers(1, 10))
@settings(max_examples=50, deadline=None)
def test_seasonal_naive_repeats_the_last_season(history: list[float], horizon: int,
                                                period: int) -> None:
    period = min(period, len(history))
    f = seasonal_naive(history, horizon, period)
    assert len(f) == horizon
    for h in range(horizon):
        assert f[h] == history[len(history) - period + h % period]


@given(st.lists(st.floats(-1e3, 1e3, allow_subnormal=False), min_size=5, max_size=40),
       st.integers(1, 4))
@example([2.2250738585072014e-308, 0.0, 0.0, 0.0, 0.0], 1)  # a subnormal scale: inf
@settings(max_examples=50, deadline=None)
def test_mase_matches_numpy(history: list[float], period: int) -> None:
    h = np.array(history)
    actual, predicted = h[-3:] + 1.0, h[-3:]
    scale = float(np.mean(np.abs(h[period:] - h[:-period])))
    got = mase(actual, predicted, h, period)
    # a Python float: 1 / a subnormal scale is inf, without numpy's overflow warning
    assert got == (np.inf if scale == 0 else pytest.approx(1.0 / scale))
    assert mase(actual, actual, h, period) == 0.0


def test_capacity_finds_the_crossing_of_a_linear_trend() -> None:
    t = np.arange(200)
    y = 0.5 * t + np.random.default_rng(0).normal(0, 1, len(t))
    ts = T0_MS + 60_000 * t
    c = time_to_threshold(y, ts, 150.0, horizon=200)  # the trend reaches 150 at t = 300
    assert c.expected_step is not None and 90 <= c.expected_step <= 110
    assert c.earliest_step is not None and c.latest_step is not None
    assert c.earliest_step <= c.expected_step <= c.latest_step
    assert c.expected_t_ms == ts[-1] + 60_000 * c.expected_step
    assert c.probability > 0.95 and not c.already_crossed
    json.dumps(c.as_dict())


def test_capacity_below_on_a_falling_series() -> None:
    t = np.arange(150)
    free = 1000 - 4 * t + np.random.default_rng(1).normal(0, 3, len(t))  # 0 at t = 250
    c = time_to_threshold(free, None, 0.0, direction="below", horizon=150)
    assert c.expected_step is not None and 85 <= c.expected_step <= 115
    assert c.expected_t_ms is None and c.probability > 0.95


def test_capacity_finds_no_crossing_on_a_flat_series() -> None:
    y = 20 + np.random.default_rng(2).normal(0, 1, 200)
    c = time_to_threshold(y, None, 35.0, horizon=100)
    assert c.expected_step is None and c.latest_step is None and c.probability < 0.05


def test_capacity_already_crossed() -> None:
    c = time_to_threshold([1.0, 2.0, 3.0, 4.0, 5.0], [0, 1000, 2000, 3000, 4000], 4.5)
    assert c.already_crossed and c.probability == 1.0 and c.expected_step == 0
    assert c.expected_t_ms == 4000


BAD: list[tuple[dict[str, Any], str]] = [
    ({"values": [1.0, 2.0], "horizon": 3}, "at least 3 finite points"),
    ({"values": [np.nan] * 10, "horizon": 3}, "at least 3 finite points"),
    ({"values": [1.0, np.inf, 2.0, 3.0], "horizon": 3}, "finite"),
    ({"values": [1.0, 2.0, 3.0], "horizon": 0}, "horizon"),
    ({"values": [1.0, 2.0, 3.0], "horizon": 3, "interval": 1.0}, "interval"),
    ({"values": [1.0, 2.0, 3.0], "horizon": 3, "method": "prophet"}, "unknown method"),
    ({"values": [1.0, 2.0, 3.0], "horizon": 3, "period": 0}, "period"),
    ({"values": [1.0, 2.0, 3.0], "horizon": 30_000, "n_paths": 1000}, "n_paths"),
    ({"values": [1.0, 2.0, 3.0], "horizon": 3, "n_paths": -1}, "n_paths"),
    ({"values": [1.0, 2.0, 3.0], "timestamps_ms": [0, 2, 1], "horizon": 3}, "increasing"),
    ({"values": [1.0, 2.0, 3.0], "timestamps_ms": [0, 1], "horizon": 3}, "2 timestamps"),
    ({"values": list(range(30)), "horizon": 3, "method": "ets", "period": 24}, "ets needs 48"),
    ({"values": list(range(8)), "horizon": 3, "method": "ets"}, "ets needs 10"),
    ({"values": list(range(10)), "horizon": 3, "method": "arima"}, "arima needs 20"),
    ({"values": list(range(10)), "horizon": 3, "method": "seasonal_naive", "period": 12},
     "needs 14 points"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD)
def test_bad_input_is_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        forecast(**kwargs)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"direction": "up"}, "direction"),
    ({"threshold": float("nan")}, "threshold"),
    ({"n_paths": 0}, "n_paths"),
])
def test_capacity_refuses_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"threshold": 10.0, **kwargs}
    with pytest.raises(InvalidInput, match=message):
        time_to_threshold(np.arange(20.0), None, **args)
