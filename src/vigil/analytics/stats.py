"""Descriptive statistics, percentiles, histograms and rolling windows over one series.

Contract shared by every function here (and by ``correlation`` and ``trend``):

- ``values`` is a 1-D array-like of floats in the series' own unit. NaN and ±inf mark
  missing samples: they are skipped, never propagated, and ``count`` says how many
  samples were used.
- ``timestamps_ms``, when given, is int64 epoch milliseconds (UTC), one per value, in
  non-decreasing order.
- A result that is undefined for the input (the mean of nothing, the standard deviation
  of one sample) is NaN in the dataclass and ``None`` in ``as_dict()``, so the JSON
  stays valid.
- Bad arguments raise :class:`vigil.core.errors.InvalidInput` naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vigil.core.errors import InvalidInput, Problem
from vigil.core.types import Float64Array, Int64Array

DEFAULT_PERCENTS: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0)


def json_float(x: float) -> float | None:
    """``x`` as a plain float, or ``None`` when it is NaN or infinite (JSON has neither)."""
    return float(x) if math.isfinite(x) else None


def json_floats(a: npt.ArrayLike) -> list[float | None]:
    """A float array as a JSON-ready list, NaN/inf as ``None``."""
    arr = np.asarray(a, dtype=np.float64)
    return [float(v) if math.isfinite(v) else None for v in arr.tolist()]


def json_ints(a: npt.ArrayLike | None) -> list[int] | None:
    return None if a is None else [int(v) for v in np.asarray(a).tolist()]


def percent_key(percent: float) -> str:
    return f"p{percent:g}"  # 99.9 -> "p99.9"


def as_values(values: npt.ArrayLike, field: str = "values") -> Float64Array:
    """``values`` as a 1-D float64 array (a copy only when a conversion is needed)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InvalidInput(Problem(f"must be numbers: {err}", field=field)) from err
    if arr.ndim != 1:
        raise InvalidInput(Problem(f"must be 1-D, got {arr.ndim}-D", field=field))
    return arr


def as_timestamps(timestamps_ms: npt.ArrayLike, n: int, *, strict: bool = False) -> Int64Array:
    """Validated int64 epoch-ms timestamps for ``n`` values: 1-D, same length, sorted
    (strictly increasing when ``strict``)."""
    ts = np.asarray(timestamps_ms)
    if ts.ndim != 1 or len(ts) != n:
        raise InvalidInput(Problem(f"must be 1-D with one timestamp per value ({n})",
                                   field="timestamps_ms"))
    if ts.dtype.kind not in "iu" and ts.size:  # np.asarray([]) is float64
        raise InvalidInput(Problem("must be integer epoch milliseconds", field="timestamps_ms"))
    ts = ts.astype(np.int64, copy=False)
    steps = np.diff(ts)
    if (steps <= 0).any() if strict else (steps < 0).any():
        order = "strictly increasing" if strict else "non-decreasing"
        raise InvalidInput(Problem(f"must be {order}", field="timestamps_ms"))
    return ts


def require_positive(value: float, field: str) -> None:
    if not (math.isfinite(value) and value > 0):
        raise InvalidInput(Problem(f"must be a positive number, got {value}", field=field))


def as_percents(percents: Sequence[float]) -> tuple[float, ...]:
    out = tuple(float(p) for p in percents)
    if any(not 0.0 <= p <= 100.0 for p in out):
        raise InvalidInput(Problem("percents must be within [0, 100]", field="percents"))
    return out


@dataclass(frozen=True, slots=True)
class Summary:
    """Descriptive statistics of the finite values of one series (see :func:`describe`)."""

    count: int  # finite values used
    missing: int  # NaN/inf values skipped
    sum: float
    mean: float
    std: float  # sample standard deviation (ddof=1)
    variance: float  # sample variance (ddof=1)
    min: float
    max: float
    p25: float
    median: float
    p75: float
    skewness: float  # bias-corrected sample skewness G1; NaN below 3 values or if constant
    kurtosis: float  # bias-corrected excess kurtosis G2 (normal = 0); NaN below 4 values
    min_at_ms: int | None  # timestamp of the first minimum, when timestamps were given
    max_at_ms: int | None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"count": self.count, "missing": self.missing}
        for name in ("sum", "mean", "std", "variance", "min", "max", "p25", "median", "p75",
                     "skewness", "kurtosis"):
            out[name] = json_float(getattr(self, name))
        out["min_at_ms"], out["max_at_ms"] = self.min_at_ms, self.max_at_ms
        return out


def describe(values: npt.ArrayLike, timestamps_ms: npt.ArrayLike | None = None) -> Summary:
    """Count, mean, spread, extremes, quartiles and shape of the finite values.

    Skewness and kurtosis are the bias-corrected sample estimators (as pandas and
    ``scipy.stats.skew(..., bias=False)``); they are NaN when the values are (numerically)
    constant, since the shape of a spike of zero width is undefined.

    >>> s = describe([1.0, 2.0, float("nan"), 4.0], timestamps_ms=[0, 10, 20, 30])
    >>> (s.count, s.missing, s.mean, s.median, s.max_at_ms)
    (3, 1, 2.3333333333333335, 2.0, 30)
    """
    raw = as_values(values)
    ts = None if timestamps_ms is None else as_timestamps(timestamps_ms, len(raw))
    finite = np.isfinite(raw)
    x = raw[finite]
    n = len(x)
    nan = math.nan
    if n == 0:
        return Summary(0, len(raw), 0.0, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan,
                       None, None)
    mean = float(np.mean(x))
    dev = x - mean
    m2 = float(np.mean(dev**2))
    variance = m2 * n / (n - 1) if n > 1 else nan
    q25, q50, q75 = (float(q) for q in np.percentile(x, [25.0, 50.0, 75.0]))
    # Rounding leaves a tiny m2 for constant input; treat it as zero as scipy does, or
    # the shape statistics would be noise divided by noise.
    flat = m2 <= (np.finfo(np.float64).eps * mean) ** 2
    skewness = kurtosis = nan
    if not flat and n > 2:
        # Moments of deviations scaled to a maximum of 1: the ratios are scale-free, and
        # m2 ** 1.5 of raw deviations under-/overflows for tiny or huge values.
        unit = dev / np.abs(dev).max()
        u2 = float(np.mean(unit**2))
        g1 = float(np.mean(unit**3)) / u2**1.5
        skewness = g1 * math.sqrt(n * (n - 1)) / (n - 2)
        if n > 3:
            g2 = float(np.mean(unit**4)) / u2**2 - 3.0
            kurtosis = ((n + 1) * g2 + 6.0) * (n - 1) / ((n - 2) * (n - 3))
    min_at = max_at = None
    if ts is not None:
        finite_ts = ts[finite]
        min_at, max_at = int(finite_ts[np.argmin(x)]), int(finite_ts[np.argmax(x)])
    return Summary(
        count=n, missing=len(raw) - n, sum=float(np.sum(x)), mean=mean,
        std=math.sqrt(variance) if n > 1 else nan, variance=variance,
        min=float(np.min(x)), max=float(np.max(x)), p25=q25, median=q50, p75=q75,
        skewness=skewness, kurtosis=kurtosis, min_at_ms=min_at, max_at_ms=max_at)


@dataclass(frozen=True, slots=True)
class Percentiles:
    count: int  # finite values used
    percents: tuple[float, ...]  # in [0, 100]
    values: tuple[float, ...]  # one per percent; NaN when count == 0

    def as_dict(self) -> dict[str, object]:
        return {"count": self.count,
                **{percent_key(p): json_float(v)
                   for p, v in zip(self.percents, self.values, strict=True)}}


def percentiles(values: npt.ArrayLike,
                percents: Sequence[float] = DEFAULT_PERCENTS) -> Percentiles:
    """Percentiles (0-100) of the finite values, linearly interpolated (numpy's default).

    >>> percentiles(range(1, 101), percents=(50, 99)).as_dict()
    {'count': 100, 'p50': 50.5, 'p99': 99.01}
    """
    x = as_values(values)
    x = x[np.isfinite(x)]
    ps = as_percents(percents)
    if len(x) == 0 or not ps:
        return Percentiles(len(x), ps, tuple(math.nan for _ in ps))
    return Percentiles(len(x), ps, tuple(float(v) for v in np.percentile(x, ps)))


@dataclass(frozen=True, slots=True)
class Histogram:
    edges: Float64Array  # len(counts) + 1 increasing bin edges; the last bin is closed
    counts: Int64Array
    count: int  # finite values inside the edges (== counts.sum())
    outside: int  # finite values below the first or above the last edge

    def as_dict(self) -> dict[str, object]:
        return {"edges": json_floats(self.edges), "counts": json_ints(self.counts),
                "count": self.count, "outside": self.outside}


def histogram(values: npt.ArrayLike, bins: int | Sequence[float] | None = None, *,
              value_range: tuple[float, float] | None = None, max_bins: int = 100) -> Histogram:
    """Counts of the finite values per bin.

    ``bins`` is a number of equal-width bins, explicit increasing edges, or ``None`` for
    numpy's ``"auto"`` rule (the narrower of Freedman–Diaconis and Sturges) capped at
    ``max_bins``: a long-tailed latency series with a tiny IQR would otherwise ask for
    millions of bins. ``value_range`` restricts the bins; values outside are counted in
    ``outside``.

    >>> h = histogram([1.0, 2.0, 2.0, 3.0, 10.0], bins=3, value_range=(0.5, 3.5))
    >>> (h.counts.tolist(), h.outside)
    ([1, 2, 1], 1)
    """
    x = as_values(values)
    x = x[np.isfinite(x)]
    if max_bins < 1:
        raise InvalidInput(Problem("must be at least 1", field="max_bins"))
    if value_range is not None:
        lo, hi = float(value_range[0]), float(value_range[1])
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise InvalidInput(Problem("must be finite with low < high", field="value_range"))
    if bins is None or isinstance(bins, int | np.integer):
        if bins is not None and bins < 1:
            raise InvalidInput(Problem("must be at least 1", field="bins"))
        edges = _equal_width_edges(x, None if bins is None else int(bins), value_range, max_bins)
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or len(edges) < 2 or not (np.diff(edges) > 0).all():
            raise InvalidInput(Problem("must be at least 2 increasing edges", field="bins"))
    inside = (x >= edges[0]) & (x <= edges[-1])
    counts, _ = np.histogram(x[inside], edges)
    return Histogram(edges, counts.astype(np.int64), int(inside.sum()), int((~inside).sum()))


def _equal_width_edges(x: Float64Array, bins: int | None, value_range: tuple[float, float] | None,
                       max_bins: int) -> Float64Array:
    if value_range is not None:
        lo, hi = float(value_range[0]), float(value_range[1])
        x = x[(x >= lo) & (x <= hi)]
    elif len(x):
        lo, hi = float(x.min()), float(x.max())
    else:
        lo, hi = 0.0, 1.0
    if lo == hi:  # one distinct value: a unit-wide bin around it, as numpy does
        lo, hi = lo - 0.5, hi + 0.5
    if bins is None:
        bins = 1
        if len(x) > 1:
            # numpy's "auto" width, computed here so the bin count is capped *before*
            # numpy allocates the edges.
            q75, q25 = np.percentile(x, [75.0, 25.0])
            fd = 2.0 * (q75 - q25) * len(x) ** (-1.0 / 3.0)
            sqrt_width = (x.max() - x.min()) / math.sqrt(len(x))
            sturges = (x.max() - x.min()) / (math.log2(len(x)) + 1.0)
            width = min(max(fd, sqrt_width / 2.0), sturges)
            if width > 0:
                bins = math.ceil((hi - lo) / width)
        bins = min(bins, max_bins)
    return np.linspace(lo, hi, bins + 1)
