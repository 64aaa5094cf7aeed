"""Code under test keeps Azure's real URLs: while :func:`intercept` is active, httpx and
``requests`` calls to IMDS, Entra and any vault reach the emulator in-process, and every other
address is left alone (as pytest-httpx and ``responses`` patch their libraries)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

import httpx
import responses

from .responses_mock import activate_responses
from .transports import (
    DEFAULT_CLIENT_ADDRESS,
    AsyncEmulatorTransport,
    EmulatorLike,
    EmulatorTransport,
    is_azure_address,
)

_EVERYTHING_ELSE = re.compile(r".*")


@contextmanager
def intercept(
    emulator: EmulatorLike, *, client_address: str = DEFAULT_CLIENT_ADDRESS
) -> Iterator[responses.RequestsMock]:
    """Route Azure's addresses to ``emulator`` for httpx (sync and async) and ``requests``;
    yields the ``responses`` mock (its ``.calls`` lists the ``requests`` calls)."""
    sync = EmulatorTransport(emulator, client_address=client_address)
    asynchronous = AsyncEmulatorTransport(emulator, client_address=client_address)
    original_sync = httpx.HTTPTransport.handle_request
    original_async = httpx.AsyncHTTPTransport.handle_async_request

    def handle_request(transport: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        if is_azure_address(request.url.scheme, request.url.host):
            return sync.handle_request(request)
        return original_sync(transport, request)

    async def handle_async_request(
        transport: httpx.AsyncHTTPTransport, request: httpx.Request
    ) -> httpx.Response:
        if is_azure_address(request.url.scheme, request.url.host):
            return await asynchronous.handle_async_request(request)
        return await original_async(transport, request)

    with (
        activate_responses(emulator, client_address=client_address) as mock,
        patch.object(httpx.HTTPTransport, "handle_request", handle_request),
        patch.object(httpx.AsyncHTTPTransport, "handle_async_request", handle_async_request),
    ):
        mock.add_passthru(_EVERYTHING_ELSE)
        yield mock
