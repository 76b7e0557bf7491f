"""The system health score: 0 (on fire) to 100 (all quiet), from its components.

Formula (documented in docs/analytics.md; every component is 0–100):

* **anomalies** (weight 0.5) = 100 × (1 − mean over series of the series' *current*
  anomaly score, the largest score among its last ``recent`` points);
* **freshness** (weight 0.25) = 100 × (1 − share of series with no value among their
  last ``recent`` points);
* **capacity** (weight 0.25, only when capacity forecasts are given) = 100 × (1 − the
  largest probability that a series crosses its threshold within the horizon).

The score is the weighted mean of the components present (weights renormalised), and
the status is ``healthy`` at ≥ 80, ``degraded`` at ≥ 50, else ``critical``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

WEIGHTS = {"anomalies": 0.5, "freshness": 0.25, "capacity": 0.25}


@dataclass(frozen=True, slots=True)
class Component:
    name: str
    score: float
    weight: float
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "score": round(self.score, 2), "weight": self.weight,
                "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Health:
    score: float
    status: str
    components: tuple[Component, ...]

    def as_dict(self) -> dict[str, object]:
        return {"score": round(self.score, 2), "status": self.status,
                "components": [c.as_dict() for c in self.components]}


def status_of(score: float) -> str:
    return "healthy" if score >= 80 else "degraded" if score >= 50 else "critical"


def health(
    anomaly_scores: Sequence[npt.NDArray[np.float64]],
    *,
    recent: int = 5,
    capacity_probabilities: Sequence[float] = (),
) -> Health:
    """Health from per-series anomaly scores in time order (NaN = no value).

    >>> h = health([np.array([0.0, 0.1, 0.0]), np.array([0.0, 0.0, 1.0])], recent=1)
    >>> round(h.score, 2), h.status
    (66.67, 'degraded')
    """
    if recent < 1:
        raise ValueError("recent must be at least 1")
    components = []
    if anomaly_scores:
        tails = [s[-recent:] for s in anomaly_scores]
        current = [float(np.nanmax(t)) if np.isfinite(t).any() else 0.0 for t in tails]
        stale = sum(1 for t in tails if not np.isfinite(t).any())
        worst = max(current)
        components.append(Component(
            "anomalies", 100 * (1 - float(np.mean(current))), WEIGHTS["anomalies"],
            f"mean current anomaly score {np.mean(current):.2f} over {len(current)} series, "
            f"worst {worst:.2f}"))
        components.append(Component(
            "freshness", 100 * (1 - stale / len(tails)), WEIGHTS["freshness"],
            f"{stale} of {len(tails)} series without a value in their last {recent} points"))
    if capacity_probabilities:
        p = max(capacity_probabilities)
        components.append(Component(
            "capacity", 100 * (1 - p), WEIGHTS["capacity"],
            f"largest probability of crossing a threshold within the horizon: {p:.2f}"))
    if not components:
        return Health(100.0, "healthy", ())
    total = sum(c.weight for c in components)
    score = sum(c.score * c.weight for c in components) / total
    return Health(score, status_of(score), tuple(components))
