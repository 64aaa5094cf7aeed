"""Shared helpers for the emulator core's tests: in-process clients over httpx's WSGITransport,
capture loading and masking."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pytest_kvmi.emulator import Clock, Emulator

DATA = Path(__file__).parent / "data"
CAPTURES = Path(__file__).parent.parent / "data" / "captures"
"""The real Azure answers, shared with the plugin's tests."""
START = 1_700_000_000.0
VM_ADDRESS = "203.0.113.9"
IMDS_URL = "http://169.254.169.254"
TOKEN_PATH = "/metadata/identity/oauth2/token"

_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_HEX32 = re.compile(r"\b[0-9a-f]{32}\b")
_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
_STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ")


def capture(name: str) -> dict[str, Any]:
    """One real Azure response from tests/data/captures."""
    data: dict[str, Any] = json.loads((CAPTURES / f"{name}.json").read_text("utf-8"))
    return data


def mask(text: str) -> str:
    """Hide what differs between two runs of the same situation: ids, addresses, timestamps."""
    for pattern, label in ((_GUID, "<guid>"), (_HEX32, "<hex>"), (_IPV4, "<ip>"), (_STAMP, "<ts>")):
        text = pattern.sub(label, text)
    return text


def client(
    emu: Emulator, base_url: str = "https://demo.vault.azure.net", remote_addr: str = VM_ADDRESS
) -> httpx.Client:
    """An httpx client whose requests go straight into the emulator's WSGI app."""
    transport = httpx.WSGITransport(app=emu.wsgi_app, remote_addr=remote_addr)
    return httpx.Client(transport=transport, base_url=base_url)


def imds_get(emu: Emulator, path: str = TOKEN_PATH, **params: str) -> httpx.Response:
    """A GET to the emulated IMDS with ``Metadata: true``."""
    with client(emu, IMDS_URL) as imds:
        return imds.get(path, params=params, headers={"Metadata": "true"})


def imds_token(emu: Emulator, resource: str = "https://vault.azure.net", **selector: str) -> str:
    """A token from the emulated IMDS (asserting it was issued)."""
    response = imds_get(emu, resource=resource, **{"api-version": "2018-02-01"}, **selector)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def vault_get(
    emu: Emulator,
    path: str,
    token: str | None = None,
    *,
    vault: str = "demo",
    api_version: str = "7.4",
    remote_addr: str = VM_ADDRESS,
) -> httpx.Response:
    """A GET to a vault, authenticated with ``token`` if given."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with client(emu, f"https://{vault}.vault.azure.net", remote_addr) as kv:
        return kv.get(path, params={"api-version": api_version}, headers=headers)


def error_code(response: httpx.Response) -> tuple[str, str | None]:
    """``(code, innererror code)`` of a Key Vault error answer."""
    error = response.json()["error"]
    return error["code"], error.get("innererror", {}).get("code")


@pytest.fixture
def emu() -> Emulator:
    """The demo setup on a frozen clock."""
    return Emulator.demo(clock=Clock(start=START))


@pytest.fixture
def token(emu: Emulator) -> str:
    """The system identity's Key Vault token."""
    return imds_token(emu)


@pytest.fixture
def kv(emu: Emulator, token: str) -> Iterator[httpx.Client]:
    """A client of vault ``demo`` that sends the system identity's token."""
    with client(emu) as kv_client:
        kv_client.headers["Authorization"] = f"Bearer {token}"
        kv_client.params = httpx.QueryParams({"api-version": "7.4"})
        yield kv_client
