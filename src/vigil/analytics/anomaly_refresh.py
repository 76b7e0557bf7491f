"""Statistics the anomaly detectors recompute every few samples from a series' recent values.

Private to :mod:`vigil.analytics.anomaly`. Every function takes a C-contiguous
(rows x width) window of values in time order, NaN marking places not yet filled, and works
row by row: a row's result depends only on that row, bit for bit, however many rows are
passed together (sorts, partitions, pairwise sums along the last axis and FFTs are per row
in numpy), so one series, many series and a precomputed batch agree exactly.
"""

from __future__ import annotations

import numpy as np

from vigil.core.types import Float64Array, Int64Array

GAUSS_MAD = 1.4826  # sigma / MAD for a normal distribution
GAUSS_Q90 = 1.2816  # the 90 % quantile of a standard normal
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


def period_search(win: Float64Array, max_period: int, min_period: int
                  ) -> tuple[Int64Array, Float64Array, Float64Array]:
    """The dominant period of each (NaN-free) row, 0 if none, with its misfit and the
    prepared row ``y`` (for :func:`keep_period`).

    A period repeats at least twice in the row: after removing the mean and a linear
    trend and winsorising spikes, its autocorrelation peaks at >= 0.4 and rises >= 0.3
    above the lowest point before it; of the peaks within 90 % of the best the shortest
    lag wins (a multiple of the period does not). An autocorrelation peak is broad and
    leans towards short lags when the series wanders, so the lag is then refined to the
    smallest misfit (mean |y_t - y_{t-lag}|) within +-1/12 of it.

    >>> t = np.arange(600.0)
    >>> per, _, _ = period_search(np.sin(2 * np.pi * t / 50)[None, :], 300, 4)
    >>> per.tolist()
    [50]
    """
    with np.errstate(all="ignore"):  # huge magnitudes overflow to inf; that is all
        return _period_search(win, max_period, min_period)


def _period_search(win: Float64Array, max_period: int, min_period: int
                   ) -> tuple[Int64Array, Float64Array, Float64Array]:
    m, c = win.shape
    hi = min(max_period, c // 2)
    found = np.zeros(m, np.int64)
    misfit = np.full(m, np.inf)
    if hi < min_period + 1 or m == 0:
        return found, misfit, win
    tm = np.arange(c, dtype=np.float64)
    tm -= tm.mean()
    y = win - win.mean(axis=1, keepdims=True)
    y -= tm * ((y * tm).sum(axis=1, keepdims=True) / np.dot(tm, tm))
    med = np.median(y, axis=1, keepdims=True)
    lim = 6 * GAUSS_MAD * np.median(np.abs(y - med), axis=1, keepdims=True)
    y = np.where(lim > 0, np.clip(y, med - lim, med + lim), y)
    y = np.ascontiguousarray(y - y.mean(axis=1, keepdims=True))
    size = 1 << (2 * c - 1).bit_length()
    f = np.fft.rfft(y, size, axis=1)
    acov = np.fft.irfft(f.real * f.real + f.imag * f.imag, size, axis=1)[:, : hi + 2]
    var = acov[:, :1]
    acf = np.where(var > 0, acov / var, 0.0) * (c / (c - np.arange(hi + 2)))
    k = np.arange(min_period, hi + 1)
    a = acf[:, k]
    dip = np.minimum.accumulate(acf[:, 1 : hi + 1], axis=1)[:, k - 1]
    peak = (a >= acf[:, k - 1]) & (a >= acf[:, k + 1]) & (a >= ACF_MIN) & (a - dip >= ACF_RISE)
    best = np.where(peak, a, -np.inf).max(axis=1, keepdims=True)
    pick = peak & (a >= 0.9 * best)
    coarse = np.where(pick.any(axis=1), k[np.argmax(pick, axis=1)], 0)
    rows = np.flatnonzero(coarse > 0)
    if len(rows):
        yr, cr = y[rows], coarse[rows]
        found_r, misfit_r = cr.copy(), np.full(len(rows), np.inf)
        for j in range(-(hi // 12), hi // 12 + 1):
            lag = cr + j
            ok = (lag >= min_period) & (lag <= hi) & (abs(j) <= cr // 12)
            d = np.where(ok, misfit_at(yr, np.clip(lag, 1, hi)), np.inf)
            better = d < misfit_r
            misfit_r = np.where(better, d, misfit_r)
            found_r = np.where(better, lag, found_r)
        found[rows], misfit[rows] = found_r, misfit_r
    return found, misfit, y


def misfit_at(y: Float64Array, lag: Int64Array) -> Float64Array:
    """Mean |y_t - y_{t-lag}| of each row at its own lag (>= 1)."""
    c = y.shape[1]
    back = np.arange(c)[None, :] - lag[:, None]
    pair = back >= 0
    d = np.abs(y - np.take_along_axis(y, np.maximum(back, 0), axis=1))
    mean: Float64Array = np.where(pair, d, 0.0).sum(axis=1) / np.maximum(pair.sum(axis=1), 1)
    return mean


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
