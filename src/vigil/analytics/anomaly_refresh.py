"""Statistics the anomaly detectors recompute every few samples from a series' recent values.

Private to :mod:`vigil.analytics.anomaly`. Every function takes a C-contiguous
(rows x width) window of values in time order, NaN marking places not yet filled, and works
row by row: a row's result depends only on that row, bit for bit, however many rows are
passed together (sorts, partitions, pairwise sums along the last axis and FFTs are per row
in numpy), so one series, many series and a precomputed batch agree exactly.
"""

from __future__ import annotations

import numpy as np

from vigil.analytics.seasonality import GAUSS_MAD, PeriodSearch, misfit_at, period_search
from vigil.core.types import Float64Array, Int64Array

GAUSS_Q90 = 1.2816  # the 90 % quantile of a standard normal
# The seasonal detector's period: vigil.analytics.seasonality.period_search with these.
ACF_MIN = 0.4  # an autocorrelation peak must reach this to be a period ...
ACF_RISE = 0.3  # ... and rise this much above the lowest point before it
KEEP_SLACK = 1.05  # a current period is kept while its misfit is within 5 % of the best


def _quantiles(win: Float64Array, qs: tuple[float, ...]) -> list[Float64Array]:
    """Linear-interpolated quantiles of the non-NaN entries of each row (>= 1 each)."""
    count = np.sum(~np.isnan(win), axis=1)
    pos = [q * (count - 1).astype(np.float64) for q in qs]
    lo = [np.floor(p_).astype(np.int64) for p_ in pos]
    hi = [np.minimum(i + 1, count - 1) for i in lo]
    s = np.sort(win, axis=1)  # NaN last; faster than a partition at several places
    rows = np.arange(len(win))
    out = []
    for p_, a_i, b_i in zip(pos, lo, hi, strict=True):
        a, b = s[rows, a_i], s[rows, b_i]
        out.append(a + (p_ - a_i) * (b - a))
    return out


def robust_stats(win: Float64Array) -> tuple[Float64Array, Float64Array, Float64Array]:
    """Median and lower / upper sigma of each row.

    A side's sigma is the larger of 1.4826 x MAD and the distance of the 10 % (90 %)
    quantile from the median over 1.2816, so a skewed, bursty series gets a wider band
    on its bursty side.

    >>> med, lo, hi = robust_stats(np.array([[1.0, 2.0, 3.0, 4.0, 100.0]]))
    >>> float(med[0]), round(float(lo[0]), 3), round(float(hi[0]), 3)
    (3.0, 1.483, 45.724)
    """
    with np.errstate(all="ignore"):  # huge magnitudes overflow to inf; that is all
        return _robust_stats(win)


def _robust_stats(win: Float64Array) -> tuple[Float64Array, Float64Array, Float64Array]:
    q10, med, q90 = _quantiles(win, (0.1, 0.5, 0.9))
    (mad,) = _quantiles(np.abs(win - med[:, None]), (0.5,))
    sig = GAUSS_MAD * mad
    return med, np.maximum(sig, (med - q10) / GAUSS_Q90), np.maximum(sig, (q90 - med) / GAUSS_Q90)


def season_period(win: Float64Array, max_period: int, min_period: int) -> PeriodSearch:
    """The one period detector with the anomaly refresh's settings: two cycles in the
    window, ACF peak >= 0.4 rising >= 0.3, the cheap misfit refinement."""
    return period_search(win, min_period=min_period, max_period=max_period, min_cycles=2,
                         min_acf=ACF_MIN, min_rise=ACF_RISE, refine="misfit")


def keep_period(y: Float64Array, current: Int64Array, found: Int64Array,
                misfit: Float64Array, max_period: int, min_period: int) -> Int64Array:
    """``found``, except that a current period (0 = none) whose misfit is within 5 % of
    the found one's is kept: sampling noise must not move the phase."""
    hi = min(max_period, y.shape[1] // 2)
    keep = (current >= min_period) & (current <= hi) & (found > 0)
    rows = np.flatnonzero(keep)
    if len(rows):
        with np.errstate(all="ignore"):
            keep[rows] = misfit_at(y[rows], current[rows]) <= KEEP_SLACK * misfit[rows]
    return np.where(keep, current, found)
