"""Seasonality: a repeating pattern's period and strength, from autocorrelation peaks.

Values must sit on a regular grid (one per step; align irregular samples first with
:func:`vigil.analytics.correlation.align_series` or a query step). NaN/inf mark missing
steps: they keep their place in time but take no part in any sum. Timestamps, when
given, only convert the period from steps into milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vigil.analytics.stats import as_timestamps, as_values, json_float, json_floats
from vigil.core.errors import InvalidInput, Problem
from vigil.core.types import Float64Array, Int64Array

MIN_CYCLES = 2  # a period is only believed when the data hold this many repetitions
# White-noise autocorrelation is ~N(0, 1/n); a peak must clear NOISE_Z of those standard
# errors as well as min_strength, so short series need stronger evidence.
NOISE_Z = 3.0
_REFINE_CANDIDATES = 201  # periods tried around the autocorrelation peak
_REFINE_CHUNK_ELEMENTS = 1 << 21  # bounds the (candidates x samples) matrices
GAUSS_MAD = 1.4826  # sigma / MAD for a normal distribution


def autocorrelation(values: npt.ArrayLike, max_lag: int | None = None) -> Float64Array:
    """Sample autocorrelation at lags 0..max_lag (default n - 1), via FFT in O(n log n).

    Without missing values this is the usual biased estimator (as
    ``statsmodels.tsa.stattools.acf``): the lag-k autocovariance summed over the n - k
    pairs, divided by n, over the variance. With missing values each lag averages over
    the pairs where both ends are present, then is scaled by (n - k) / n as if none were
    missing. Lags without such pairs, and every lag of a constant series, are NaN.

    >>> autocorrelation([1.0, 2.0, 3.0, 4.0], max_lag=2).round(3).tolist()
    [1.0, 0.25, -0.3]
    """
    x = as_values(values)
    n = len(x)
    max_lag = n - 1 if max_lag is None else max_lag
    if not 0 <= max_lag < max(n, 1):
        raise InvalidInput(Problem(f"must be within [0, {max(n - 1, 0)}]", field="max_lag"))
    present = np.isfinite(x)
    if not present.any():
        return np.full(max_lag + 1, math.nan)
    centred = np.where(present, x - x[present].mean(), 0.0)
    size = 1 << (2 * n - 1).bit_length()  # zero padding: a linear, not circular, correlation

    def lagged_sums(a: Float64Array) -> Float64Array:
        spectrum = np.fft.rfft(a, size)
        return np.fft.irfft(spectrum * np.conj(spectrum), size)[: max_lag + 1]

    cov = lagged_sums(centred)
    pairs = np.rint(lagged_sums(present.astype(np.float64)))
    if cov[0] <= 0.0 or np.ptp(x[present]) == 0.0:
        return np.full(max_lag + 1, math.nan)
    lags = np.arange(max_lag + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_cov = np.where(pairs > 0, cov / pairs, math.nan)
    return np.asarray(mean_cov / mean_cov[0] * (n - lags) / n, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Seasonality:
    detected: bool
    period: int | None  # in steps; None when not detected
    period_ms: int | None  # period x median step, when timestamps were given
    strength: float  # autocorrelation at the period (about the seasonal share of variance)
    threshold: float  # the autocorrelation a peak had to reach: max(min_strength, 3/sqrt(n))
    n: int  # finite values used
    acf: Float64Array  # autocorrelation of the detrended values at lags 0..max_period

    def as_dict(self) -> dict[str, object]:
        return {"detected": self.detected, "period": self.period, "period_ms": self.period_ms,
                "strength": json_float(self.strength), "threshold": self.threshold,
                "n": self.n, "acf": json_floats(self.acf)}


def seasonality(values: npt.ArrayLike, timestamps_ms: npt.ArrayLike | None = None, *,
                min_period: int = 2, max_period: int | None = None,
                min_strength: float = 0.3) -> Seasonality:
    """The dominant period of the (linearly detrended) values, if there is one.

    Candidates are the peaks of the autocorrelation between ``min_period`` and
    ``max_period`` steps (at most n / 2, so the data hold two cycles) that stand out
    from their surroundings by at least ``min_strength`` (a smooth, slowly decaying
    autocorrelation is memory, not a season). The shortest of the highest candidates is
    refined by fitting a sinusoid near it and wins if the autocorrelation there reaches
    ``max(min_strength, 3 / sqrt(n))``; otherwise "not detected" with its strength.
    The period is a whole number of steps, within about a step for long noisy periods.

    >>> wave = [math.sin(2 * math.pi * t / 12) for t in range(96)]
    >>> s = seasonality(wave)
    >>> s.detected, s.period, round(s.strength, 2)
    (True, 12, 0.87)
    """
    raw = as_values(values)
    n_raw = len(raw)
    ts = None if timestamps_ms is None else as_timestamps(timestamps_ms, n_raw, strict=True)
    if min_period < 2:
        raise InvalidInput(Problem("must be at least 2", field="min_period"))
    if not 0.0 < min_strength <= 1.0:
        raise InvalidInput(Problem("must be in (0, 1]", field="min_strength"))
    top = n_raw // MIN_CYCLES if max_period is None else max_period
    if max_period is not None and not min_period <= max_period:
        raise InvalidInput(Problem("must be at least min_period", field="max_period"))
    present = np.isfinite(raw)
    n = int(present.sum())
    threshold = max(min_strength, NOISE_Z / math.sqrt(max(n, 1)))
    top = min(top, n_raw // MIN_CYCLES)
    if top < min_period or n < 2 * min_period:
        return Seasonality(False, None, None, math.nan, threshold, n, np.empty(0))
    detrended = _detrended(raw, present)
    # One lag past max_period, so a peak at max_period has a right-hand neighbour.
    acf = autocorrelation(detrended, max_lag=min(top + 1, n_raw - 1))
    # The period comes from the one detector (gaps filled linearly, as it needs a full
    # grid); strength and threshold are judged on the gap-aware ACF above.
    idx = np.flatnonzero(present)
    filled = np.interp(np.arange(n_raw), idx, raw[present])
    found = period_search(np.ascontiguousarray(filled[None, :]), min_period=min_period,
                          max_period=top, min_cycles=MIN_CYCLES, min_acf=threshold,
                          min_rise=min_strength, slack=2.0 / math.sqrt(n),
                          size_correction=False, refine="sinusoid")
    best = int(found.period[0])
    if best == 0:
        return Seasonality(False, None, None, math.nan, threshold, n, acf)
    strength = float(acf[best])
    if strength < threshold:
        return Seasonality(False, None, None, strength, threshold, n, acf)
    period_ms = None
    if ts is not None:
        period_ms = round(best * float(np.median(np.diff(ts))))
    return Seasonality(True, best, period_ms, strength, threshold, n, acf)



def deseasonalised(values: npt.ArrayLike) -> Float64Array:
    """The values minus their seasonal profile (the mean of each phase of the period that
    :func:`seasonality` detects, centred), so what is left is trend, noise and whatever
    else moves them; the values unchanged when no period is detected. NaN stays NaN.

    >>> wave = [10 * math.sin(2 * math.pi * t / 12) + (t >= 60) for t in range(96)]
    >>> residual = deseasonalised(wave)
    >>> round(float(np.ptp(residual[:60])), 6), round(float(residual[80] - residual[20]), 3)
    (0.0, 1.0)
    """
    x = as_values(values).copy()
    found = seasonality(x)
    if not found.detected or found.period is None:
        return x
    phase = np.arange(len(x)) % found.period
    ok = np.isfinite(x)
    sums = np.bincount(phase[ok], weights=x[ok], minlength=found.period)
    counts = np.bincount(phase[ok], minlength=found.period)
    profile = np.where(counts > 0, sums / np.maximum(counts, 1), math.nan)
    profile = np.nan_to_num(profile - np.nanmean(profile))
    return np.asarray(x - profile[phase], np.float64)

@dataclass(frozen=True, slots=True)
class PeriodSearch:
    """What :func:`period_search` found in each row (the same row order)."""

    period: Int64Array  # in steps; 0 where no period was found
    misfit: Float64Array  # mean |y_t - y_(t-period)| at the period; inf where none
    y: Float64Array  # the prepared rows (mean, trend and spikes removed), for misfit_at
    acf: Float64Array  # autocorrelation at the period; NaN where none


def period_search(rows: Float64Array, *, min_period: int, max_period: int,
                  min_cycles: int = 2, min_acf: float = 0.4, min_rise: float = 0.3,
                  slack: float = 0.0, size_correction: bool = True,
                  refine: str = "misfit") -> PeriodSearch:
    """Vigil's one period detector: the dominant period of each NaN-free row of a
    C-contiguous (rows x width) array, row by row.

    A row's result depends only on that row, bit for bit, however many rows are passed
    together (sorts, pairwise sums along the last axis and FFTs are per row in numpy),
    so one series, many series and a precomputed batch agree exactly.

    A period repeats at least ``min_cycles`` times in the row: after removing the mean
    and a linear trend and winsorising spikes (6 x 1.4826 MAD), its autocorrelation peaks
    at >= ``min_acf`` and rises >= ``min_rise`` above the lowest point before it (a
    slowly decaying autocorrelation is memory, not a season). With ``size_correction``
    the autocorrelation is scaled by width / (width - lag) for the shrinking number of
    pairs; without, it is the biased estimator, which favours short lags. Of the peaks
    within 90 % of the best, or within ``slack`` of it if that is wider, the shortest lag
    wins (a multiple of the period does not; short noisy rows want a slack of about
    2 / sqrt(width), the sampling error of the autocorrelation). The peak of a long
    period is broad, so the lag is then refined near it: ``refine="misfit"`` takes the
    smallest mean |y_t - y_(t-lag)| within +-1/12 (cheap, vectorised; what the streaming
    detectors use); ``refine="sinusoid"`` the best least-squares sinusoid within +-1/8
    (the maximum-likelihood frequency in noise: a noisy 288-step period to about a step,
    at the cost of ~200 fits per row).

    >>> t = np.arange(600.0)
    >>> period_search(np.sin(2 * np.pi * t / 50)[None, :], min_period=4,
    ...               max_period=300).period.tolist()
    [50]
    """
    if refine not in ("misfit", "sinusoid"):
        raise AssertionError(f"BUG: refine={refine!r}")
    with np.errstate(all="ignore"):  # huge magnitudes overflow to inf; that is all
        return _period_search(rows, max_period, min_period, min_cycles, min_acf, min_rise,
                              slack, size_correction, refine)


def _period_search(win: Float64Array, max_period: int, min_period: int, min_cycles: int,
                   min_acf: float, min_rise: float, slack: float, size_correction: bool,
                   refine: str) -> PeriodSearch:
    m, c = win.shape
    hi = min(max_period, c // min_cycles)
    found = np.zeros(m, np.int64)
    misfit = np.full(m, np.inf)
    strength = np.full(m, math.nan)
    if hi < min_period + 1 or m == 0:
        return PeriodSearch(found, misfit, win, strength)
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
    acf = np.where(var > 0, acov / var, 0.0)
    if size_correction:
        acf = acf * (c / (c - np.arange(hi + 2)))
    k = np.arange(min_period, hi + 1)
    a = acf[:, k]
    dip = np.minimum.accumulate(acf[:, 1 : hi + 1], axis=1)[:, k - 1]
    peak = (a >= acf[:, k - 1]) & (a >= acf[:, k + 1]) & (a >= min_acf) & (a - dip >= min_rise)
    best = np.where(peak, a, -np.inf).max(axis=1, keepdims=True)
    floor = 0.9 * best if slack <= 0.0 else np.minimum(0.9 * best, best - slack)
    pick = peak & (a >= floor)
    coarse = np.where(pick.any(axis=1), k[np.argmax(pick, axis=1)], 0)
    rows = np.flatnonzero(coarse > 0)
    if len(rows):
        yr, cr = y[rows], coarse[rows]
        if refine == "sinusoid":
            cr = np.array([_refine_period(yr[i], int(cr[i]), min_period, hi)
                           for i in range(len(rows))], np.int64)
            found_r, misfit_r = cr, misfit_at(yr, cr)
        else:
            found_r, misfit_r = cr.copy(), np.full(len(rows), np.inf)
            for j in range(-(hi // 12), hi // 12 + 1):
                lag = cr + j
                ok = (lag >= min_period) & (lag <= hi) & (abs(j) <= cr // 12)
                d = np.where(ok, misfit_at(yr, np.clip(lag, 1, hi)), np.inf)
                better = d < misfit_r
                misfit_r = np.where(better, d, misfit_r)
                found_r = np.where(better, lag, found_r)
        found[rows], misfit[rows] = found_r, misfit_r
        strength[rows] = acf[rows, found_r]
    return PeriodSearch(found, misfit, y, strength)


def misfit_at(y: Float64Array, lag: Int64Array) -> Float64Array:
    """Mean |y_t - y_{t-lag}| of each row at its own lag (>= 1)."""
    c = y.shape[1]
    back = np.arange(c)[None, :] - lag[:, None]
    pair = back >= 0
    d = np.abs(y - np.take_along_axis(y, np.maximum(back, 0), axis=1))
    mean: Float64Array = np.where(pair, d, 0.0).sum(axis=1) / np.maximum(pair.sum(axis=1), 1)
    return mean


def _refine_period(detrended: Float64Array, period: int, min_period: int, top: int) -> int:
    """The period near ``period`` (± 1/8) at which one sinusoid fits the (mean-zero,
    NaN where missing) ``detrended`` values best.

    An autocorrelation peak of a long period is flat on top, so noise moves it by several
    steps (288 -> 281 on a week of 5-minute data). Least squares of sin and cos at each
    candidate frequency, over the present samples only, pins it to about a step; it is
    the maximum-likelihood frequency of a sinusoid in noise and needs no gap filling.
    """
    half_width = max(1.0, period / 8.0)
    candidates = np.linspace(max(min_period, period - half_width),
                             min(top, period + half_width), _REFINE_CANDIDATES)
    present = np.isfinite(detrended)
    t = np.flatnonzero(present).astype(np.float64)
    y = detrended[present]
    explained = np.empty(len(candidates))
    rows = max(1, _REFINE_CHUNK_ELEMENTS // max(len(t), 1))
    for lo in range(0, len(candidates), rows):
        phase = (2.0 * np.pi / candidates[lo : lo + rows, None]) * t
        cos, sin = np.cos(phase), np.sin(phase)
        cc, ss, cs = (cos * cos).sum(1), (sin * sin).sum(1), (cos * sin).sum(1)
        yc, ys = cos @ y, sin @ y
        # Sum of squares explained by the 2-regressor fit: b' G^-1 b, G the Gram matrix.
        det = np.maximum(cc * ss - cs * cs, 1e-300)
        explained[lo : lo + rows] = (ss * yc * yc - 2.0 * cs * yc * ys + cc * ys * ys) / det
    return round(float(candidates[int(np.argmax(explained))]))


def _detrended(raw: Float64Array, present: npt.NDArray[np.bool_]) -> Float64Array:
    """Values minus their least-squares line: a trend would make every lag look alike."""
    t = np.flatnonzero(present).astype(np.float64)
    y = raw[present]
    if len(y) < 2:
        return raw
    slope, intercept = np.polyfit(t, y, 1)
    out = raw - (slope * np.arange(len(raw)) + intercept)
    return np.where(present, out, math.nan)
