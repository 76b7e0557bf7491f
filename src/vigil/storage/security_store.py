"""API keys (hashed at rest) and the append-only audit log, in the tables of migration 4
on the same DuckDB file as the samples.

Every method takes the tenant and is confined to it, except ``key_by_id``: looking a key
up is how a request's tenant is found, so it cannot know the tenant yet. There is no
method that updates or deletes an audit entry. Thread-safe (one cursor behind a lock).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import duckdb

from vigil.core.errors import StoreUnavailable


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: str
    tenant: str
    name: str
    role: str
    scopes: str  # space-separated; "" = every scope of the role
    key_hash: str  # hex sha256 of the whole key
    created_ms: int
    expires_ms: int | None = None
    revoked_ms: int | None = None

    def public(self) -> dict[str, object]:
        """What may be shown: everything but the hash."""
        return {"id": self.id, "tenant": self.tenant, "name": self.name, "role": self.role,
                "scopes": self.scopes.split(), "created_ms": self.created_ms,
                "expires_ms": self.expires_ms, "revoked_ms": self.revoked_ms}


@dataclass(frozen=True, slots=True)
class AuditEntry:
    ts_ms: int
    tenant: str
    actor: str  # the credential: jwt:<sub>, key:<id>, open, cli
    role: str
    action: str  # HTTP method or CLI verb
    route: str  # route template (/api/v1/keys/{key_id}) or CLI command
    target: str  # the concrete path or object
    status: int
    client: str  # address the request came from
    detail: str = ""
    id: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "ts_ms": self.ts_ms, "tenant": self.tenant,
                "actor": self.actor, "role": self.role, "action": self.action,
                "route": self.route, "target": self.target, "status": self.status,
                "client": self.client, "detail": self.detail}


_KEY_COLS = "id, tenant, name, role, scopes, key_hash, created_ms, expires_ms, revoked_ms"
_AUDIT_COLS = "ts_ms, tenant, actor, role, action, route, target, status, client, detail, id"


class SecurityStore:
    def __init__(self, cursor: duckdb.DuckDBPyConnection) -> None:
        """``cursor``: from ``DuckDBStore.connection()`` (schema at version 4 or later)."""
        self._cur = cursor
        self._lock = threading.Lock()

    def _run(self, sql: str, params: list[object]) -> list[tuple[object, ...]]:
        with self._lock:
            try:
                return self._cur.execute(sql, params).fetchall()
            except duckdb.ConnectionException as err:
                raise StoreUnavailable(f"security store unavailable: {err}") from err

    # ------------------------------------------------------------------ keys
    def add_key(self, tenant: str, key: ApiKeyRecord) -> None:
        assert key.tenant == tenant, "BUG: key of another tenant"
        self._run(f"INSERT INTO api_keys ({_KEY_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  [key.id, tenant, key.name, key.role, key.scopes, key.key_hash,
                   key.created_ms, key.expires_ms, key.revoked_ms])

    def key_by_id(self, key_id: str) -> ApiKeyRecord | None:
        """The key with this public id, of any tenant (authentication only)."""
        rows = self._run(f"SELECT {_KEY_COLS} FROM api_keys WHERE id = ?", [key_id])
        return ApiKeyRecord(*rows[0]) if rows else None  # type: ignore[arg-type]

    def keys(self, tenant: str) -> list[ApiKeyRecord]:
        rows = self._run(f"SELECT {_KEY_COLS} FROM api_keys WHERE tenant = ? "
                         "ORDER BY created_ms, id", [tenant])
        return [ApiKeyRecord(*r) for r in rows]  # type: ignore[arg-type]

    def has_keys(self) -> bool:
        """Whether any tenant has a key that is not revoked (auth is then configured)."""
        return bool(self._run("SELECT 1 FROM api_keys WHERE revoked_ms IS NULL LIMIT 1", []))

    def revoke_key(self, tenant: str, key_id: str, now_ms: int) -> bool:
        """Revoke ``key_id`` of ``tenant``; False if the tenant has no such live key."""
        rows = self._run("UPDATE api_keys SET revoked_ms = ? WHERE id = ? AND tenant = ? "
                         "AND revoked_ms IS NULL RETURNING id", [now_ms, key_id, tenant])
        return bool(rows)

    # ------------------------------------------------------------------ audit
    def append_audit(self, tenant: str, entry: AuditEntry) -> None:
        assert entry.tenant == tenant, "BUG: audit entry of another tenant"
        self._run("INSERT INTO audit_log (ts_ms, tenant, actor, role, action, route, target, "
                  "status, client, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  [entry.ts_ms, tenant, entry.actor, entry.role, entry.action, entry.route,
                   entry.target, entry.status, entry.client, entry.detail])

    def audit(self, tenant: str, *, since_ms: int | None = None, until_ms: int | None = None,
              limit: int = 100) -> list[AuditEntry]:
        """Entries of ``tenant`` in ``[since_ms, until_ms)``, newest first."""
        rows = self._run(
            f"SELECT {_AUDIT_COLS} FROM audit_log WHERE tenant = ? AND ts_ms >= ? "
            "AND ts_ms < ? ORDER BY ts_ms DESC, id DESC LIMIT ?",
            [tenant, -(2**63) if since_ms is None else since_ms,
             2**63 - 1 if until_ms is None else until_ms, limit])
        return [AuditEntry(*r) for r in rows]  # type: ignore[arg-type]
