"""Rate limits over HTTP, CORS, security headers, the body-size limit, start-up refusal,
WebSocket authentication, and the credential commands."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import WebSocket
from typer.testing import CliRunner
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.conftest import Server, make_settings
from tests.security.conftest import AUDIENCE, ISSUER, SECRET, bearer
from vigil.api.auth import authenticate_websocket
from vigil.api.server import create_app
from vigil.app import Components, build
from vigil.cli import app as cli
from vigil.core.errors import Forbidden, Unauthorized
from vigil.security.exposure import AuthNotConfigured, check_exposure
from vigil.security.tokens import JwtConfig, TokenVerifier


def _server(tmp_path: Path, **settings: object) -> Iterator[tuple[Server, httpx.Client]]:
    c = build(make_settings(tmp_path, jwt_secret=SECRET, jwt_audience=AUDIENCE,
                            jwt_issuer=ISSUER, **settings), start_maintenance=False)
    try:
        with Server(c) as s, httpx.Client(base_url=s.url, timeout=30) as h:
            yield s, h
    finally:
        c.close()


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[tuple[Server, httpx.Client]]:
    """A secure server whose query budget is 2 requests, refilling once per 1000 s."""
    yield from _server(tmp_path, rate_query_per_s=0.001, rate_query_burst=2,
                       rate_ingest_per_s=0.001, rate_ingest_burst=3)


def test_rate_limit_429_with_retry_after(limited: tuple[Server, httpx.Client]) -> None:
    _, h = limited
    viewer = bearer(role="viewer")
    assert [h.get("/api/v1/metrics", headers=viewer).status_code for _ in range(2)] == \
        [200, 200]
    r = h.get("/api/v1/metrics", headers=viewer)
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["type"] == "rate-limited" and "query" in r.json()["detail"]
    # The ingest budget is separate.
    sample = {"samples": [{"name": "cpu", "value": 1}]}
    assert h.post("/api/v1/metrics", json=sample, headers=bearer()).status_code == 204
    # Health probes are never limited.
    assert h.get("/health").status_code == 200


def test_client_address_is_limited_before_authentication(
        limited: tuple[Server, httpx.Client]) -> None:
    _, h = limited
    assert [h.get("/api/v1/metrics").status_code for _ in range(3)] == [401, 401, 429]


@pytest.fixture
def cors(tmp_path: Path) -> Iterator[tuple[Server, httpx.Client]]:
    """A secure server allowing one browser origin and 1 kB bodies."""
    yield from _server(tmp_path, cors_origins="https://app.example, https://b.example",
                       max_body_bytes=1000)


def test_cors_allow_list(cors: tuple[Server, httpx.Client]) -> None:
    _, h = cors
    pre = {"Access-Control-Request-Method": "GET",
           "Access-Control-Request-Headers": "authorization"}
    ok = h.options("/api/v1/metrics", headers={"Origin": "https://app.example", **pre})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "https://app.example"
    bad = h.options("/api/v1/metrics", headers={"Origin": "https://evil.example", **pre})
    assert "access-control-allow-origin" not in bad.headers
    r = h.get("/api/v1/metrics", headers={"Origin": "https://evil.example", **bearer()})
    assert "access-control-allow-origin" not in r.headers


def test_security_headers_and_body_limit(cors: tuple[Server, httpx.Client]) -> None:
    _, h = cors
    for path, api in (("/health", False), ("/api/v1/metrics", True)):
        r = h.get(path, headers=bearer())
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert ("content-security-policy" in r.headers) == api
    r = h.post("/api/v1/keys", content=b"{" + b" " * 2000 + b"}",
               headers={**bearer(role="admin"), "Content-Type": "application/json"})
    assert r.status_code == 413 and r.headers["x-content-type-options"] == "nosniff"


def test_no_cors_headers_without_an_allow_list(shttp: httpx.Client) -> None:
    r = shttp.get("/health", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in r.headers


# ---------------------------------------------------------------- start-up
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_without_auth_runs_open_and_says_so(host: str) -> None:
    assert "authentication is OFF" in (check_exposure(host, auth_enabled=False) or "")
    assert check_exposure(host, auth_enabled=True) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "vigil.example"])
def test_other_addresses_refuse_to_start_without_auth(host: str) -> None:
    with pytest.raises(AuthNotConfigured, match="VIGIL_JWT_SECRET"):
        check_exposure(host, auth_enabled=False)
    assert check_exposure(host, auth_enabled=True) is None


def test_serve_refuses_at_start_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIGIL_JWT_SECRET", raising=False)
    root = logging.getLogger()
    # serve installs a handler on the runner's stream; put the test's back afterwards.
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--data-dir",
                                      str(tmp_path)])
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0" in result.output


def test_open_mode_is_superadmin_of_the_default_tenant(components: Components) -> None:
    assert not components.auth.enabled
    p = components.auth.authenticate(None)
    assert (p.tenant, p.role, p.credential) == ("default", "superadmin", "open")


def test_unreadable_key_file_is_a_config_error(tmp_path: Path) -> None:
    from vigil.config import ConfigError

    with pytest.raises(ConfigError, match="JWT verification key"):
        build(make_settings(tmp_path, jwt_public_key_file=str(tmp_path / "missing.pem")),
              start_maintenance=False)


# ---------------------------------------------------------------- WebSocket
@pytest.fixture
def ws_url(secure_components: Components) -> Iterator[str]:
    """ws:// URL of a real server whose /ws-test authenticates the upgrade request the way
    the streaming endpoint does, then sends the principal's tenant and role."""
    app = create_app(secure_components, close_on_shutdown=False)

    @app.websocket("/ws-test")
    async def ws(websocket: WebSocket) -> None:
        try:
            p = await authenticate_websocket(websocket)
        except (Unauthorized, Forbidden):
            return
        if websocket.client_state.name == "CONNECTING":
            await websocket.accept()
        await websocket.send_json({"tenant": p.tenant, "role": p.role})
        await websocket.close()

    with Server(secure_components, app) as s:
        yield s.url.replace("http://", "ws://") + "/ws-test"


def test_websocket_header_auth(ws_url: str) -> None:
    with connect(ws_url, additional_headers=bearer()) as ws:
        assert json.loads(ws.recv(timeout=10)) == {"tenant": "acme", "role": "editor"}


def test_websocket_first_message_auth(secure_server: Server) -> None:
    """A browser cannot set headers: the stream takes the token as its first message,
    and what follows it waits for the check."""
    token = bearer(role="viewer")["Authorization"].split()[1]
    with connect(_stream_url(secure_server)) as ws:
        ws.send(json.dumps({"type": "auth", "token": token}))
        ws.send(json.dumps({"type": "ping", "data": {"n": 1}}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "pong", "data": {"n": 1}}


def _stream_url(server: Server) -> str:
    return server.url.replace("http://", "ws://") + "/api/v1/ws"


def test_websocket_tenant_header_needs_superadmin(ws_url: str) -> None:
    with connect(ws_url, additional_headers={**bearer(role="superadmin"),
                                             "X-Vigil-Tenant": "other"}) as ws:
        assert json.loads(ws.recv(timeout=10))["tenant"] == "other"
    # A credential in the upgrade request is checked before accepting: refused handshake.
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url, additional_headers={**bearer(role="admin"), "X-Vigil-Tenant": "o"})
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        connect(ws_url, additional_headers=bearer(ttl_s=-10))


@pytest.mark.parametrize("first", ['{"type": "auth", "token": "nope"}', "hello",
                                   '{"type": "subscribe"}'])
def test_websocket_bad_auth_closes_1008(secure_server: Server, first: str) -> None:
    with connect(_stream_url(secure_server)) as ws:
        ws.send(first)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


# ---------------------------------------------------------------- CLI
def test_cli_token_verifies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_JWT_SECRET", SECRET)
    result = CliRunner().invoke(cli, ["token", "--tenant", "t1", "--role", "admin",
                                      "--ttl", "2h"])
    assert result.exit_code == 0, result.output
    p = TokenVerifier(JwtConfig(secret=SECRET)).verify(result.stdout.strip())
    assert (p.tenant, p.role) == ("t1", "admin")


@pytest.mark.parametrize(("args", "message"), [
    (["--role", "root"], "unknown role"),
    (["--role", "viewer", "--ttl", "soon"], "bad duration"),
])
def test_cli_token_errors(monkeypatch: pytest.MonkeyPatch, args: list[str],
                          message: str) -> None:
    monkeypatch.setenv("VIGIL_JWT_SECRET", SECRET)
    result = CliRunner().invoke(cli, ["token", *args])
    assert result.exit_code == 2 and message in result.output


def test_cli_token_needs_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIGIL_JWT_SECRET", raising=False)
    result = CliRunner().invoke(cli, ["token", "--role", "viewer"])
    assert result.exit_code == 2 and "VIGIL_JWT_SECRET" in result.output


def test_cli_keys_create_list_revoke(tmp_path: Path) -> None:
    run = CliRunner().invoke
    d = ["--data-dir", str(tmp_path)]
    created = run(cli, ["keys", "create", "--tenant", "acme", "--role", "editor", "--name",
                        "telegraf", "--expires", "30d", *d])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("vgl_")
    key_id = key.split("_")[1]
    listed = run(cli, ["keys", "list", "--tenant", "acme", *d])
    assert key_id in listed.output and key not in listed.output
    assert key_id not in run(cli, ["keys", "list", "--tenant", "other", *d]).output
    assert run(cli, ["keys", "revoke", key_id, "--tenant", "other", *d]).exit_code == 1
    assert run(cli, ["keys", "revoke", key_id, "--tenant", "acme", *d]).exit_code == 0
    c = build(make_settings(tmp_path), start_maintenance=False)
    try:
        assert c.auth.enabled is False  # the only key is revoked
        assert [e.action for e in c.security.audit("acme")] == ["revoke", "create"]
    finally:
        c.close()


@pytest.mark.parametrize(("args", "message"), [
    (["--role", "root", "--name", "x"], "unknown role"),
    (["--role", "viewer", "--name", "x", "--scope", "admin"], "does not grant"),
    (["--role", "viewer", "--name", "x", "--expires", "later"], "bad duration"),
])
def test_cli_keys_create_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["keys", "create", *args, "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and message in result.output


def test_cli_url_commands_send_the_client_token(
        secure_server: Server, shttp: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    from vigil.client import ClientError

    sample = {"samples": [{"name": "cpu", "value": 2.5}]}
    assert shttp.post("/api/v1/metrics", json=sample, headers=bearer()).status_code == 204
    monkeypatch.delenv("VIGIL_CLIENT_TOKEN", raising=False)
    refused = CliRunner().invoke(cli, ["query", "cpu", "--url", secure_server.url])
    assert isinstance(refused.exception, ClientError) and refused.exception.status == 401
    monkeypatch.setenv("VIGIL_CLIENT_TOKEN", bearer(role="viewer")["Authorization"][7:])
    ok = CliRunner().invoke(cli, ["query", "cpu", "--url", secure_server.url])
    assert ok.exit_code == 0, ok.output
    assert "2.5" in ok.output
