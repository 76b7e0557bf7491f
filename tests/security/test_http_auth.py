"""Authentication, roles, tenancy and audit over real HTTP (a uvicorn server on loopback
with HS256 auth configured)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest

from tests.conftest import Server
from tests.security.conftest import AUDIENCE, ISSUER, SECRET, bearer
from vigil.api.auth import declared, iter_routes
from vigil.api.server import create_app
from vigil.app import Components
from vigil.security import apikeys
from vigil.security.scopes import ROLE_SCOPES, ROLES

SAMPLE = {"samples": [{"name": "cpu", "value": 1.5, "labels": {"host": "a"}}]}


def _key(c: Components, tenant: str = "acme", role: str = "editor",
         expires_ms: int | None = None) -> apikeys.NewKey:
    now = int(time.time() * 1000)
    return apikeys.create(c.security, tenant=tenant, name="agent", role=role, now_ms=now,
                          expires_ms=expires_ms)


# ---------------------------------------------------------------- credential paths
def test_valid_token_passes(shttp: httpx.Client) -> None:
    assert shttp.get("/api/v1/metrics", headers=bearer()).status_code == 200


@pytest.mark.parametrize(("headers", "reason"), [
    ({}, "credentials required"),
    ({"Authorization": "Basic dXNlcjpwdw=="}, "Bearer"),
    ({"Authorization": "Bearer"}, "Bearer"),
    ({"ttl_s": -60}, "expired"),
    ({"secret": "x" * 40}, "signature"),
    ({"audience": "other"}, "audience"),
    ({"issuer": "https://other.test"}, "issuer"),
    ({"Authorization": "Bearer not.a.token"}, "malformed"),
    ({"Authorization": "Bearer vgl_000000000000_" + "A" * 43}, "not valid"),
    ({"X-API-Key": "vgl_short"}, "malformed"),
])
def test_bad_credentials_get_401_with_the_reason(shttp: httpx.Client,
                                                 headers: dict[str, Any], reason: str) -> None:
    if not any(k[0].isupper() for k in headers) and headers:  # token options, built now
        headers = bearer(**headers)
    r = shttp.get("/api/v1/metrics", headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.headers["content-type"] == "application/problem+json"
    assert reason in r.json()["detail"]


def test_api_key_valid_then_revoked(shttp: httpx.Client,
                                    secure_components: Components) -> None:
    new = _key(secure_components)
    for h in ({"Authorization": f"Bearer {new.secret}"}, {"X-API-Key": new.secret},
              {"Authorization": f"Token {new.secret}"}):
        assert shttp.post("/api/v1/metrics", json=SAMPLE, headers=h).status_code == 204
    assert shttp.delete(f"/api/v1/keys/{new.record.id}",
                        headers=bearer("acme", "admin")).status_code == 204
    r = shttp.get("/api/v1/metrics", headers={"X-API-Key": new.secret})
    assert r.status_code == 401
    assert "revoked" in r.json()["detail"]


def test_api_key_expired_and_tampered(shttp: httpx.Client,
                                      secure_components: Components) -> None:
    new = _key(secure_components, expires_ms=int(time.time() * 1000) + 1)
    time.sleep(0.01)
    r = shttp.get("/api/v1/metrics", headers={"X-API-Key": new.secret})
    assert (r.status_code, "expired" in r.json()["detail"]) == (401, True)
    live = _key(secure_components)
    tampered = live.secret[:-1] + ("A" if live.secret[-1] != "A" else "B")
    assert shttp.get("/api/v1/metrics", headers={"X-API-Key": tampered}).status_code == 401


def test_keys_are_stored_hashed(secure_components: Components) -> None:
    new = _key(secure_components)
    [(stored,)] = secure_components.store.connection().execute(
        "SELECT key_hash FROM api_keys").fetchall()
    assert new.secret not in stored and stored == apikeys.digest(new.secret)


# ---------------------------------------------------------------- roles x route classes
ROUTE_CLASSES = [
    ("ingest", "POST", "/api/v1/metrics", "metrics:write"),
    ("query", "GET", "/api/v1/metrics", "metrics:read"),
    ("analytics", "GET", "/api/v1/analytics/stats?name=cpu", "analytics:read"),
    ("admin", "GET", "/api/v1/audit", "admin"),
    ("admin", "GET", "/api/v1/status", "admin"),
    ("superadmin", "POST", "/api/v1/rollups/trigger", "superadmin"),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("cls", "method", "path", "scope"), ROUTE_CLASSES,
                         ids=[f"{c[0]}:{c[2]}" for c in ROUTE_CLASSES])
def test_each_role_against_each_route_class(shttp: httpx.Client, role: str, cls: str,
                                            method: str, path: str, scope: str) -> None:
    body = SAMPLE if method == "POST" and cls == "ingest" else None
    r = shttp.request(method, path, json=body, headers=bearer(role=role))
    if scope in ROLE_SCOPES[role]:
        assert r.status_code not in (401, 403), r.text
    else:
        assert r.status_code == 403
        assert scope in r.json()["detail"]


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics", "/openapi.json", "/docs"])
def test_public_routes_need_no_credential(shttp: httpx.Client, path: str) -> None:
    assert shttp.get(path).status_code == 200


def test_a_route_that_declares_nothing_needs_admin(secure_components: Components) -> None:
    app = create_app(secure_components, close_on_shutdown=False)

    @app.get("/api/v1/forgotten")
    async def forgotten() -> dict[str, str]:
        return {"ok": "yes"}

    with Server(secure_components, app) as s, httpx.Client(base_url=s.url) as h:
        assert h.get("/api/v1/forgotten").status_code == 401
        r = h.get("/api/v1/forgotten", headers=bearer(role="editor"))
        assert r.status_code == 403 and "'admin'" in r.json()["detail"]
        assert h.get("/api/v1/forgotten", headers=bearer(role="admin")).status_code == 200


def test_every_route_declares_a_scope_or_is_public(secure_components: Components) -> None:
    """A reviewer's list: the scope each route of this branch needs."""
    app = create_app(secure_components, close_on_shutdown=False)
    table = {(r.path, m): declared(r).scope for r in iter_routes(app) for m in r.methods}
    assert table[("/health", "GET")] is None
    assert table[("/api/v1/query", "POST")] == "metrics:read"
    assert table[("/write", "POST")] == "metrics:write"
    assert table[("/api/v1/keys/{key_id}", "DELETE")] == "admin"
    assert table[("/api/v1/rules", "GET")] == "alerts:read"
    assert table[("/api/v1/rules/backfill", "POST")] == "alerts:read"
    assert table[("/api/v1/rules", "POST")] == "alerts:write"
    assert table[("/api/v1/alerts/{alert_id}/acknowledge", "POST")] == "alerts:write"
    assert table[("/api/v1/silences/{silence_id}", "DELETE")] == "alerts:write"
    assert table[("/api/v1/tasks/events", "POST")] == "tasks:write"
    assert table[("/api/v1/analytics/bottlenecks", "GET")] == "tasks:read"
    assert {s for s in table.values() if s} <= ROLE_SCOPES["superadmin"]


# ---------------------------------------------------------------- tenancy
def test_tenant_comes_from_the_credential(shttp: httpx.Client) -> None:
    assert shttp.post("/api/v1/metrics", json=SAMPLE,
                      headers=bearer("acme", "editor")).status_code == 204
    names = lambda h: [m["name"] for m in shttp.get("/api/v1/metrics", headers=h).json()["metrics"]]  # noqa: E731
    assert names(bearer("acme", "viewer")) == ["cpu"]
    assert names(bearer("globex", "viewer")) == []
    assert names(bearer("globex", "superadmin")) == []
    assert names({**bearer("globex", "superadmin"), "X-Vigil-Tenant": "acme"}) == ["cpu"]
    r = shttp.get("/api/v1/metrics", headers={**bearer("globex", "admin"),
                                                  "X-Vigil-Tenant": "acme"})
    assert r.status_code == 403 and "superadmin" in r.json()["detail"]
    # Naming your own tenant is allowed for anyone.
    assert names({**bearer("acme", "viewer"), "X-Vigil-Tenant": "acme"}) == ["cpu"]


# ---------------------------------------------------------------- audit
def _fill(path: str) -> str:
    return path.replace("{key_id}", "nokey").replace("{name}", "cpu").replace("{label}", "h")


def test_every_mutating_route_is_audited(shttp: httpx.Client,
                                         secure_components: Components) -> None:
    app = create_app(secure_components, close_on_shutdown=False)
    mutating = [(m, r.path, declared(r).audit) for r in iter_routes(app) for m in r.methods
                if m not in ("GET", "HEAD")]
    assert len(mutating) >= 6
    su = {**bearer("acme", "superadmin")}
    for method, path, _ in mutating:
        shttp.request(method, _fill(path), headers=su, json={"name": "k", "role": "viewer"}
                      if path == "/api/v1/keys" else None)
    entries = shttp.get("/api/v1/audit", params={"limit": 1000},
                        headers=bearer("acme", "admin")).json()["entries"]
    seen = {(e["action"], e["route"]) for e in entries}
    for method, path, audited in mutating:
        assert ((method, path) in seen) == audited, (method, path)
    e = next(e for e in entries if e["route"] == "/api/v1/keys/{key_id}")
    assert (e["tenant"], e["actor"], e["role"], e["status"], e["target"]) == (
        "acme", "jwt:superadmin@acme", "superadmin", 404, "/api/v1/keys/nokey")
    assert e["client"] == "127.0.0.1" and e["ts_ms"] > 0


def test_refusals_are_audited_and_audit_is_per_tenant(shttp: httpx.Client) -> None:
    assert shttp.post("/api/v1/keys", json={"name": "x", "role": "viewer"},
                      headers=bearer("acme", "viewer")).status_code == 403
    assert shttp.post("/api/v1/keys", json={"name": "x", "role": "viewer"},
                      headers={**bearer("acme", "admin"),
                               "X-Vigil-Tenant": "globex"}).status_code == 403
    acme = shttp.get("/api/v1/audit", headers=bearer("acme", "admin")).json()["entries"]
    assert [(e["route"], e["status"], e["role"]) for e in acme] == [
        ("/api/v1/keys", 403, "admin"), ("/api/v1/keys", 403, "viewer")]
    other = shttp.get("/api/v1/audit", headers=bearer("globex", "admin")).json()
    assert other == {"tenant": "globex", "entries": []}


@pytest.mark.parametrize(("params", "field"), [({"limit": "0"}, "limit"),
                                               ({"since": "yesterday-ish"}, "since")])
def test_audit_bad_parameters(shttp: httpx.Client, params: dict[str, str], field: str) -> None:
    r = shttp.get("/api/v1/audit", params=params, headers=bearer(role="admin"))
    assert r.status_code == 400 and field in r.text


# ---------------------------------------------------------------- keys over HTTP
def test_keys_over_http_create_use_list_revoke(shttp: httpx.Client) -> None:
    admin = bearer("acme", "admin")
    r = shttp.post("/api/v1/keys", json={"name": "telegraf", "role": "editor",
                                         "scopes": ["metrics:write"], "expires_in": "30d"},
                   headers=admin)
    assert r.status_code == 201
    created = r.json()
    key = created.pop("key")
    assert shttp.post("/api/v1/metrics", json=SAMPLE,
                      headers={"X-API-Key": key}).status_code == 204
    # Narrowed to metrics:write: reading is refused.
    assert shttp.get("/api/v1/metrics", headers={"X-API-Key": key}).status_code == 403
    listed = shttp.get("/api/v1/keys", headers=admin).json()["keys"]
    assert listed == [created] and key not in r.text.replace(key, "", 1)
    assert "key_hash" not in created
    assert shttp.get("/api/v1/keys", headers=bearer("globex", "admin")).json()["keys"] == []
    assert shttp.delete(f"/api/v1/keys/{created['id']}",
                        headers=bearer("globex", "admin")).status_code == 404
    assert shttp.delete(f"/api/v1/keys/{created['id']}", headers=admin).status_code == 204
    assert shttp.get("/api/v1/metrics", headers={"X-API-Key": key}).status_code == 401


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"name": "x", "role": "superadmin"}, 403, "superadmin"),
    ({"name": "x", "role": "root"}, 400, "role"),
    ({"name": "", "role": "viewer"}, 400, "name"),
    ({"name": "x", "role": "viewer", "scopes": ["admin"]}, 400, "scopes"),
    ({"name": "x", "role": "viewer", "expires_in": "soon"}, 400, "expires_in"),
])
def test_key_creation_errors_store_nothing(shttp: httpx.Client, body: dict[str, object],
                                           status: int, field: str) -> None:
    admin = bearer("acme", "admin")
    r = shttp.post("/api/v1/keys", json=body, headers=admin)
    assert r.status_code == status and field in r.text
    assert shttp.get("/api/v1/keys", headers=admin).json()["keys"] == []


def test_secret_is_not_in_settings_repr_or_errors(secure_components: Components) -> None:
    assert SECRET not in repr(secure_components.settings)
    token = jwt.encode({"sub": "x"}, SECRET, algorithm="HS256")
    assert AUDIENCE and ISSUER and token  # the secret signs, it is never echoed:
    from vigil import config
    with pytest.raises(config.ConfigError) as err:
        config.load(env={"VIGIL_JWT_SECRET": "short-secret-value"})
    assert "short-secret-value" not in str(err.value)


def test_first_key_on_an_open_server_turns_auth_on(http: httpx.Client) -> None:
    assert http.get("/api/v1/metrics").status_code == 200  # open: loopback, nothing set
    r = http.post("/api/v1/keys", json={"name": "first", "role": "admin"})
    assert r.status_code == 201
    key = r.json()["key"]
    assert http.get("/api/v1/metrics").status_code == 401
    assert http.get("/api/v1/metrics", headers={"X-API-Key": key}).status_code == 200
    entries = http.get("/api/v1/audit", headers={"X-API-Key": key}).json()["entries"]
    assert [(e["actor"], e["route"], e["status"]) for e in entries] == [
        ("open", "/api/v1/keys", 201)]
    assert http.delete(f"/api/v1/keys/{r.json()['id']}",
                       headers={"X-API-Key": key}).status_code == 204
    # Revoking the last key does not reopen a running server.
    assert http.get("/api/v1/metrics").status_code == 401
