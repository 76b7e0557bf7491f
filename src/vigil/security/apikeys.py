"""API keys for agents and scripts: ``vgl_<id>_<secret>``, shown once, stored as sha256.

The id is public (lookup, listing, revocation, audit); the secret is 32 random bytes, so
a plain sha256 is enough at rest (no password stretching needed for high-entropy keys)
and the check is a constant-time comparison of digests.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from vigil.core.errors import Unauthorized
from vigil.security.scopes import ROLES, Principal, scopes_for
from vigil.storage.security_store import ApiKeyRecord, SecurityStore

PREFIX = "vgl_"
_SHAPE = re.compile(r"^vgl_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$")


@dataclass(frozen=True, slots=True)
class NewKey:
    """A created key: ``secret`` is the whole key, shown to the caller once."""

    secret: str
    record: ApiKeyRecord


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_key(credential: str) -> bool:
    return credential.startswith(PREFIX)


def create(store: SecurityStore, *, tenant: str, name: str, role: str, now_ms: int,
           scopes: frozenset[str] | None = None, expires_ms: int | None = None) -> NewKey:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if scopes is not None and not scopes <= scopes_for(role):
        extra = ", ".join(sorted(scopes - scopes_for(role)))
        raise ValueError(f"role {role!r} does not grant {extra}")
    if expires_ms is not None and expires_ms <= now_ms:
        raise ValueError("expiry must be in the future")
    key_id = secrets.token_hex(6)
    key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    record = ApiKeyRecord(key_id, tenant, name, role, " ".join(sorted(scopes or ())),
                          digest(key), now_ms, expires_ms)
    store.add_key(tenant, record)
    return NewKey(key, record)


def verify(store: SecurityStore, key: str, now_ms: int) -> tuple[Principal, int | None]:
    """The principal of a live key and the key's expiry (epoch ms, None = never);
    ``Unauthorized`` naming why not (never the key)."""
    m = _SHAPE.match(key)
    if m is None:
        raise Unauthorized("API key is malformed")
    record = store.key_by_id(m.group(1))
    # Compare even when the id is unknown, so timing does not tell ids apart.
    stored = record.key_hash if record is not None else digest("")
    if not hmac.compare_digest(stored, digest(key)) or record is None:
        raise Unauthorized("API key is not valid")
    if record.revoked_ms is not None:
        raise Unauthorized("API key has been revoked")
    if record.expires_ms is not None and record.expires_ms <= now_ms:
        raise Unauthorized("API key has expired")
    requested = frozenset(record.scopes.split()) if record.scopes else None
    return Principal(record.name, record.tenant, record.role,
                     scopes_for(record.role, requested), f"key:{record.id}"), record.expires_ms
