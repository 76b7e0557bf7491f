"""Safe defaults: the server runs without credentials only where nobody else can reach it."""

from __future__ import annotations

import ipaddress

from vigil.core.errors import VigilError

HOW_TO = ("configure authentication: set VIGIL_JWT_SECRET (32+ characters; "
          "`vigil token` signs tokens with it), jwt_public_key_file or jwt_jwks_file, or "
          "create an API key with `vigil keys create`; see docs/security.md")


class AuthNotConfigured(VigilError):
    """Asked to listen beyond loopback with no way to authenticate anyone."""


def is_loopback(host: str) -> bool:
    """``127.0.0.0/8``, ``::1`` and ``localhost``; anything else (``0.0.0.0``, a LAN or
    public address, another name) is reachable by others.

    >>> [is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "10.0.0.2")]
    [True, True, True, False, False]
    """
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, auth_enabled: bool) -> str | None:
    """None when auth is on; a warning to log when open on loopback; raises
    ``AuthNotConfigured`` (saying how to fix it) when open on any other address."""
    if auth_enabled:
        return None
    if is_loopback(host):
        return (f"authentication is OFF: every request to {host} acts as superadmin of the "
                "default tenant (fine for local use only); to turn it on, " + HOW_TO)
    raise AuthNotConfigured(f"refusing to listen on {host} without authentication; "
                            + HOW_TO + ", or bind to 127.0.0.1")
