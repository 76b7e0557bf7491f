"""Roles, the scopes each grants, and the verified identity of a request.

The one table of role -> scopes; docs/security.md shows it. A route declares the scope it
needs (``vigil.api.auth.require``); a credential carries a role, or an explicit scope
list narrower than its role's.
"""

from __future__ import annotations

from dataclasses import dataclass

VIEWER_SCOPES = frozenset({"metrics:read", "analytics:read", "alerts:read", "tasks:read"})
EDITOR_SCOPES = VIEWER_SCOPES | {"metrics:write", "alerts:write", "tasks:write"}
ADMIN_SCOPES = EDITOR_SCOPES | {"admin"}
SUPERADMIN_SCOPES = ADMIN_SCOPES | {"superadmin"}

ROLE_SCOPES: dict[str, frozenset[str]] = {
    "viewer": VIEWER_SCOPES,
    "editor": EDITOR_SCOPES,
    "admin": ADMIN_SCOPES,
    "superadmin": SUPERADMIN_SCOPES,
}
ROLES = tuple(ROLE_SCOPES)
ALL_SCOPES = SUPERADMIN_SCOPES


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: ``subject`` (token ``sub`` or key name), the ``tenant`` every read
    and write is confined to, the ``role`` and the ``scopes`` it holds. ``credential``
    names the credential for rate limits and the audit log (``jwt:<sub>``,
    ``key:<id>``, ``open``) and is never secret."""

    subject: str
    tenant: str
    role: str
    scopes: frozenset[str]
    credential: str

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


def scopes_for(role: str, requested: frozenset[str] | None = None) -> frozenset[str]:
    """The scopes of ``role``, narrowed to ``requested`` if given (a credential never
    gains a scope its role lacks).

    >>> sorted(scopes_for("viewer", frozenset({"metrics:read", "admin"})))
    ['metrics:read']
    """
    granted = ROLE_SCOPES.get(role)
    if granted is None:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    return granted if requested is None else granted & requested
