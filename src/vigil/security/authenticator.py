"""Credential -> ``Principal``: the one entry point the HTTP and WebSocket layers call."""

from __future__ import annotations

from collections.abc import Callable

from vigil.core.errors import Unauthorized
from vigil.security import apikeys
from vigil.security.scopes import ALL_SCOPES, Principal
from vigil.security.tokens import TokenVerifier
from vigil.storage.security_store import SecurityStore

# A verified key is remembered this long, so a busy agent costs one store lookup per
# interval, not per request (a lookup is ~2 ms). Creating or revoking a key through this
# process clears the cache; it never outlives the key's own expiry.
KEY_CACHE_MS = 10_000
_KEY_CACHE_MAX = 10_000


class Authenticator:
    """``enabled`` is False only in open mode (no JWT key material and no API key, bound
    to loopback): then every request is the superadmin of ``default_tenant``."""

    def __init__(self, store: SecurityStore, verifier: TokenVerifier | None,
                 default_tenant: str, now_ms: Callable[[], int]) -> None:
        self.store = store
        self.verifier = verifier
        self.default_tenant = default_tenant
        self._now_ms = now_ms
        self._keys: dict[str, tuple[Principal, int]] = {}  # sha256 -> (principal, until ms)
        self.enabled = False
        self.refresh()

    def refresh(self) -> None:
        """Re-read whether any live key exists (after a key is created), so the first key
        created on an open server turns authentication on at once. Never turns it off:
        revoking the last key must not open a running server (a restart decides)."""
        self._keys = {}
        self.enabled = self.enabled or self.verifier is not None or self.store.has_keys()

    def open_principal(self) -> Principal:
        return Principal("local", self.default_tenant, "superadmin", ALL_SCOPES, "open")

    def authenticate(self, authorization: str | None, api_key: str | None = None) -> Principal:
        """From an ``Authorization`` header (``Bearer <jwt or key>``, ``Token <key>``) or
        an ``X-API-Key`` header. Blocking (a key is looked up in the store)."""
        if not self.enabled:
            return self.open_principal()
        credential = api_key
        if authorization:
            scheme, _, value = authorization.strip().partition(" ")
            if scheme.lower() not in ("bearer", "token") or not value.strip():
                raise Unauthorized("Authorization must be 'Bearer <token or API key>'")
            credential = value.strip()
        if not credential:
            raise Unauthorized("credentials required: send Authorization: Bearer <token>")
        if apikeys.looks_like_key(credential):
            return self._key(credential)
        if self.verifier is None:
            raise Unauthorized("bearer tokens are not accepted here (no JWT key configured)")
        return self.verifier.verify(credential)

    def _key(self, key: str) -> Principal:
        now = self._now_ms()
        digest = apikeys.digest(key)
        hit = self._keys.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        principal, expires_ms = apikeys.verify(self.store, key, now)
        if len(self._keys) >= _KEY_CACHE_MAX:
            self._keys = {}
        until = now + KEY_CACHE_MS
        self._keys[digest] = (principal, until if expires_ms is None else min(until, expires_ms))
        return principal
