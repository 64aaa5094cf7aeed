"""The emulator for code that uses ``requests`` (the Azure SDK's default transport), in process.

:func:`activate_responses` patches ``requests`` with a :class:`responses.RequestsMock` whose
callbacks hand requests for Azure's own addresses to the core. Nothing passes through: any other
host fails with ``requests.exceptions.ConnectionError``, as :mod:`responses` always does, so a
test can never reach the network by mistake.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import requests
import responses

from .clouds import CLOUDS, LOGIN_HOSTS
from .contract import IMDS_HOST, DropConnection
from .transports import (
    DEFAULT_CLIENT_ADDRESS,
    DEFAULT_PORTS,
    EmulatorLike,
    call_app,
    make_environ,
    route,
)

__all__ = ["activate_responses", "add_emulator"]

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _host_pattern(scheme: str, hosts: str) -> re.Pattern[str]:
    return re.compile(rf"{scheme}://(?:{hosts})(?::\d+)?(?:[/?#]|$)", re.IGNORECASE)


_PATTERNS = (
    _host_pattern("http", re.escape(IMDS_HOST)),
    _host_pattern("https", "|".join(re.escape(host) for host in sorted(LOGIN_HOSTS))),
    _host_pattern(
        "https", "|".join(r"[^/.:?#]+\." + re.escape(cloud.vault_suffix) for cloud in CLOUDS)
    ),
)


def _body_bytes(body: Any) -> bytes:
    """A PreparedRequest body (bytes, str, file or iterable of bytes) as bytes."""
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytes):
        return body
    if hasattr(body, "read"):
        return _body_bytes(body.read())
    return b"".join(_body_bytes(chunk) for chunk in body)


def add_emulator(
    mock: responses.RequestsMock,
    emulator: EmulatorLike,
    *,
    client_address: str = DEFAULT_CLIENT_ADDRESS,
) -> None:
    """Register the emulator's hosts on a mock the caller already has.

    The mock needs ``assert_all_requests_are_fired=False``: most of what this registers (a
    callback per method and host pattern) is never called in a given test.

    ``client_address`` is the REMOTE_ADDR the core sees (what its vault firewalls judge).
    """

    def callback(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        url = urlsplit(request.url or "")
        found = route(url.scheme, url.hostname or "", url.port, emulator.vault_names())
        if found is None:
            raise requests.exceptions.ConnectionError(
                f"kvmi emulator: nothing answers at {url.scheme}://{url.netloc}", request=request
            )
        body = _body_bytes(request.body)
        environ = make_environ(
            method=request.method or "GET",
            scheme=url.scheme,
            host_header=url.netloc,
            server_name=url.hostname or "",
            target=found.target,
            raw_path=url.path or "/",
            query=url.query,
            headers=request.headers.items(),
            body=body,
            remote_addr=client_address,
            server_port=url.port or DEFAULT_PORTS[url.scheme],
        )
        try:
            answer = call_app(emulator.wsgi_app, environ)
        except DropConnection:
            raise requests.exceptions.ConnectionError(
                "Connection aborted: remote end closed connection without response",
                request=request,
            ) from None
        headers: dict[str, str] = {}
        for name, value in answer.headers:  # a repeated header is one comma-joined, as HTTP allows
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return answer.status, headers, answer.body

    for pattern in _PATTERNS:
        for method in _METHODS:
            mock.add_callback(method, pattern, callback, content_type=None)


@contextmanager
def activate_responses(
    emulator: EmulatorLike, *, client_address: str = DEFAULT_CLIENT_ADDRESS
) -> Iterator[responses.RequestsMock]:
    """Patch ``requests`` so Azure's addresses reach ``emulator`` and nothing else is reachable.

    Yields the active :class:`responses.RequestsMock` (``.calls`` records every request).
    """
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        add_emulator(mock, emulator, client_address=client_address)
        yield mock
