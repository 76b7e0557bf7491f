"""Trend with significance (Theil–Sen slope, Mann–Kendall test) and change points in the
mean (binary segmentation). Seasonality lives in :mod:`vigil.analytics.seasonality`.

Inputs follow :mod:`vigil.analytics.stats`: 1-D ``values`` with NaN/inf as missing
(dropped, not filled) and optional int64 epoch-ms ``timestamps_ms``, which here must be
strictly increasing. Without timestamps the samples are taken as equally spaced steps.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

from vigil.analytics.stats import as_timestamps, as_values, json_float
from vigil.core.errors import InvalidInput, Problem
from vigil.core.types import Float64Array

Direction = Literal["increasing", "decreasing", "none"]
SlopeUnit = Literal["per_step", "per_second"]
# Above this many pairs Theil–Sen uses a seeded random sample of them: memory and time
# are O(pairs), and 2e6 pairs (n = 2000) pin the median slope to well under 1%.
MAX_SLOPE_PAIRS = 2_000_000
_SAMPLE_SEED = 20240611  # fixed, so the same input always gives the same answer


# -- trend --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trend:
    n: int  # finite values used
    slope: float  # Theil–Sen: value units per step, or per second with timestamps
    slope_unit: SlopeUnit
    slope_low: float  # confidence interval of the slope at 1 - alpha
    slope_high: float
    intercept: float  # fitted value at the origin: the first finite sample
    origin_ms: int | None  # timestamp of the origin, when timestamps were given
    s: int  # Mann–Kendall S: concordant minus discordant pairs
    var_s: float  # variance of S under "no trend", corrected for ties
    z: float  # S standardised with continuity correction
    tau: float  # Mann–Kendall tau = S / (n (n - 1) / 2)
    p_value: float  # two-sided
    confidence: float  # 1 - p_value
    direction: Direction  # "none" unless p_value < alpha

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"n": self.n, "slope_unit": self.slope_unit,
                                  "origin_ms": self.origin_ms, "s": self.s,
                                  "direction": self.direction}
        for name in ("slope", "slope_low", "slope_high", "intercept", "var_s", "z", "tau",
                     "p_value", "confidence"):
            out[name] = json_float(getattr(self, name))
        return out


def trend(values: npt.ArrayLike, timestamps_ms: npt.ArrayLike | None = None, *,
          alpha: float = 0.05) -> Trend:
    """Monotonic trend of the finite values: the Theil–Sen slope (median of pairwise
    slopes, robust to outliers) and the Mann–Kendall test of whether it is real.

    The test uses the normal approximation of S with the tie correction for repeated
    values (quantised gauges repeat a lot) and a continuity correction. Like all such
    tests it assumes independent noise; strongly autocorrelated series look more
    significant than they are. Fewer than 3 finite values give NaN and "none".
    The slope's interval is at ``1 - alpha``; the origin of the intercept is the first
    finite sample. Above ``MAX_SLOPE_PAIRS`` pairs (n > 2000) the slope and its interval
    come from a fixed-seed sample of the pairs: bounded memory, same answer every call.

    >>> t = trend([1.0, 2.1, 2.9, 4.2, 5.0, 5.8, 7.1], timestamps_ms=range(0, 7000, 1000))
    >>> round(t.slope, 3), t.slope_unit, t.s, t.direction
    (1.0, 'per_second', 21, 'increasing')
    """
    raw = as_values(values)
    if not 0.0 < alpha < 1.0:
        raise InvalidInput(Problem("must be in (0, 1)", field="alpha"))
    finite = np.isfinite(raw)
    y = raw[finite]
    n = len(y)
    unit: SlopeUnit = "per_step"
    origin_ms: int | None = None
    x = np.flatnonzero(finite).astype(np.float64)
    if timestamps_ms is not None:
        ts = as_timestamps(timestamps_ms, len(raw), strict=True)[finite]
        unit = "per_second"
        if n:
            origin_ms = int(ts[0])
            x = (ts - ts[0]).astype(np.float64) / 1000.0
    elif n:
        x -= x[0]
    if n < 3:
        nan = math.nan
        return Trend(n, nan, unit, nan, nan, nan, origin_ms, 0, nan, nan, nan, nan, nan, "none")
    s, var_s = _mann_kendall_s(y)
    z = 0.0 if s == 0 else (s - math.copysign(1.0, s)) / math.sqrt(var_s)
    p = float(2.0 * sps.norm.sf(abs(z)))
    direction: Direction = "none"
    if p < alpha:
        direction = "increasing" if s > 0 else "decreasing"
    slope, intercept, low, high = _theil_sen(x, y, var_s, alpha)
    return Trend(n, slope, unit, low, high, intercept, origin_ms, s, var_s, z,
                 s / (n * (n - 1) / 2), p, 1.0 - p, direction)


def _mann_kendall_s(y: Float64Array) -> tuple[int, float]:
    """S and its tie-corrected variance under no trend, in O(n log n).

    kendalltau against the (tie-free) sample order gives tau_b = S / sqrt(n0 (n0 - n1)),
    n1 the tied pairs of y, from which S is recovered exactly by rounding.
    """
    n = len(y)
    _, ties = np.unique(y, return_counts=True)
    ties = ties[ties > 1].astype(np.float64)
    var_s = (n * (n - 1) * (2 * n + 5) - float(np.sum(ties * (ties - 1) * (2 * ties + 5)))) / 18
    if var_s == 0.0:  # all values equal: no pair is ordered
        return 0, var_s
    n0 = n * (n - 1) / 2
    n1 = float(np.sum(ties * (ties - 1) / 2))
    tau_b = float(sps.kendalltau(np.arange(n), y).statistic)
    return round(tau_b * math.sqrt(n0 * (n0 - n1))), var_s


def _theil_sen(x: Float64Array, y: Float64Array, var_s: float,
               alpha: float) -> tuple[float, float, float, float]:
    """(slope, intercept, low, high): Sen (1968) with the confidence interval from the
    order statistics of the pairwise slopes, as ``scipy.stats.theilslopes``."""
    n = len(x)
    total = n * (n - 1) // 2
    if total <= MAX_SLOPE_PAIRS:
        i, j = np.triu_indices(n, k=1)
    else:
        rng = np.random.default_rng(_SAMPLE_SEED)
        a, b = rng.integers(0, n, MAX_SLOPE_PAIRS), rng.integers(0, n, MAX_SLOPE_PAIRS)
        keep = a != b
        i, j = np.minimum(a, b)[keep], np.maximum(a, b)[keep]
    slopes = np.sort((y[j] - y[i]) / (x[j] - x[i]))
    slope = float(np.median(slopes))
    intercept = float(np.median(y) - slope * np.median(x))
    # Ranks of the interval ends among all `total` slopes; a sample keeps their fraction.
    z = float(sps.norm.ppf(1.0 - alpha / 2.0))
    spread = z * math.sqrt(var_s)
    upper = min(round((total + spread) / 2.0), total - 1)
    lower = max(round((total - spread) / 2.0) - 1, 0)
    scale = len(slopes) / total
    low = float(slopes[min(len(slopes) - 1, int(lower * scale))])
    high = float(slopes[min(len(slopes) - 1, int(upper * scale))])
    return slope, intercept, low, high


# -- change points ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChangePoint:
    index: int  # position in the input of the first sample of the new level
    timestamp_ms: int | None
    mean_before: float  # mean of the segment that ends here
    mean_after: float  # mean of the segment that starts here
    shift: float  # mean_after - mean_before
    shift_sigmas: float  # shift in units of the noise level

    def as_dict(self) -> dict[str, object]:
        return {"index": self.index, "timestamp_ms": self.timestamp_ms,
                "mean_before": self.mean_before, "mean_after": self.mean_after,
                "shift": self.shift, "shift_sigmas": json_float(self.shift_sigmas)}


@dataclass(frozen=True, slots=True)
class ChangePoints:
    n: int  # finite values used
    noise_sigma: float  # robust noise level the penalty is scaled by
    penalty: float  # in units of noise_sigma**2
    change_points: tuple[ChangePoint, ...]  # in time order

    def as_dict(self) -> dict[str, object]:
        return {"n": self.n, "noise_sigma": json_float(self.noise_sigma),
                "penalty": self.penalty,
                "change_points": [c.as_dict() for c in self.change_points]}


def default_penalty(n: int) -> float:
    """The default penalty for ``n`` values, in units of the noise variance: 3 ln n.

    A split is kept when it lowers the squared error by more than penalty x sigma^2. BIC
    would charge 2 ln n for the two new parameters (level and location), but binary
    segmentation tries every position of every segment, and on white noise 2 ln n found a
    shift in about 1 of 10 series of 50 values; 3 ln n keeps that to a few percent at 50
    and under 1% from a few hundred values, and still finds a 1-sigma shift in the middle
    of 200 values almost every time.
    """
    return 3.0 * math.log(max(n, 2))


def change_points(values: npt.ArrayLike, timestamps_ms: npt.ArrayLike | None = None, *,
                  penalty: float | None = None, min_segment: int = 5,
                  max_change_points: int = 20) -> ChangePoints:
    """Level shifts in the mean, by binary segmentation with a penalty.

    The noise level is estimated robustly from the median absolute first difference,
    which level shifts barely move. Then the split that lowers the squared error most is
    taken, again and again, while that drop exceeds ``penalty`` (default
    :func:`default_penalty`) x noise variance and ``max_change_points`` is not reached.
    Segments are at least ``min_segment`` finite values long, so a lone spike is not a
    level. Trends show up as a staircase of shifts: test for a trend first. Fewer than
    ``2 * min_segment`` values, or constant values, have no change points.

    >>> cp = change_points([0.0, 0.2, -0.2, 0.0, 0.0, 5.0, 5.2, 4.8, 5.0, 5.0], min_segment=3)
    >>> [(c.index, round(c.mean_before, 6), round(c.mean_after, 6)) for c in cp.change_points]
    [(5, 0.0, 5.0)]
    """
    raw = as_values(values)
    ts = None if timestamps_ms is None else as_timestamps(timestamps_ms, len(raw), strict=True)
    if min_segment < 1:
        raise InvalidInput(Problem("must be at least 1", field="min_segment"))
    if max_change_points < 0:
        raise InvalidInput(Problem("must not be negative", field="max_change_points"))
    if penalty is not None and not (math.isfinite(penalty) and penalty > 0):
        raise InvalidInput(Problem("must be a positive number", field="penalty"))
    where = np.flatnonzero(np.isfinite(raw))
    y = raw[where]
    n = len(y)
    pen = default_penalty(n) if penalty is None else float(penalty)
    sigma = _noise_sigma(y)
    if n < 2 * min_segment or sigma == 0.0:
        return ChangePoints(n, sigma, pen, ())
    cuts = _binary_segmentation(y, pen * sigma * sigma, min_segment, max_change_points)
    bounds = [0, *cuts, n]
    means = [float(np.mean(y[a:b])) for a, b in itertools.pairwise(bounds)]
    found = []
    for k, cut in enumerate(cuts):
        index = int(where[cut])
        before, after = means[k], means[k + 1]
        found.append(ChangePoint(index, None if ts is None else int(ts[index]), before, after,
                                 after - before, (after - before) / sigma))
    return ChangePoints(n, sigma, pen, tuple(found))


def _noise_sigma(y: Float64Array) -> float:
    """Noise standard deviation from first differences: 1.4826 x MAD, / sqrt(2) because a
    difference holds two samples' noise. Quantised series can have a zero MAD; the
    standard deviation of the differences stands in then."""
    if len(y) < 3:
        return 0.0
    d = np.diff(y)
    mad = float(np.median(np.abs(d - np.median(d))))
    sigma = 1.4826 * mad if mad > 0 else float(np.std(d))
    return sigma / math.sqrt(2.0)


def _best_split(y: Float64Array, min_segment: int) -> tuple[int, float]:
    """(split, drop in squared error) of the best single split of ``y``; split is the
    length of the left part. O(len(y)) with cumulative sums."""
    n = len(y)
    if n < 2 * min_segment:
        return -1, 0.0
    c = np.cumsum(y - y.mean())  # centred, so the sums stay small and exact
    left = np.arange(min_segment, n - min_segment + 1)
    sum_left = c[left - 1]
    # With centred values sum_right = -sum_left, and the drop in squared error of a split
    # at k is n / (k (n - k)) * sum_left^2.
    drop = n * sum_left**2 / (left * (n - left))
    best = int(np.argmax(drop))
    return int(left[best]), float(drop[best])


def _binary_segmentation(y: Float64Array, min_drop: float, min_segment: int,
                         max_cuts: int) -> list[int]:
    """Cut positions (start index of each new segment), taking the globally best split of
    any current segment each round."""
    cuts: list[int] = []
    # (start, stop, split within, drop) per segment still worth considering
    pending = []
    split, drop = _best_split(y, min_segment)
    pending.append((0, len(y), split, drop))
    while pending and len(cuts) < max_cuts:
        k = max(range(len(pending)), key=lambda i: pending[i][3])
        start, stop, split, drop = pending.pop(k)
        if drop <= min_drop:
            break
        cut = start + split
        cuts.append(cut)
        for a, b in ((start, cut), (cut, stop)):
            s, d = _best_split(y[a:b], min_segment)
            if s > 0:
                pending.append((a, b, s, d))
    return sorted(cuts)
