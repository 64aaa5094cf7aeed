"""Just enough WSGI: a parsed request and a response value the core's handlers return."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True)
class Response:
    """A complete answer: status, headers (without Content-Length) and body.

    The body stays out of the repr: it may hold a secret value or a token.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes = field(repr=False)

    @property
    def status_line(self) -> str:
        """``"404 Not Found"``; statuses Python does not know get ``"Unknown"``."""
        try:
            phrase = HTTPStatus(self.status).phrase
        except ValueError:
            phrase = "Unknown"
        return f"{self.status} {phrase}"


def json_response(
    status: int, payload: Mapping[str, Any], headers: Iterable[tuple[str, str]] = ()
) -> Response:
    """Compact JSON (no spaces) as Azure's services send it."""
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return Response(status, (("Content-Type", JSON_CONTENT_TYPE), *headers), body)


def text_response(
    status: int, text: str, content_type: str = "text/plain; charset=utf-8"
) -> Response:
    """A non-JSON body (gateway pages, emulator notes)."""
    body = text.encode("utf-8")
    return Response(status, (("Content-Type", content_type),) if body else (), body)


class Request:
    """The parts of a WSGI environ the emulated services look at."""

    def __init__(self, environ: Mapping[str, Any]) -> None:
        self.environ = environ
        self.method: str = str(environ.get("REQUEST_METHOD", "GET")).upper()
        self.path: str = str(environ.get("PATH_INFO", ""))
        self.remote_addr: str = str(environ.get("REMOTE_ADDR", ""))

    def header(self, name: str) -> str | None:
        """A request header by name (case-insensitive), or None."""
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        value = self.environ.get(key)
        return None if value is None else str(value)

    @functools.cached_property
    def query_pairs(self) -> list[tuple[str, str]]:
        """Query parameters in order, repeats kept."""
        return parse_qsl(str(self.environ.get("QUERY_STRING", "")), keep_blank_values=True)

    @functools.cached_property
    def query(self) -> dict[str, str]:
        """Query parameters, first value of each name."""
        result: dict[str, str] = {}
        for key, value in self.query_pairs:
            result.setdefault(key, value)
        return result

    def repeated_parameter(self) -> str | None:
        """The first query parameter name that appears more than once, if any."""
        seen: set[str] = set()
        for key, _ in self.query_pairs:
            if key in seen:
                return key
            seen.add(key)
        return None

    @functools.cached_property
    def authority(self) -> str:
        """``host[:port]`` as the client addressed it."""
        host = self.environ.get("HTTP_HOST")
        if host:
            return str(host)
        port = str(self.environ.get("SERVER_PORT", ""))
        name = str(self.environ.get("SERVER_NAME", ""))
        default = "443" if self.scheme == "https" else "80"
        return name if port in ("", default) else f"{name}:{port}"

    @property
    def host(self) -> str:
        """The host name alone, lower-case, without port or IPv6 brackets."""
        authority = self.authority.lower()
        if authority.startswith("["):
            return authority[1:].split("]", 1)[0]
        return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority

    @property
    def scheme(self) -> str:
        return str(self.environ.get("wsgi.url_scheme", "http"))

    @property
    def base_url(self) -> str:
        """``scheme://host[:port]``: where links in answers must point so the client can follow."""
        return f"{self.scheme}://{self.authority}"

    def body(self) -> bytes | None:
        """The request body, or None if it is larger than the emulator accepts."""
        try:
            length = int(self.environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return None
        if length < 0 or length > MAX_BODY_BYTES:
            return None
        stream = self.environ.get("wsgi.input")
        return stream.read(length) if stream is not None and length else b""
