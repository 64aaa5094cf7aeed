"""In-process httpx transports over the emulator's WSGI core, and what every way in shares.

The transports answer for Azure's own addresses (``http://169.254.169.254``,
``https://<vault>.vault.azure.net`` and the sovereign vault suffixes,
``https://login.microsoftonline.com``), so code under test keeps its production URLs and no socket
is opened. Any other address fails as an unreachable host would (:class:`httpx.ConnectError`).

The helpers below (:func:`route`, :func:`make_environ`, :func:`call_app`) are shared with the
loopback servers and the ``responses`` activation, so that the three ways in hand the core the
same WSGI environ for the same request.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote

import httpx

from .clouds import LOGIN_HOSTS, vault_name_from_host
from .contract import IMDS_HOST, IMDS_TARGET, TARGET_KEY, VAULT_TARGET_PREFIX, DropConnection

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

__all__ = [
    "DEFAULT_CLIENT_ADDRESS",
    "DEFAULT_PORTS",
    "AsyncEmulatorTransport",
    "EmulatorLike",
    "EmulatorTransport",
    "Route",
    "WsgiAnswer",
    "call_app",
    "make_environ",
    "route",
]

DEFAULT_CLIENT_ADDRESS = "127.0.0.1"
"""REMOTE_ADDR the in-process ways give the core unless told otherwise (what httpx uses too)."""

DEFAULT_PORTS = {"http": 80, "https": 443}


class EmulatorLike(Protocol):
    """What a way in needs of an emulator: its WSGI core and the vaults that exist right now."""

    @property
    def wsgi_app(self) -> WSGIApplication: ...

    def vault_names(self) -> Iterable[str]: ...


@dataclass(frozen=True)
class Route:
    """An emulated address. ``target`` is the TARGET_KEY value, None to route by Host (Entra)."""

    target: str | None


def is_azure_address(scheme: str, host: str) -> bool:
    """Whether ``scheme://host`` is one of the Azure addresses the emulator stands in for
    (IMDS, Entra's login hosts, any host under a vault suffix), known vault or not."""
    host = host.lower().rstrip(".")
    if scheme == "http":
        return host == IMDS_HOST
    return scheme == "https" and (host in LOGIN_HOSTS or vault_name_from_host(host) is not None)


def route(scheme: str, host: str, port: int | None, vault_names: Iterable[str]) -> Route | None:
    """Which emulated service answers at ``scheme://host:port``; None if nothing would.

    A vault host whose name is not a vault of the emulator is None, as DNS would not resolve it.
    """
    host = host.lower().rstrip(".")
    if port not in (None, DEFAULT_PORTS.get(scheme)):
        return None
    if scheme == "http" and host == IMDS_HOST:
        return Route(IMDS_TARGET)
    if scheme != "https":
        return None
    if host in LOGIN_HOSTS:
        return Route(None)
    vault = vault_name_from_host(host)
    if vault is None or vault[0] not in {name.lower() for name in vault_names}:
        return None
    return Route(VAULT_TARGET_PREFIX + vault[0])


def make_environ(
    *,
    method: str,
    scheme: str,
    host_header: str,
    server_name: str,
    target: str | None,
    raw_path: str,
    query: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    remote_addr: str,
    server_port: int,
) -> WSGIEnvironment:
    """A PEP 3333 environ. ``raw_path`` is still percent-encoded; PATH_INFO gets it decoded.

    Host and Content-Length come from ``host_header`` and ``body``, not from ``headers``.
    """
    environ: WSGIEnvironment = {
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote(raw_path, "latin-1"),
        "QUERY_STRING": query,
        "SERVER_NAME": server_name,
        "SERVER_PORT": str(server_port),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": remote_addr,
        "CONTENT_LENGTH": str(len(body)) if body else "",
        "HTTP_HOST": host_header,
    }
    for name, value in headers:
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_LENGTH", "HOST"):
            continue
        if key != "CONTENT_TYPE":
            key = "HTTP_" + key
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    if target is not None:
        environ[TARGET_KEY] = target
    return environ


@dataclass(frozen=True)
class WsgiAnswer:
    """The core's whole answer to one request, body buffered (not in the repr: it may hold a
    secret value or a token)."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes = field(repr=False)


def call_app(app: WSGIApplication, environ: WSGIEnvironment) -> WsgiAnswer:
    """Run the WSGI app to completion. :class:`DropConnection` propagates to the caller."""
    started: list[str] = []
    headers: list[tuple[str, str]] = []
    chunks: list[bytes] = []

    def start_response(
        status: str, response_headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> Any:
        started[:] = [status]
        headers[:] = response_headers
        return chunks.append

    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    if not started:
        raise RuntimeError("the WSGI app returned without calling start_response")
    code, _, reason = started[0].partition(" ")
    return WsgiAnswer(int(code), reason, headers, b"".join(chunks))


class _InProcess:
    """The part both transports share: request in, response out, no I/O."""

    def __init__(
        self, emulator: EmulatorLike, *, client_address: str = DEFAULT_CLIENT_ADDRESS
    ) -> None:
        self._emulator = emulator
        self._client_address = client_address

    def _answer(self, request: httpx.Request, body: bytes) -> httpx.Response:
        url = request.url
        found = route(url.scheme, url.host, url.port, self._emulator.vault_names())
        if found is None:
            raise httpx.ConnectError(
                f"kvmi emulator: nothing answers at {url.scheme}://{url.netloc.decode('ascii')}",
                request=request,
            )
        environ = make_environ(
            method=request.method,
            scheme=url.scheme,
            host_header=request.headers.get("Host", url.netloc.decode("ascii")),
            server_name=url.host,
            target=found.target,
            raw_path=url.raw_path.decode("ascii").partition("?")[0],
            query=url.query.decode("ascii"),
            headers=request.headers.multi_items(),
            body=body,
            remote_addr=self._client_address,
            server_port=url.port or DEFAULT_PORTS[url.scheme],
        )
        try:
            answer = call_app(self._emulator.wsgi_app, environ)
        except DropConnection:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from None
        return httpx.Response(
            answer.status,
            headers=answer.headers,
            content=answer.body,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": answer.reason.encode()},
        )


class EmulatorTransport(_InProcess, httpx.BaseTransport):
    """Sync httpx transport: ``httpx.Client(transport=EmulatorTransport(emulator))``.

    ``client_address`` is the REMOTE_ADDR the core sees (what its vault firewalls judge).
    """

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._answer(request, request.read())


class AsyncEmulatorTransport(_InProcess, httpx.AsyncBaseTransport):
    """Async twin of :class:`EmulatorTransport`.

    The core is sync and fast, so it is called inline; a ``delay`` fault blocks the event loop.
    """

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return self._answer(request, await request.aread())
