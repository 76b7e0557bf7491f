"""The audit log: every mutating request recorded, whatever route it hits.

``AuditMiddleware`` wraps the whole app, so a route added later is audited with no code of
its own (opt out with ``require(..., audit=False)``, for sample ingestion). The entry is
written when the response starts, so a client that saw the response can read its entry.
Requests refused for lack of a credential (401) have no tenant and are counted in
``vigil_auth_failures`` instead.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vigil.api.auth import require
from vigil.api.deps import tenant
from vigil.api.responses import json_response
from vigil.app import Components
from vigil.core.errors import VigilError
from vigil.core.timeutil import now_ms, parse_time_ms
from vigil.security.scopes import Principal
from vigil.storage.security_store import AuditEntry

log = logging.getLogger(__name__)
router = APIRouter(tags=["security"], dependencies=[require("admin")])


def entry_for(scope: Scope, status: int) -> AuditEntry | None:
    state = scope.get("state") or {}
    p: Principal | None = state.get("principal")
    if p is None or not state.get("audit", False):
        return None
    route = scope.get("route")
    template = str(getattr(route, "path", None) or scope["path"])
    client = scope.get("client")
    return AuditEntry(now_ms(), p.tenant, p.credential, p.role, scope["method"], template,
                      scope["path"], status, client[0] if client else "unknown")


class AuditMiddleware:
    def __init__(self, app: ASGIApp, components: Components) -> None:
        self.app, self.c = app, components

    async def _record(self, scope: Scope, status: int) -> None:
        entry = entry_for(scope, status)
        if entry is None:
            return
        try:
            await run_in_threadpool(self.c.security.append_audit, entry.tenant, entry)
        except VigilError:  # the change happened; a lost entry must be loud, not a 500
            log.error("audit entry not recorded", extra={"route": entry.route,
                                                          "status": entry.status})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        recorded = False

        async def send_recorded(message: Message) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start" and not recorded:
                recorded = True
                await self._record(scope, int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, send_recorded)
        except BaseException:
            if not recorded:
                recorded = True
                await self._record(scope, 500)
            raise


@router.get("/api/v1/audit", summary="Audit log of the caller's tenant, newest first (admin)")
async def audit_log(
    request: Request,
    tenant_id: Annotated[str, Depends(tenant)],
    since: str | None = None,
    until: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> Response:
    c: Components = request.app.state.components
    lo = parse_time_ms(since, "since") if since is not None else None
    hi = parse_time_ms(until, "until") if until is not None else None
    entries = await run_in_threadpool(c.security.audit, tenant_id, since_ms=lo, until_ms=hi,
                                      limit=limit)
    return json_response({"tenant": tenant_id, "entries": [e.as_dict() for e in entries]})
