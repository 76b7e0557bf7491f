"""vigil.analytics.correlation against scipy, and on series with known relationships."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats as sps

from vigil.analytics.correlation import (
    Method,
    align_series,
    correlation_matrix,
    lagged_correlation,
    significant_pairs,
    strength_of,
)
from vigil.core.errors import InvalidInput

NAN = math.nan
SCIPY: dict[str, Callable[..., object]] = {"pearson": sps.pearsonr, "spearman": sps.spearmanr}


def related_series(seed: int = 11, n: int = 300) -> tuple[np.ndarray, list[str]]:
    """Rows: a base signal, a noisy copy, its negation with noise, an unrelated series, and
    a noisy copy with 15% of points missing."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=n)
    with_gaps = base + rng.normal(0, 0.3, n)
    with_gaps[rng.random(n) < 0.15] = NAN
    rows = [base, base + rng.normal(0, 0.15, n), -base + rng.normal(0, 0.75, n),
            rng.normal(size=n), with_gaps]
    return np.array(rows), ["base", "copy", "inverse", "unrelated", "gappy"]


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_matrix_matches_scipy_on_pairwise_complete_points(method: Method) -> None:
    data, labels = related_series()
    m = correlation_matrix(data, labels, method=method)
    for i in range(len(labels)):
        for j in range(len(labels)):
            both = np.isfinite(data[i]) & np.isfinite(data[j])
            ref = SCIPY[method](data[i][both], data[j][both])
            assert m.n[i, j] == both.sum()
            assert math.isclose(m.r[i, j], ref.statistic, rel_tol=1e-9, abs_tol=1e-12)  # type: ignore[attr-defined]
            assert math.isclose(m.p_value[i, j], ref.pvalue, rel_tol=1e-6, abs_tol=1e-300)  # type: ignore[attr-defined]


@given(hnp.arrays(np.float64, st.tuples(st.integers(2, 4), st.integers(3, 25)),
                  elements=st.one_of(st.integers(-5, 5).map(float), st.just(NAN))),
       st.sampled_from(["pearson", "spearman"]))
@settings(max_examples=60, deadline=None)
def test_matrix_matches_scipy_with_ties_and_gaps(data: np.ndarray, method: Method) -> None:
    m = correlation_matrix(data, method=method)
    assert np.array_equal(m.r, m.r.T, equal_nan=True)
    for i, j in zip(*np.triu_indices(len(data), k=1), strict=True):
        both = np.isfinite(data[i]) & np.isfinite(data[j])
        x, y = data[i][both], data[j][both]
        if both.sum() < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
            assert math.isnan(m.r[i, j])
            continue
        ref = SCIPY[method](x, y)
        assert math.isclose(m.r[i, j], ref.statistic, rel_tol=1e-9, abs_tol=1e-12)  # type: ignore[attr-defined]
        if abs(m.r[i, j]) > 1 - 1e-9:  # p is rounding noise next to |r| = 1: both ~0
            assert m.p_value[i, j] < 1e-6 and ref.pvalue < 1e-6  # type: ignore[attr-defined]
        else:
            assert math.isclose(m.p_value[i, j], ref.pvalue, rel_tol=1e-6, abs_tol=1e-12)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("a", "b", "strength", "significant"), [
    ("base", "copy", "very strong", True),
    ("base", "inverse", "strong", True),
    ("base", "gappy", "very strong", True),
    ("base", "unrelated", "negligible", False),
    ("copy", "unrelated", "negligible", False),
])
def test_known_relationships_get_their_strength_and_confidence(
        a: str, b: str, strength: str, significant: bool) -> None:
    data, labels = related_series()
    m = correlation_matrix(data, labels)
    pair = m.pair(labels.index(a), labels.index(b))
    assert pair.strength == strength
    assert (pair.confidence > 0.99) == significant
    listed = {(p.a, p.b) for p in significant_pairs(m)}
    assert ((a, b) in listed) == significant


@pytest.mark.parametrize(("min_strength", "min_confidence", "expected"), [
    (0.3, 0.95, [("base", "copy"), ("base", "gappy"), ("copy", "gappy"),
                 ("base", "inverse"), ("copy", "inverse"), ("inverse", "gappy")]),
    ("very strong", 0.95, [("base", "copy"), ("base", "gappy"), ("copy", "gappy")]),
    # confidence alone: of the unrelated pairs only copy/unrelated (p = 0.23) gets in
    (0.0, 0.75, [("base", "copy"), ("base", "gappy"), ("copy", "gappy"), ("base", "inverse"),
                 ("copy", "inverse"), ("inverse", "gappy"), ("copy", "unrelated")]),
    (0.0, 0.0, None),  # every pair with a defined r
])
def test_significant_pairs_filters_and_orders_strongest_first(
        min_strength: float | str, min_confidence: float,
        expected: list[tuple[str, str]] | None) -> None:
    data, labels = related_series()
    pairs = significant_pairs(correlation_matrix(data, labels), min_strength=min_strength,  # type: ignore[arg-type]
                              min_confidence=min_confidence)
    rs = [abs(p.r) for p in pairs]
    assert rs == sorted(rs, reverse=True)
    if expected is None:
        assert len(pairs) == len(labels) * (len(labels) - 1) // 2
    else:
        assert [(p.a, p.b) for p in pairs] == expected


@pytest.mark.parametrize(("r", "label"), [
    (0.0, "negligible"), (-0.29, "negligible"), (0.3, "weak"), (-0.5, "moderate"),
    (0.69, "moderate"), (0.7, "strong"), (-0.95, "very strong"), (NAN, "negligible")])
def test_strength_labels(r: float, label: str) -> None:
    assert strength_of(r) == label


def test_constant_and_short_series_have_no_correlation() -> None:
    m = correlation_matrix([[1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 5.0], [NAN, NAN, 1.0, 2.0]],
                           ["flat", "up", "short"])
    assert math.isnan(m.r[0, 1]) and math.isnan(m.r[1, 2]) and m.n[1, 2] == 2
    assert significant_pairs(m, min_strength=0.0, min_confidence=0.0) == []
    json.dumps(m.as_dict(), allow_nan=False)


@pytest.mark.parametrize("method", ["pearson", "spearman"])
@pytest.mark.parametrize("shift", [-7, -1, 0, 3, 10])
def test_lag_is_recovered_from_a_shifted_copy(method: Method, shift: int) -> None:
    rng = np.random.default_rng(5)
    n = 400
    signal = rng.normal(size=n + 20)
    a = signal[10:10 + n]
    b = signal[10 - shift:10 - shift + n] + rng.normal(0, 0.2, n)  # b[t] = a[t - shift]
    got = lagged_correlation(a, b, max_lag=12, method=method, labels=("a", "b"), step_ms=15_000)
    assert got.lag == shift and got.lag_ms == shift * 15_000
    assert got.r > 0.9 and got.strength == "very strong" and got.confidence > 0.999
    assert got.n == n - abs(shift)
    assert got.lags.tolist() == list(range(-12, 13))
    assert np.nanargmax(got.r_by_lag) == shift + 12


def test_lag_p_value_pays_for_the_lags_tried() -> None:
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=200), rng.normal(size=200)
    wide = lagged_correlation(a, b, max_lag=20)
    at_zero = correlation_matrix([a[20:180], b[20:180]]).pair(0, 1)
    assert wide.p_value >= min(1.0, at_zero.p_value)
    assert wide.confidence < 0.95  # independent series: the best of 41 lags is not significant
    json.dumps(wide.as_dict(), allow_nan=False)


def test_lagged_correlation_of_a_constant_series_is_undefined() -> None:
    got = lagged_correlation([1.0] * 10, list(range(10)), max_lag=2)
    assert math.isnan(got.r) and got.lag == 0 and got.strength == "negligible"
    json.dumps(got.as_dict(), allow_nan=False)


def test_align_series_averages_per_step_and_marks_gaps() -> None:
    aligned = align_series({
        "cpu": ([1_000, 4_000, 12_000, 31_000], [1.0, 3.0, 5.0, 7.0]),
        "mem": ([10_000, 11_000, 25_000], [2.0, NAN, 4.0]),
    }, step_ms=10_000)
    assert aligned.labels == ("cpu", "mem")
    assert aligned.timestamps_ms.tolist() == [0, 10_000, 20_000, 30_000]
    np.testing.assert_array_equal(aligned.values, [[2.0, 5.0, NAN, 7.0], [NAN, 2.0, 4.0, NAN]])
    json.dumps(aligned.as_dict(), allow_nan=False)


def test_aligned_series_feed_the_matrix() -> None:
    rng = np.random.default_rng(3)
    ts_a = np.sort(rng.choice(np.arange(0, 600_000, 1_000), 400, replace=False))
    ts_b = np.sort(rng.choice(np.arange(0, 600_000, 1_000), 400, replace=False))
    trend = lambda t: np.sin(t / 60_000)  # noqa: E731 - a shared underlying signal
    aligned = align_series({"a": (ts_a, trend(ts_a)), "b": (ts_b, 2 * trend(ts_b) + 1)},
                           step_ms=10_000, start_ms=0, end_ms=600_000)
    m = correlation_matrix(aligned.values, aligned.labels)
    assert len(aligned.timestamps_ms) == 60 and m.pair(0, 1).r > 0.99


@pytest.mark.parametrize(("call", "field"), [
    (lambda: correlation_matrix([1.0, 2.0, 3.0]), "values"),
    (lambda: correlation_matrix([[1.0, 2.0, 3.0]], ["a", "b"]), "labels"),
    (lambda: correlation_matrix([[1.0, 2.0, 3.0]], method="kendall"), "method"),
    (lambda: correlation_matrix([[1.0, 2.0, 3.0]], min_points=2), "min_points"),
    (lambda: lagged_correlation([1.0, 2.0], [1.0], max_lag=1), "b"),
    (lambda: lagged_correlation([1.0], [1.0], max_lag=-1), "max_lag"),
    (lambda: significant_pairs(correlation_matrix([[1.0, 2.0, 3.0]]),
                               min_strength="huge"), "min_strength"),  # type: ignore[arg-type]
    (lambda: align_series({"a": ([0], [1.0])}, step_ms=0), "step_ms"),
    (lambda: align_series({"a": ([0, 10**9], [1.0, 2.0])}, step_ms=1), "step_ms"),
])
def test_bad_arguments_name_the_field(call: Callable[[], object], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        call()
    assert err.value.problems[0].field == field
