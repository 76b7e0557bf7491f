"""Capacity planning: when a series will cross a threshold, and how likely that is.

Arrays in, a frozen :class:`Capacity` out; no I/O. Built on :func:`forecast`: the expected
crossing is where the point forecast first reaches the threshold, the earliest and latest
where the interval bounds do (the upper bound first for ``above``, the lower for ``below``),
and the probability of crossing within the horizon is the share of simulated future paths
that reach it at any step (a first-passage probability, not a per-step one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from vigil.analytics.forecast import Forecast, forecast
from vigil.core.errors import InvalidInput, Problem
from vigil.core.types import Float64Array

Direction = Literal["above", "below"]
MAX_PATHS = 100_000
DEFAULT_MAX_HORIZON = 10_000  # the default horizon: the history's length, at most this


@dataclass(frozen=True, slots=True, eq=False)
class Capacity:
    """When ``forecast`` crosses ``threshold`` (``direction`` above or below it).

    Steps count sampling steps after the last observation (1 = the next point); the
    ``*_t_ms`` fields are those steps as epoch ms when timestamps were given. A field is None
    when its curve does not cross within ``horizon``. ``already_crossed`` means the last
    observation is past the threshold: probability 1, all steps 0.
    """

    threshold: float
    direction: str
    horizon: int
    interval: float
    probability: float
    expected_step: int | None
    earliest_step: int | None
    latest_step: int | None
    expected_t_ms: int | None
    earliest_t_ms: int | None
    latest_t_ms: int | None
    already_crossed: bool
    forecast: Forecast

    def as_dict(self) -> dict[str, object]:
        return {
            "threshold": self.threshold, "direction": self.direction, "horizon": self.horizon,
            "interval": self.interval, "probability": self.probability,
            "already_crossed": self.already_crossed,
            "expected_step": self.expected_step, "earliest_step": self.earliest_step,
            "latest_step": self.latest_step, "expected_t_ms": self.expected_t_ms,
            "earliest_t_ms": self.earliest_t_ms, "latest_t_ms": self.latest_t_ms,
            "method": self.forecast.method, "period": self.forecast.period,
        }


def time_to_threshold(values: npt.ArrayLike, timestamps_ms: npt.ArrayLike | None,
                      threshold: float, *, direction: Direction = "above",
                      horizon: int | None = None, interval: float = 0.95,
                      method: str = "auto", period: int | None = None, n_paths: int = 2000,
                      seed: int = 0) -> Capacity:
    """Forecast ``horizon`` steps (default: as many as the history has points, 1 to
    ``DEFAULT_MAX_HORIZON``) and find when ``threshold`` is reached. ``method``, ``period``
    and ``interval`` are as for :func:`forecast`; ``n_paths`` simulated paths (seeded by
    ``seed``, so results are reproducible) give the probability. Raises ``InvalidInput`` on
    bad arguments.

    >>> c = time_to_threshold([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0],
    ...                       None, 15.0, horizon=10, method="naive")
    >>> c.expected_step is None, 0.0 < c.probability < 1.0
    (True, True)
    """
    if direction not in ("above", "below"):
        raise InvalidInput(Problem("direction must be 'above' or 'below'", field="direction"))
    if not np.isfinite(threshold):
        raise InvalidInput(Problem("threshold must be a finite number", field="threshold"))
    if not 1 <= n_paths <= MAX_PATHS:
        raise InvalidInput(Problem(f"n_paths must be 1..{MAX_PATHS}", field="n_paths"))
    v = np.asarray(values, np.float64)
    steps = min(max(1, int(np.sum(np.isfinite(v)))), DEFAULT_MAX_HORIZON) if horizon is None \
        else horizon
    fc = forecast(v, timestamps_ms, horizon=steps, method=method, period=period,
                  interval=interval, n_paths=n_paths, seed=seed)
    sign = 1.0 if direction == "above" else -1.0
    finite = v[np.isfinite(v)]
    if sign * (finite[-1] - threshold) >= 0:
        last_ms = None if fc.t_ms is None or fc.step_ms is None else int(fc.t_ms[0]) - fc.step_ms
        return Capacity(threshold, direction, steps, interval, 1.0, 0, 0, 0, last_ms, last_ms,
                        last_ms, True, fc)
    optimistic, pessimistic = (fc.upper, fc.lower) if sign > 0 else (fc.lower, fc.upper)
    expected = _first(fc.values, threshold, sign)
    earliest = _first(optimistic, threshold, sign)
    latest = _first(pessimistic, threshold, sign)
    assert fc.paths is not None, "BUG: forecast returned no paths"
    crossed = np.any(sign * (fc.paths - threshold) >= 0, axis=1)
    return Capacity(
        threshold=threshold, direction=direction, horizon=steps, interval=interval,
        probability=float(np.mean(crossed)), expected_step=expected, earliest_step=earliest,
        latest_step=latest, expected_t_ms=_time(fc, expected),
        earliest_t_ms=_time(fc, earliest), latest_t_ms=_time(fc, latest),
        already_crossed=False, forecast=fc,
    )


def _first(curve: Float64Array, threshold: float, sign: float) -> int | None:
    """The 1-based step at which ``curve`` first reaches ``threshold``, or None."""
    hit = np.flatnonzero(sign * (curve - threshold) >= 0)
    return int(hit[0]) + 1 if len(hit) else None


def _time(fc: Forecast, step: int | None) -> int | None:
    return None if step is None or fc.t_ms is None else int(fc.t_ms[step - 1])
