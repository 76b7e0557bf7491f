"""JWT verification: every way a token can be wrong is refused with a reason."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.security.conftest import AUDIENCE, ISSUER, SECRET
from vigil.core.errors import Unauthorized
from vigil.security.scopes import ROLE_SCOPES
from vigil.security.tokens import JwtConfig, TokenVerifier, issue

HS = TokenVerifier(JwtConfig(secret=SECRET, issuer=ISSUER, audience=AUDIENCE))


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"sub": "u1", "tenant": "acme", "role": "editor", "iat": now,
                            "nbf": now, "exp": now + 60, "iss": ISSUER, "aud": AUDIENCE}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def test_valid_hs256_token_names_tenant_role_and_scopes() -> None:
    p = HS.verify(jwt.encode(claims(), SECRET, algorithm="HS256"))
    assert (p.subject, p.tenant, p.role, p.credential) == ("u1", "acme", "editor", "jwt:u1")
    assert p.scopes == ROLE_SCOPES["editor"]


def test_issue_round_trips() -> None:
    token = issue(SECRET, subject="cli", tenant="t", role="viewer", ttl_s=60, issuer=ISSUER,
                  audience=AUDIENCE)
    assert HS.verify(token).scopes == ROLE_SCOPES["viewer"]


@pytest.mark.parametrize(("over", "key", "reason"), [
    ({"exp": -10}, SECRET, "expired"),
    ({"nbf": 600}, SECRET, "not valid yet"),
    ({}, "another-secret-of-thirty-two-chars!!", "signature"),
    ({"aud": "someone-else"}, SECRET, "audience"),
    ({"iss": "https://evil.test"}, SECRET, "issuer"),
    ({"exp": None}, SECRET, "'exp'"),
    ({"tenant": None}, SECRET, "'tenant'"),
    ({"role": "root"}, SECRET, "role must be one of"),
    ({"iss": None}, SECRET, "'iss'"),
])
def test_bad_tokens_are_refused_with_the_reason(over: dict[str, Any], key: str,
                                                reason: str) -> None:
    # Times are offsets from now, taken when the test runs (not at collection).
    now = int(time.time())
    over = {k: now + v if k in ("exp", "nbf") and v is not None else v
            for k, v in over.items()}
    with pytest.raises(Unauthorized, match=reason):
        HS.verify(jwt.encode(claims(**over), key, algorithm="HS256"))


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c"])
def test_malformed_tokens(token: str) -> None:
    with pytest.raises(Unauthorized):
        HS.verify(token)


def test_alg_none_is_refused() -> None:
    token = jwt.encode(claims(), None, algorithm="none")
    with pytest.raises(Unauthorized, match="algorithm 'none'"):
        HS.verify(token)


def test_scope_claim_narrows_but_never_widens_the_role() -> None:
    p = HS.verify(jwt.encode(claims(scope="metrics:read admin"), SECRET, algorithm="HS256"))
    assert p.scopes == {"metrics:read"}


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize("kind", ["RS256", "ES256"])
def test_public_key_file(tmp_path: Path, kind: str) -> None:
    key = rsa.generate_private_key(65537, 2048) if kind == "RS256" else \
        ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "pub.pem").write_bytes(_pem(key))
    v = TokenVerifier(JwtConfig(public_key_file=str(tmp_path / "pub.pem")))
    assert v.verify(jwt.encode(claims(), key, algorithm=kind)).tenant == "acme"
    other = rsa.generate_private_key(65537, 2048) if kind == "RS256" else \
        ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(Unauthorized, match="signature"):
        v.verify(jwt.encode(claims(), other, algorithm=kind))
    # HS256 signed with the public key's bytes (the classic confusion) is refused.
    with pytest.raises(Unauthorized, match="algorithm 'HS256'"):
        v.verify(jwt.encode(claims(), "x" * 32, algorithm="HS256"))


def test_jwks_file_picks_the_key_by_kid(tmp_path: Path) -> None:
    keys = {kid: ec.generate_private_key(ec.SECP256R1()) for kid in ("k1", "k2")}
    jwks = {"keys": [{**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(k.public_key())),
                      "kid": kid, "alg": "ES256", "use": "sig"} for kid, k in keys.items()]}
    (tmp_path / "jwks.json").write_text(json.dumps(jwks))
    v = TokenVerifier(JwtConfig(jwks_file=str(tmp_path / "jwks.json")))
    for kid, key in keys.items():
        token = jwt.encode(claims(sub=kid), key, algorithm="ES256", headers={"kid": kid})
        assert v.verify(token).subject == kid
    wrong = jwt.encode(claims(), keys["k1"], algorithm="ES256", headers={"kid": "k2"})
    with pytest.raises(Unauthorized, match="signature"):
        v.verify(wrong)
    unknown = jwt.encode(claims(), keys["k1"], algorithm="ES256", headers={"kid": "k9"})
    with pytest.raises(Unauthorized, match="key id"):
        v.verify(unknown)
