"""The in-process httpx transports: production URLs in, the core's WSGI app called, no socket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from pytest_kvmi.emulator.transports import (
    AsyncEmulatorTransport,
    EmulatorTransport,
    call_app,
    route,
)
from tests.emulator.echo import EchoEmulator

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


@pytest.fixture
def client() -> Iterable[httpx.Client]:
    with httpx.Client(transport=EmulatorTransport(EchoEmulator("demo", "gov"))) as client:
        yield client


def test_imds_is_answered_at_its_link_local_address(client: httpx.Client) -> None:
    response = client.get(
        "http://169.254.169.254/metadata/identity/oauth2/token",
        params={"api-version": "2018-02-01", "resource": "https://vault.azure.net"},
        headers={"Metadata": "true"},
    )
    assert response.status_code == 418
    assert response.reason_phrase == "I'm a teapot"
    assert response.headers["X-Echo"] == "1"
    seen = response.json()
    assert seen["target"] == "imds"
    assert seen["path"] == "/metadata/identity/oauth2/token"
    assert seen["query"] == "api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"
    assert seen["metadata"] == "true"
    assert seen["host"] == "169.254.169.254"
    assert seen["remote_addr"] == "127.0.0.1"


@pytest.mark.parametrize(
    "url",
    ["https://demo.vault.azure.net", "https://DEMO.vault.azure.net", "https://gov.vault.azure.cn"],
)
def test_a_vault_is_answered_at_its_cloud_host(client: httpx.Client, url: str) -> None:
    response = client.put(
        f"{url}/secrets/a%20b", json={"value": "v"}, params={"api-version": "7.5"}
    )
    seen = response.json()
    vault = url.removeprefix("https://").split(".")[0].lower()
    assert seen["target"] == f"vault:{vault}"
    assert seen["method"] == "PUT"
    assert seen["path"] == "/secrets/a b"
    assert seen["content_type"] == "application/json"
    assert json.loads(seen["body"]) == {"value": "v"}
    assert seen["scheme"] == "https"


def test_entra_is_routed_by_host(client: httpx.Client) -> None:
    seen = client.get("https://login.microsoftonline.com/common/discovery/keys").json()
    assert seen["target"] is None
    assert seen["host"] == "login.microsoftonline.com"


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/",
        "https://nope.vault.azure.net/secrets/x",  # no such vault: DNS would not resolve it
        "http://demo.vault.azure.net/secrets/x",  # Key Vault is https only
        "https://169.254.169.254/metadata/identity/oauth2/token",  # IMDS is http only
        "https://demo.vault.azure.net:8443/secrets/x",
        "https://a.b.vault.azure.net/",
    ],
)
def test_anything_else_is_unreachable(client: httpx.Client, url: str) -> None:
    with pytest.raises(httpx.ConnectError, match="nothing answers"):
        client.get(url)


def test_a_vault_made_later_is_reachable_at_once() -> None:
    emulator = EchoEmulator()
    with httpx.Client(transport=EmulatorTransport(emulator)) as client:
        with pytest.raises(httpx.ConnectError):
            client.get("https://late.vault.azure.net/")
        emulator.vaults.append("late")
        assert client.get("https://late.vault.azure.net/").json()["target"] == "vault:late"


def test_the_client_address_is_what_the_core_sees() -> None:
    transport = EmulatorTransport(EchoEmulator("demo"), client_address="203.0.113.7")
    with httpx.Client(transport=transport) as client:
        assert client.get("https://demo.vault.azure.net/").json()["remote_addr"] == "203.0.113.7"


def test_a_dropped_connection_is_a_remote_protocol_error(client: httpx.Client) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("http://169.254.169.254/drop")


def test_the_async_transport_answers_the_same() -> None:
    async def fetch() -> tuple[dict[str, Any], type[BaseException]]:
        transport = AsyncEmulatorTransport(EchoEmulator("demo"), client_address="10.1.2.3")
        async with httpx.AsyncClient(transport=transport) as client:
            seen = (await client.post("https://demo.vault.azure.net/x", content=b"hi")).json()
            with pytest.raises(httpx.RemoteProtocolError) as dropped:
                await client.get("http://169.254.169.254/drop")
        return seen, dropped.type

    seen, dropped = asyncio.run(fetch())
    assert (seen["target"], seen["body"], seen["remote_addr"]) == ("vault:demo", "hi", "10.1.2.3")
    assert dropped is httpx.RemoteProtocolError


def test_route_ignores_a_trailing_dot_and_case() -> None:
    assert route("https", "Demo.Vault.Azure.Net.", None, ["demo"]) is not None
    assert route("http", "169.254.169.254", 80, []) is not None
    assert route("http", "169.254.169.254", 8080, []) is None


def test_call_app_closes_the_body_iterable_and_requires_start_response() -> None:
    closed: list[bool] = []

    class Body(list[bytes]):
        def close(self) -> None:
            closed.append(True)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        return Body([b"a", b"b"])

    answer = call_app(app, {})
    assert (answer.status, answer.reason, answer.body, closed) == (200, "OK", b"ab", [True])

    def silent(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return []

    with pytest.raises(RuntimeError, match="start_response"):
        call_app(silent, {})
