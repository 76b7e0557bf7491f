"""Ingestion routes: InfluxDB line protocol (v1 and v2 paths) and JSON samples."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from vigil.api.auth import require
from vigil.api.deps import check_content_type, components, read_body, read_json, tenant
from vigil.app import Components
from vigil.core.errors import InvalidInput
from vigil.core.timeutil import now_ms
from vigil.ingest.json_samples import parse_document
from vigil.ingest.line_protocol import Precision, parse_line_protocol

# Samples are data, not changes: counted in /metrics, not written to the audit log.
router = APIRouter(tags=["ingest"], dependencies=[require("metrics:write", audit=False)])

# What Telegraf and curl --data-binary send; InfluxDB itself ignores the header.
_LINE_PROTOCOL_TYPES = ("text/plain", "application/octet-stream",
                        "application/x-www-form-urlencoded")
_BODY = {"requestBody": {"content": {"text/plain": {"schema": {"type": "string"}}},
                         "required": True}}
_JSON_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["samples"], "properties": {"samples": {
        "type": "array", "items": {"type": "object", "required": ["name", "value"],
                                   "properties": {
                                       "name": {"type": "string"}, "value": {"type": "number"},
                                       "timestamp": {"oneOf": [{"type": "integer"},
                                                               {"type": "string"}]},
                                       "labels": {"type": "object",
                                                  "additionalProperties": {"type": "string"}},
                                       "type": {"type": "string"},
                                       "category": {"type": "string"}}}}}}}}}}
_RESPONSES: dict[int | str, dict[str, str]] = {
    204: {"description": "Committed: every sample is durable"},
    400: {"description": "Rejected whole; the problem body names the bad lines/fields"},
    413: {"description": "Body too large"}, 415: {"description": "Wrong Content-Type"},
    422: {"description": "Would exceed the tenant's series limit"},
}


async def _write_line_protocol(request: Request, c: Components, tenant_id: str,
                               precision: Precision) -> Response:
    check_content_type(request, _LINE_PROTOCOL_TYPES, missing_ok=True)
    body = await read_body(request, c.settings.max_body_bytes)
    try:
        batch = await run_in_threadpool(
            parse_line_protocol, body, precision, limits=c.limits, now_ms=now_ms())
    except InvalidInput:
        c.telemetry.batches_rejected.labels("influx", "invalid").inc()
        raise
    await c.pipeline.write(tenant_id, batch, "influx")
    return Response(status_code=204)


@router.post("/write", status_code=204, openapi_extra=_BODY, responses=_RESPONSES,
             summary="Write InfluxDB line protocol (v1 path, as Telegraf's influxdb output)")
async def write_v1(
    request: Request,
    c: Annotated[Components, Depends(components)],
    tenant_id: Annotated[str, Depends(tenant)],
    precision: Precision = "ns",
    db: str | None = None,
    rp: str | None = None,
) -> Response:
    """``db`` and ``rp`` are accepted for compatibility and ignored."""
    return await _write_line_protocol(request, c, tenant_id, precision)


@router.post("/api/v2/write", status_code=204, openapi_extra=_BODY, responses=_RESPONSES,
             summary="Write InfluxDB line protocol (v2 path, as Telegraf's influxdb_v2 output)")
async def write_v2(
    request: Request,
    c: Annotated[Components, Depends(components)],
    tenant_id: Annotated[str, Depends(tenant)],
    precision: Precision = "ns",
    bucket: str | None = None,
    org: str | None = None,
) -> Response:
    """``bucket`` and ``org`` are accepted for compatibility and ignored."""
    return await _write_line_protocol(request, c, tenant_id, precision)


@router.post("/api/v1/metrics", status_code=204, openapi_extra=_JSON_BODY,
             responses=_RESPONSES, summary="Write samples as JSON")
async def write_json(
    request: Request,
    c: Annotated[Components, Depends(components)],
    tenant_id: Annotated[str, Depends(tenant)],
) -> Response:
    doc = await read_json(request, c, "json")
    try:
        batch = parse_document(doc, limits=c.limits, now_ms=now_ms())
    except InvalidInput:
        c.telemetry.batches_rejected.labels("json", "invalid").inc()
        raise
    await c.pipeline.write(tenant_id, batch, "json")
    return Response(status_code=204)
