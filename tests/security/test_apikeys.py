"""API keys through the Authenticator with an injected clock: verification, the short
cache of verified keys, expiry and revocation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vigil.core.errors import Unauthorized
from vigil.security import apikeys
from vigil.security.authenticator import KEY_CACHE_MS, Authenticator
from vigil.storage.duckdb_store import DuckDBStore
from vigil.storage.security_store import SecurityStore

T = 1_700_000_000_000


class Clock:
    def __init__(self) -> None:
        self.ms = T

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def keyring(tmp_path: Path) -> Iterator[tuple[SecurityStore, Authenticator, Clock]]:
    """A security store on a fresh DuckDB file and an Authenticator on a hand-moved clock."""
    store = DuckDBStore(tmp_path / "k.duckdb")
    sec = SecurityStore(store.connection())
    clock = Clock()
    yield sec, Authenticator(sec, None, "default", clock), clock
    store.close()


def test_no_keys_means_open(keyring: tuple[SecurityStore, Authenticator, Clock]) -> None:
    _, auth, _ = keyring
    assert not auth.enabled and auth.authenticate(None).credential == "open"


def test_key_shape_scopes_and_principal(
        keyring: tuple[SecurityStore, Authenticator, Clock]) -> None:
    sec, auth, clock = keyring
    new = apikeys.create(sec, tenant="acme", name="telegraf", role="editor", now_ms=clock.ms,
                         scopes=frozenset({"metrics:write"}))
    auth.refresh()
    assert new.secret.startswith(f"vgl_{new.record.id}_") and len(new.secret) == 60
    p = auth.authenticate(f"Bearer {new.secret}")
    assert (p.tenant, p.role, p.scopes, p.credential) == (
        "acme", "editor", {"metrics:write"}, f"key:{new.record.id}")
    with pytest.raises(Unauthorized, match="credentials required"):
        auth.authenticate(None)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"role": "root"}, "unknown role"),
    ({"role": "viewer", "scopes": frozenset({"admin"})}, "does not grant"),
    ({"role": "viewer", "expires_ms": T}, "future"),
])
def test_create_refuses_and_stores_nothing(
        keyring: tuple[SecurityStore, Authenticator, Clock], kwargs: dict[str, object],
        message: str) -> None:
    sec, _, clock = keyring
    with pytest.raises(ValueError, match=message):
        apikeys.create(sec, tenant="acme", name="x", now_ms=clock.ms, **kwargs)  # type: ignore[arg-type]
    assert sec.keys("acme") == []


def test_revocation_is_seen_within_the_cache_interval(
        keyring: tuple[SecurityStore, Authenticator, Clock]) -> None:
    sec, auth, clock = keyring
    new = apikeys.create(sec, tenant="acme", name="a", role="viewer", now_ms=clock.ms)
    auth.refresh()
    auth.authenticate(None, new.secret)
    sec.revoke_key("acme", new.record.id, clock.ms)  # behind this process's back
    clock.ms += KEY_CACHE_MS - 1
    assert auth.authenticate(None, new.secret).tenant == "acme"  # still cached
    clock.ms += 1
    with pytest.raises(Unauthorized, match="revoked"):
        auth.authenticate(None, new.secret)


def test_refresh_drops_cached_keys(keyring: tuple[SecurityStore, Authenticator, Clock]) -> None:
    sec, auth, clock = keyring
    new = apikeys.create(sec, tenant="acme", name="a", role="viewer", now_ms=clock.ms)
    auth.refresh()
    auth.authenticate(None, new.secret)
    sec.revoke_key("acme", new.record.id, clock.ms)
    auth.refresh()  # what the HTTP revoke does
    with pytest.raises(Unauthorized, match="revoked"):
        auth.authenticate(None, new.secret)
    assert auth.enabled  # revoking the last key does not open a running server


def test_cache_never_outlives_the_key(keyring: tuple[SecurityStore, Authenticator,
                                                     Clock]) -> None:
    sec, auth, clock = keyring
    new = apikeys.create(sec, tenant="acme", name="a", role="viewer", now_ms=clock.ms,
                         expires_ms=clock.ms + 1000)
    auth.refresh()
    auth.authenticate(None, new.secret)
    clock.ms += 1000
    with pytest.raises(Unauthorized, match="expired"):
        auth.authenticate(None, new.secret)


def test_wrong_secret_with_a_real_id_is_refused(
        keyring: tuple[SecurityStore, Authenticator, Clock]) -> None:
    sec, auth, clock = keyring
    new = apikeys.create(sec, tenant="acme", name="a", role="viewer", now_ms=clock.ms)
    auth.refresh()
    forged = new.secret[:17] + ("A" * 43 if new.secret[17:] != "A" * 43 else "B" * 43)
    with pytest.raises(Unauthorized, match="not valid"):
        auth.authenticate(None, forged)
