"""Operational routes: liveness, readiness, own metrics, status, rollups."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from vigil import __version__
from vigil.api.auth import PUBLIC, require
from vigil.api.deps import components
from vigil.api.errors import problem
from vigil.api.responses import json_response
from vigil.app import Components
from vigil.core.errors import InvalidInput, Problem, VigilError
from vigil.core.timeutil import now_ms, parse_time_ms
from vigil.storage.migrations import LATEST

router = APIRouter(tags=["operations"], dependencies=[require("admin")])
Deps = Annotated[Components, Depends(components)]
_STARTED = time.time()


@router.get("/health", summary="Liveness: the process answers", dependencies=[PUBLIC])
async def health() -> Response:
    return json_response({"status": "ok"})


@router.get("/ready", summary="Readiness: storage writable and migrations current",
            dependencies=[PUBLIC])
async def ready(c: Deps) -> Response:
    checks: dict[str, str] = {}
    try:
        await run_in_threadpool(c.store.check_writable)
        checks["storage"] = "ok"
    except VigilError as err:
        checks["storage"] = str(err)
    version = c.store.schema_version()
    checks["migrations"] = "ok" if version == LATEST else f"at {version}, need {LATEST}"
    if all(v == "ok" for v in checks.values()):
        return json_response({"status": "ready", "checks": checks})
    return problem(503, "not-ready", "; ".join(f"{k}: {v}" for k, v in checks.items()
                                              if v != "ok"))


# Public so a Prometheus scrape needs no credential; it holds counters and latencies of
# the service, no tenant data. Bind to a private interface if even that is too much.
@router.get("/metrics", summary="Vigil's own metrics in Prometheus text format",
            dependencies=[PUBLIC], responses={200: {"content": {"text/plain": {}}}})
async def own_metrics(c: Deps) -> Response:
    return Response(generate_latest(c.telemetry.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/status", summary="Version, uptime, store, live-stream and retention state")
async def status(c: Deps) -> Response:
    s = c.settings
    return json_response({
        "version": __version__,
        "uptime_s": round(time.time() - _STARTED, 3),
        "preset": s.preset,
        "data_dir": str(s.data_path.resolve()),
        "schema_version": c.store.schema_version(),
        "store": c.store.stats(),
        # the fan-out process (live WebSockets): null pid until the first client
        "stream": {"pid": c.stream.pid, **c.stream.stats},
        "retention_s": {"raw": s.retention_raw, "5m": s.retention_5m, "1h": s.retention_1h,
                        "1d": s.retention_1d},
    })


@router.get("/api/v1/rollups/status", summary="Rows, range and stale buckets per rollup tier")
async def rollup_status(c: Deps) -> Response:
    return json_response(await run_in_threadpool(c.store.rollup_status))


# Rebuilds rollups of every tenant: a superadmin operation.
@router.post("/api/v1/rollups/trigger", dependencies=[require("superadmin")],
             summary="Roll up stale buckets now; with start/end, rebuild that range from raw")
async def rollup_trigger(c: Deps, start: str | None = None, end: str | None = None) -> Response:
    marked = 0
    if (start is None) != (end is None):
        raise InvalidInput(Problem("give both start and end, or neither", field="start"))
    if start is not None and end is not None:
        lo, hi = parse_time_ms(start, "start"), parse_time_ms(end, "end")
        if lo >= hi:
            raise InvalidInput(Problem("start must be before end", field="start"))
        raw_keep_ms = int(c.settings.retention_raw * 1000)
        if raw_keep_ms:  # never rebuild from raw samples retention has already thinned
            day = 86_400_000
            lo = max(lo, -(-(now_ms() - raw_keep_ms) // day) * day)
        marked = await run_in_threadpool(c.store.recompute_rollups, lo, hi)
    rebuilt = await run_in_threadpool(c.store.refresh_rollups, now_ms())
    checkpointed = await run_in_threadpool(c.store.checkpoint)
    return json_response({"marked_buckets": marked, "rebuilt_buckets": rebuilt,
                          "checkpointed": checkpointed})
