"""Workflow analytics routes: task events in, performance and bottleneck reports out.

Reports are cached (``TaskService``); answers carry ``Cache-Control: max-age`` (the time
the cached answer has left) and an ``ETag``; ``If-None-Match`` with it gets ``304``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from vigil.api.deps import check_content_type, components, read_body, tenant
from vigil.app import Components
from vigil.core.errors import InvalidInput, Problem
from vigil.storage.task_store import TaskScope
from vigil.tasks.cache import Entry
from vigil.tasks.service import scope_of

router = APIRouter(tags=["workflow analytics"])
Deps = Annotated[Components, Depends(components)]
Tenant = Annotated[str, Depends(tenant)]

_STEP = {"type": "object", "required": ["step_name", "status"], "properties": {
    "step_name": {"type": "string"}, "status": {"type": "string"},
    "attempts": {"type": "integer"}, "duration_ms": {"type": "number"},
    "timeout_s": {"type": "number"}, "error_type": {"type": "string"},
    "error_message": {"type": "string"}}}
_TIME = {"oneOf": [{"type": "integer"}, {"type": "string"}]}
_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["tasks"], "properties": {"tasks": {"type": "array", "items": {
        "type": "object",
        "required": ["namespace", "task_name", "task_id", "status", "started_at"],
        "properties": {
            "namespace": {"type": "string"}, "task_name": {"type": "string"},
            "version": {"type": "string"}, "task_id": {"type": "string"},
            "status": {"type": "string"}, "started_at": _TIME, "finished_at": _TIME,
            "duration_ms": {"type": "number"}, "steps": {"type": "array", "items": _STEP}}}}}}}}}}
_SCOPE_PARAMS = [
    {"name": n, "in": "query", "schema": {"type": "string"}, "description": d} for n, d in (
        ("namespace", "only tasks of this namespace"), ("task_name", "only this task"),
        ("version", "only this task version (e.g. 2.1.0)"))]
_REPORT_PARAMS = [*_SCOPE_PARAMS, *(
    {"name": n, "in": "query", "schema": {"type": "integer"}, "description": d} for n, d in (
        ("period", "analysis period in hours (default 24, at most tasks_max_period_hours)"),
        ("limit", "rows per list (default 10, at most tasks_max_results)")))]


@router.post("/api/v1/tasks/events", status_code=204, openapi_extra=_BODY,
             summary="Record task executions with their steps")
async def write_events(request: Request, c: Deps, tenant_id: Tenant) -> Response:
    """The batch is atomic: committed whole before the 204, or rejected whole with a 400
    naming ``tasks[i].field``."""
    check_content_type(request, ("application/json",), missing_ok=False)
    body = await read_body(request, c.settings.max_body_bytes)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        c.telemetry.batches_rejected.labels("tasks", "invalid").inc()
        raise InvalidInput(Problem(f"body is not valid JSON: {err}", field="body")) from err
    if not isinstance(doc, dict) or not isinstance(doc.get("tasks"), list) or set(doc) != {
            "tasks"}:
        raise InvalidInput(Problem('expected an object {"tasks": [...]}', field="tasks"))
    try:
        batch = await run_in_threadpool(c.tasks.parse, doc["tasks"])
    except InvalidInput:
        c.telemetry.batches_rejected.labels("tasks", "invalid").inc()
        raise
    await asyncio.wrap_future(c.tasks.submit(tenant_id, batch))
    return Response(status_code=204)


def _int(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError as err:
        raise InvalidInput(Problem(f"must be a whole number, got {raw!r}", field=name)) from err


def _respond(request: Request, c: Components, entry: Entry) -> Response:
    headers = {"Cache-Control": f"max-age={entry.max_age_s(c.tasks.cache.now())}",
               "ETag": entry.etag}
    if entry.etag in (t.strip() for t in request.headers.get("if-none-match", "").split(",")):
        return Response(status_code=304, headers=headers)
    return Response(entry.body, media_type="application/json", headers=headers)


def _scope(request: Request) -> TaskScope:
    q = request.query_params
    return scope_of(q.get("namespace"), q.get("task_name"), q.get("version"))


@router.get("/api/v1/analytics/performance", openapi_extra={"parameters": _SCOPE_PARAMS},
            summary="Task health score, 1 h/4 h/24 h trends, statistics and percentiles")
async def performance(request: Request, c: Deps, tenant_id: Tenant) -> Response:
    scope = _scope(request)
    entry = c.tasks.cached(tenant_id, "performance", scope)  # a hit never leaves the loop
    if entry is None:
        entry = (await run_in_threadpool(c.tasks.performance, tenant_id, scope))[0]
    return _respond(request, c, entry)


@router.get("/api/v1/analytics/bottlenecks", openapi_extra={"parameters": _REPORT_PARAMS},
            summary="Slowest tasks and steps, error patterns, distribution, recommendations")
async def bottlenecks(request: Request, c: Deps, tenant_id: Tenant) -> Response:
    scope = _scope(request)
    period = c.tasks.period(_int(request, "period"))
    limit = c.tasks.limit(_int(request, "limit"))
    entry = c.tasks.cached(tenant_id, "bottlenecks", scope, (period, limit))
    if entry is None:
        entry = (await run_in_threadpool(c.tasks.bottlenecks, tenant_id, scope, period,
                                         limit))[0]
    return _respond(request, c, entry)
