"""How the hub's messages reach a WebSocket client (``vigil.streaming.hub.Outbox``).

Fan-out is the cost that grows with clients: 10,000 dashboards updated once a second are
10,000 messages a second. Through ASGI each one is a task wake-up and a chain of awaits
(tens of µs); written as a ready-made frame to the connection's transport it is a few µs.
So when the server is uvicorn with its websockets (sans-I/O) protocol and no extension
was negotiated (no permessage-deflate, whose per-connection state every frame would have
to pass through), ``DirectOutbox`` writes frames to the transport itself; otherwise
``QueuedOutbox`` sends through ASGI from a task of its own. Both bound a client's unsent
bytes: a full outbox refuses a message and the hub coalesces.

``RawSend`` (outermost middleware) keeps the server's own ASGI ``send`` in the scope,
before the framework wraps it, so that the endpoint can find the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import Any, Protocol

from fastapi import WebSocket
from starlette.types import ASGIApp, Receive, Scope, Send

RAW_SEND = "vigil.raw_send"


class Transport(Protocol):
    """What is used of the connection's transport (asyncio's, or uvloop's, which does not
    derive from asyncio's classes)."""

    def write(self, data: bytes) -> None: ...
    def get_write_buffer_size(self) -> int: ...
    def is_closing(self) -> bool: ...
    def abort(self) -> None: ...


class RawSend:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope[RAW_SEND] = send
        await self.app(scope, receive, send)


class DirectOutbox:
    """Text frames written straight to the connection's transport (on the event loop, as
    uvicorn writes its own frames, so frames never interleave)."""

    def __init__(self, transport: Transport, max_bytes: int) -> None:
        self._transport, self._max = transport, max_bytes

    def full(self) -> bool:
        return self._transport.get_write_buffer_size() > self._max

    def put(self, payload: bytes) -> bool:
        if self._transport.is_closing():
            return True  # the client is leaving: the endpoint disconnects it
        if self.full():
            return False
        self._transport.write(text_frame(payload))
        return True

    async def run(self) -> None:
        """Nothing to pump: ``put`` writes."""

    def abort(self) -> None:
        self._transport.abort()


def text_frame(payload: bytes) -> bytes:
    """A server's text frame: final, unmasked, no extension (RFC 6455 §5.2). Written here
    rather than with websockets' ``Frame.serialize`` (generic: 3.3 µs against 0.7 µs a
    frame), since this runs once per client and update."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x81, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 127, n)
    return head + payload


class QueuedOutbox:
    """Messages queued for a task that sends them through ASGI."""

    def __init__(self, ws: WebSocket, max_bytes: int) -> None:
        self._ws, self._max = ws, max_bytes
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._bytes = 0

    def full(self) -> bool:
        return self._bytes > self._max

    def put(self, payload: bytes) -> bool:
        if self.full():
            return False
        self._queue.put_nowait(payload)
        self._bytes += len(payload)
        return True

    async def run(self) -> None:
        while True:
            payload = await self._queue.get()
            self._bytes -= len(payload)
            await self._ws.send_text(payload.decode())

    def abort(self) -> None:
        """Nothing to do: the server's keep-alive pings drop a client that stopped reading."""


_TRANSPORT = ("write", "get_write_buffer_size", "is_closing", "abort")


def outbox_for(ws: WebSocket, max_bytes: int) -> DirectOutbox | QueuedOutbox:
    transport = _direct_transport(ws.scope.get(RAW_SEND))
    if transport is not None:
        return DirectOutbox(transport, max_bytes)
    return QueuedOutbox(ws, max_bytes)


def _direct_transport(send: Any) -> Transport | None:
    """The transport under uvicorn's websockets protocol (whose ASGI ``send`` is a bound
    method of the protocol object) if no extension was negotiated; else None."""
    proto = getattr(send, "__self__", None)
    conn = getattr(proto, "conn", None)
    transport = getattr(proto, "transport", None)
    with contextlib.suppress(ImportError):
        from websockets.server import ServerProtocol

        if (isinstance(conn, ServerProtocol) and not conn.extensions
                and all(callable(getattr(transport, m, None)) for m in _TRANSPORT)):
            return transport
    return None
