"""Fault injection: "the next N answers of this endpoint are ..." (an error status, a delay, a
dropped connection, or an IMDS token for another audience), to test how clients cope with IMDS
and Key Vault misbehaving."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from .wording import THROTTLED, vault_error
from .wsgi import Response, json_response, text_response

IMDS_TOKEN = "imds-token"
"""IMDS ``/metadata/identity/oauth2/token``."""
IMDS = "imds"
"""Every other IMDS path."""
VAULT = "vault"
"""Every Key Vault request (any vault)."""
ENTRA = "entra"
"""Entra's discovery documents and keys."""
ENDPOINTS = (IMDS_TOKEN, IMDS, VAULT, ENTRA)

_GATEWAY_PAGE = (
    "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class Fault:
    """One planned misbehaviour. ``delay`` delays a normal answer; ``status`` replaces it."""

    status: int | None = None
    retry_after: int | None = None
    delay: float = 0.0
    drop: bool = False

    def response(self, endpoint: str) -> Response:
        """The answer a real service (or the proxy in front of it) sends with this status."""
        assert self.status is not None
        status = self.status
        headers = (("Retry-After", str(self.retry_after)),) if self.retry_after is not None else ()
        if status in (502, 504):
            phrase = "Bad Gateway" if status == 502 else "Gateway Time-out"
            page = _GATEWAY_PAGE.format(status=status, phrase=phrase)
            plain = text_response(status, page, "text/html")
            return Response(status, plain.headers + headers, plain.body)
        if endpoint in (IMDS_TOKEN, IMDS):
            return _imds_fault(status, headers)
        if endpoint == VAULT:
            return _vault_fault(status, headers)
        return Response(status, headers, b"")


def _imds_fault(status: int, headers: tuple[tuple[str, str], ...]) -> Response:
    """IMDS's body for 410 is unpublished: it is sent empty, like the capture."""
    if status == 429:
        payload = {"error": "too_many_requests", "error_description": "Too many requests"}
        return json_response(status, payload, headers)
    if status == 500:
        payload = {"error": "server_error", "error_description": "Internal server error"}
        return json_response(status, payload, headers)
    if status == 503:
        payload = {"error": "service_unavailable", "error_description": "Service unavailable"}
        return json_response(status, payload, headers)
    return Response(status, headers, b"")


def _vault_fault(status: int, headers: tuple[tuple[str, str], ...]) -> Response:
    codes = {
        429: ("Throttled", THROTTLED),
        500: ("InternalServerError", "The server encountered an internal error."),
        503: ("ServiceUnavailable", "The service is temporarily unavailable."),
    }
    if status in codes:
        code, message = codes[status]
        return vault_error(status, code, message, headers=headers)
    return Response(status, headers, b"")


class Faults:
    """Per-endpoint queues of planned faults, consumed one per request in arrival order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Fault]] = {endpoint: deque() for endpoint in ENDPOINTS}
        self._audience: str | None = None
        self._audience_left: int | None = None

    def status(
        self, endpoint: str, status: int, *, times: int = 1, retry_after: int | None = None
    ) -> None:
        """The next ``times`` answers of ``endpoint`` are ``status`` (with Retry-After if given).

        Bodies are the real ones where known: IMDS 429, Key Vault 429 (the throttling capture),
        an HTML page for 502/504 as a gateway sends, an empty body for IMDS 410.
        """
        if not 400 <= status <= 599:
            raise ValueError(f"fault status must be an error status, not {status}")
        self._add(endpoint, Fault(status=status, retry_after=retry_after), times)

    def delay(self, endpoint: str, seconds: float, *, times: int = 1) -> None:
        """The next ``times`` answers of ``endpoint`` come after a real sleep of ``seconds``."""
        if seconds < 0:
            raise ValueError("a delay cannot be negative")
        self._add(endpoint, Fault(delay=seconds), times)

    def drop(self, endpoint: str, *, times: int = 1) -> None:
        """The next ``times`` requests to ``endpoint`` get no answer: the connection is closed."""
        self._add(endpoint, Fault(drop=True), times)

    def audience(self, audience: str, *, times: int | None = None) -> None:
        """The next ``times`` token answers of IMDS (every one if None) carry a real, valid
        token for ``audience`` instead of the requested resource.

        Real IMDS always issues the audience asked for; a wrong one comes from whatever stands
        in front of it (a proxy, a pod identity endpoint) asking for another resource.
        """
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for every answer)")
        with self._lock:
            self._audience, self._audience_left = audience, times

    def take_audience(self) -> str | None:
        """The audience to issue the token now being answered for, if one is planned."""
        if self._audience is None:  # the common case, without the lock
            return None
        with self._lock:
            audience = self._audience
            if self._audience_left is not None:
                self._audience_left -= 1
                if self._audience_left <= 0:
                    self._audience = self._audience_left = None
            return audience

    def clear(self, endpoint: str | None = None) -> None:
        """Forget planned faults (for one endpoint, or all)."""
        with self._lock:
            for name in (endpoint,) if endpoint else ENDPOINTS:
                self._queue(name).clear()
            if endpoint in (None, IMDS_TOKEN):
                self._audience = self._audience_left = None

    def pending(self, endpoint: str) -> int:
        """How many planned faults ``endpoint`` has not yet consumed."""
        return len(self._queue(endpoint))

    def take(self, endpoint: str) -> Fault | None:
        """The fault for the request now arriving at ``endpoint``, if one is planned."""
        queue = self._queues[endpoint]
        if not queue:  # the common case, without the lock
            return None
        with self._lock:
            return queue.popleft() if queue else None

    def _add(self, endpoint: str, fault: Fault, times: int) -> None:
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._queue(endpoint).extend([fault] * times)

    def _queue(self, endpoint: str) -> deque[Fault]:
        try:
            return self._queues[endpoint]
        except KeyError:
            raise ValueError(f"unknown endpoint {endpoint!r}; known: {ENDPOINTS}") from None
