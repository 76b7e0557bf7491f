"""Analytics of query results: each function takes what the query engine returned and
applies a pure function from ``vigil.analytics`` to it, giving the JSON document that
``/api/v1/analytics/*`` answers and ``Vigil.analyze`` returns.

Every series is laid on its full step grid first (NaN where a step had no samples),
since detectors and forecasts expect regular spacing. Options are validated by the
caller (the API edge) or by the analytics functions themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from vigil.query.engine import QueryResult

Document = dict[str, object]


def grid(t_ms: np.ndarray, values: np.ndarray, step_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """A series on its full step grid, NaN where a bucket had no samples."""
    if not len(t_ms):
        return t_ms, values
    steps = np.arange(int(t_ms[0]), int(t_ms[-1]) + 1, step_ms, dtype=np.int64)
    out = np.full(len(steps), np.nan)
    out[(t_ms - steps[0]) // step_ms] = values
    return steps, out


def series_label(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "{}"


def per_series(result: QueryResult, step_ms: int,
               fn: Callable[[np.ndarray, np.ndarray], Document]) -> Document:
    """``fn(t_ms, values)`` on each series' step grid."""
    out = []
    for s in result.series:
        t, v = grid(s.t_ms, s.values, step_ms)
        out.append({"labels": s.labels, **fn(t, v)})
    return {"name": result.name, "tier": result.tier, "step_ms": step_ms, "series": out}


def matrix(result: QueryResult, step_ms: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """All series on one step grid: (labels, t_ms, values (series × steps) with NaN gaps)."""
    from vigil.analytics.correlation import align_series

    if not result.series:
        return [], np.empty(0, np.int64), np.empty((0, 0))
    aligned = align_series({series_label(s.labels): (s.t_ms, s.values)
                            for s in result.series}, step_ms)
    return list(aligned.labels), aligned.timestamps_ms, aligned.values


def anomaly_scores(result: QueryResult, step_ms: int) -> tuple[list[np.ndarray],
                                                               list[np.ndarray]]:
    """Each series' step grid and its ensemble anomaly scores (NaN where no value)."""
    from vigil.analytics.anomaly import score

    grids, scores = [], []
    for s in result.series:
        t, v = grid(s.t_ms, s.values, step_ms)
        grids.append(t)
        scores.append(np.where(np.isnan(v), np.nan, score(v)))
    return grids, scores


def stats(result: QueryResult, step_ms: int, *,
          percentiles: Sequence[float] = (50.0, 90.0, 95.0, 99.0),
          bins: int | None = None) -> Document:
    from vigil.analytics import stats as st

    def one(t: np.ndarray, v: np.ndarray) -> Document:
        finite = v[np.isfinite(v)]
        return {"summary": st.describe(finite).as_dict(),
                "percentiles": st.percentiles(finite, percentiles).as_dict(),
                "histogram": st.histogram(finite, bins).as_dict() if len(finite) else None}

    return per_series(result, step_ms, one)


def trends(result: QueryResult, step_ms: int) -> Document:
    from vigil.analytics.seasonality import seasonality
    from vigil.analytics.trend import change_points, trend

    def one(t: np.ndarray, v: np.ndarray) -> Document:
        if np.isfinite(v).sum() < 3:
            return {"trend": None, "change_points": None, "seasonality": None}
        return {"trend": trend(v, t).as_dict(), "change_points": change_points(v, t).as_dict(),
                "seasonality": seasonality(v, t).as_dict()}

    return per_series(result, step_ms, one)


def anomalies(result: QueryResult, step_ms: int, *, method: str = "ensemble",
              threshold: float = 0.8) -> Document:
    from vigil.analytics.anomaly import score

    def one(t: np.ndarray, v: np.ndarray) -> Document:
        s = score(v, method)
        hot = np.flatnonzero(s >= threshold)
        return {"points": [[int(a), None if np.isnan(b) else float(b), float(x)]
                           for a, b, x in zip(t.tolist(), v.tolist(), s.tolist(), strict=True)],
                "anomalies": [{"t_ms": int(t[i]), "value": float(v[i]), "score": float(s[i])}
                              for i in hot]}

    return per_series(result, step_ms, one)


def forecast(result: QueryResult, step_ms: int, *, horizon: int = 24, method: str = "auto",
             period: int | None = None, interval: float = 0.95) -> Document:
    from vigil.analytics.forecast import forecast as fit

    def one(t: np.ndarray, v: np.ndarray) -> Document:
        return {"forecast": fit(v, t, horizon=horizon, method=method, period=period,
                                interval=interval).as_dict()}

    return per_series(result, step_ms, one)


def capacity(result: QueryResult, step_ms: int, *, threshold: float,
             direction: str = "above", horizon: int = 24) -> Document:
    from vigil.analytics.capacity import time_to_threshold

    def one(t: np.ndarray, v: np.ndarray) -> Document:
        return {"capacity": time_to_threshold(v, t, threshold, direction=direction,  # type: ignore[arg-type]
                                              horizon=horizon).as_dict()}

    return per_series(result, step_ms, one)


def correlations(result: QueryResult, step_ms: int, *, method: str = "pearson",
                 min_strength: float = 0.3, min_confidence: float = 0.95,
                 max_lag: int = 0) -> Document:
    from vigil.analytics.correlation import (
        correlation_matrix,
        lagged_correlation,
        significant_pairs,
    )

    labels, _, values = matrix(result, step_ms)
    if len(labels) < 2:
        return {"name": result.name, "series": labels, "matrix": None, "pairs": []}
    m = correlation_matrix(values, labels, method=method)  # type: ignore[arg-type]
    pairs = significant_pairs(m, min_strength=min_strength, min_confidence=min_confidence)
    row = {lab: i for i, lab in enumerate(labels)}
    out = []
    for p in pairs:
        doc = p.as_dict()
        if max_lag:
            doc["lagged"] = lagged_correlation(
                values[row[p.a]], values[row[p.b]], max_lag=max_lag,
                method=method,  # type: ignore[arg-type]
                step_ms=step_ms, labels=(p.a, p.b)).as_dict()
        out.append(doc)
    return {"name": result.name, "step_ms": step_ms, "matrix": m.as_dict(), "pairs": out}


def health(result: QueryResult, step_ms: int, *, recent: int = 5) -> Document:
    from vigil.analytics.health import health as score_health

    _, scores = anomaly_scores(result, step_ms)
    return {"name": result.name, "series": len(scores),
            **score_health(scores, recent=recent).as_dict()}


def insights(result: QueryResult, step_ms: int, *, range_ms: int,
             threshold: float | None = None) -> Document:
    """Ranked insights from anomalies, trends, correlations and (with ``threshold``)
    capacity over the series of ``result``, which spans ``range_ms``."""
    from vigil.analytics import insights as ins
    from vigil.analytics.capacity import time_to_threshold
    from vigil.analytics.trend import trend

    labels = [s.labels for s in result.series]
    grids, scores = anomaly_scores(result, step_ms)
    found = ins.from_anomalies(result.name, labels, grids, scores)
    usable = [i for i, s in enumerate(result.series) if len(s.values) >= 3]
    found += ins.from_trends(
        result.name, [labels[i] for i in usable],
        [trend(result.series[i].values, result.series[i].t_ms) for i in usable],
        [float(np.mean(result.series[i].values)) for i in usable], window_s=range_ms / 1000)
    names, _, values = matrix(result, step_ms)
    if len(names) >= 2:
        found += ins.correlation_insights(result.name, values, names,
                                          dict(zip(names, labels, strict=True)))
    if threshold is not None:
        caps = []
        for i in usable:
            t, v = grid(result.series[i].t_ms, result.series[i].values, step_ms)
            caps.append(time_to_threshold(v, t, threshold))
        found += ins.from_capacity(result.name, [labels[i] for i in usable], caps)
    return {"name": result.name, "insights": [i.as_dict() for i in ins.ranked(found)]}


def _paired(now: QueryResult, baseline: QueryResult) -> list[np.ndarray]:
    """``baseline``'s values for each series of ``now``, matched by labels."""
    by_labels = {tuple(sorted(s.labels.items())): s.values for s in baseline.series}
    return [by_labels.get(tuple(sorted(s.labels.items())), np.empty(0)) for s in now.series]


# (name, extra matchers, window) -> the query's result; window "now" or "baseline"
RunWindow = Callable[[str, list[str], str], QueryResult]
# (label, value) -> (metric name, labels) of every series carrying label=value
Carriers = Callable[[str, str], Sequence[tuple[str, Mapping[str, str]]]]


def root_cause(run: RunWindow, name: str, carriers: Carriers, *,
               aggregate: str = "mean", top: int = 10, related: int = 20) -> Document:
    """Explain the change of ``aggregate`` of metric ``name`` between the baseline and the
    anomaly window, and list which series of up to ``related`` other metrics moved at the
    same time among those carrying the label value that explains most of the change. The
    other metrics are those with series carrying that value, ranked by
    :func:`vigil.analytics.rca.rank_related` (label overlap with the anomalous series,
    then how many series carry the value, then name)."""
    from vigil.analytics.rca import explain, movers, rank_related

    now, base = run(name, [], "now"), run(name, [], "baseline")
    result = explain([s.labels for s in now.series], _paired(now, base),
                     [s.values for s in now.series], aggregate, top=top)
    doc: Document = {"name": name, **result.as_dict(), "related": []}
    lead = next((c for c in result.contributions if c.contribution > 0), None)
    if lead is None or not related:
        return doc
    moved = []
    lead_carriers = carriers(lead.label, lead.value)
    anomalous = [s.labels for s in now.series]
    for other in rank_related(lead_carriers, anomalous, exclude=name, limit=related):
        match = [f"{lead.label}={lead.value}"]
        o_now, o_base = run(other, match, "now"), run(other, match, "baseline")
        for m in movers([s.labels for s in o_now.series], _paired(o_now, o_base),
                        [s.values for s in o_now.series], top=top):
            moved.append({"name": other, **m.as_dict()})
    moved.sort(key=lambda m: -abs(float(m["z"])))  # type: ignore[arg-type]
    doc["related"] = moved[:top]
    doc["related_match"] = f"{lead.label}={lead.value}"
    return doc
