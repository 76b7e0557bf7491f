"""Analytics routes: the query API's selector and range, then a pure analytics function
over the series it returns. Heavy computations run off the event loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from vigil.api.deps import components, tenant
from vigil.api.query import QUERY_PARAMS, query_params
from vigil.api.responses import json_response
from vigil.app import Components
from vigil.core.errors import InvalidInput, Problem
from vigil.core.timeutil import now_ms, parse_time_ms
from vigil.query.engine import QueryResult
from vigil.query.model import Query

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])
Deps = Annotated[Components, Depends(components)]
Tenant = Annotated[str, Depends(tenant)]


def _extra(name: str, kind: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": kind}, "description": description}


def _param(request: Request, name: str, parse: Callable[[str], Any], default: Any) -> Any:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse(raw)
    except (ValueError, TypeError) as err:
        raise InvalidInput(Problem(f"bad value {raw!r}: {err}", field=name)) from err


def run_query(c: Components, tenant_id: str, params: dict[str, Any]) -> QueryResult:
    return c.engine.run(tenant_id, Query.from_params(params, now_ms()))


@router.get("/root-cause", openapi_extra={"parameters": [
    *QUERY_PARAMS,
    _extra("baseline_start", "string", "start of the baseline window (default: as long as "
           "the anomaly window, just before it)"),
    _extra("baseline_end", "string", "end of the baseline window (default: start)"),
    _extra("aggregate", "string", "mean, sum, max, min, p50, p95 or p99 (default mean)"),
    _extra("top", "integer", "how many label values and series to list (default 10)"),
]}, summary="Which label values explain a change of an aggregate, and what moved with it")
async def root_cause(request: Request, c: Deps, tenant_id: Tenant) -> Response:
    """The anomaly window is the query's ``[start, end)``; each series' step values in it
    are compared with the baseline window's."""
    from vigil.analytics.rca import AGGREGATES, explain

    params = query_params(request)
    params.pop("group_by", None)  # per-series values are needed
    query = Query.from_params(params, now_ms())
    length = query.end_ms - query.start_ms
    b_end = _param(request, "baseline_end", lambda s: parse_time_ms(s, "baseline_end"),
                   query.start_ms)
    b_start = _param(request, "baseline_start",
                     lambda s: parse_time_ms(s, "baseline_start"), b_end - length)
    if b_start >= b_end:
        raise InvalidInput(Problem("baseline_start must be before baseline_end",
                                   field="baseline_start"))
    aggregate = _param(request, "aggregate", str, "mean")
    if aggregate not in AGGREGATES:
        raise InvalidInput(Problem(f"aggregate must be one of {', '.join(AGGREGATES)}",
                                   field="aggregate"))
    top = _param(request, "top", int, 10)
    if not 1 <= top <= 1000:
        raise InvalidInput(Problem("top must be between 1 and 1000", field="top"))

    def compute() -> dict[str, object]:
        now = run_query(c, tenant_id, {**params, "tier": None})
        base = run_query(c, tenant_id, {**params, "start": str(b_start / 1000),
                                        "end": str(b_end / 1000), "tier": None})
        by_labels = {tuple(sorted(s.labels.items())): s.values for s in base.series}
        labels = [s.labels for s in now.series]
        baseline = [by_labels.get(tuple(sorted(s.labels.items())), np.empty(0))
                    for s in now.series]
        result = explain(labels, baseline, [s.values for s in now.series], aggregate,
                         top=top)
        return {"name": query.name, "window": {"start": query.start_ms, "end": query.end_ms},
                "baseline_window": {"start": b_start, "end": b_end}, **result.as_dict()}

    return json_response(await run_in_threadpool(compute))


def _grid(t_ms: np.ndarray, values: np.ndarray, step_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """A series on its full step grid, NaN where a bucket had no samples (the detectors
    and forecasts expect regular spacing)."""
    if not len(t_ms):
        return t_ms, values
    grid = np.arange(int(t_ms[0]), int(t_ms[-1]) + 1, step_ms, dtype=np.int64)
    out = np.full(len(grid), np.nan)
    out[(t_ms - grid[0]) // step_ms] = values
    return grid, out


def _series_label(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "{}"


async def _per_series(request: Request, c: Components, tenant_id: str,
                      fn: Callable[[np.ndarray, np.ndarray], dict[str, object]]) -> Response:
    """Run the query, then ``fn(t_ms, values)`` on each series' step grid."""
    params = query_params(request)

    def compute() -> dict[str, object]:
        result = run_query(c, tenant_id, params)
        step = Query.from_params(params, now_ms()).step_ms
        out = []
        for s in result.series:
            t, v = _grid(s.t_ms, s.values, step)
            out.append({"labels": s.labels, **fn(t, v)})
        return {"name": result.name, "tier": result.tier, "step_ms": step, "series": out}

    return json_response(await run_in_threadpool(compute))


def _percents(raw: str) -> tuple[float, ...]:
    vals = tuple(float(p) for p in raw.split(",") if p.strip())
    if not vals or not all(0 <= p <= 100 for p in vals):
        raise ValueError("comma-separated percentiles between 0 and 100")
    return vals


@router.get("/stats", openapi_extra={"parameters": [
    *QUERY_PARAMS,
    _extra("percentiles", "string", "comma-separated, default 50,90,95,99"),
    _extra("bins", "integer", "histogram bins (default: chosen from the data)"),
]}, summary="Descriptive statistics, percentiles and distribution of each series")
async def stats(request: Request, c: Deps, tenant_id: Tenant) -> Response:
    from vigil.analytics import stats as st

    percents = _param(request, "percentiles", _percents, (50.0, 90.0, 95.0, 99.0))
    bins = _param(request, "bins", int, None)
    if bins is not None and not 1 <= bins <= 1000:
        raise InvalidInput(Problem("bins must be between 1 and 1000", field="bins"))

    def one(t: np.ndarray, v: np.ndarray) -> dict[str, object]:
        finite = v[np.isfinite(v)]
        return {"summary": st.describe(finite).as_dict(),
                "percentiles": st.percentiles(finite, percents).as_dict(),
                "histogram": st.histogram(finite, bins).as_dict() if len(finite) else None}

    return await _per_series(request, c, tenant_id, one)


@router.get("/trends", openapi_extra={"parameters": QUERY_PARAMS},
            summary="Trend (Theil–Sen + Mann–Kendall), change points and seasonality")
async def trends(request: Request, c: Deps, tenant_id: Tenant) -> Response:
    from vigil.analytics.seasonality import seasonality
    from vigil.analytics.trend import change_points, trend

    def one(t: np.ndarray, v: np.ndarray) -> dict[str, object]:
        if np.isfinite(v).sum() < 3:
            return {"trend": None, "change_points": None, "seasonality": None}
        return {"trend": trend(v, t).as_dict(), "change_points": change_points(v, t).as_dict(),
                "seasonality": seasonality(v, t).as_dict()}

    return await _per_series(request, c, tenant_id, one)


@router.get("/anomalies", openapi_extra={"parameters": [
    *QUERY_PARAMS,
    _extra("method", "string", "zscore, robust, seasonal, ewma or ensemble (default)"),
    _extra("threshold", "number", "score at which a point is listed as anomalous (0.8)"),
]}, summary="Causal anomaly scores in [0, 1] for every point of each series")
async def anomalies(request: Request, c: Deps, tenant_id: Tenant) -> Response:
    from vigil.analytics.anomaly import METHODS, score

    method = _param(request, "method", str, "ensemble")
    if method not in METHODS:
        raise InvalidInput(Problem(f"method must be one of {', '.join(METHODS)}",
                                   field="method"))
    threshold = _param(request, "threshold", float, 0.8)

    def one(t: np.ndarray, v: np.ndarray) -> dict[str, object]:
        s = score(v, method)
        hot = np.flatnonzero(s >= threshold)
        return {"points": [[int(a), None if np.isnan(b) else float(b), float(x)]
                           for a, b, x in zip(t.tolist(), v.tolist(), s.tolist(), strict=True)],
                "anomalies": [{"t_ms": int(t[i]), "value": float(v[i]), "score": float(s[i])}
                              for i in hot]}

    return await _per_series(request, c, tenant_id, one)


@router.get("/forecast", openapi_extra={"parameters": [
    *QUERY_PARAMS,
    _extra("horizon", "integer", "steps to forecast (default 24)"),
    _extra("method", "string", "auto (default), ets, arima, naive or seasonal_naive"),
    _extra("period", "integer", "seasonal period in steps (default: detected)"),
    _extra("interval", "number", "prediction interval (default 0.95)"),
]}, summary="Forecast with prediction intervals; auto never loses to seasonal naive")
async def forecast(request: Request, c: Deps, tenant_id: Tenant) -> Response:
    from vigil.analytics.forecast import forecast as fit

    horizon = _param(request, "horizon", int, 24)
    method = _param(request, "method", str, "auto")
    period = _param(request, "period", int, None)
    interval = _param(request, "interval", float, 0.95)
    if not 1 <= horizon <= 10_000:
        raise InvalidInput(Problem("horizon must be between 1 and 10000", field="horizon"))
    if not 0 < interval < 1:
        raise InvalidInput(Problem("interval must be between 0 and 1", field="interval"))

    def one(t: np.ndarray, v: np.ndarray) -> dict[str, object]:
        return {"forecast": fit(v, t, horizon=horizon, method=method, period=period,
                                interval=interval).as_dict()}

    return await _per_series(request, c, tenant_id, one)


@router.get("/capacity", openapi_extra={"parameters": [
    *QUERY_PARAMS,
    _extra("threshold", "number", "the limit (required)"),
    _extra("direction", "string", "above (default) or below"),
    _extra("horizon", "integer", "steps to look ahead (default 24)"),
]}, summary="When each series will cross a threshold, and how likely that is")
async def capacity(request: Request, c: Deps, tenant_id: Tenant) -> Response:
    from vigil.analytics.capacity import time_to_threshold

    threshold = _param(request, "threshold", float, None)
    if threshold is None:
        raise InvalidInput(Problem("required: the threshold to cross", field="threshold"))
    direction = _param(request, "direction", str, "above")
    if direction not in ("above", "below"):
        raise InvalidInput(Problem("direction must be above or below", field="direction"))
    horizon = _param(request, "horizon", int, 24)
    if not 1 <= horizon <= 10_000:
        raise InvalidInput(Problem("horizon must be between 1 and 10000", field="horizon"))

    def one(t: np.ndarray, v: np.ndarray) -> dict[str, object]:
        return {"capacity": time_to_threshold(v, t, threshold, direction=direction,
                                              horizon=horizon).as_dict()}

    return await _per_series(request, c, tenant_id, one)


def _matrix(result: QueryResult, step_ms: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """All series on one step grid: (labels, t_ms, values (series × steps) with NaN gaps)."""
    from vigil.analytics.correlation import align_series

    if not result.series:
        return [], np.empty(0, np.int64), np.empty((0, 0))
    aligned = align_series({_series_label(s.labels): (s.t_ms, s.values)
                            for s in result.series}, step_ms)
    return list(aligned.labels), aligned.timestamps_ms, aligned.values


@router.get("/correlations", openapi_extra={"parameters": [
    *QUERY_PARAMS,
    _extra("method", "string", "pearson (default) or spearman"),
    _extra("min_strength", "number", "smallest |r| listed among the pairs (0.3)"),
    _extra("min_confidence", "number", "smallest 1 - p listed among the pairs (0.95)"),
    _extra("max_lag", "integer", "also find each listed pair's best lag within ±steps"),
]}, summary="Correlation matrix across the selected series, significant pairs, best lags")
async def correlations(request: Request, c: Deps, tenant_id: Tenant) -> Response:
    from vigil.analytics.correlation import (
        correlation_matrix,
        lagged_correlation,
        significant_pairs,
    )

    params = query_params(request)
    method = _param(request, "method", str, "pearson")
    if method not in ("pearson", "spearman"):
        raise InvalidInput(Problem("method must be pearson or spearman", field="method"))
    min_strength = _param(request, "min_strength", float, 0.3)
    min_confidence = _param(request, "min_confidence", float, 0.95)
    max_lag = _param(request, "max_lag", int, 0)
    if not 0 <= max_lag <= 1000:
        raise InvalidInput(Problem("max_lag must be between 0 and 1000", field="max_lag"))

    def compute() -> dict[str, object]:
        result = run_query(c, tenant_id, params)
        step = Query.from_params(params, now_ms()).step_ms
        labels, _, values = _matrix(result, step)
        if len(labels) < 2:
            return {"name": result.name, "series": labels, "matrix": None, "pairs": []}
        m = correlation_matrix(values, labels, method=method)
        pairs = significant_pairs(m, min_strength=min_strength, min_confidence=min_confidence)
        row = {lab: i for i, lab in enumerate(labels)}
        out = []
        for p in pairs:
            doc = p.as_dict()
            if max_lag:
                doc["lagged"] = lagged_correlation(
                    values[row[p.a]], values[row[p.b]], max_lag=max_lag, method=method,
                    step_ms=step, labels=(p.a, p.b)).as_dict()
            out.append(doc)
        return {"name": result.name, "step_ms": step, "matrix": m.as_dict(), "pairs": out}

    return json_response(await run_in_threadpool(compute))


def _scores(result: QueryResult, step_ms: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each series' step grid and its ensemble anomaly scores."""
    from vigil.analytics.anomaly import score

    grids, scores = [], []
    for s in result.series:
        t, v = _grid(s.t_ms, s.values, step_ms)
        grids.append(t)
        scores.append(np.where(np.isnan(v), np.nan, score(v)))
    return grids, scores


@router.get("/health", openapi_extra={"parameters": [
    *QUERY_PARAMS, _extra("recent", "integer", "points that count as now (default 5)")]},
    summary="Health score 0–100 of the selection (formula in docs/analytics.md)")
async def health(request: Request, c: Deps, tenant_id: Tenant) -> Response:
    from vigil.analytics.health import health as score_health

    params = query_params(request)
    recent = _param(request, "recent", int, 5)
    if not 1 <= recent <= 10_000:
        raise InvalidInput(Problem("recent must be between 1 and 10000", field="recent"))

    def compute() -> dict[str, object]:
        result = run_query(c, tenant_id, params)
        _, scores = _scores(result, Query.from_params(params, now_ms()).step_ms)
        return {"name": result.name, "series": len(scores),
                **score_health(scores, recent=recent).as_dict()}

    return json_response(await run_in_threadpool(compute))


@router.get("/insights", openapi_extra={"parameters": [
    *QUERY_PARAMS,
    _extra("threshold", "number", "capacity threshold; adds capacity insights when given"),
]}, summary="Ranked insights: anomalies, trends, correlations, capacity, with advice")
async def insights(request: Request, c: Deps, tenant_id: Tenant) -> Response:
    from vigil.analytics import insights as ins
    from vigil.analytics.capacity import time_to_threshold
    from vigil.analytics.correlation import correlation_matrix, significant_pairs
    from vigil.analytics.trend import trend

    params = query_params(request)
    threshold = _param(request, "threshold", float, None)

    def compute() -> dict[str, object]:
        result = run_query(c, tenant_id, params)
        query = Query.from_params(params, now_ms())
        step = query.step_ms
        labels = [s.labels for s in result.series]
        grids, scores = _scores(result, step)
        found = ins.from_anomalies(result.name, labels, grids, scores)
        usable = [i for i, s in enumerate(result.series) if len(s.values) >= 3]
        found += ins.from_trends(
            result.name, [labels[i] for i in usable],
            [trend(result.series[i].values, result.series[i].t_ms) for i in usable],
            [float(np.mean(result.series[i].values)) for i in usable],
            window_s=(query.end_ms - query.start_ms) / 1000)
        names, _, values = _matrix(result, step)
        if len(names) >= 2:
            m = correlation_matrix(values, names)
            pairs = significant_pairs(m, min_strength=0.8, min_confidence=0.99)
            found += ins.from_correlations(result.name, pairs, dict(zip(names, labels,
                                                                        strict=True)))
        if threshold is not None:
            caps = []
            for i in usable:
                t, v = _grid(result.series[i].t_ms, result.series[i].values, step)
                caps.append(time_to_threshold(v, t, threshold))
            found += ins.from_capacity(result.name, [labels[i] for i in usable], caps)
        return {"name": result.name, "insights": [i.as_dict() for i in ins.ranked(found)]}

    return json_response(await run_in_threadpool(compute))
