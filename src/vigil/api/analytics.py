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
