"""``/api/v1/ws``: the live stream (protocol in docs/streaming.md).

The socket authenticates as HTTP requests do (``authenticate_websocket``); everything it
receives is confined to the credential's tenant. A bad message gets an ``error`` naming the
field and the connection stays up.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from vigil.api.auth import PUBLIC, authenticate_websocket
from vigil.api.ws_outbox import outbox_for
from vigil.app import Components
from vigil.core.errors import Forbidden, InvalidInput, Problem, Unauthorized
from vigil.core.matchers import Matcher
from vigil.streaming.hub import Client, Hub, Selector

# The socket authenticates itself (header or first message); HTTP's guard stands aside.
router = APIRouter(dependencies=[PUBLIC])
_SCOPE = "metrics:read"
_CLOSE_TIMEOUT_S = 5.0


def _bad(field: str, reason: str) -> InvalidInput:
    return InvalidInput(Problem(reason, field=field))


def _selectors(data: Any) -> list[Selector]:
    metrics = data.get("metrics") if isinstance(data, dict) else None
    if not isinstance(metrics, list) or not metrics:
        raise _bad("data.metrics", "a non-empty list of {name, match}")
    out: list[Selector] = []
    for i, m in enumerate(metrics):
        where = f"data.metrics[{i}]"
        if not isinstance(m, dict) or not isinstance(m.get("name"), str) or not m["name"]:
            raise _bad(f"{where}.name", "required: a metric name")
        match = m.get("match", [])
        if not isinstance(match, list):
            raise _bad(f"{where}.match", "a list of label matchers")
        out.append((m["name"], tuple(Matcher.parse(str(x), f"{where}.match[{j}]")
                                     for j, x in enumerate(match))))
    return out


def _every(data: Any, default: float) -> float:
    v = data.get("updateFrequency", default) if isinstance(data, dict) else default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.1 <= v <= 60:
        raise _bad("data.updateFrequency", "seconds from 0.1 to 60")
    return float(v)


def _handle(hub: Hub, c: Client, msg: Any) -> dict[str, Any] | None:
    """One client message; the reply, if any."""
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise _bad("type", 'every message is {"type": ..., "data": {...}}')
    kind, data = msg["type"], msg.get("data") or {}
    if kind == "subscribe":
        selectors, every = _selectors(data), _every(data, 1.0)
        sid = hub.subscribe(c, selectors, every)
        return {"type": "subscribed", "data": {"id": sid, "metrics": data["metrics"],
                                               "updateFrequency": every}}
    if kind == "unsubscribe":
        which = data.get("id") if isinstance(data, dict) else None
        ids = list(c.subs) if which is None else [which]
        if which is not None and which not in c.subs:
            raise _bad("data.id", f"no subscription {which!r}")
        for x in ids:
            hub.unsubscribe(c, str(x))
        return {"type": "unsubscribed", "data": {"ids": ids}}
    if kind in ("subscribe_alerts", "unsubscribe_alerts"):
        c.alerts = kind == "subscribe_alerts"
        return {"type": "subscribed_alerts" if c.alerts else "unsubscribed_alerts", "data": {}}
    if kind == "getDashboardStream":
        hub.watch_dashboard(c, _every(data, 5.0))
        return None
    if kind == "stopDashboardStream":
        hub.watch_dashboard(c, 0.0)
        return None
    if kind == "ping":
        return {"type": "pong", "data": data}
    raise _bad("type", f"unknown message type {kind!r}; one of subscribe, unsubscribe, "
               "subscribe_alerts, unsubscribe_alerts, getDashboardStream, "
               "stopDashboardStream, ping")


@router.websocket("/api/v1/ws")
async def stream(ws: WebSocket) -> None:
    c: Components = ws.app.state.components
    try:
        principal = await authenticate_websocket(ws)
    except (Unauthorized, Forbidden):
        return
    if not principal.allows(_SCOPE):
        await ws.close(code=1008, reason=f"the {_SCOPE!r} scope is needed")
        return
    if ws.client_state.name == "CONNECTING":
        await ws.accept()
    hub = c.hub
    outbox = outbox_for(ws, c.settings.stream_client_buffer_bytes)
    client = hub.connect(principal.tenant, outbox)

    async def closer() -> None:
        await client.closed.wait()
        try:
            await asyncio.wait_for(
                ws.close(code=1008, reason=(client.closed_reason or "closed")[:120]),
                _CLOSE_TIMEOUT_S)
        except TimeoutError:
            outbox.abort()  # it does not read: not even the close frame gets through

    tasks = [asyncio.create_task(outbox.run()), asyncio.create_task(closer())]
    try:
        while True:
            raw = await ws.receive_text()
            try:
                reply = _handle(hub, client, orjson.loads(raw))
            except orjson.JSONDecodeError as err:
                reply = {"type": "error", "data": {"message": f"not JSON: {err}",
                                                   "field": "message"}}
            except InvalidInput as err:
                p = err.problems[0]
                reply = {"type": "error", "data": {"message": p.reason, "field": p.field}}
            if reply is not None:
                hub.send(client, reply)
    except WebSocketDisconnect:
        pass
    finally:
        hub.disconnect(client)
        for t in tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
