"""API keys over HTTP (admin): create (the key is in this one response only), list,
revoke. Keys belong to the caller's tenant; nobody creates a key above their own role."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from vigil.api.auth import principal, require
from vigil.api.deps import tenant
from vigil.api.responses import json_response
from vigil.app import Components
from vigil.core.errors import Forbidden, InvalidInput, NotFound, Problem
from vigil.core.timeutil import now_ms, parse_duration_ms
from vigil.security import apikeys
from vigil.security.scopes import ROLES, scopes_for

router = APIRouter(tags=["security"], dependencies=[require("admin")])
Tenant = Annotated[str, Depends(tenant)]


class NewKeyBody(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: Literal["viewer", "editor", "admin", "superadmin"]
    scopes: list[str] | None = Field(default=None, max_length=32)
    expires_in: str | None = Field(default=None, max_length=32,
                                   description="Lifetime, e.g. 30d; omitted = never expires")


def _components(request: Request) -> Components:
    c: Components = request.app.state.components
    return c


@router.post("/api/v1/keys", status_code=201, summary="Create an API key (shown once)")
async def create_key(request: Request, body: NewKeyBody, tenant_id: Tenant) -> Response:
    caller = principal(request)
    if not scopes_for(body.role) <= caller.scopes:
        raise Forbidden(f"a {caller.role} cannot create a {body.role} key", body.role)
    now = now_ms()
    expires = now + parse_duration_ms(body.expires_in, "expires_in") if body.expires_in \
        else None
    requested = frozenset(body.scopes) if body.scopes is not None else None
    if requested is not None and not requested <= scopes_for(body.role):
        bad = ", ".join(sorted(requested - scopes_for(body.role)))
        raise InvalidInput(Problem(f"role {body.role!r} does not grant {bad}", field="scopes"))
    c = _components(request)
    new = await run_in_threadpool(
        lambda: apikeys.create(c.security, tenant=tenant_id, name=body.name, role=body.role,
                               now_ms=now, scopes=requested, expires_ms=expires))
    await run_in_threadpool(c.auth.refresh)
    return json_response({**new.record.public(), "key": new.secret}, status=201)


@router.get("/api/v1/keys", summary="API keys of the caller's tenant (never the keys)")
async def list_keys(request: Request, tenant_id: Tenant) -> Response:
    keys = await run_in_threadpool(_components(request).security.keys, tenant_id)
    return json_response({"keys": [k.public() for k in keys], "roles": list(ROLES)})


@router.delete("/api/v1/keys/{key_id}", status_code=204, summary="Revoke an API key")
async def revoke_key(request: Request, key_id: str, tenant_id: Tenant) -> Response:
    c = _components(request)
    done = await run_in_threadpool(c.security.revoke_key, tenant_id, key_id, now_ms())
    await run_in_threadpool(c.auth.refresh)
    if not done:
        raise NotFound(f"no live API key {key_id!r} in this tenant")
    return Response(status_code=204)
