"""Authentication, authorisation and rate limits for every route, on by default.

``guard`` is an app-wide dependency (``create_app``), so it runs before every FastAPI
route, including routes added later by code that never mentions security. It finds the
scope the route declares with ``require(...)`` (the last one wins, so a route overrides
its router's default) and, when a route declares nothing, demands ``admin``: forgetting
to declare a scope fails closed. ``PUBLIC`` is the explicit opt-out.

Per request: the client address's bucket, then the credential, then the credential's
bucket, then the scope, then an explicit tenant (superadmin only, ``X-Vigil-Tenant``).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.params import Depends as DependsParam
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from vigil.app import Components
from vigil.core.errors import Forbidden, RateLimited, Unauthorized
from vigil.security import apikeys
from vigil.security.scopes import Principal

log = logging.getLogger(__name__)

DEFAULT_SCOPE = "admin"
TENANT_HEADER = "x-vigil-tenant"
# Requests under these scopes spend the ingest budget; everything else the query budget.
INGEST_SCOPES = frozenset({"metrics:write", "tasks:write"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class ScopeRequirement:
    """What a route declares: the scope it needs (None = public) and whether its
    mutating requests go to the audit log. A marker: ``guard`` does the work."""

    def __init__(self, scope: str | None, audit: bool = True) -> None:
        self.scope, self.audit = scope, audit

    async def __call__(self) -> None:
        return None


def require(scope: str, *, audit: bool = True) -> DependsParam:
    """``dependencies=[require("metrics:read")]`` on a route or a router. ``audit=False``
    for writes that are data, not changes (sample ingestion), or reads sent as POST."""
    return DependsParam(ScopeRequirement(scope, audit))


PUBLIC = DependsParam(ScopeRequirement(None, audit=False))
_DEFAULT = ScopeRequirement(DEFAULT_SCOPE)
_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "JWT (HS256/RS256/ES256) or API key (vgl_...)"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


def declared(route: object) -> ScopeRequirement:
    if not isinstance(route, APIRoute):
        return _DEFAULT
    found = [d.dependency for d in route.dependencies
             if isinstance(d.dependency, ScopeRequirement)]
    return found[-1] if found else _DEFAULT


def client_address(request: Request | WebSocket) -> str:
    return request.client.host if request.client else "unknown"


def _spend(c: Components, key: str, budget: str) -> None:
    wait_s = c.rate_limiter.acquire(key, budget)
    if wait_s > 0:
        c.telemetry.rate_limited.labels(budget).inc()
        raise RateLimited(budget, wait_s)


async def guard(request: HTTPConnection) -> None:
    if request.scope["type"] != "http":
        return  # a WebSocket endpoint calls ``authenticate_websocket`` after accepting
    assert isinstance(request, Request)
    req = declared(request.scope.get("route"))
    request.state.audit = req.audit and request.method not in SAFE_METHODS
    if req.scope is None:
        return
    c: Components = request.app.state.components
    budget = "ingest" if req.scope in INGEST_SCOPES else "query"
    _spend(c, f"addr:{client_address(request)}", budget)
    principal = await authenticate(c, request.headers.get("authorization"),
                                   request.headers.get("x-api-key"))
    request.state.principal = principal  # set first: a refused tenant is audited too
    principal = _with_tenant(principal, request.headers.get(TENANT_HEADER))
    request.state.principal = principal
    if principal.credential != "open":
        _spend(c, principal.credential, budget)
    if not principal.allows(req.scope):
        raise Forbidden(f"role {principal.role!r} lacks the {req.scope!r} scope this route "
                        "needs", req.scope)


async def authenticate(c: Components, authorization: str | None,
                       api_key: str | None = None) -> Principal:
    if not c.auth.enabled:
        return c.auth.open_principal()
    try:
        if apikeys.PREFIX in (api_key or authorization or ""):  # a store lookup: off the loop
            return await run_in_threadpool(c.auth.authenticate, authorization, api_key)
        return c.auth.authenticate(authorization, api_key)  # a JWT: CPU only, tens of µs
    except Unauthorized:
        c.telemetry.auth_failures.inc()
        raise


def _with_tenant(p: Principal, named: str | None) -> Principal:
    """Only a superadmin may act on another tenant, and only by naming it."""
    if named is None or named == p.tenant:
        return p
    if not p.allows("superadmin"):
        raise Forbidden("only a superadmin may name another tenant", "superadmin")
    if not named.strip():
        raise Forbidden("X-Vigil-Tenant is empty", "superadmin")
    return dataclasses.replace(p, tenant=named)


def principal(request: Request) -> Principal:
    p: Principal | None = getattr(request.state, "principal", None)
    if p is None:
        raise AssertionError("BUG: a public route asked for the caller's principal")
    return p


async def authenticate_websocket(ws: WebSocket) -> Principal:
    """Authenticate a WebSocket's upgrade request the way HTTP requests are: the
    ``Authorization`` header or ``X-API-Key`` (a browser cannot set them: it sends a first
    message ``{"type": "auth", "token": "..."}`` instead, checked by ``token_tenant``).
    On failure the handshake is refused (403) and ``Unauthorized``/``Forbidden`` raised;
    the endpoint just returns. ``X-Vigil-Tenant`` works as on HTTP."""
    c: Components = ws.app.state.components
    try:
        p = await authenticate(c, ws.headers.get("authorization"), ws.headers.get("x-api-key"))
        return _with_tenant(p, ws.headers.get(TENANT_HEADER))
    except (Unauthorized, Forbidden) as err:
        await ws.close(code=1008, reason=str(err)[:120])
        raise


async def token_tenant(c: Components, token: str, tenant_header: str | None) -> Principal:
    """The principal of a token sent as a WebSocket's first message."""
    p = await authenticate(c, f"Bearer {token}", None)
    return _with_tenant(p, tenant_header)


def document(app: FastAPI) -> None:
    """Add the credential schemes to the OpenAPI document: every operation needs one,
    except the public ones."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = plain()
        doc.setdefault("components", {})["securitySchemes"] = _SCHEMES
        for path_item in doc.get("paths", {}).values():
            for op in path_item.values():
                if isinstance(op, dict) and "responses" in op:
                    op.setdefault("security", [{"bearer": []}, {"apiKey": []}])
        for route in iter_routes(app):
            if declared(route).scope is None:
                for method in route.methods or ():
                    op = doc["paths"].get(route.path, {}).get(method.lower())
                    if op is not None:
                        op["security"] = []
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def iter_routes(app: FastAPI) -> list[APIRoute]:
    """Every FastAPI route of the app, through included routers."""
    out: list[APIRoute] = []
    stack: list[object] = list(app.router.routes)
    while stack:
        r = stack.pop(0)
        if isinstance(r, APIRoute):
            out.append(r)
        sub = getattr(r, "original_router", None)
        if sub is not None:
            stack.extend(sub.routes)
    return out
