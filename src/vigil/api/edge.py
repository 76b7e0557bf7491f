"""What every response carries and every request is held to before routing: security
headers, the declared-size limit, CORS."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vigil.api.errors import problem

_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
# API responses are data, never pages: nothing may run or be framed. /docs loads the
# Swagger UI from a CDN, so it keeps the browser default.
_API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
_NO_STORE = (b"cache-control", b"no-store")


class SecurityHeaders:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app, self.max_body_bytes = app, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(_HEADERS)
                if api:
                    headers.append(_API_CSP)
                    if all(k.lower() != b"cache-control" for k, _ in headers):
                        headers.append(_NO_STORE)  # unless the route says how to cache it
                message["headers"] = headers
            await send(message)

        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            response = problem(413, "payload-too-large", f"body of {int(declared)} bytes "
                               f"exceeds the limit of {self.max_body_bytes}")
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


def install(app: FastAPI, cors_origins: str, max_body_bytes: int) -> None:
    origins = [o.strip() for o in cors_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=origins, allow_credentials=False,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["authorization", "content-type", "content-encoding", "x-api-key",
                           "x-vigil-tenant"],
            expose_headers=["retry-after"], max_age=600)
    app.add_middleware(SecurityHeaders, max_body_bytes=max_body_bytes)
