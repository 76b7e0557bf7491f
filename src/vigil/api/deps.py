"""Request-scoped values shared by the routers."""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from fastapi import Request

from vigil.app import Components
from vigil.core.errors import InvalidInput, PayloadTooLarge, Problem, UnsupportedMediaType
from vigil.security.scopes import Principal


# The dependencies are coroutines, though they never wait: FastAPI runs a plain function
# dependency in the thread pool, and two such hops per request cost more than a cached
# query's answer.
async def components(request: Request) -> Components:
    c: Components = request.app.state.components
    return c


async def principal(request: Request) -> Principal:
    """Who is asking (``api.auth.guard`` verified it)."""
    return _principal(request)


async def tenant(request: Request) -> str:
    """The tenant of the request: the verified credential's (``api.auth.guard``), or the
    one a superadmin named; never the body. Open mode: the default tenant."""
    return _principal(request).tenant


def _principal(request: Request) -> Principal:
    p: Principal | None = getattr(request.state, "principal", None)
    if p is None:
        raise AssertionError("BUG: principal asked for on a public route")
    return p


def check_content_type(request: Request, allowed: tuple[str, ...], missing_ok: bool) -> None:
    raw = request.headers.get("content-type")
    if raw is None:
        if missing_ok:
            return
        raise UnsupportedMediaType(f"Content-Type is required; send {allowed[0]}")
    media = raw.split(";", 1)[0].strip().lower()
    if media not in allowed and not (media.endswith("+json") and "application/json" in allowed):
        raise UnsupportedMediaType(
            f"Content-Type {media!r} is not accepted here; send {' or '.join(allowed)}")


async def read_json(request: Request, c: Components, protocol: str) -> Any:
    """A JSON body (``application/json``, gzip allowed, within ``max_body_bytes``); bad
    JSON is a 400 on ``body`` and counted as a rejected batch of ``protocol``."""
    check_content_type(request, ("application/json",), missing_ok=False)
    body = await read_body(request, c.settings.max_body_bytes)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        c.telemetry.batches_rejected.labels(protocol, "invalid").inc()
        raise InvalidInput(Problem(f"body is not valid JSON: {err}", field="body")) from err


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, gunzipped if ``Content-Encoding: gzip``; 413 past ``max_bytes`` either way."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the limit of {max_bytes}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"body exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported; use gzip")
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(body, max_bytes + 1)
    except zlib.error as err:
        raise InvalidInput(Problem(f"body is not valid gzip: {err}", field="body")) from err
    if len(out) > max_bytes or d.unconsumed_tail:
        raise PayloadTooLarge(f"decompressed body exceeds the limit of {max_bytes} bytes")
    if not d.eof:
        raise InvalidInput(Problem("gzip body is truncated", field="body"))
    return out

