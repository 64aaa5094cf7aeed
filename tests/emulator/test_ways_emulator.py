"""The three ways in over the real core: same answers, the client address, dropped connections."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import requests

from pytest_kvmi.emulator import DEMO_SECRET, DEMO_SECRET_VALUE, Emulator
from pytest_kvmi.emulator.faults import VAULT

TOKEN_PARAMS = {"api-version": "2018-02-01", "resource": "https://vault.azure.net"}
SECRET_PATH = f"/secrets/{DEMO_SECRET}"
Get = Callable[..., Any]
"""``get(url, headers=..., params=...)`` -> response with ``status_code`` and ``json()``."""


@contextmanager
def via_transport(emulator: Emulator, address: str) -> Iterator[tuple[str, str, Get]]:
    with httpx.Client(transport=emulator.transport(client_address=address)) as client:
        yield "http://169.254.169.254", "https://demo.vault.azure.net", client.get


@contextmanager
def via_servers(emulator: Emulator, address: str) -> Iterator[tuple[str, str, Get]]:
    with emulator.serve() as servers, httpx.Client(verify=servers.client_ssl_context()) as client:
        yield servers.imds_endpoint, servers.vault_url("demo"), client.get


@contextmanager
def via_responses(emulator: Emulator, address: str) -> Iterator[tuple[str, str, Get]]:
    with emulator.activate_responses(client_address=address), requests.Session() as session:
        yield "http://169.254.169.254", "https://demo.vault.azure.net", session.get


WAYS = {"transport": via_transport, "servers": via_servers, "responses": via_responses}
DROPPED: dict[str, type[Exception]] = {
    "transport": httpx.RemoteProtocolError,
    "servers": httpx.RemoteProtocolError,
    "responses": requests.exceptions.ConnectionError,
}


@pytest.fixture(params=list(WAYS))
def way(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def read_secret(imds: str, vault: str, get: Get) -> Any:
    token = get(
        f"{imds}/metadata/identity/oauth2/token", params=TOKEN_PARAMS, headers={"Metadata": "true"}
    )
    assert token.status_code == 200
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    return get(f"{vault}{SECRET_PATH}", params={"api-version": "7.5"}, headers=bearer)


def test_a_token_then_the_secret(way: str) -> None:
    with WAYS[way](Emulator.demo(), "127.0.0.1") as (imds, vault, get):
        answer = read_secret(imds, vault, get)
    assert answer.status_code == 200
    assert answer.json()["value"] == DEMO_SECRET_VALUE
    assert answer.json()["id"].startswith(f"{vault}{SECRET_PATH}/")


def test_the_firewall_judges_the_client_address(way: str) -> None:
    emulator = Emulator.demo()
    emulator.set_firewall("demo", allow=["203.0.113.9"])
    address = "127.0.0.1" if way == "servers" else "10.9.9.9"
    with WAYS[way](emulator, address) as (imds, vault, get):
        refused = read_secret(imds, vault, get)
        emulator.set_firewall("demo", allow=[address])
        allowed = read_secret(imds, vault, get)
    assert refused.status_code == 403
    assert refused.json()["error"]["innererror"]["code"] == "ForbiddenByFirewall"
    assert address in refused.json()["error"]["message"]
    assert allowed.status_code == 200


def test_a_dropped_connection_is_the_way_s_own_error(way: str) -> None:
    emulator = Emulator.demo()
    with WAYS[way](emulator, "127.0.0.1") as (imds, vault, get):
        emulator.faults.drop(VAULT)
        with pytest.raises(DROPPED[way]):
            read_secret(imds, vault, get)
        assert read_secret(imds, vault, get).status_code == 200
