"""The one place that maps Vigil errors to HTTP status codes and problem bodies.

Bodies follow RFC 9457 (problem+json) with an ``errors`` list naming line/field/reason.
"""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from vigil.api.responses import json_response
from vigil.config import ConfigError
from vigil.core.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Problem,
    RateLimited,
    SeriesLimitExceeded,
    StoreUnavailable,
    Unauthorized,
    UnsupportedMediaType,
    VigilError,
)

log = logging.getLogger(__name__)

_STATUS: tuple[tuple[type[VigilError], int, str], ...] = (
    (InvalidInput, 400, "invalid-input"),
    (ConfigError, 400, "invalid-input"),
    (NotFound, 404, "not-found"),
    (Conflict, 409, "conflict"),
    (PayloadTooLarge, 413, "payload-too-large"),
    (UnsupportedMediaType, 415, "unsupported-media-type"),
    (SeriesLimitExceeded, 422, "series-limit"),
    (StoreUnavailable, 503, "store-unavailable"),
    (Unauthorized, 401, "unauthorized"),
    (Forbidden, 403, "forbidden"),
    (RateLimited, 429, "rate-limited"),
)


def problem(status: int, kind: str, detail: str, errors: list[Problem] | None = None) -> Response:
    body: dict[str, object] = {"type": kind, "title": kind.replace("-", " "), "status": status,
                               "detail": detail}
    if errors:
        body["errors"] = [p.as_dict() for p in errors]
    return json_response(body, status=status, media_type="application/problem+json")


def _vigil_error(_: Request, exc: Exception) -> Response:
    for cls, status, kind in _STATUS:
        if isinstance(exc, cls):
            errors = exc.problems if isinstance(exc, InvalidInput) else None
            response = problem(status, kind, str(exc), errors)
            if isinstance(exc, Unauthorized):
                response.headers["WWW-Authenticate"] = 'Bearer realm="vigil"'
            elif isinstance(exc, RateLimited):
                response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
            return response
    log.error("unmapped error", exc_info=exc)
    return problem(500, "internal", "internal error")


def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        Problem(str(e.get("msg", "invalid")), field=".".join(str(p) for p in e.get("loc", ())))
        for e in exc.errors()
    ]
    return problem(400, "invalid-input", str(errors[0].field) + ": " + errors[0].reason, errors)


def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return problem(exc.status_code, "http", str(exc.detail))


def install(app: FastAPI) -> None:
    app.add_exception_handler(VigilError, _vigil_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
