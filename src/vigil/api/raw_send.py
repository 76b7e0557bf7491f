"""``RawSend`` (outermost middleware) keeps the server's own ASGI ``send`` in the scope of
a WebSocket, before the framework wraps it, so that ``/api/v1/ws`` can find the
connection it hands to the fan-out process (``vigil.api.stream``)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

RAW_SEND = "vigil.raw_send"


class RawSend:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope[RAW_SEND] = send
        await self.app(scope, receive, send)
