"""Forecasts with prediction intervals; seasonal naive is the baseline every model must beat.

Arrays in, a frozen :class:`Forecast` out; no I/O. Time is int64 epoch milliseconds.

Contract of :func:`forecast`:

* ``values`` may hold NaN gaps: interior gaps are linearly interpolated, leading and trailing
  NaNs dropped (the forecast starts after the last finite sample). ``timestamps_ms``, when
  given, must be strictly increasing; samples are placed on a regular grid of the median step
  and missing grid points interpolated, so the future points are ``last + k * step_ms``.
* Minimum lengths (finite points): any method 3 (``MIN_POINTS``); ``seasonal_naive``
  ``period + 2``; ``ets`` 10, or ``max(2 * period, 10 + 2 * (period // 2))`` when seasonal;
  ``arima`` 20. An explicit method below its minimum raises ``InvalidInput``; ``auto``
  falls back to seasonal naive, then naive. Without a period (none given or found)
  seasonal naive is naive, and ETS and ARIMA are not seasonal.
* ``auto`` holds back a tail of ``v = min(max(horizon, period), n // 3)`` points, fits
  every feasible candidate (naive, seasonal naive, ETS) on the rest and keeps the lowest MASE
  on that tail, so it is never worse than seasonal naive there; then refits on everything.
  When the data allows ETS on ``n - 2v`` points the score is the mean over the last two
  tails of ``v`` (fewer lucky picks).
* Models are fitted on at most the last ``max(FIT_WINDOW, 4 * period)`` points.
* Intervals are Gaussian: ``forecast ± z * sd_h`` with the model's h-step standard deviation.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from statistics import NormalDist
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from vigil.analytics.seasonality import period_search
from vigil.core.errors import InvalidInput, Problem
from vigil.core.types import Float64Array, Int64Array

Method = Literal["auto", "ets", "arima", "naive", "seasonal_naive"]
METHODS: tuple[str, ...] = get_args(Method)
MIN_POINTS = 3
MIN_ARIMA_POINTS = 20
FIT_WINDOW = 5000
MAX_HORIZON = 100_000
MAX_PATH_POINTS = 20_000_000  # simulated values per call (160 MB)
_CALENDAR_MS = (3_600_000, 86_400_000, 604_800_000)  # periods a detected one snaps to


@dataclass(frozen=True, slots=True, eq=False)
class Forecast:
    """Future points ``values`` with bounds ``lower``/``upper`` at ``interval`` coverage.

    ``method`` is the model that made the forecast (``auto`` reports its choice); ``t_ms``
    is None when no timestamps were given. ``mase_in_sample`` is the one-step in-sample MAE
    over the in-sample seasonal-naive MAE; ``validation_mase`` holds, for ``auto``, each
    candidate's MASE on the held-back tail. ``paths`` holds ``n_paths`` simulated futures
    (shape ``(n_paths, horizon)``) when asked for.
    """

    method: str
    period: int | None
    interval: float
    t_ms: Int64Array | None
    values: Float64Array
    lower: Float64Array
    upper: Float64Array
    step_ms: int | None
    n_used: int
    aic: float | None
    mase_in_sample: float | None
    validation_mase: tuple[tuple[str, float], ...] = ()
    paths: Float64Array | None = None

    def as_dict(self) -> dict[str, object]:
        """Every field but ``paths``, arrays as lists (JSON-ready)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "paths"}
        out["validation_mase"] = dict(self.validation_mase)
        return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in out.items()}


@dataclass(frozen=True, slots=True, eq=False)
class _Fit:
    """One fitted linear Gaussian model. The h-step forecast error is
    ``sum_{j<h} psi_j * e_{h-j}`` with iid ``e ~ N(0, sigma^2)``, so the h-step sd is
    ``sigma * sqrt(cumsum(psi^2))`` and paths are ``mean + e (*) psi`` (a convolution)."""

    method: str
    mean: Float64Array
    psi: Float64Array  # psi_0 = 1
    sigma: float
    fitted: Float64Array  # one-step in-sample predictions, NaN where there is none
    aic: float | None = None
    spec: tuple[bool, bool] = (False, False)  # ETS (trend, damped)

    @property
    def sd(self) -> Float64Array:
        return self.sigma * np.sqrt(np.cumsum(self.psi**2))

    def sample(self, n_paths: int, rng: np.random.Generator) -> Float64Array:
        """``(n_paths, h)`` simulated futures, convolved by FFT in chunks of paths."""
        h = len(self.mean)
        nfft = 1 << (2 * h - 1).bit_length()
        kernel = np.fft.rfft(self.psi, nfft)
        per = max(1, (1 << 21) // nfft)  # bound the FFT buffers to ~32 MB
        chunks = []
        for lo in range(0, n_paths, per):
            e = rng.normal(0.0, self.sigma, (min(per, n_paths - lo), h))
            chunks.append(np.fft.irfft(np.fft.rfft(e, nfft) * kernel, nfft)[:, :h])
        return self.mean + np.concatenate(chunks)


def seasonal_naive(history: npt.ArrayLike, horizon: int, period: int | None) -> Float64Array:
    """Repeat the last season: step ``h`` gets ``history[n - m + (h - 1) % m]``.

    >>> seasonal_naive([1.0, 2.0, 3.0, 4.0], 3, 2).tolist()
    [3.0, 4.0, 3.0]
    """
    y = np.asarray(history, np.float64)
    m = period or 1
    if len(y) < m:
        raise InvalidInput(Problem(f"need at least {m} points for period {m}", field="values"))
    return y[len(y) - m + np.arange(horizon) % m]


def mase(actual: npt.ArrayLike, predicted: npt.ArrayLike, history: npt.ArrayLike,
         period: int | None) -> float:
    """Mean absolute error scaled by the in-sample seasonal-naive MAE of ``history``.

    Below 1 beats the one-step seasonal naive forecast; ``inf`` when the scale is 0 and the
    error is not.

    >>> mase([5.0, 6.0], [5.0, 5.0], [1.0, 2.0, 3.0, 4.0], 1)
    0.5
    """
    a, p = np.asarray(actual, np.float64), np.asarray(predicted, np.float64)
    h = np.asarray(history, np.float64)
    m = period or 1
    if len(h) <= m:
        raise InvalidInput(Problem(f"need more than {m} history points", field="history"))
    scale = float(np.mean(np.abs(h[m:] - h[:-m])))
    err = float(np.mean(np.abs(a - p)))
    if scale == 0.0:
        return 0.0 if err == 0.0 else math.inf
    return err / scale


def detect_period(values: npt.ArrayLike, *, step_ms: int | None = None,
                  max_period: int | None = None, min_acf: float = 0.3) -> int | None:
    """The seasonal period in points, or None: the one detector,
    :func:`vigil.analytics.seasonality.period_search`, on the gap-filled series, asking
    for three cycles in the data, an autocorrelation peak of at least ``min_acf`` that
    rises 0.3 above the dip before it, and the sinusoid refinement. Given the sampling
    step, a period within 3 % of an hour, a day or a week snaps to it (edge effects move
    the peak by a lag or two).

    >>> detect_period(np.sin(2 * np.pi * np.arange(120) / 12))
    12
    """
    y = _interpolate(np.asarray(values, np.float64))
    n = len(y)
    hi = min(n // 3, max_period or n)
    if hi < 3:
        return None
    if float(np.ptp(y)) <= 1e-12 * max(1.0, float(np.max(np.abs(y)))):
        return None
    found = int(period_search(np.ascontiguousarray(y[None, :]), min_period=2, max_period=hi,
                              min_cycles=3, min_acf=min_acf, min_rise=0.3,
                              slack=2.0 / math.sqrt(n),
                              refine="sinusoid").period[0])
    if found == 0:
        return None
    calendar = [c // step_ms for c in _CALENDAR_MS if step_ms and c % step_ms == 0]
    return next((c for c in calendar if abs(found - c) <= 0.03 * c), found)


def forecast(values: npt.ArrayLike, timestamps_ms: npt.ArrayLike | None = None, *,
             horizon: int, method: str = "auto", period: int | None = None,
             interval: float = 0.95, n_paths: int = 0, seed: int = 0) -> Forecast:
    """Forecast ``horizon`` points after the last sample (see the module docstring).

    ``period`` (points; 1 = none) is detected when None. ``n_paths`` > 0 adds that many
    simulated future paths (seeded by ``seed``). Raises ``InvalidInput`` on bad arguments
    or a series too short for ``method``.
    """
    if method not in METHODS:
        raise InvalidInput(Problem(f"unknown method {method!r}; use one of "
                                   f"{', '.join(METHODS)}", field="method"))
    if not 1 <= horizon <= MAX_HORIZON:
        raise InvalidInput(Problem(f"horizon must be 1..{MAX_HORIZON}", field="horizon"))
    if not 0.0 < interval < 1.0:
        raise InvalidInput(Problem("interval must be in (0, 1), e.g. 0.95", field="interval"))
    if period is not None and period < 1:
        raise InvalidInput(Problem("period must be >= 1 point", field="period"))
    if n_paths < 0 or n_paths * horizon > MAX_PATH_POINTS:
        raise InvalidInput(Problem(f"n_paths * horizon must be at most {MAX_PATH_POINTS:,}",
                                   field="n_paths"))
    y, last_ms, step_ms = _regularize(values, timestamps_ms)
    m = detect_period(y[-20_000:], step_ms=step_ms) if period is None else period
    m = m if m and m > 1 else None
    y = y[-max(FIT_WINDOW, 4 * (m or 1)):]
    validation: tuple[tuple[str, float], ...] = ()
    if float(np.ptp(y)) == 0.0:
        flat = np.full(horizon, y[-1])
        fit = _Fit("naive" if method == "auto" else method, flat, np.ones(horizon), 0.0,
                   np.full(len(y), y[-1]))
    elif method == "auto":
        fit, validation = _auto(y, horizon, m)
    else:
        try:
            fit = _fit(method, y, horizon, m, None)
        except (ValueError, np.linalg.LinAlgError) as e:  # optimiser gave up
            raise InvalidInput(Problem(f"{method} could not be fitted to this series ({e}); "
                                       "try method 'auto'", field="method")) from e
    z = NormalDist().inv_cdf(0.5 + interval / 2)
    t_ms = None if last_ms is None or step_ms is None else (
        last_ms + step_ms * np.arange(1, horizon + 1, dtype=np.int64))
    ok = np.isfinite(fit.fitted)
    insample = float(np.mean(np.abs(y[ok] - fit.fitted[ok]))) if np.any(ok) else math.nan
    scale = _snaive_mae(y, m)
    return Forecast(
        method=fit.method, period=m, interval=interval, t_ms=t_ms, values=fit.mean,
        lower=fit.mean - z * fit.sd, upper=fit.mean + z * fit.sd, step_ms=step_ms,
        n_used=len(y), aic=fit.aic,
        mase_in_sample=None if math.isnan(insample) or scale == 0.0 else insample / scale,
        validation_mase=validation,
        paths=fit.sample(n_paths, np.random.default_rng(seed)) if n_paths > 0 else None,
    )


def _regularize(values: npt.ArrayLike, timestamps_ms: npt.ArrayLike | None,
                ) -> tuple[Float64Array, int | None, int | None]:
    """Finite, evenly spaced values; the last finite timestamp and the step (ms)."""
    v = np.asarray(values, np.float64).ravel()
    if np.any(np.isinf(v)):
        raise InvalidInput(Problem("values must be finite or NaN (a gap)", field="values"))
    last_ms = step_ms = None
    if timestamps_ms is not None:
        t = np.asarray(timestamps_ms, np.int64).ravel()
        if len(t) != len(v):
            raise InvalidInput(Problem(f"{len(t)} timestamps for {len(v)} values",
                                       field="timestamps_ms"))
        keep = np.isfinite(v)
        t, v = t[keep], v[keep]
        if len(t) >= 2:
            d = np.diff(t)
            if np.any(d <= 0):
                i = int(np.argmax(d <= 0)) + 1
                raise InvalidInput(Problem(f"timestamps must be strictly increasing "
                                           f"(sample {i})", field="timestamps_ms"))
            step_ms = int(np.median(d))
            slot = np.rint((t - t[0]) / step_ms).astype(np.int64)
            if slot[-1] > 10 * len(t) + 10:
                raise InvalidInput(Problem("timestamps too irregular: gaps exceed 10x the "
                                           "points", field="timestamps_ms"))
            total = np.bincount(slot, weights=v)
            count = np.bincount(slot)
            v = np.divide(total, count, out=np.full(len(total), np.nan), where=count > 0)
            last_ms = int(t[0] + slot[-1] * step_ms)
    y = _interpolate(v)
    if len(y) < MIN_POINTS:
        raise InvalidInput(Problem(f"need at least {MIN_POINTS} finite points, got {len(y)}",
                                   field="values"))
    return y, last_ms, step_ms


def _interpolate(v: Float64Array) -> Float64Array:
    ok = np.flatnonzero(np.isfinite(v))
    if len(ok) == 0:
        return np.empty(0, np.float64)
    v = v[ok[0]: ok[-1] + 1]
    bad = ~np.isfinite(v)
    if np.any(bad):
        idx = np.arange(len(v))
        v = v.copy()
        v[bad] = np.interp(idx[bad], idx[~bad], v[~bad])
    return v


def _snaive_mae(y: Float64Array, m: int | None) -> float:
    k = m or 1
    return float(np.mean(np.abs(y[k:] - y[:-k]))) if len(y) > k else math.nan


def _auto(y: Float64Array, h: int, m: int | None) -> tuple[_Fit, tuple[tuple[str, float], ...]]:
    """The candidate with the lowest mean MASE over two held-back tails of ``v`` points (one
    when the data is too short for ETS on both), refitted on all of ``y``."""
    n = len(y)
    v = min(max(h, m or 1), n // 3)
    if v < 1 or n - v < MIN_POINTS:
        return _fit("naive", y, h, None, None), ()
    ends = [n - v, n - 2 * v] if n - 2 * v >= _ets_min(m) else [n - v]  # latest first
    names = ["seasonal_naive"] if m and ends[-1] >= m + 2 else []
    names += ["naive", "ets"] if ends[-1] >= _ets_min(m) else ["naive"]
    scores: dict[str, float] = {}
    spec: tuple[bool, bool] | None = None  # ETS trend form, chosen on the latest tail
    for name in names:
        total = 0.0
        try:
            for end in ends:
                f = _fit(name, y[:end], v, m, spec)
                spec = f.spec if name == "ets" else spec
                total += mase(y[end: end + v], f.mean, y[:end], m)
        except (InvalidInput, ValueError, np.linalg.LinAlgError):
            continue  # ETS can fail on degenerate data; the baselines remain
        if math.isfinite(total) or name != "ets":
            scores[name] = total / len(ends)
    best = min(scores, key=lambda k: scores[k])  # ties go to the first: the baseline
    return _fit(best, y, h, m, spec if best == "ets" else None), tuple(sorted(scores.items()))


def _fit(method: str, y: Float64Array, h: int, m: int | None,
         spec: tuple[bool, bool] | None) -> _Fit:
    if method == "naive" or (method == "seasonal_naive" and m is None):
        return _fit_snaive(y, h, None)
    if method == "seasonal_naive" and m is not None:
        if len(y) < m + 2:
            raise InvalidInput(Problem(f"seasonal_naive needs {m + 2} points for period {m}, "
                                       f"got {len(y)}", field="values"))
        return _fit_snaive(y, h, m)
    need = _ets_min(m) if method == "ets" else MIN_ARIMA_POINTS
    if len(y) < need:
        what = f" with period {m}" if m else ""
        raise InvalidInput(Problem(f"{method} needs {need} points{what}, got {len(y)}",
                                   field="values"))
    mu, s = float(np.mean(y)), float(np.std(y))
    s = s if s > 0 else 1.0
    with _quiet():
        f = (_fit_ets if method == "ets" else _fit_arima)((y - mu) / s, h, m, spec)
    return _Fit(f.method, f.mean * s + mu, f.psi, f.sigma * s, f.fitted * s + mu,
                None if f.aic is None else f.aic + 2 * len(y) * math.log(s), f.spec)


def _ets_min(m: int | None) -> int:
    return max(2 * m, 10 + 2 * (m // 2)) if m else 10


def _fit_snaive(y: Float64Array, h: int, m: int | None) -> _Fit:
    """Seasonal naive (naive when ``m`` is None): a random walk per phase of the season, so
    ``psi_j = 1`` where ``j % m == 0``."""
    k = m or 1
    sigma = float(np.sqrt(np.mean((y[k:] - y[:-k]) ** 2)))
    psi = (np.arange(h) % k == 0).astype(np.float64)
    fitted = np.concatenate([np.full(k, np.nan), y[:-k]])
    return _Fit("seasonal_naive" if m else "naive", seasonal_naive(y, h, k), psi, sigma, fitted)


def _fit_ets(z: Float64Array, h: int, m: int | None, spec: tuple[bool, bool] | None) -> _Fit:
    """Additive-error ETS, trend none/additive/damped chosen by AICc unless ``spec`` given."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    best = None
    for trend, damped in [spec] if spec else [(False, False), (True, False), (True, True)]:
        res = ETSModel(z, error="add", trend="add" if trend else None, damped_trend=damped,
                       seasonal="add" if m else None, seasonal_periods=m,
                       initialization_method="heuristic").fit(disp=False)
        if np.isfinite(res.aicc) and (best is None or res.aicc < best[0].aicc):
            best = (res, (trend, damped))
    if best is None:
        raise ValueError("ETS fit failed")
    res, (trend, damped) = best
    # Hyndman et al. (2008) ch. 6: psi_j = alpha + beta * (phi + ... + phi^j) + gamma *
    # [j % m == 0]; statsmodels' own get_prediction breaks on ndarray input, and its
    # simulate loops in Python (35 s for 2000 paths of 2016 steps).
    alpha = float(res.smoothing_level)
    beta = float(res.smoothing_trend) if trend else 0.0
    phi = float(res.damping_trend) if damped else 1.0
    gamma = float(res.smoothing_seasonal) if m else 0.0
    j = np.arange(1, h)
    c = alpha + beta * np.cumsum(phi**j) + (gamma * (j % m == 0) if m else 0.0)
    # sigma^2 = SSE / (n - k) counting initial states as parameters, as R's forecast::ets
    # does: SSE / n under-covers by ~3 points at 95 % on 8 seasons of hourly data.
    k = len(res.params) + 1 + trend + (m or 0)
    sigma = math.sqrt(float(res.mse) * len(z) / max(len(z) - k, 1))
    return _Fit("ets", np.asarray(res.forecast(h), np.float64), np.concatenate([[1.0], c]),
                sigma, np.asarray(res.fittedvalues, np.float64), float(res.aic), (trend, damped))


def _fit_arima(z: Float64Array, h: int, m: int | None, _spec: object) -> _Fit:
    """ARIMA(p,1,q) with drift and Fourier terms for the period, orders (0,1,1), (1,1,1) and
    (2,1,2) fitted, the lowest AIC kept."""
    from statsmodels.tsa.arima.model import ARIMA
    from statsmodels.tsa.arima_process import arma2ma

    x, xf = _fourier(len(z), h, m)
    best = None
    for order in ((0, 1, 1), (1, 1, 1), (2, 1, 2)):
        # Innovations MLE for the ARMA part inside GLS for drift and Fourier terms: nearly
        # the Kalman-filter MLE's fit, without its Lyapunov solve per likelihood call, which
        # OpenBLAS threads make 10-50x slower on a busy machine.
        res = ARIMA(z, exog=x, order=order, trend="t").fit(method="innovations_mle")
        if np.isfinite(res.aic) and (best is None or res.aic < best.aic):
            best = res
    if best is None:
        raise ValueError("ARIMA fit failed")
    fitted = np.asarray(best.fittedvalues, np.float64).copy()
    fitted[0] = np.nan  # the diffuse first prediction is not a forecast
    ar = np.convolve(best.polynomial_reduced_ar, [1.0, -1.0])  # the d = 1 difference
    psi = np.asarray(arma2ma(ar, best.polynomial_reduced_ma, lags=h), np.float64)
    sigma2 = float(best.params[best.model.param_names.index("sigma2")])
    return _Fit("arima", np.asarray(best.get_forecast(h, exog=xf).predicted_mean, np.float64),
                psi, math.sqrt(sigma2), fitted, float(best.aic))


def _fourier(n: int, h: int, m: int | None) -> tuple[Float64Array | None, Float64Array | None]:
    """Up to 3 sine/cosine pairs of period ``m`` for the fit and the future (sin(pi t) = 0
    is left out)."""
    if not m:
        return None, None
    w = 2 * np.pi * np.arange(n + h, dtype=np.float64) / m
    x = np.column_stack([f(k * w) for k in range(1, min(3, m // 2) + 1)
                         for f in (np.sin, np.cos) if f is np.cos or 2 * k != m])
    return x[:n], x[n:]


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence statsmodels' fit chatter (convergence, start parameters, overflow in trial
    steps) for the fits made here only; callers' warning filters are untouched."""
    from statsmodels.tools.sm_exceptions import ModelWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ModelWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="statsmodels")
        yield
