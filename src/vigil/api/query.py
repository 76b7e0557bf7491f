"""Query and discovery routes."""

from __future__ import annotations

import re
import time
from typing import Annotated, Any
from urllib.parse import quote

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from vigil.api.auth import require
from vigil.api.deps import check_content_type, components, tenant
from vigil.api.responses import MEDIA, export, json_response, result_json
from vigil.app import Components
from vigil.core.errors import InvalidInput, NotFound, Problem
from vigil.core.matchers import Matcher
from vigil.core.timeutil import now_ms
from vigil.query.model import Params, Query

router = APIRouter(tags=["query"], dependencies=[require("metrics:read")])
Deps = Annotated[Components, Depends(components)]
Tenant = Annotated[str, Depends(tenant)]

QUERY_PARAMS: list[dict[str, Any]] = [
    {"name": "name", "in": "query", "required": True, "schema": {"type": "string"}},
    {"name": "match", "in": "query", "schema": {"type": "array", "items": {"type": "string"}},
     "description": "label=value, label!=value, label=~regex, label!~regex (repeatable)"},
    {"name": "start", "in": "query", "schema": {"type": "string"},
     "description": "RFC 3339 or epoch seconds; default end - 1h"},
    {"name": "end", "in": "query", "schema": {"type": "string"},
     "description": "RFC 3339 or epoch seconds; default now"},
    {"name": "step", "in": "query", "schema": {"type": "string"}, "description": "10s, 5m, 1h"},
    {"name": "fn", "in": "query", "schema": {"type": "string", "enum": [
        "avg", "sum", "min", "max", "count", "last", "rate", "increase", "quantile"]}},
    {"name": "q", "in": "query", "schema": {"type": "number"}},
    {"name": "group_by", "in": "query", "schema": {"type": "string"},
     "description": "comma-separated labels; empty = all series together; absent = each"},
    {"name": "window", "in": "query", "schema": {"type": "string"},
     "description": "rolling window, e.g. 1h"},
    {"name": "tier", "in": "query", "schema": {"type": "string",
                                               "enum": ["raw", "5m", "1h", "1d"]}},
    {"name": "format", "in": "query", "schema": {"type": "string",
                                                 "enum": ["json", "csv", "parquet"]}},
    {"name": "nocache", "in": "query", "schema": {"type": "string", "enum": ["1", "0"]},
     "description": "1 = compute the answer from the store, bypassing the query cache"},
]


def query_params(request: Request) -> dict[str, Any]:
    qp = request.query_params
    out: dict[str, Any] = {k: qp.get(k) for k in qp}
    out["match"] = qp.getlist("match")
    return out


async def _run(c: Components, tenant_id: str, params: Params, endpoint: str) -> Response:
    fmt = params.get("format") or "json"
    if fmt not in MEDIA:
        raise InvalidInput(Problem("format must be json, csv or parquet", field="format"))
    use_cache = not _nocache(params)
    query = Query.from_params(params, now_ms())
    t0 = time.perf_counter()
    # A cached answer needs no thread: looked up here, on the event loop.
    result = c.engine.cached(tenant_id, query) if use_cache else None
    if result is None:
        result = await run_in_threadpool(c.engine.run, tenant_id, query, use_cache=use_cache)
    c.telemetry.query_seconds.labels(endpoint).observe(time.perf_counter() - t0)
    if fmt == "json":
        body = result.rendered.get("json")
        if body is None:
            body = result.rendered["json"] = orjson.dumps(result_json(result))
        return Response(body, media_type=MEDIA["json"])
    body = await run_in_threadpool(export, result, str(fmt))
    return Response(body, media_type=MEDIA[str(fmt)], headers={
        "Content-Disposition": _attachment(f"{query.name}.{fmt}")})


def _nocache(params: Params) -> bool:
    v = params.get("nocache")
    v = v if v is None or isinstance(v, str) else (v[-1] if v else None)
    flag = (v or "0").strip().lower()
    if flag not in ("0", "1", "false", "true"):
        raise InvalidInput(Problem("nocache must be 1 or 0", field="nocache"))
    return flag in ("1", "true")


def _attachment(filename: str) -> str:
    """RFC 6266 ``Content-Disposition``: an ASCII fallback plus the UTF-8 name (RFC 8187).
    A metric name may hold any character; headers are latin-1 and ``"`` would end the
    value (a non-latin-1 name was a 500, found by schemathesis)."""
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


# The export formats (``format=csv|parquet``) in the OpenAPI document, so clients and
# schema checks know every media type a query can answer with.
_FORMATS: dict[int | str, dict[str, Any]] = {200: {"content": {
    MEDIA["csv"].split(";")[0]: {}, MEDIA["parquet"]: {}}}}


@router.get("/api/v1/query", openapi_extra={"parameters": QUERY_PARAMS}, responses=_FORMATS,
            summary="Select series, aggregate over time and across series")
async def query_get(request: Request, c: Deps, tenant_id: Tenant) -> Response:
    """Answer: ``{"tier": "raw|5m|1h|1d", "series": [{"labels", "points": [[ms, v]]}]}``;
    the planner picks the coarsest tier that answers exactly."""
    return await _run(c, tenant_id, query_params(request), "query")


@router.post("/api/v1/query", summary="The same query, parameters as a JSON object",
             dependencies=[require("metrics:read", audit=False)], responses=_FORMATS)
async def query_post(request: Request, c: Deps, tenant_id: Tenant) -> Response:
    check_content_type(request, ("application/json",), missing_ok=False)
    try:
        doc = orjson.loads(await request.body())
    except orjson.JSONDecodeError as err:
        raise InvalidInput(Problem(f"body is not valid JSON: {err}", field="body")) from err
    if not isinstance(doc, dict):
        raise InvalidInput(Problem("body must be a JSON object", field="body"))
    params = {k: (v if isinstance(v, list) or v is None else str(v)) for k, v in doc.items()}
    return await _run(c, tenant_id, params, "query")


@router.get("/api/v1/metrics", summary="Metric names with type, category and series count")
async def metrics(c: Deps, tenant_id: Tenant, category: str | None = None) -> Response:
    infos = c.store.metric_names(tenant_id, category)
    return json_response({"metrics": [
        {"name": m.name, "type": m.type, "category": m.category, "series": m.series}
        for m in infos]})


@router.get("/api/v1/metrics/{name}/latest", summary="The latest sample of each series")
async def latest(request: Request, name: str, c: Deps, tenant_id: Tenant) -> Response:
    matchers = [Matcher.parse(m) for m in request.query_params.getlist("match")]
    infos = c.store.find_series(tenant_id, name, matchers)
    if not infos:
        raise NotFound(f"no series of metric {name!r} match")
    ids = np.array([i.id for i in infos], np.int32)
    p = await run_in_threadpool(c.store.latest, tenant_id, ids)
    by_id = {int(k): (int(t), float(v)) for k, t, v in zip(p.key, p.t_ms, p.value, strict=True)}
    return json_response({"name": name, "series": [
        {"labels": i.key.label_dict(), "timestamp": by_id[i.id][0], "value": by_id[i.id][1]}
        for i in infos if i.id in by_id]})


@router.get("/api/v1/metrics/{name}/aggregated",
            openapi_extra={"parameters": [p for p in QUERY_PARAMS if p["name"] != "name"]},
            responses=_FORMATS,
            summary="Aggregated series of one metric (the query API with the name in the path)")
async def aggregated(request: Request, name: str, c: Deps, tenant_id: Tenant) -> Response:
    params = query_params(request)
    params["name"] = name
    return await _run(c, tenant_id, params, "aggregated")


@router.get("/api/v1/labels", summary="Label names (of one metric if name is given)")
async def labels(c: Deps, tenant_id: Tenant, name: str | None = None) -> Response:
    return json_response({"labels": c.store.label_names(tenant_id, name)})


@router.get("/api/v1/labels/{label}/values", summary="Values of a label")
async def label_values(label: str, c: Deps, tenant_id: Tenant,
                       name: str | None = None) -> Response:
    return json_response({"label": label, "values": c.store.label_values(tenant_id, label, name)})


@router.get("/api/v1/cardinality",
            summary="Series counts: top metrics, labels and label pairs, and the limit")
async def cardinality(c: Deps, tenant_id: Tenant, limit: int = 10) -> Response:
    if not 1 <= limit <= 1000:
        raise InvalidInput(Problem("limit must be between 1 and 1000", field="limit"))
    return json_response(c.store.cardinality(tenant_id, limit))
