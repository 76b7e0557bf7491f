"""Fixtures for security tests: a server with HS256 auth on, and tokens for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, make_settings
from vigil.app import Components, build
from vigil.security import tokens

SECRET = "s3cret-for-tests-only-0123456789abcdef"
AUDIENCE = "vigil-tests"
ISSUER = "https://issuer.test"

TokenFor = Callable[..., dict[str, str]]


@pytest.fixture
def secure_components(tmp_path: Path) -> Iterator[Components]:
    """Components with HS256 auth (secret, issuer, audience) configured."""
    c = build(make_settings(tmp_path, retention_raw=0, jwt_secret=SECRET, jwt_audience=AUDIENCE,
                            jwt_issuer=ISSUER), start_maintenance=False)
    yield c
    c.close()


@pytest.fixture
def secure_server(secure_components: Components) -> Iterator[Server]:
    """The real server, bound to loopback, with authentication on."""
    with Server(secure_components) as s:
        yield s


@pytest.fixture
def shttp(secure_server: Server) -> Iterator[httpx.Client]:
    """An HTTP client of ``secure_server`` that sends no credential by itself."""
    with httpx.Client(base_url=secure_server.url, timeout=30) as client:
        yield client


def bearer(tenant: str = "acme", role: str = "editor", *, ttl_s: float = 300.0,
           issuer: str = ISSUER, audience: str = AUDIENCE, secret: str = SECRET) -> dict[str, str]:
    """Authorization header with a token for the secure server (valid by default)."""
    token = tokens.issue(secret, subject=f"{role}@{tenant}", tenant=tenant, role=role,
                         ttl_s=ttl_s, issuer=issuer, audience=audience)
    return {"Authorization": f"Bearer {token}"}
