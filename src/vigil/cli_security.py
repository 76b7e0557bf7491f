"""``vigil keys create|list|revoke`` and ``vigil token``: credentials from the command line.

Keys are written to the data directory (stop the server first, or use the HTTP API
``/api/v1/keys``); the key itself is printed once and only its sha256 is kept.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Optional

import typer
from rich.table import Table

from vigil.cli import ConfigOpt, DataDirOpt, _open_components, _settings, err, out
from vigil.core.errors import VigilError
from vigil.core.timeutil import now_ms, parse_duration_ms
from vigil.security import apikeys, tokens
from vigil.security.scopes import ROLES
from vigil.storage.security_store import AuditEntry

keys_app = typer.Typer(help="API keys for agents and scripts (shown once, stored hashed).",
                       no_args_is_help=True)
TenantOpt = Annotated[Optional[str], typer.Option(  # noqa: UP045
    "--tenant", help="Tenant (default: the default_tenant setting).")]
RoleOpt = Annotated[str, typer.Option("--role", help=f"One of {', '.join(ROLES)}.")]


def _audit(c: object, tenant: str, verb: str, target: str, detail: str = "") -> None:
    from vigil.app import Components

    assert isinstance(c, Components)
    c.security.append_audit(tenant, AuditEntry(now_ms(), tenant, "cli", "superadmin", verb,
                                               f"vigil keys {verb}", target, 0, "local",
                                               detail))


@keys_app.command("create")
def keys_create(
    role: RoleOpt,
    name: Annotated[str, typer.Option("--name", help="What the key is for.")],
    tenant: TenantOpt = None,
    scope: Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
        "--scope", help="Narrow the role to these scopes (repeat).")] = None,
    expires: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--expires", help="Lifetime, e.g. 90d (default: never).")] = None,
    data_dir: DataDirOpt = None,
    config_path: ConfigOpt = None,
) -> None:
    """Create a key and print it (once)."""
    settings = _settings(config_path, data_dir=data_dir)
    t = tenant or settings.default_tenant
    now = now_ms()
    try:
        expires_ms = now + parse_duration_ms(expires, "--expires") if expires else None
    except VigilError as e:
        err.print(f"[red]error:[/] {e}")
        raise typer.Exit(2) from e
    c = _open_components(settings)
    try:
        new = apikeys.create(c.security, tenant=t, name=name, role=role, now_ms=now,
                             scopes=frozenset(scope) if scope else None, expires_ms=expires_ms)
        _audit(c, t, "create", new.record.id, f"role={role}")
    except ValueError as e:
        err.print(f"[red]error:[/] {e}")
        raise typer.Exit(2) from e
    finally:
        c.close()
    err.print(f"key {new.record.id} for tenant {t!r}, role {role}; store it now, it is not "
              "shown again:")
    print(new.secret)


@keys_app.command("list")
def keys_list(tenant: TenantOpt = None, data_dir: DataDirOpt = None,
              config_path: ConfigOpt = None) -> None:
    """Keys of a tenant: id, name, role, scopes, created, expiry, revocation (no secrets)."""
    settings = _settings(config_path, data_dir=data_dir)
    c = _open_components(settings)
    try:
        keys = c.security.keys(tenant or settings.default_tenant)
    finally:
        c.close()
    table = Table("name", "role", "scopes", "created", "expires", "revoked")
    table.add_column("id", no_wrap=True, min_width=12)
    for k in keys:
        table.add_row(k.name, k.role, k.scopes or "(role's)", _day(k.created_ms),
                      _day(k.expires_ms) or "never", _day(k.revoked_ms), k.id)
    out.print(table)


def _day(ms: int | None) -> str:
    return "" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


@keys_app.command("revoke")
def keys_revoke(key_id: str, tenant: TenantOpt = None, data_dir: DataDirOpt = None,
                config_path: ConfigOpt = None) -> None:
    """Revoke a key; requests with it get 401 from then on."""
    settings = _settings(config_path, data_dir=data_dir)
    t = tenant or settings.default_tenant
    c = _open_components(settings)
    try:
        done = c.security.revoke_key(t, key_id, now_ms())
        if done:
            _audit(c, t, "revoke", key_id)
    finally:
        c.close()
    if not done:
        err.print(f"[red]error:[/] no live key {key_id!r} in tenant {t!r}")
        raise typer.Exit(1)
    out.print(f"revoked {key_id}")


def token_cmd(
    role: RoleOpt,
    tenant: TenantOpt = None,
    ttl: Annotated[str, typer.Option("--ttl", help="Lifetime, e.g. 1h, 30d.")] = "1h",
    subject: Annotated[str, typer.Option("--subject", help="The sub claim.")] = "cli",
    config_path: ConfigOpt = None,
) -> None:
    """Print a bearer token signed with the configured HS256 secret (VIGIL_JWT_SECRET)."""
    settings = _settings(config_path)
    if not settings.jwt_secret:
        err.print("[red]error:[/] no jwt_secret configured; set VIGIL_JWT_SECRET "
                  "(32+ characters)")
        raise typer.Exit(2)
    try:
        ttl_s = parse_duration_ms(ttl, "--ttl") / 1000
        token = tokens.issue(settings.jwt_secret, subject=subject,
                             tenant=tenant or settings.default_tenant, role=role, ttl_s=ttl_s,
                             issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    except (ValueError, VigilError) as e:
        err.print(f"[red]error:[/] {e}")
        raise typer.Exit(2) from e
    print(token)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
    app.command("token")(token_cmd)
