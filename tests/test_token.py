"""Token claims, identity kind, the checks a vault would make, and signature verification."""

from __future__ import annotations

import json
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pytest_kvmi.diagnosis import Code, KvmiError
from pytest_kvmi.settings import KEY_VAULT_APP_ID
from pytest_kvmi.token import SYSTEM_ASSIGNED, UNKNOWN_KIND, USER_ASSIGNED, AccessToken, check_token
from tests.fakes import OBJECT_ID, TENANT, make_jwt

UAMI = (
    "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/"
    "userAssignedIdentities/app-id"
)
VMSS = "/subscriptions/s/resourcegroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss"


@pytest.mark.parametrize(
    ("mirid", "kind"), [(UAMI, USER_ASSIGNED), (VMSS, SYSTEM_ASSIGNED), (None, UNKNOWN_KIND)]
)
def test_identity_kind_from_xms_mirid(mirid: str | None, kind: str) -> None:
    assert AccessToken.parse(make_jwt(xms_mirid=mirid)).claims.kind == kind


def test_tenant_falls_back_to_the_issuer() -> None:
    token = AccessToken.parse(make_jwt(tid=None))
    assert token.claims.tenant_id == TENANT


@pytest.mark.parametrize(
    "raw", ["", "abc", "a.b", "a.b.c", "x.y.z.w", "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln"]
)
def test_not_a_jwt_is_token_malformed(raw: str) -> None:
    with pytest.raises(KvmiError) as raised:
        AccessToken.parse(raw)
    assert raised.value.diagnosis.code is Code.TOKEN_MALFORMED


@pytest.mark.parametrize("claims", [{"aud": ["a", "b"]}, {"exp": "tomorrow"}, {"oid": 5}])
def test_claims_of_the_wrong_type_are_token_malformed(claims: dict[str, object]) -> None:
    with pytest.raises(KvmiError) as raised:
        AccessToken.parse(make_jwt(**claims))
    assert raised.value.diagnosis.code is Code.TOKEN_MALFORMED


@pytest.mark.parametrize(
    ("claims", "vault_tenant", "code"),
    [
        ({}, TENANT, Code.OK),
        ({"aud": KEY_VAULT_APP_ID}, TENANT, Code.OK),
        ({"aud": "https://vault.azure.net/"}, TENANT, Code.WRONG_AUDIENCE),
        ({"aud": "https://management.azure.com/"}, None, Code.WRONG_AUDIENCE),
        ({"exp": int(time.time()) - 10}, TENANT, Code.TOKEN_EXPIRED),
        ({}, "ec568c69-965a-495b-8823-a7f3c2dc890f", Code.TENANT_MISMATCH),
    ],
)
def test_check_token(claims: dict[str, object], vault_tenant: str | None, code: Code) -> None:
    token = AccessToken.parse(make_jwt(**claims))
    diagnosis = check_token(token, audience="https://vault.azure.net", vault_tenant_id=vault_tenant)
    assert diagnosis.code is code


def test_tenant_mismatch_names_both_tenants() -> None:
    token = AccessToken.parse(make_jwt())
    other = "ec568c69-965a-495b-8823-a7f3c2dc890f"
    diagnosis = check_token(token, audience="https://vault.azure.net", vault_tenant_id=other)
    assert TENANT in diagnosis.summary
    assert other in diagnosis.summary
    assert diagnosis.facts.object_id == OBJECT_ID


def _jwks(key: rsa.RSAPrivateKey, kid: str) -> dict[str, object]:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {"keys": [{**public, "kid": kid, "use": "sig", "alg": "RS256"}]}


def test_signature_verification_against_a_jwks() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=_jwks(key, "k1")))
    url = f"https://login.microsoftonline.com/{TENANT}/discovery/keys"
    claims = {"aud": "https://vault.azure.net", "tid": TENANT}
    genuine = AccessToken.parse(jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"}))
    genuine.verify_signature(url, transport=transport)
    forged = AccessToken.parse(jwt.encode(claims, forger, algorithm="RS256", headers={"kid": "k1"}))
    with pytest.raises(KvmiError, match="does not verify"):
        forged.verify_signature(url, transport=transport)
    unknown_kid = AccessToken.parse(
        jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k2"})
    )
    with pytest.raises(KvmiError, match="does not verify"):
        unknown_kid.verify_signature(url, transport=transport)
