"""``/api/v1/ws``: the live stream (protocol in docs/streaming.md).

The server only opens the socket: it checks a credential in the upgrade request (as HTTP
requests are checked), accepts, and hands the socket to the fan-out process
(``vigil.streaming.relay``), which speaks the protocol from then on — including a first
``auth`` message, whose token it sends back here to be checked. Reading is paused before
the handshake's answer, so every byte the client sends after it reaches that process.
"""

from __future__ import annotations

import asyncio
import functools
import os
from typing import Any

from fastapi import APIRouter, WebSocket

from vigil.api.auth import PUBLIC, TENANT_HEADER, authenticate_websocket, token_tenant
from vigil.api.raw_send import RAW_SEND
from vigil.app import Components
from vigil.core.errors import Forbidden, Unauthorized
from vigil.security.scopes import Principal

# The socket authenticates itself (header or first message); HTTP's guard stands aside.
router = APIRouter(dependencies=[PUBLIC])
SCOPE = "metrics:read"
_FLUSH_TIMEOUT_S = 5.0


@router.websocket("/api/v1/ws")
async def stream(ws: WebSocket) -> None:
    c: Components = ws.app.state.components
    transport, conn = _connection(ws)
    if transport is None:
        await ws.close(code=1011, reason="the live stream needs `vigil serve` (uvicorn with "
                                         "its websockets-sansio protocol)")
        return
    tenant: str | None = None
    if not c.auth.enabled or _has_credential(ws):
        try:
            principal = await authenticate_websocket(ws)  # closes the socket if refused
        except (Unauthorized, Forbidden):
            return
        try:
            tenant = _scoped(principal)
        except Forbidden as err:
            await ws.close(code=1008, reason=str(err)[:120])
            return
    transport.pause_reading()  # what the client sends next is the fan-out process's
    await ws.accept()
    deadline = asyncio.get_running_loop().time() + _FLUSH_TIMEOUT_S
    while transport.get_write_buffer_size():  # the handshake's answer, out first
        if asyncio.get_running_loop().time() > deadline:
            transport.abort()
            return
        await asyncio.sleep(0.005)
    fd = os.dup(transport.get_extra_info("socket").fileno())
    c.stream.handoff(fd, tenant, ws.headers.get(TENANT_HEADER), _deflate(conn),
                     functools.partial(_verify, c))
    transport.abort()  # this process's copy only: the socket lives on in the other


def _scoped(p: Principal) -> str:
    """The tenant of ``p``, which must hold the stream's scope."""
    if not p.allows(SCOPE):
        raise Forbidden(f"the {SCOPE!r} scope is needed", SCOPE)
    return p.tenant


async def _verify(c: Components, token: str, tenant_header: str | None) -> str:
    """A first-message token, checked for the fan-out process."""
    return _scoped(await token_tenant(c, token, tenant_header))


def _has_credential(ws: WebSocket) -> bool:
    return bool(ws.headers.get("authorization") or ws.headers.get("x-api-key"))


def _connection(ws: WebSocket) -> tuple[Any, Any]:
    """The connection's transport and websockets ``ServerProtocol`` under uvicorn's
    websockets-sansio protocol (the server's ASGI ``send`` is a bound method of it);
    (None, None) under another server."""
    proto = getattr(ws.scope.get(RAW_SEND), "__self__", None)
    conn, transport = getattr(proto, "conn", None), getattr(proto, "transport", None)
    try:
        from websockets.server import ServerProtocol
    except ImportError:
        return None, None
    if not isinstance(conn, ServerProtocol) or transport is None:
        return None, None
    return transport, conn


def _deflate(conn: Any) -> dict[str, Any] | None:
    """The permessage-deflate parameters the handshake negotiated, if any."""
    for ext in conn.extensions:
        if ext.name == "permessage-deflate":
            return {k: getattr(ext, k) for k in (
                "remote_no_context_takeover", "local_no_context_takeover",
                "remote_max_window_bits", "local_max_window_bits")}
    return None
