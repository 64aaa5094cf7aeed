"""One HTTP exchange reduced to what classification needs: an :class:`Answer` or a
:class:`Failure` of the transport, never an exception from inside httpx.

Bodies are read with a size cap (a hostile peer cannot make us hold gigabytes) and kept
redacted, because a Key Vault body holds a secret value and an IMDS body holds a token.
"""

from __future__ import annotations

import enum
import json
import socket
import ssl
from dataclasses import dataclass
from typing import Any

import httpx

from pytest_kvmi.redact import Redacted

MAX_BODY = 1 << 20
"""Bytes read from any answer; Key Vault secrets are at most 25 KiB, IMDS tokens a few KiB."""


def whole_number(value: object) -> int | None:
    """An integer field of a service's JSON: IMDS sends numbers as strings, Key Vault as
    numbers; anything else (a bool, a float, text) is no number."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


@dataclass(frozen=True)
class Answer:
    """A complete HTTP answer. ``body`` is redacted; ``too_large`` means it was cut at MAX_BODY."""

    status: int
    headers: httpx.Headers
    body: Redacted[bytes]
    too_large: bool = False

    @property
    def media_type(self) -> str:
        content_type: str = self.headers.get("content-type", "")
        return content_type.split(";")[0].strip().lower()

    def json_object(self) -> dict[str, Any] | None:
        """The body as a JSON object, or None if it is not one (or was cut)."""
        if self.too_large:
            return None
        try:
            data = json.loads(self.body.reveal())
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
        return data if isinstance(data, dict) else None

    def looks_like_html(self) -> bool:
        head = self.body.reveal()[:512].lstrip().lower()
        return self.media_type == "text/html" or head.startswith((b"<!doctype", b"<html"))


class FailureKind(enum.Enum):
    DNS = "the host name does not resolve"
    TLS = "the TLS handshake failed"
    REFUSED = "the connection was refused or could not be made"
    CONNECT_TIMEOUT = "the connection timed out"
    READ_TIMEOUT = "no answer before the timeout"
    DROPPED = "the connection closed without a complete answer"
    UNDECODABLE = "the answer's content encoding is broken"


@dataclass(frozen=True)
class Failure:
    """The transport failed before a complete answer arrived."""

    kind: FailureKind

    @property
    def detail(self) -> str:
        return self.kind.value


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


_DNS_WORDS = (
    "name or service not known",
    "nodename nor servname",
    "getaddrinfo",
    "name resolution",
)
_TLS_WORDS = ("certificate_verify_failed", "ssl", "tls", "wrong version number")


def classify_failure(error: httpx.RequestError) -> Failure:
    """Name what went wrong in the transport, from the exception type and its causes."""
    chain = _chain(error)
    text = " ".join(str(e) for e in chain).lower()
    if isinstance(error, httpx.ConnectTimeout):
        return Failure(FailureKind.CONNECT_TIMEOUT)
    if isinstance(error, httpx.TimeoutException):
        return Failure(FailureKind.READ_TIMEOUT)
    if isinstance(error, httpx.ConnectError):
        if any(isinstance(e, socket.gaierror) for e in chain) or any(w in text for w in _DNS_WORDS):
            return Failure(FailureKind.DNS)
        if any(isinstance(e, ssl.SSLError) for e in chain) or any(w in text for w in _TLS_WORDS):
            return Failure(FailureKind.TLS)
        return Failure(FailureKind.REFUSED)
    if isinstance(error, httpx.DecodingError):
        return Failure(FailureKind.UNDECODABLE)
    return Failure(FailureKind.DROPPED)


def exchange(client: httpx.Client, request: httpx.Request) -> Answer | Failure:
    """Send ``request`` and read at most MAX_BODY bytes of the answer."""
    try:
        response = client.send(request, stream=True)
        try:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_BODY:
                    break
        finally:
            response.close()
    except httpx.RequestError as error:
        return classify_failure(error)
    except httpx.StreamError:
        return Failure(FailureKind.DROPPED)
    too_large = len(body) > MAX_BODY
    return Answer(
        response.status_code, response.headers, Redacted(bytes(body[:MAX_BODY])), too_large
    )
