"""Analytics routes: the query API's selector and range, then a pure analytics function
over the series it returns. Heavy computations run off the event loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from vigil import analysis
from vigil.api.auth import require
from vigil.api.deps import components, tenant
from vigil.api.query import QUERY_PARAMS, query_params
from vigil.api.responses import json_response
from vigil.app import Components
from vigil.core.errors import InvalidInput, Problem
from vigil.core.matchers import Matcher
from vigil.core.timeutil import now_ms, parse_time_ms
from vigil.query.engine import QueryResult
from vigil.query.model import Query

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"],
                   dependencies=[require("analytics:read")])
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
    _extra("related", "integer", "other metrics to search for series that moved too, "
           "among those with the leading label value (default 20, 0 = none)"),
]}, summary="Which label values explain a change of an aggregate, and what moved with it")
async def root_cause(request: Request, c: Deps, tenant_id: Tenant) -> Response:
    """The anomaly window is the query's ``[start, end)``; each series' step values in it
    are compared with the baseline window's."""
    from vigil.analytics.rca import AGGREGATES

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

    related = _param(request, "related", int, 20)
    if not 0 <= related <= 100:
        raise InvalidInput(Problem("related must be between 0 and 100", field="related"))

    def run(name: str, match: list[str], window: str) -> QueryResult:
        p = {**params, "name": name, "match": [*params["match"], *match], "tier": None}
        if window == "baseline":
            p.update(start=str(b_start / 1000), end=str(b_end / 1000))
        return run_query(c, tenant_id, p)

    def carriers(label: str, value: str) -> list[tuple[str, dict[str, str]]]:
        return [(s.key.name, s.key.label_dict())
                for s in c.store.find_series(tenant_id, None, [Matcher(label, "=", value)])]

    def compute() -> dict[str, object]:
        return {"window": {"start": query.start_ms, "end": query.end_ms},
                "baseline_window": {"start": b_start, "end": b_end},
                **analysis.root_cause(run, query.name, carriers, aggregate=aggregate,
                                      top=top, related=related)}

    return json_response(await run_in_threadpool(compute))


async def _analyze(request: Request, c: Components, tenant_id: str,
                   fn: Callable[..., dict[str, object]], **options: Any) -> Response:
    """Run the request's query, then ``fn(result, step_ms, **options)`` off the loop."""
    params = query_params(request)

    def compute() -> dict[str, object]:
        result = run_query(c, tenant_id, params)
        return fn(result, Query.from_params(params, now_ms()).step_ms, **options)

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
    percents = _param(request, "percentiles", _percents, (50.0, 90.0, 95.0, 99.0))
    bins = _param(request, "bins", int, None)
    if bins is not None and not 1 <= bins <= 1000:
        raise InvalidInput(Problem("bins must be between 1 and 1000", field="bins"))
    return await _analyze(request, c, tenant_id, analysis.stats, percentiles=percents,
                          bins=bins)


@router.get("/trends", openapi_extra={"parameters": QUERY_PARAMS},
            summary="Trend (Theil–Sen + Mann–Kendall), change points and seasonality")
async def trends(request: Request, c: Deps, tenant_id: Tenant) -> Response:
    return await _analyze(request, c, tenant_id, analysis.trends)


@router.get("/anomalies", openapi_extra={"parameters": [
    *QUERY_PARAMS,
    _extra("method", "string", "zscore, robust, seasonal, ewma or ensemble (default)"),
    _extra("threshold", "number", "score at which a point is listed as anomalous (0.8)"),
]}, summary="Causal anomaly scores in [0, 1] for every point of each series")
async def anomalies(request: Request, c: Deps, tenant_id: Tenant) -> Response:
    from vigil.analytics.anomaly import METHODS

    method = _param(request, "method", str, "ensemble")
    if method not in METHODS:
        raise InvalidInput(Problem(f"method must be one of {', '.join(METHODS)}",
                                   field="method"))
    threshold = _param(request, "threshold", float, 0.8)
    return await _analyze(request, c, tenant_id, analysis.anomalies, method=method,
                          threshold=threshold)


@router.get("/forecast", openapi_extra={"parameters": [
    *QUERY_PARAMS,
    _extra("horizon", "integer", "steps to forecast (default 24)"),
    _extra("method", "string", "auto (default), ets, arima, naive or seasonal_naive"),
    _extra("period", "integer", "seasonal period in steps (default: detected)"),
    _extra("interval", "number", "prediction interval (default 0.95)"),
]}, summary="Forecast with prediction intervals; auto never loses to seasonal naive")
async def forecast(request: Request, c: Deps, tenant_id: Tenant) -> Response:
    horizon = _param(request, "horizon", int, 24)
    interval = _param(request, "interval", float, 0.95)
    if not 1 <= horizon <= 10_000:
        raise InvalidInput(Problem("horizon must be between 1 and 10000", field="horizon"))
    if not 0 < interval < 1:
        raise InvalidInput(Problem("interval must be between 0 and 1", field="interval"))
    return await _analyze(request, c, tenant_id, analysis.forecast, horizon=horizon,
                          method=_param(request, "method", str, "auto"),
                          period=_param(request, "period", int, None), interval=interval)


@router.get("/capacity", openapi_extra={"parameters": [
    *QUERY_PARAMS,
    _extra("threshold", "number", "the limit (required)"),
    _extra("direction", "string", "above (default) or below"),
    _extra("horizon", "integer", "steps to look ahead (default 24)"),
]}, summary="When each series will cross a threshold, and how likely that is")
async def capacity(request: Request, c: Deps, tenant_id: Tenant) -> Response:
    threshold = _param(request, "threshold", float, None)
    if threshold is None:
        raise InvalidInput(Problem("required: the threshold to cross", field="threshold"))
    direction = _param(request, "direction", str, "above")
    if direction not in ("above", "below"):
        raise InvalidInput(Problem("direction must be above or below", field="direction"))
    horizon = _param(request, "horizon", int, 24)
    if not 1 <= horizon <= 10_000:
        raise InvalidInput(Problem("horizon must be between 1 and 10000", field="horizon"))
    return await _analyze(request, c, tenant_id, analysis.capacity, threshold=threshold,
                          direction=direction, horizon=horizon)


@router.get("/correlations", openapi_extra={"parameters": [
    *QUERY_PARAMS,
    _extra("method", "string", "pearson (default) or spearman"),
    _extra("min_strength", "number", "smallest |r| listed among the pairs (0.3)"),
    _extra("min_confidence", "number", "smallest 1 - p listed among the pairs (0.95)"),
    _extra("max_lag", "integer", "also find each listed pair's best lag within ±steps"),
]}, summary="Correlation matrix across the selected series, significant pairs, best lags")
async def correlations(request: Request, c: Deps, tenant_id: Tenant) -> Response:
    method = _param(request, "method", str, "pearson")
    if method not in ("pearson", "spearman"):
        raise InvalidInput(Problem("method must be pearson or spearman", field="method"))
    max_lag = _param(request, "max_lag", int, 0)
    if not 0 <= max_lag <= 1000:
        raise InvalidInput(Problem("max_lag must be between 0 and 1000", field="max_lag"))
    return await _analyze(request, c, tenant_id, analysis.correlations, method=method,
                          min_strength=_param(request, "min_strength", float, 0.3),
                          min_confidence=_param(request, "min_confidence", float, 0.95),
                          max_lag=max_lag)


@router.get("/health", openapi_extra={"parameters": [
    *QUERY_PARAMS, _extra("recent", "integer", "points that count as now (default 5)")]},
    summary="Health score 0–100 of the selection (formula in docs/analytics.md)")
async def health(request: Request, c: Deps, tenant_id: Tenant) -> Response:
    recent = _param(request, "recent", int, 5)
    if not 1 <= recent <= 10_000:
        raise InvalidInput(Problem("recent must be between 1 and 10000", field="recent"))
    return await _analyze(request, c, tenant_id, analysis.health, recent=recent)


@router.get("/insights", openapi_extra={"parameters": [
    *QUERY_PARAMS,
    _extra("threshold", "number", "capacity threshold; adds capacity insights when given"),
]}, summary="Ranked insights: anomalies, trends, correlations, capacity, with advice")
async def insights(request: Request, c: Deps, tenant_id: Tenant) -> Response:
    threshold = _param(request, "threshold", float, None)
    query = Query.from_params(query_params(request), now_ms())
    return await _analyze(request, c, tenant_id, analysis.insights,
                          range_ms=query.end_ms - query.start_ms, threshold=threshold)
