"""vigil.analytics.trend and .seasonality: against scipy/statsmodels and the definitions,
and on planted trends, level shifts and periods."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.tsa.stattools import acf as statsmodels_acf

from vigil.analytics.seasonality import autocorrelation, seasonality
from vigil.analytics.trend import change_points, trend
from vigil.core.errors import InvalidInput

NAN = math.nan


def noisy(n: int, seed: int, slope: float = 0.0, sigma: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return slope * np.arange(n) + rng.normal(0, sigma, n)


def brute_force_s(y: np.ndarray) -> int:
    return int(sum(np.sign(y[j] - y[i]) for i in range(len(y)) for j in range(i + 1, len(y))))


# -- trend ---------------------------------------------------------------------------------

THEIL_SEN_CASES = {
    "rising with noise": noisy(120, 1, slope=0.3),
    "falling with outliers": np.where(np.arange(80) % 17 == 0, 50.0, noisy(80, 2, slope=-0.5)),
    "quantised with ties": np.round(noisy(60, 3, slope=0.05)),
    "flat noise": noisy(200, 4),
}


@pytest.mark.parametrize("name", list(THEIL_SEN_CASES))
@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_theil_sen_matches_scipy_per_step(name: str, alpha: float) -> None:
    y = THEIL_SEN_CASES[name]
    got = trend(y, alpha=alpha)
    ref = sps.theilslopes(y, alpha=1.0 - alpha)
    assert got.slope_unit == "per_step" and got.origin_ms is None
    assert (got.slope, got.intercept) == pytest.approx((ref.slope, ref.intercept), rel=1e-12)
    assert (got.slope_low, got.slope_high) == (ref.low_slope, ref.high_slope)


def test_theil_sen_with_timestamps_is_per_second_from_the_first_sample() -> None:
    rng = np.random.default_rng(9)
    ts = 1_700_000_000_000 + np.cumsum(rng.integers(500, 1500, 100))
    y = 0.002 * (ts - ts[0]) + rng.normal(0, 0.5, 100)  # 2 units per second
    y[[5, 40]] = NAN
    got = trend(y, timestamps_ms=ts)
    keep = np.isfinite(y)
    seconds = (ts[keep] - ts[keep][0]) / 1000.0
    ref = sps.theilslopes(y[keep], seconds)
    assert got.slope_unit == "per_second" and got.origin_ms == int(ts[0]) and got.n == 98
    assert (got.slope, got.intercept) == pytest.approx((ref.slope, ref.intercept), rel=1e-12)
    assert got.slope == pytest.approx(2.0, rel=0.02)


def test_theil_sen_samples_pairs_beyond_the_limit() -> None:
    y = noisy(2500, 5, slope=0.5, sigma=20.0)  # 3.1e6 pairs: a seeded sample of 2e6
    got = trend(y)
    ref = sps.theilslopes(y)
    assert got.slope == pytest.approx(ref.slope, rel=1e-3)
    assert got.slope_low == pytest.approx(ref.low_slope, rel=1e-2)
    assert got.slope_high == pytest.approx(ref.high_slope, rel=1e-2)
    assert trend(y).slope == got.slope  # deterministic


@given(st.lists(st.integers(-3, 3), min_size=3, max_size=40))
@settings(max_examples=80, deadline=None)
def test_mann_kendall_s_and_tie_corrected_variance(values: list[int]) -> None:
    y = np.array(values, dtype=float)
    got = trend(y)
    n = len(y)
    _, ties = np.unique(y, return_counts=True)
    var_s = (n * (n - 1) * (2 * n + 5) - np.sum(ties * (ties - 1) * (2 * ties + 5))) / 18
    assert got.s == brute_force_s(y)
    assert got.var_s == pytest.approx(var_s)
    if var_s > 0:
        z = (got.s - np.sign(got.s)) / math.sqrt(var_s)
        assert got.z == pytest.approx(z)
        assert got.p_value == pytest.approx(2 * sps.norm.sf(abs(z)))
        assert got.tau == pytest.approx(got.s / (n * (n - 1) / 2))


@pytest.mark.parametrize(("y", "direction"), [
    (noisy(100, 10, slope=0.05), "increasing"),
    (noisy(100, 11, slope=-0.05), "decreasing"),
    (noisy(500, 12, slope=-0.005), "decreasing"),
    (np.round(noisy(300, 13, slope=0.01, sigma=2.0)), "increasing"),  # many ties
    (noisy(100, 14), "none"),
    (noisy(500, 15), "none"),
    (noisy(1000, 16), "none"),
    (np.full(50, 3.0), "none"),
    (np.array([1.0, NAN]), "none"),
])
def test_mann_kendall_direction(y: np.ndarray, direction: str) -> None:
    got = trend(y)
    assert got.direction == direction
    if direction != "none":
        assert got.confidence > 0.95 and (got.slope > 0) == (direction == "increasing")
        assert got.slope_low <= got.slope <= got.slope_high
    json.dumps(got.as_dict(), allow_nan=False)


# -- change points -------------------------------------------------------------------------


def levels(seed: int, n: int, shifts: dict[int, float], sigma: float = 1.0) -> np.ndarray:
    y = noisy(n, seed, sigma=sigma)
    for at, size in shifts.items():
        y[at:] += size
    return y


@pytest.mark.parametrize(("n", "shifts"), [
    (200, {100: 3.0}),
    (200, {60: -2.0}),
    (300, {100: 2.0, 200: -4.0}),
    (500, {50: 1.5, 250: 3.0, 400: -3.0}),
    (1000, {500: 1.0}),
])
@pytest.mark.parametrize("seed", [1, 2])
def test_change_points_found_at_planted_level_shifts(n: int, shifts: dict[int, float],
                                                     seed: int) -> None:
    y = levels(seed, n, shifts)
    got = change_points(y)
    assert len(got.change_points) == len(shifts)
    level = 0.0
    for cp, (at, size) in zip(got.change_points, shifts.items(), strict=True):
        assert abs(cp.index - at) <= 3
        assert cp.mean_before == pytest.approx(level, abs=0.5)
        level += size
        assert cp.mean_after == pytest.approx(level, abs=0.5)
        assert cp.shift == pytest.approx(size, abs=0.6)
    assert got.noise_sigma == pytest.approx(1.0, rel=0.2)
    json.dumps(got.as_dict(), allow_nan=False)


@pytest.mark.parametrize("n", [200, 1000, 5000])
@pytest.mark.parametrize("seed", [21, 22, 23])
def test_no_change_points_on_clean_noise(n: int, seed: int) -> None:
    assert change_points(noisy(n, seed)).change_points == ()


@pytest.mark.parametrize(("n", "max_false_alarm_rate"), [(50, 0.06), (200, 0.02)])
def test_false_alarm_rate_on_short_noise(n: int, max_false_alarm_rate: float) -> None:
    # Short series are where a chance split is likeliest (see default_penalty).
    alarms = [bool(change_points(noisy(n, seed)).change_points) for seed in range(300)]
    assert sum(alarms) / len(alarms) <= max_false_alarm_rate


def test_change_point_index_and_time_refer_to_the_input() -> None:
    y = levels(3, 100, {50: 5.0})
    y[[10, 20, 30]] = NAN  # dropped before segmenting, so positions shift internally
    ts = 1_000 * np.arange(100) + 7
    (cp,) = change_points(y, timestamps_ms=ts).change_points
    assert cp.index == 50 and cp.timestamp_ms == 50_007


@pytest.mark.parametrize(("y", "kwargs", "count"), [
    (np.full(100, 2.0), {}, 0),  # constant
    (np.repeat([0.0, 1.0], 4), {}, 0),  # shorter than two minimal segments
    (np.repeat([0.0, 1.0], 10), {}, 1),  # noiseless step
    (levels(4, 300, {100: 2.0, 200: -4.0}), {"max_change_points": 1}, 1),
    (levels(5, 200, {100: 0.8}), {"penalty": 1000.0}, 0),
])
def test_change_point_edges(y: np.ndarray, kwargs: dict[str, float], count: int) -> None:
    assert len(change_points(y, **kwargs).change_points) == count  # type: ignore[arg-type]


# -- seasonality ---------------------------------------------------------------------------


def sine(n: int, period: float, seed: int, noise: float, trend_per_step: float = 0.0
         ) -> np.ndarray:
    t = np.arange(n)
    return (np.sin(2 * np.pi * t / period) + trend_per_step * t
            + np.random.default_rng(seed).normal(0, noise, n))


@pytest.mark.parametrize(("n", "period", "noise", "slope"), [
    (96, 12, 0.3, 0.0),
    (200, 24, 0.5, 0.0),
    (300, 7, 0.5, 0.0),
    (500, 24, 0.5, 0.05),  # on a trend
    (1000, 12, 1.0, 0.0),  # noise variance twice the seasonal variance
    (2016, 288, 0.5, 0.0),  # a day of 5-minute steps, a week of data
])
@pytest.mark.parametrize("seed", [1, 2])
def test_seasonality_recovers_the_period_of_a_noisy_sine(n: int, period: int, noise: float,
                                                         slope: float, seed: int) -> None:
    got = seasonality(sine(n, period, seed, noise, slope))
    # A long noisy period is pinned to about a step: 288 +- 2 is a day +- 10 minutes.
    assert got.detected and got.period is not None
    assert abs(got.period - period) <= period // 100
    assert got.strength >= got.threshold
    # the autocorrelation at the period is about the seasonal share of the variance
    assert got.strength == pytest.approx(0.5 / (0.5 + noise**2), abs=0.15)


def random_walk(n: int, seed: int) -> np.ndarray:
    return np.cumsum(np.random.default_rng(seed).normal(size=n))


@pytest.mark.parametrize(("make", "n"), [
    (lambda n, seed: noisy(n, seed), 50),
    (lambda n, seed: noisy(n, seed), 200),
    (lambda n, seed: noisy(n, seed), 2000),
    (lambda n, seed: noisy(n, seed, slope=0.1), 300),
    (random_walk, 500),
    (lambda n, seed: np.full(n, 4.0), 100),
])
@pytest.mark.parametrize("seed", [31, 32, 33])
def test_no_seasonality_without_a_pattern(make: Callable[[int, int], np.ndarray], n: int,
                                          seed: int) -> None:
    got = seasonality(make(n, seed))
    assert not got.detected and got.period is None
    json.dumps(got.as_dict(), allow_nan=False)


def test_seasonality_with_gaps_and_timestamps() -> None:
    y = sine(400, 24, 7, 0.4)
    y[np.random.default_rng(7).random(400) < 0.1] = NAN
    ts = 1_700_000_000_000 + 3_600_000 * np.arange(400)  # hourly
    got = seasonality(y, timestamps_ms=ts)
    assert got.detected and got.period == 24 and got.period_ms == 86_400_000


@pytest.mark.parametrize("n", [10, 100, 333])
def test_autocorrelation_matches_statsmodels(n: int) -> None:
    y = sine(n, 9, n, 0.7, 0.01)
    np.testing.assert_allclose(autocorrelation(y, n // 2),
                               statsmodels_acf(y, nlags=n // 2, fft=False), atol=1e-12)


def test_autocorrelation_with_gaps_uses_the_complete_pairs() -> None:
    y = sine(60, 6, 1, 0.3)
    y[[3, 17, 18, 40]] = NAN
    got = autocorrelation(y, 20)
    present = np.isfinite(y)
    d = np.where(present, y - np.nanmean(y), 0.0)
    cov = [np.sum(d[: 60 - k] * d[k:]) / np.sum(present[: 60 - k] & present[k:])
           for k in range(21)]
    want = np.array(cov) / cov[0] * (60 - np.arange(21)) / 60
    np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize(("call", "field"), [
    (lambda: trend([1.0, 2.0, 3.0], alpha=0.0), "alpha"),
    (lambda: trend([1.0, 2.0, 3.0], timestamps_ms=[0, 1, 1]), "timestamps_ms"),
    (lambda: change_points([1.0] * 20, min_segment=0), "min_segment"),
    (lambda: change_points([1.0] * 20, penalty=-1.0), "penalty"),
    (lambda: seasonality([1.0] * 20, min_period=1), "min_period"),
    (lambda: seasonality([1.0] * 20, min_period=5, max_period=4), "max_period"),
    (lambda: autocorrelation([1.0, 2.0], max_lag=2), "max_lag"),
])
def test_bad_arguments_name_the_field(call: Callable[[], object], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        call()
    assert err.value.problems[0].field == field
