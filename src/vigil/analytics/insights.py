"""Insights: findings a person should look at, each with type, severity, confidence,
evidence, the series it concerns and, where one follows, a recommendation with its
rationale. Built from the results of the other analytics modules; ranked most severe
and most certain first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from vigil.analytics.capacity import Capacity
from vigil.analytics.correlation import PairCorrelation, correlation_matrix, significant_pairs
from vigil.analytics.seasonality import deseasonalised
from vigil.analytics.trend import Trend
from vigil.core.timeutil import format_ms

SEVERITIES = ("low", "medium", "high", "critical")
# A correlation is an insight only if it outlives removing each series' seasonal
# pattern: the residuals must still correlate this much (same sign, same confidence).
RESIDUAL_MIN_R = 0.3
Labels = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Insight:
    type: str  # anomaly | trend | correlation | capacity
    severity: str  # low | medium | high | critical
    confidence: float  # 0–1
    title: str
    description: str
    evidence: dict[str, object]
    affected: list[dict[str, str]]
    recommendation: str | None = field(default=None)

    def as_dict(self) -> dict[str, object]:
        return {"type": self.type, "severity": self.severity,
                "confidence": round(self.confidence, 4), "title": self.title,
                "description": self.description, "evidence": self.evidence,
                "affected": self.affected, "recommendation": self.recommendation}


def _name(labels: Labels) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "{}"


def from_anomalies(
    name: str, labels: Sequence[Labels], t_ms: Sequence[npt.NDArray[np.int64]],
    scores: Sequence[npt.NDArray[np.float64]], *, threshold: float = 0.8,
) -> list[Insight]:
    """One insight per series whose score reached ``threshold``: when, how high, how long."""
    out = []
    for lab, ts, sc in zip(labels, t_ms, scores, strict=True):
        hot = np.flatnonzero(sc >= threshold)
        if not len(hot):
            continue
        peak = int(hot[np.argmax(sc[hot])])
        top = float(sc[peak])
        severity = "critical" if top >= 0.98 else "high" if top >= 0.9 else "medium"
        out.append(Insight(
            "anomaly", severity, top, f"{name} anomalous on {_name(lab)}",
            f"{len(hot)} points scored ≥ {threshold}, peaking at {top:.2f} at "
            f"{format_ms(int(ts[peak]))}",
            {"peak_score": top, "peak_t_ms": int(ts[peak]), "points": len(hot),
             "first_t_ms": int(ts[hot[0]]), "last_t_ms": int(ts[hot[-1]])},
            [dict(lab)], "Look at what changed around the peak: deploys, traffic, "
            "dependencies; /api/v1/analytics/root-cause ranks the labels behind it."))
    return out


def from_trends(
    name: str, labels: Sequence[Labels], trends: Sequence[Trend],
    levels: Sequence[float], *, min_change: float = 0.1, window_s: float,
) -> list[Insight]:
    """Significant trends that move the series by at least ``min_change`` (relative to its
    level) over ``window_s``."""
    out = []
    for lab, tr, level in zip(labels, trends, levels, strict=True):
        if tr.direction == "none" or not np.isfinite(tr.slope):
            continue
        per_s = tr.slope if tr.slope_unit == "per_second" else float("nan")
        change = per_s * window_s
        rel = abs(change) / abs(level) if level else float("inf")
        if not np.isfinite(change) or rel < min_change:
            continue
        severity = "high" if rel >= 0.5 else "medium" if rel >= 0.25 else "low"
        out.append(Insight(
            "trend", severity, tr.confidence, f"{name} {tr.direction} on {_name(lab)}",
            f"Theil–Sen slope {per_s:.4g}/s (Mann–Kendall p={tr.p_value:.2g}): "
            f"{change:+.4g} ({rel:.0%} of its level) over the window",
            {"slope_per_s": per_s, "p_value": tr.p_value, "relative_change": rel,
             "level": level}, [dict(lab)],
            "If this is a resource, plan capacity before it runs out "
            "(/api/v1/analytics/capacity with a threshold)." if tr.direction == "increasing"
            else None))
    return out


def correlation_insights(name: str, values: npt.ArrayLike, names: Sequence[str],
                         labels: Mapping[str, Labels], *, min_strength: float = 0.8,
                         min_confidence: float = 0.99) -> list[Insight]:
    """Strong, significant correlations between the rows of ``values`` (series x time on
    one grid, NaN gaps) that a shared seasonality does not explain.

    Series that only share a daily cycle correlate strongly; that says nothing a person
    needs to act on. So a pair with ``|r| >= min_strength`` at ``min_confidence`` is kept
    only if the series' residuals after removing each one's detected seasonal profile
    (:func:`vigil.analytics.seasonality.deseasonalised`) still correlate with the same
    sign, ``|r| >= RESIDUAL_MIN_R`` at ``min_confidence``.
    """
    v = np.asarray(values, np.float64)
    raw = significant_pairs(correlation_matrix(v, names), min_strength=min_strength,
                            min_confidence=min_confidence)
    if not raw:
        return []
    row = {n: i for i, n in enumerate(names)}
    used = sorted({row[p.a] for p in raw} | {row[p.b] for p in raw})
    residual = correlation_matrix(np.vstack([deseasonalised(v[i]) for i in used]),
                                  [names[i] for i in used])
    left = {frozenset((q.a, q.b)): q for q in significant_pairs(
        residual, min_strength=RESIDUAL_MIN_R, min_confidence=min_confidence)}
    kept = [(p, q) for p in raw if (q := left.get(frozenset((p.a, p.b)))) is not None
            and (q.r > 0) == (p.r > 0)]
    return from_correlations(name, [p for p, _ in kept], labels,
                             residual_r=[q.r for _, q in kept])


def from_correlations(name: str, pairs: Sequence[PairCorrelation],
                      labels: Mapping[str, Labels],
                      residual_r: Sequence[float] | None = None) -> list[Insight]:
    """Strong, significant correlations between series of the selection; ``residual_r``
    (one per pair) is their correlation once the seasonal pattern is removed."""
    out = []
    for i, p in enumerate(pairs):
        severity = "medium" if abs(p.r) >= 0.9 else "low"
        evidence: dict[str, object] = {"r": p.r, "p_value": p.p_value, "n": p.n,
                                       "method": p.method}
        extra = ""
        if residual_r is not None:
            evidence["residual_r"] = residual_r[i]
            extra = f"; r={residual_r[i]:.2f} once the seasonal pattern is removed"
        out.append(Insight(
            "correlation", severity, p.confidence, f"{name}: {p.a} and {p.b} move together",
            f"{p.method} r={p.r:.2f} ({p.strength}) over {p.n} aligned points, "
            f"p={p.p_value:.2g}{extra}", evidence,
            [dict(labels.get(p.a, {})), dict(labels.get(p.b, {}))]))
    return out


def from_capacity(name: str, labels: Sequence[Labels],
                  capacities: Sequence[Capacity]) -> list[Insight]:
    """Series likely to cross their threshold within the horizon, with a scaling advice."""
    out = []
    for lab, cap in zip(labels, capacities, strict=True):
        if cap.probability < 0.5 and not cap.already_crossed:
            continue
        when = "already" if cap.already_crossed else (
            format_ms(cap.expected_t_ms) if cap.expected_t_ms is not None else "soon")
        severity = ("critical" if cap.already_crossed or cap.probability >= 0.95 else
                    "high" if cap.probability >= 0.8 else "medium")
        out.append(Insight(
            "capacity", severity, cap.probability,
            f"{name} will cross {cap.threshold:g} on {_name(lab)}",
            f"expected crossing {when}; probability {cap.probability:.0%} within the "
            f"horizon ({cap.forecast.method} forecast)", cap.as_dict(), [dict(lab)],
            f"Scale out or raise the limit before {when}: the {cap.interval:.0%} forecast "
            f"interval reaches {cap.threshold:g}" + (
                f" as early as {format_ms(cap.earliest_t_ms)}"
                if cap.earliest_t_ms is not None else "") + "."))
    return out


def ranked(insights: Sequence[Insight]) -> list[Insight]:
    """Most severe first, then most certain."""
    return sorted(insights, key=lambda i: (-SEVERITIES.index(i.severity), -i.confidence))
