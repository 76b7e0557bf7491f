"""Correlation across aligned series: matrices with strength and confidence, lagged
cross-correlation, and a helper that aligns ``(timestamps, values)`` series on a grid.

Series are rows of a 2-D array (series x time) on a common time grid; NaN marks a
missing point. Every coefficient uses the *pairwise complete* observations (times where
both series have a finite value), and reports how many there were as ``n``.

``p_value`` is the two-sided p of "no correlation" from the t distribution with n - 2
degrees of freedom (as ``scipy.stats.pearsonr`` / ``spearmanr``), and ``confidence`` is
``1 - p_value``. Both assume independent observations: autocorrelated series (trends,
slow-moving gauges) share less information than ``n`` suggests, so their confidence is
optimistic. Detrend or difference such series first when that matters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

from vigil.analytics.stats import as_timestamps, as_values, json_float, json_floats, json_ints
from vigil.core.errors import InvalidInput, Problem
from vigil.core.types import Float64Array, Int64Array

Method = Literal["pearson", "spearman"]
Strength = Literal["negligible", "weak", "moderate", "strong", "very strong"]
METHODS: tuple[str, ...] = get_args(Method)
STRENGTHS: tuple[str, ...] = get_args(Strength)
# Lower |r| bound of each strength label: the rule of thumb of Mukaka (2012), Malawi Med J
# 24(3):69-71, where |r| < 0.3 is negligible.
STRENGTH_FLOORS: dict[Strength, float] = {
    "negligible": 0.0, "weak": 0.3, "moderate": 0.5, "strong": 0.7, "very strong": 0.9}
MIN_POINTS = 3  # fewer leaves no degree of freedom for the significance test
_COLLINEAR_TOLERANCE = 1e-12


def strength_of(r: float) -> Strength:
    """The label of ``|r|``; NaN (undefined correlation) is negligible.

    >>> strength_of(-0.75), strength_of(0.1)
    ('strong', 'negligible')
    """
    label: Strength = "negligible"
    for name, floor in STRENGTH_FLOORS.items():
        if abs(r) >= floor:
            label = name
    return label


@dataclass(frozen=True, slots=True)
class PairCorrelation:
    a: str
    b: str
    method: Method
    r: float  # in [-1, 1]; NaN when either series is constant or n < min_points
    p_value: float
    confidence: float  # 1 - p_value
    n: int  # pairwise complete points used
    strength: Strength

    def as_dict(self) -> dict[str, object]:
        return {"a": self.a, "b": self.b, "method": self.method, "r": json_float(self.r),
                "p_value": json_float(self.p_value), "confidence": json_float(self.confidence),
                "n": self.n, "strength": self.strength}


@dataclass(frozen=True, slots=True)
class CorrelationMatrix:
    labels: tuple[str, ...]
    method: Method
    r: Float64Array  # (k, k), symmetric, 1 on the diagonal of non-constant series
    p_value: Float64Array  # (k, k)
    n: Int64Array  # (k, k) pairwise complete points

    def pair(self, i: int, j: int) -> PairCorrelation:
        r, p = float(self.r[i, j]), float(self.p_value[i, j])
        return PairCorrelation(self.labels[i], self.labels[j], self.method, r, p, 1.0 - p,
                               int(self.n[i, j]), strength_of(r))

    def as_dict(self) -> dict[str, object]:
        return {"labels": list(self.labels), "method": self.method,
                "r": [json_floats(row) for row in self.r],
                "p_value": [json_floats(row) for row in self.p_value],
                "confidence": [json_floats(1.0 - row) for row in self.p_value],
                "n": [json_ints(row) for row in self.n],
                "strength": [[strength_of(float(v)) for v in row] for row in self.r]}


def correlation_matrix(values: npt.ArrayLike, labels: Sequence[str] | None = None, *,
                       method: Method = "pearson",
                       min_points: int = MIN_POINTS) -> CorrelationMatrix:
    """Pearson or Spearman correlation of every pair of rows of ``values`` (series x time).

    Spearman ranks each pair's complete observations (average ranks for ties), so a point
    missing in one series does not shift the other's ranks. Pairs with fewer than
    ``min_points`` complete observations, or a constant series, get NaN. Cost is
    O(k^2 x T) (x log T for Spearman).

    >>> m = correlation_matrix([[1, 2, 3, 4], [2, 4, 6, 9], [4, 3, 2, 1]], ["a", "b", "c"])
    >>> m.pair(0, 2).r, m.pair(0, 2).strength, int(m.n[0, 1])
    (-1.0, 'very strong', 4)
    """
    data = _as_matrix(values)
    k = data.shape[0]
    names = _labels(labels, k)
    _check(method, min_points)
    r = np.full((k, k), math.nan)
    p = np.full((k, k), math.nan)
    n = np.zeros((k, k), np.int64)
    for i in range(k):
        for j in range(i, k):
            r[i, j], p[i, j], n[i, j] = _correlate(data[i], data[j], method, min_points)
            r[j, i], p[j, i], n[j, i] = r[i, j], p[i, j], n[i, j]
    return CorrelationMatrix(names, method, r, p, n)


def significant_pairs(matrix: CorrelationMatrix, *, min_strength: float | Strength = 0.3,
                      min_confidence: float = 0.95) -> list[PairCorrelation]:
    """The distinct pairs with ``|r| >= min_strength`` (a number or a strength label) and
    ``confidence >= min_confidence``, strongest first.

    >>> m = correlation_matrix([[1, 2, 3, 4, 5], [2, 4, 5, 8, 10], [3, 1, 4, 1, 5]], "abc")
    >>> [(p.a, p.b, p.strength) for p in significant_pairs(m)]
    [('a', 'b', 'very strong')]
    """
    if isinstance(min_strength, str):
        if min_strength not in STRENGTH_FLOORS:
            raise InvalidInput(Problem(f"must be a number or one of {', '.join(STRENGTHS)}",
                                       field="min_strength"))
        min_strength = STRENGTH_FLOORS[min_strength]
    if not 0.0 <= min_confidence <= 1.0:
        raise InvalidInput(Problem("must be within [0, 1]", field="min_confidence"))
    i, j = np.triu_indices(len(matrix.labels), k=1)
    r, p = matrix.r[i, j], matrix.p_value[i, j]
    with np.errstate(invalid="ignore"):  # NaN pairs compare False: they are left out
        keep = (np.abs(r) >= min_strength) & (1.0 - p >= min_confidence)
    pairs = [matrix.pair(int(a), int(b)) for a, b in zip(i[keep], j[keep], strict=True)]
    return sorted(pairs, key=lambda c: (-abs(c.r), c.p_value))


@dataclass(frozen=True, slots=True)
class LaggedCorrelation:
    """Correlation of ``a[t]`` with ``b[t + lag]``: a positive lag means b follows a."""

    a: str
    b: str
    method: Method
    lag: int  # best lag in steps (largest |r|; the smallest |lag| among ties)
    lag_ms: int | None  # lag * step_ms, when step_ms was given
    r: float
    p_value: float  # at the best lag, Bonferroni-adjusted for the number of lags tried
    confidence: float
    n: int
    strength: Strength
    lags: Int64Array  # every lag tried, -max_lag..max_lag
    r_by_lag: Float64Array

    def as_dict(self) -> dict[str, object]:
        return {"a": self.a, "b": self.b, "method": self.method, "lag": self.lag,
                "lag_ms": self.lag_ms, "r": json_float(self.r),
                "p_value": json_float(self.p_value), "confidence": json_float(self.confidence),
                "n": self.n, "strength": self.strength, "lags": json_ints(self.lags),
                "r_by_lag": json_floats(self.r_by_lag)}


def lagged_correlation(a: npt.ArrayLike, b: npt.ArrayLike, *, max_lag: int,
                       method: Method = "pearson", labels: tuple[str, str] = ("a", "b"),
                       step_ms: int | None = None,
                       min_points: int = MIN_POINTS) -> LaggedCorrelation:
    """The lag within ±``max_lag`` steps at which ``a`` and ``b`` (same grid, same length)
    correlate most strongly, with its r, n and significance.

    Picking the best of 2·max_lag + 1 lags would make chance correlations look
    significant, so the p-value is multiplied by the number of lags tried (capped at 1).

    >>> base = [0, 1, 0, 0, 3, 0, 1, 2, 0, 0, 1, 4, 0, 2]
    >>> lagged_correlation(base, [0, 0] + base[:-2], max_lag=3).lag
    2
    """
    x, y = as_values(a, "a"), as_values(b, "b")
    if len(x) != len(y):
        raise InvalidInput(Problem(f"a and b differ in length ({len(x)} != {len(y)})",
                                   field="b"))
    if max_lag < 0:
        raise InvalidInput(Problem("must not be negative", field="max_lag"))
    _check(method, min_points)
    lags = np.arange(-max_lag, max_lag + 1, dtype=np.int64)
    found = np.array([_correlate(x[max(0, -lag):len(x) - max(0, lag)],
                                 y[max(0, lag):len(y) - max(0, -lag)], method, min_points)
                      for lag in lags.tolist()]).reshape(-1, 3)
    r_by_lag, p_by_lag, n_by_lag = found[:, 0], found[:, 1], found[:, 2].astype(np.int64)
    tried = int(np.isfinite(r_by_lag).sum())
    if tried == 0:
        centre = max_lag
        return LaggedCorrelation(labels[0], labels[1], method, 0, None if step_ms is None else 0,
                                 math.nan, math.nan, math.nan, int(n_by_lag[centre]),
                                 "negligible", lags, r_by_lag)
    # Largest |r|, ties to the smallest |lag|: sort key (-|r|, |lag|); NaN sorts last.
    order = np.lexsort((np.abs(lags), -np.nan_to_num(np.abs(r_by_lag), nan=-1.0)))
    best = int(order[0])
    r = float(r_by_lag[best])
    p = min(1.0, float(p_by_lag[best]) * tried)
    lag = int(lags[best])
    return LaggedCorrelation(labels[0], labels[1], method, lag,
                             None if step_ms is None else lag * step_ms, r, p, 1.0 - p,
                             int(n_by_lag[best]), strength_of(r), lags, r_by_lag)


@dataclass(frozen=True, slots=True)
class AlignedSeries:
    labels: tuple[str, ...]
    timestamps_ms: Int64Array  # (T,) start of each step bucket
    values: Float64Array  # (k, T) mean of each series' samples per bucket; NaN if none
    step_ms: int

    def as_dict(self) -> dict[str, object]:
        return {"labels": list(self.labels), "step_ms": self.step_ms,
                "timestamps_ms": json_ints(self.timestamps_ms),
                "values": [json_floats(row) for row in self.values]}


def align_series(series: Mapping[str, tuple[npt.ArrayLike, npt.ArrayLike]], step_ms: int, *,
                 start_ms: int | None = None, end_ms: int | None = None,
                 max_points: int = 1_000_000) -> AlignedSeries:
    """Put series given as ``label -> (timestamps_ms, values)`` on one grid of ``step_ms``.

    Bucket ``t`` holds samples with ``t <= ts < t + step_ms`` and gets their mean (NaN
    samples ignored); buckets without samples are NaN. The grid runs from ``start_ms``
    (default: the earliest sample, floored to the step) to ``end_ms`` exclusive (default:
    just past the latest sample). More than ``max_points`` buckets is refused, since a
    tiny step over a long range would exhaust memory.

    >>> al = align_series({"x": ([0, 5, 20], [1.0, 3.0, 5.0]), "y": ([10], [7.0])}, 10)
    >>> al.timestamps_ms.tolist(), al.values.tolist()
    ([0, 10, 20], [[2.0, nan, 5.0], [nan, 7.0, nan]])
    """
    if step_ms <= 0:
        raise InvalidInput(Problem("must be positive", field="step_ms"))
    columns = []
    for label, (ts_in, vals_in) in series.items():
        vals = as_values(vals_in, f"{label}.values")
        columns.append((as_timestamps(np.asarray(ts_in), len(vals)), vals))
    all_ts = [ts for ts, _ in columns if len(ts)]
    lo = start_ms if start_ms is not None else (
        min(int(ts[0]) for ts in all_ts) // step_ms * step_ms if all_ts else 0)
    hi = end_ms if end_ms is not None else (
        max(int(ts[-1]) for ts in all_ts) + 1 if all_ts else lo)
    steps = max(0, -(-(hi - lo) // step_ms))  # ceil division
    if steps > max_points:
        raise InvalidInput(Problem(f"{steps} steps exceed the limit of {max_points}; "
                                   "use a larger step or a shorter range", field="step_ms"))
    grid = lo + step_ms * np.arange(steps, dtype=np.int64)
    out = np.full((len(columns), steps), math.nan)
    for row, (ts, vals) in enumerate(columns):
        keep = np.isfinite(vals) & (ts >= lo) & (ts < hi)
        bucket = (ts[keep] - lo) // step_ms
        counts = np.bincount(bucket, minlength=steps)
        sums = np.bincount(bucket, weights=vals[keep], minlength=steps)
        filled = counts > 0
        out[row, filled] = sums[filled] / counts[filled]
    return AlignedSeries(tuple(series), grid, out, step_ms)


def _correlate(x: Float64Array, y: Float64Array, method: Method,
               min_points: int) -> tuple[float, float, int]:
    """(r, p, n) over the pairwise complete points of x and y."""
    both = np.isfinite(x) & np.isfinite(y)
    n = int(both.sum())
    if n < min_points:
        return math.nan, math.nan, n
    xs, ys = x[both], y[both]
    # Compare extremes, not the centred sum of squares: centring [0.1] * n leaves rounding
    # residue that would otherwise correlate with anything.
    if xs.min() == xs.max() or ys.min() == ys.max():  # a constant series: r is undefined
        return math.nan, math.nan, n
    if method == "spearman":
        xs, ys = sps.rankdata(xs), sps.rankdata(ys)
    xs, ys = xs - xs.mean(), ys - ys.mean()
    # Scaled by the largest deviation first so squares cannot overflow (as scipy does).
    x_norm = np.abs(xs).max() * np.linalg.norm(xs / np.abs(xs).max())
    y_norm = np.abs(ys).max() * np.linalg.norm(ys / np.abs(ys).max())
    r = float(np.dot(xs / x_norm, ys / y_norm))
    # An exactly collinear pair can come out as 1 - 2e-16, whose p-value at n = 3 would be
    # 1e-8 instead of 0; float64 cannot resolve r that close to 1 anyway.
    if abs(r) > 1.0 - _COLLINEAR_TOLERANCE:
        r = math.copysign(1.0, r)
    return r, _p_value(r, n), n


def _p_value(r: float, n: int) -> float:
    if abs(r) == 1.0:
        return 0.0
    t = r * math.sqrt((n - 2) / (1.0 - r * r))
    return float(2.0 * sps.t.sf(abs(t), n - 2))


def _as_matrix(values: npt.ArrayLike) -> Float64Array:
    try:
        data = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InvalidInput(Problem(f"must be numbers: {err}", field="values")) from err
    if data.ndim != 2:
        raise InvalidInput(Problem(f"must be 2-D (series x time), got {data.ndim}-D",
                                   field="values"))
    return data


def _labels(labels: Sequence[str] | None, k: int) -> tuple[str, ...]:
    if labels is None:
        return tuple(str(i) for i in range(k))
    names = tuple(labels)
    if len(names) != k:
        raise InvalidInput(Problem(f"{len(names)} labels for {k} series", field="labels"))
    return names


def _check(method: str, min_points: int) -> None:
    if method not in METHODS:
        raise InvalidInput(Problem(f"must be one of {', '.join(METHODS)}", field="method"))
    if min_points < MIN_POINTS:
        raise InvalidInput(Problem(f"must be at least {MIN_POINTS}", field="min_points"))
