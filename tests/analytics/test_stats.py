"""vigil.analytics.stats against numpy/scipy, and against the definitions for windows."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats as sps

from vigil.analytics.rolling import ewma, rolling
from vigil.analytics.stats import describe, histogram, percentiles
from vigil.core.errors import InvalidInput

NAN = math.nan
RNG = np.random.default_rng(7)

DATASETS = {
    "normal": RNG.normal(10.0, 2.0, 500),
    "lognormal (skewed)": RNG.lognormal(0.0, 1.0, 300),
    "with gaps": np.where(RNG.random(200) < 0.2, NAN, RNG.normal(size=200)),
    "integers with ties": RNG.integers(0, 5, 100).astype(float),
    "counter around 1e9": 1e9 + np.cumsum(RNG.random(400)),
    "four values": np.array([1.0, 2.0, 4.0, 8.0]),
}

# Finite-or-NaN float arrays in a range where the naive references stay exact enough.
values_with_gaps = hnp.arrays(
    np.float64, st.integers(0, 60),
    elements=st.one_of(st.floats(-1e6, 1e6, allow_subnormal=False), st.just(NAN)))
EXAMPLES = settings(max_examples=60, deadline=None)


def finite(x: np.ndarray) -> np.ndarray:
    return x[np.isfinite(x)]


def close(a: float, b: float, rel: float = 1e-9, abs_: float = 1e-9) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


@pytest.mark.parametrize("name", list(DATASETS))
def test_describe_matches_scipy(name: str) -> None:
    raw = DATASETS[name]
    x = finite(raw)
    ref = sps.describe(x, bias=False)
    s = describe(raw)
    assert (s.count, s.missing) == (ref.nobs, len(raw) - ref.nobs)
    assert (s.min, s.max) == ref.minmax
    scale = float(np.max(np.abs(x)))
    assert math.isclose(s.mean, ref.mean, rel_tol=1e-12)
    assert math.isclose(s.variance, ref.variance, rel_tol=1e-9, abs_tol=1e-12 * scale)
    assert math.isclose(s.std, float(np.std(x, ddof=1)), rel_tol=1e-9)
    assert math.isclose(s.skewness, ref.skewness, rel_tol=1e-6, abs_tol=1e-9)
    assert math.isclose(s.kurtosis, ref.kurtosis, rel_tol=1e-6, abs_tol=1e-9)
    assert math.isclose(s.skewness, float(sps.skew(x, bias=False)), rel_tol=1e-6, abs_tol=1e-9)
    assert math.isclose(s.kurtosis, float(sps.kurtosis(x, bias=False)), rel_tol=1e-6,
                        abs_tol=1e-9)
    assert [s.p25, s.median, s.p75] == np.percentile(x, [25, 50, 75]).tolist()
    assert math.isclose(s.sum, float(np.sum(x)), rel_tol=1e-12)


@given(values_with_gaps)
@EXAMPLES
def test_describe_location_and_spread_match_numpy(raw: np.ndarray) -> None:
    x = finite(raw)
    s = describe(raw)
    assert s.count + s.missing == len(raw)
    if len(x) == 0:
        assert s.count == 0 and math.isnan(s.mean) and s.as_dict()["mean"] is None
        return
    assert (s.min, s.max) == (x.min(), x.max())
    assert s.median == pytest.approx(float(np.median(x)), rel=1e-12, abs=1e-300)
    assert math.isclose(s.mean, float(np.mean(x)), rel_tol=1e-9, abs_tol=1e-6)
    if len(x) > 1:
        assert math.isclose(s.std, float(np.std(x, ddof=1)), rel_tol=1e-7, abs_tol=1e-6)
    else:
        assert math.isnan(s.std)


@given(hnp.arrays(np.float64, st.integers(4, 50), elements=st.floats(-1e3, 1e3)))
@EXAMPLES
def test_describe_shape_matches_scipy(x: np.ndarray) -> None:
    if np.ptp(x) < 1e-3:  # near-constant: scipy's shape is rounding noise (ours is NaN)
        return
    s = describe(x)
    assert s.skewness == pytest.approx(float(sps.skew(x, bias=False)), rel=1e-6, abs=1e-8)
    assert s.kurtosis == pytest.approx(float(sps.kurtosis(x, bias=False)), rel=1e-6, abs=1e-8)


@pytest.mark.parametrize(("values", "skew_defined", "kurt_defined"), [
    ([], False, False),
    ([5.0], False, False),
    ([1.0, 2.0], False, False),
    ([1.0, 2.0, 4.0], True, False),
    ([0.1] * 10, False, False),  # constant: the shape is undefined, not rounding noise
    ([NAN, NAN], False, False),
])
def test_describe_small_or_constant_inputs(values: list[float], skew_defined: bool,
                                           kurt_defined: bool) -> None:
    s = describe(values)
    assert math.isfinite(s.skewness) == skew_defined
    assert math.isfinite(s.kurtosis) == kurt_defined
    json.dumps(s.as_dict(), allow_nan=False)


def test_describe_reports_when_extremes_happened() -> None:
    s = describe([3.0, NAN, 9.0, 1.0, 9.0], timestamps_ms=[100, 200, 300, 400, 500])
    assert (s.min_at_ms, s.max_at_ms) == (400, 300)  # first occurrence of the maximum
    assert describe([1.0, 2.0]).min_at_ms is None


@given(values_with_gaps, st.lists(st.floats(0, 100), min_size=1, max_size=6))
@EXAMPLES
def test_percentiles_match_numpy(raw: np.ndarray, percents: list[float]) -> None:
    x = finite(raw)
    p = percentiles(raw, percents)
    assert p.count == len(x)
    if len(x):
        assert list(p.values) == np.percentile(x, percents).tolist()
    else:
        assert all(math.isnan(v) for v in p.values)


def test_percentiles_as_dict_keys() -> None:
    assert list(percentiles([1.0, 2.0], (50, 99.9)).as_dict()) == ["count", "p50", "p99.9"]


@pytest.mark.parametrize("name", ["normal", "lognormal (skewed)", "integers with ties"])
def test_auto_histogram_bins_match_numpy_auto(name: str) -> None:
    x = finite(DATASETS[name])
    h = histogram(DATASETS[name], max_bins=10_000)
    expected_edges = np.histogram_bin_edges(x, "auto")
    np.testing.assert_allclose(h.edges, expected_edges, rtol=1e-12)
    assert h.counts.tolist() == np.histogram(x, expected_edges)[0].tolist()
    assert h.count == len(x) and h.outside == 0


def test_auto_histogram_caps_bins_on_heavy_tails() -> None:
    # Tiny IQR, huge range: Freedman–Diaconis alone would ask for ~1e8 bins.
    x = np.concatenate([np.full(1000, 1.0) + RNG.normal(0, 1e-3, 1000), [1e6]])
    h = histogram(x, max_bins=50)
    assert len(h.counts) == 50 and h.counts.sum() == len(x)


@pytest.mark.parametrize(("bins", "value_range"), [
    (5, None), (7, (-1.0, 1.0)), ([-3.0, -1.0, 0.0, 0.5, 3.0], None), (1, None)])
def test_histogram_matches_numpy(bins: int | list[float],
                                 value_range: tuple[float, float] | None) -> None:
    x = DATASETS["with gaps"]
    h = histogram(x, bins, value_range=value_range)
    ref_counts, ref_edges = np.histogram(finite(x), bins, range=value_range)
    np.testing.assert_allclose(h.edges, ref_edges)
    assert h.counts.tolist() == ref_counts.tolist()
    assert h.count + h.outside == len(finite(x))


def naive_rolling(x: np.ndarray, starts: np.ndarray, percents: list[float],
                  min_points: int) -> tuple[list[int], list[float], list[float], np.ndarray]:
    counts, means, stds, pcts = [], [], [], []
    for i, a in enumerate(starts):
        w = finite(x[a:i + 1])
        counts.append(len(w))
        ok = len(w) >= min_points
        means.append(float(np.mean(w)) if ok else NAN)
        stds.append(float(np.std(w, ddof=1)) if ok and len(w) > 1 else NAN)
        pcts.append(np.percentile(w, percents).tolist() if ok else [NAN] * len(percents))
    return counts, means, stds, np.array(pcts).reshape(len(x), len(percents))


def assert_rows_close(got: np.ndarray, want: list[float] | np.ndarray, scale: float) -> None:
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * max(scale, 1.0))


@given(values_with_gaps, st.integers(1, 8), st.integers(1, 3))
@EXAMPLES
def test_rolling_by_points_matches_each_window(raw: np.ndarray, window: int,
                                               min_points: int) -> None:
    r = rolling(raw, window_points=window, percents=(10, 50, 90), min_points=min_points)
    starts = np.maximum(np.arange(len(raw)) - window + 1, 0)
    counts, means, stds, pcts = naive_rolling(raw, starts, [10, 50, 90], min_points)
    scale = float(np.max(np.abs(finite(raw)), initial=0.0))
    assert r.count.tolist() == counts
    assert_rows_close(r.mean, means, scale)
    assert_rows_close(r.std, stds, scale)
    assert_rows_close(r.percentiles.T, pcts, scale)


@given(st.lists(st.integers(0, 50), min_size=0, max_size=40), st.integers(1, 120))
@EXAMPLES
def test_rolling_by_time_matches_each_window(gaps_ms: list[int], window_ms: int) -> None:
    ts = np.cumsum(np.asarray(gaps_ms, dtype=np.int64))
    x = np.sin(np.arange(len(ts), dtype=float))
    r = rolling(x, window_ms=window_ms, timestamps_ms=ts, percents=(50,))
    starts = np.array([np.flatnonzero(ts > t - window_ms)[0] for t in ts], dtype=np.int64)
    counts, means, stds, pcts = naive_rolling(x, starts, [50], 1)
    assert r.count.tolist() == counts
    assert_rows_close(r.mean, means, 1.0)
    assert_rows_close(r.std, stds, 1.0)
    assert_rows_close(r.percentiles.T, pcts, 1.0)


def test_rolling_std_stays_exact_on_a_large_counter() -> None:
    # Running sums of squares would lose every digit here (values ~1e9, window std ~0.3).
    x = DATASETS["counter around 1e9"]
    r = rolling(x, window_points=20)
    want = [np.std(x[max(0, i - 19):i + 1], ddof=1) for i in range(1, len(x))]
    np.testing.assert_allclose(r.std[1:], want, rtol=1e-6)


def naive_ewma(x: np.ndarray, efolds: np.ndarray) -> list[float]:
    out = []
    for i in range(len(x)):
        k = np.flatnonzero(np.isfinite(x[:i + 1]))
        w = np.exp(efolds[k] - efolds[i])
        out.append(float(np.sum(w * x[k]) / np.sum(w)) if len(k) else NAN)
    return out


@given(values_with_gaps, st.floats(0.01, 0.99))
@EXAMPLES
def test_ewma_by_alpha_is_the_normalised_weighted_mean(raw: np.ndarray, alpha: float) -> None:
    got = ewma(raw, alpha=alpha).values
    want = naive_ewma(raw, np.arange(len(raw)) * -math.log1p(-alpha))
    assert_rows_close(got, want, float(np.max(np.abs(finite(raw)), initial=0.0)))


@pytest.mark.parametrize(("n", "halflife_ms", "gap_ms"), [
    (50, 1000.0, 300),
    (400, 50.0, 40),  # ~220 e-folds: several blocks of the log-space sum
    (30, 10.0, 5000),  # gaps of hundreds of half-lives: weights underflow
])
def test_ewma_by_halflife_on_irregular_timestamps(n: int, halflife_ms: float,
                                                  gap_ms: int) -> None:
    ts = np.cumsum(RNG.integers(1, gap_ms, n)).astype(np.int64)
    x = np.where(RNG.random(n) < 0.1, NAN, RNG.normal(size=n))
    got = ewma(x, halflife_ms=halflife_ms, timestamps_ms=ts).values
    efolds = (ts - ts[0]) * math.log(2.0) / halflife_ms
    np.testing.assert_allclose(got, naive_ewma(x, efolds), rtol=1e-9, atol=1e-12)


def test_ewma_alpha_one_is_the_last_finite_value() -> None:
    assert ewma([NAN, 1.0, NAN, 3.0], alpha=1.0).values[1:].tolist() == [1.0, 1.0, 3.0]


@pytest.mark.parametrize(("call", "field"), [
    (lambda: describe([[1.0, 2.0]]), "values"),
    (lambda: describe([1.0, 2.0], timestamps_ms=[2, 1]), "timestamps_ms"),
    (lambda: describe([1.0], timestamps_ms=[1, 2]), "timestamps_ms"),
    (lambda: percentiles([1.0], (101,)), "percents"),
    (lambda: histogram([1.0], 0), "bins"),
    (lambda: histogram([1.0], [1.0, 1.0]), "bins"),
    (lambda: rolling([1.0]), "window_points"),
    (lambda: rolling([1.0], window_ms=10), "timestamps_ms"),
    (lambda: rolling([1.0], window_points=0), "window_points"),
    (lambda: ewma([1.0], alpha=0.0), "alpha"),
    (lambda: ewma([1.0], halflife_ms=5.0), "timestamps_ms"),
])
def test_bad_arguments_name_the_field(call: object, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        call()  # type: ignore[operator]
    assert err.value.problems[0].field == field


def test_results_serialise_as_strict_json() -> None:
    x = [1.0, NAN, 2.0, 5.0]
    ts = [0, 10, 20, 30]
    for result in (describe(x, ts), percentiles(x), histogram(x),
                   rolling(x, window_points=2, percents=(50,)),
                   ewma(x, halflife_ms=10.0, timestamps_ms=ts)):
        json.dumps(result.as_dict(), allow_nan=False)
