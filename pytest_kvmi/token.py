"""An access token from IMDS: the raw JWT kept out of sight, its claims in the open.

Claims are decoded without verifying the signature (the vault verifies it; this tool only needs
to read who the token is for), with the standard library: pyjwt and cryptography are imported
only by :meth:`AccessToken.verify_signature`, which checks the signature against a JWKS.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from pytest_kvmi.diagnosis import Code, Diagnosis, Facts, KvmiError, diagnose
from pytest_kvmi.redact import Redacted
from pytest_kvmi.settings import KEY_VAULT_APP_ID

SYSTEM_ASSIGNED = "system-assigned"
USER_ASSIGNED = "user-assigned"
UNKNOWN_KIND = "unknown"

_VM_PROVIDERS = (
    "/microsoft.compute/virtualmachines/",
    "/microsoft.compute/virtualmachinescalesets/",
)
_UAMI_PROVIDER = "/microsoft.managedidentity/userassignedidentities/"


def _segment(text: str) -> dict[str, Any] | None:
    """One base64url JSON object of a JWT, or None."""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        return None
    return decoded if isinstance(decoded, dict) else None


def _malformed(detail: str) -> KvmiError:
    return KvmiError.of(Code.TOKEN_MALFORMED, Facts(detail=detail))


def _claim(claims: Mapping[str, Any], name: str, kind: type) -> Any:
    value = claims.get(name)
    if value is not None and not isinstance(value, kind):
        raise _malformed(f"claim '{name}' is not a {kind.__name__}")
    return value


@dataclass(frozen=True)
class TokenClaims:
    """The claims this tool reads from a managed identity token (all safe to print)."""

    aud: str | None
    iss: str | None
    tid: str | None
    oid: str | None
    appid: str | None
    xms_mirid: str | None
    idtyp: str | None
    iat: int | None
    nbf: int | None
    exp: int | None

    @classmethod
    def from_mapping(cls, claims: Mapping[str, Any]) -> TokenClaims:
        texts = {n: _claim(claims, n, str) for n in ("aud", "iss", "tid", "oid", "appid")}
        times = {n: _claim(claims, n, int) for n in ("iat", "nbf", "exp")}
        return cls(
            **texts,
            xms_mirid=_claim(claims, "xms_mirid", str),
            idtyp=_claim(claims, "idtyp", str),
            **times,
        )

    @property
    def kind(self) -> str:
        """System- or user-assigned, read from ``xms_mirid``'s resource provider."""
        mirid = (self.xms_mirid or "").lower()
        if any(provider in mirid for provider in _VM_PROVIDERS):
            return SYSTEM_ASSIGNED
        if _UAMI_PROVIDER in mirid:
            return USER_ASSIGNED
        return UNKNOWN_KIND

    @property
    def tenant_id(self) -> str | None:
        """``tid``, or the tenant in a v1 issuer ``https://sts.windows.net/<tenant>/``."""
        if self.tid:
            return self.tid
        parts = (self.iss or "").rstrip("/").split("/")
        return parts[-1] if len(parts) > 3 else None


class AccessToken:
    """A bearer token whose raw form is only reachable through :meth:`bearer`."""

    __slots__ = ("_raw", "claims", "expires_on", "resource")

    def __init__(
        self, raw: Redacted[str], claims: TokenClaims, expires_on: int | None, resource: str | None
    ) -> None:
        self._raw = raw
        self.claims = claims
        self.expires_on = expires_on if expires_on is not None else claims.exp
        self.resource = resource

    @classmethod
    def parse(
        cls,
        raw: str | Redacted[str],
        *,
        expires_on: int | None = None,
        resource: str | None = None,
    ) -> AccessToken:
        """Decode ``raw`` (unverified); anything that is not a JWT with sane claims is
        TokenMalformed, without ever quoting the token. Pass it redacted where a traceback
        with locals could show it."""
        secret = raw if isinstance(raw, Redacted) else Redacted(raw)
        if not isinstance(secret.reveal(), str) or secret.reveal().count(".") != 2:
            raise _malformed("not a JWT (three dot-separated parts)")
        header, payload = (_segment(part) for part in secret.reveal().split(".")[:2])
        if header is None or payload is None or not isinstance(header.get("alg"), str):
            raise _malformed("the JWT does not decode")
        return cls(secret, TokenClaims.from_mapping(payload), expires_on, resource)

    def bearer(self) -> str:
        """The raw token, for an Authorization header: the one place it leaves this object."""
        return self._raw.reveal()

    def facts(self) -> Facts:
        """What the token tells about the identity, for filling in remedies."""
        return Facts(
            object_id=self.claims.oid,
            client_id=self.claims.appid,
            token_tenant_id=self.claims.tenant_id,
            found_audience=self.claims.aud,
        )

    def is_expired(self, now: float | None = None) -> bool:
        expiry = self.expires_on
        return expiry is not None and expiry <= (time.time() if now is None else now)

    def verify_signature(
        self, jwks_url: str, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        """Check the RS256 signature against the keys published at ``jwks_url``.

        Raises TokenMalformed when the keys cannot be fetched or the signature does not verify.
        """
        import jwt  # only here: reading claims needs neither pyjwt nor cryptography

        try:
            with httpx.Client(transport=transport, timeout=5.0, follow_redirects=False) as http:
                response = http.get(jwks_url)
            keyset = jwt.PyJWKSet.from_dict(response.json())
            kid = jwt.get_unverified_header(self.bearer()).get("kid")
            key = next(k for k in keyset.keys if k.key_id == kid)
            jwt.decode(
                self.bearer(),
                key=key.key,
                algorithms=["RS256"],
                options={"verify_aud": False, "verify_exp": False, "verify_nbf": False},
            )
        except (httpx.HTTPError, ValueError, StopIteration, jwt.PyJWTError):
            raise _malformed(f"the signature does not verify against {jwks_url}") from None

    def __repr__(self) -> str:
        c = self.claims
        return (
            f"AccessToken(aud={c.aud!r}, oid={c.oid!r}, tid={c.tenant_id!r}, kind={c.kind!r}, "
            f"expires_on={self.expires_on!r}, token=<redacted>)"
        )

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("an access token cannot be pickled")


def check_token(
    token: AccessToken,
    *,
    audience: str,
    vault_tenant_id: str | None = None,
    now: float | None = None,
) -> Diagnosis:
    """The first problem a vault would find with ``token``, or ``ok``."""
    facts = token.facts().merge(Facts(expected_audience=audience, vault_tenant_id=vault_tenant_id))
    if token.claims.aud not in (audience, KEY_VAULT_APP_ID):
        return diagnose(Code.WRONG_AUDIENCE, facts)
    if token.is_expired(now):
        return diagnose(Code.TOKEN_EXPIRED, facts)
    tenant = token.claims.tenant_id
    if vault_tenant_id and tenant and tenant.lower() != vault_tenant_id.lower():
        return diagnose(Code.TENANT_MISMATCH, facts)
    return diagnose(Code.OK, facts)
