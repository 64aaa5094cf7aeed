"""Entra's side of tokens: an RSA signing key with its certificate, JWT issuing and checking,
and the public documents (JWKS) that let anyone verify what the emulator signs."""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_uint(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class SigningKey:
    """An RSA key pair plus a self-signed certificate, as Entra publishes its signing keys.

    ``kid`` equals ``x5t`` (base64url SHA-1 of the certificate's DER), as in Entra's v1 keys.
    Generating a key takes tens of milliseconds: build one per emulator, or share
    :func:`shared_signing_key` across emulators in a process.
    """

    def __init__(self, private_key: rsa.RSAPrivateKey | None = None) -> None:
        self._private_key = private_key or rsa.generate_private_key(65537, 2048)
        self.public_key = self._private_key.public_key()
        now = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
        name = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, "accounts.accesscontrol.windows.net")]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=3650))
            .sign(self._private_key, hashes.SHA256())
        )
        self.certificate_der = cert.public_bytes(serialization.Encoding.DER)
        self.x5t = _b64url(hashlib.sha1(self.certificate_der).digest())
        self.kid = self.x5t

    def sign(self, claims: Mapping[str, Any]) -> str:
        """An RS256 JWT over ``claims`` with Entra's ``typ``, ``kid`` and ``x5t`` headers."""
        return jwt.encode(
            dict(claims),
            self._private_key,
            algorithm="RS256",
            headers={"typ": "JWT", "kid": self.kid, "x5t": self.x5t},
        )

    def jwk(self) -> dict[str, Any]:
        """The public key as a JWKS entry, shaped like Entra's ``discovery/keys``."""
        numbers = self.public_key.public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.x5t,
            "n": _b64url_uint(numbers.n),
            "e": _b64url_uint(numbers.e),
            "x5c": [base64.b64encode(self.certificate_der).decode("ascii")],
        }

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r})"


@functools.cache
def shared_signing_key() -> SigningKey:
    """One key generated on first use and reused by every emulator in this process that asks."""
    return SigningKey()


class TokenRejected(Exception):
    """A token failed signature or format checks; ``unknown_key`` tells which (for wording)."""

    def __init__(self, *, unknown_key: bool) -> None:
        super().__init__("unknown signing key" if unknown_key else "invalid token")
        self.unknown_key = unknown_key


class TokenVerifier:
    """Checks RS256 signatures against trusted keys; remembers tokens it has already verified.

    Claims (audience, issuer, lifetime) are the caller's to judge against the emulated clock:
    this class answers only "did a trusted key sign this, and what does it say".
    """

    _CACHE_LIMIT = 4096

    def __init__(self, keys: Iterable[SigningKey]) -> None:
        self._keys = {key.kid: key.public_key for key in keys}
        self._verified: dict[str, dict[str, Any]] = {}

    def claims(self, token: str) -> dict[str, Any]:
        """The verified claims of ``token`` (treat as read-only), or :class:`TokenRejected`."""
        cached = self._verified.get(token)
        if cached is not None:
            return cached
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError:
            raise TokenRejected(unknown_key=False) from None
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenRejected(unknown_key=True)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                # Lifetime, audience and issuer are judged by the caller on the emulated clock.
                options={
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                },
            )
        except jwt.InvalidTokenError:
            raise TokenRejected(unknown_key=False) from None
        if len(self._verified) >= self._CACHE_LIMIT:
            self._verified.clear()
        self._verified[token] = claims
        return claims
