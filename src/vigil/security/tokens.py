"""JWT bearer tokens: verification (HS256, RS256, ES256) and issuing (HS256).

Checked on every token: signature, ``exp`` (required), ``nbf``, ``iss`` and ``aud`` when
configured, and the claims ``sub``, ``tenant`` and ``role`` (or ``scope``, a space-separated
list narrowed to the role's). The algorithm list comes from the configured key material,
never from the token, so ``alg: none`` and HS/RS confusion are refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from jwt.types import Options

from vigil.core.errors import Unauthorized
from vigil.security.scopes import ROLES, Principal, scopes_for

_ASYMMETRIC = ["RS256", "ES256"]
MIN_SECRET_BYTES = 32


@dataclass(frozen=True, slots=True)
class JwtConfig:
    """Key material and expected claims. Any of ``secret`` (HS256), ``public_key_file``
    (PEM; RS256/ES256) or ``jwks_file`` (JSON Web Key Set; key chosen by ``kid``)."""

    secret: str = ""
    public_key_file: str = ""
    jwks_file: str = ""
    issuer: str = ""
    audience: str = ""
    leeway_s: float = 0.0

    @property
    def configured(self) -> bool:
        return bool(self.secret or self.public_key_file or self.jwks_file)


class TokenVerifier:
    def __init__(self, cfg: JwtConfig) -> None:
        self.cfg = cfg
        self._public_key: tuple[Any, str] | None = None
        self._jwks: jwt.PyJWKSet | None = None
        if cfg.public_key_file:
            self._public_key = _load_public_key(Path(cfg.public_key_file).read_bytes())
        if cfg.jwks_file:
            self._jwks = jwt.PyJWKSet.from_json(Path(cfg.jwks_file).read_text())

    def _key_for(self, token: str) -> tuple[Any, list[str]]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as err:
            raise Unauthorized("bearer token is malformed") from err
        alg = header.get("alg")
        if alg == "HS256" and self.cfg.secret:
            return self.cfg.secret, ["HS256"]
        if alg in _ASYMMETRIC and self._jwks is not None:
            kid = header.get("kid")
            for key in self._jwks.keys:
                if kid is None or key.key_id == kid:
                    return key.key, [alg]
            raise Unauthorized("bearer token's key id is not in the configured key set")
        if self._public_key is not None and alg == self._public_key[1]:
            return self._public_key[0], [alg]
        raise Unauthorized(f"bearer token algorithm {alg!r} is not accepted here")

    def verify(self, token: str) -> Principal:
        """The principal a valid token names; ``Unauthorized`` saying why otherwise."""
        key, algorithms = self._key_for(token)
        required = ["exp", "sub", *(["iss"] if self.cfg.issuer else [])]
        options: Options = {"require": required, "verify_aud": bool(self.cfg.audience),
                            "verify_iss": bool(self.cfg.issuer)}
        kwargs: dict[str, Any] = {}
        if self.cfg.audience:
            kwargs["audience"] = self.cfg.audience
        if self.cfg.issuer:
            kwargs["issuer"] = self.cfg.issuer
        kwargs["leeway"] = self.cfg.leeway_s
        try:
            claims = jwt.decode(token, key, algorithms=algorithms, options=options, **kwargs)
        except jwt.ExpiredSignatureError as err:
            raise Unauthorized("bearer token has expired") from err
        except jwt.ImmatureSignatureError as err:
            raise Unauthorized("bearer token is not valid yet (nbf)") from err
        except jwt.InvalidAudienceError as err:
            raise Unauthorized("bearer token is for another audience") from err
        except jwt.InvalidIssuerError as err:
            raise Unauthorized("bearer token is from another issuer") from err
        except jwt.InvalidSignatureError as err:
            raise Unauthorized("bearer token signature does not verify") from err
        except jwt.MissingRequiredClaimError as err:
            raise Unauthorized(f"bearer token lacks the {err.claim!r} claim") from err
        except jwt.InvalidTokenError as err:
            raise Unauthorized("bearer token is invalid") from err
        return principal_from_claims(claims)


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    tenant, role, sub = claims.get("tenant"), claims.get("role"), claims.get("sub")
    if not isinstance(tenant, str) or not tenant:
        raise Unauthorized("bearer token lacks the 'tenant' claim")
    if not isinstance(sub, str) or not sub:
        raise Unauthorized("bearer token's 'sub' claim is not a string")
    scope = claims.get("scope")
    requested = frozenset(scope.split()) if isinstance(scope, str) else None
    if role is None and requested is not None:
        role = "viewer" if requested <= scopes_for("viewer") else "editor" \
            if requested <= scopes_for("editor") else "admin"
    if role not in ROLES:
        raise Unauthorized(f"bearer token role must be one of {', '.join(ROLES)}")
    return Principal(sub, tenant, str(role), scopes_for(str(role), requested), f"jwt:{sub}")


def issue(secret: str, *, subject: str, tenant: str, role: str, ttl_s: float,
          issuer: str = "", audience: str = "", now_s: float | None = None) -> str:
    """An HS256 token for ``vigil token``: what a login service would hand out."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    now = int(time.time() if now_s is None else now_s)
    claims: dict[str, Any] = {"sub": subject, "tenant": tenant, "role": role,
                              "iat": now, "nbf": now, "exp": now + int(ttl_s)}
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")


def _load_public_key(pem: bytes) -> tuple[Any, str]:
    """A PEM public key and the one algorithm it verifies (RSA: RS256, EC P-256: ES256).
    Needs ``cryptography`` (the ``jwt-keys`` extra)."""
    try:
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        from cryptography.hazmat.primitives.serialization import load_pem_public_key
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ValueError("RS256/ES256 keys need the cryptography package: "
                         "pip install 'vigil[jwt-keys]'") from err
    key = load_pem_public_key(pem)
    if isinstance(key, rsa.RSAPublicKey):
        return key, "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key, "ES256"
    raise ValueError("public key must be RSA (RS256) or EC P-256 (ES256)")
