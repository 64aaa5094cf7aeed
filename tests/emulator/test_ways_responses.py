"""The ``responses`` activation: ``requests`` to Azure's addresses reach the core, nothing else."""

from __future__ import annotations

import json

import pytest
import requests
import responses

from pytest_kvmi.emulator.responses_mock import activate_responses, add_emulator
from tests.emulator.echo import EchoEmulator


def test_imds_and_vault_urls_reach_the_core() -> None:
    with activate_responses(EchoEmulator("demo"), client_address="10.0.0.4") as mock:
        imds = requests.get(
            "http://169.254.169.254/metadata/identity/oauth2/token",
            params={"api-version": "2018-02-01", "resource": "https://vault.azure.net"},
            headers={"Metadata": "true"},
            timeout=5,
        )
        vault = requests.post(
            "https://demo.vault.azure.net/secrets/s%20t?api-version=7.5", json={"a": 1}, timeout=5
        )
        assert len(mock.calls) == 2
    assert imds.status_code == 418
    assert imds.headers["Content-Type"] == "application/json"
    assert imds.headers["WWW-Authenticate"] == 'Bearer x="y"'
    seen = imds.json()
    assert (seen["target"], seen["metadata"], seen["remote_addr"]) == ("imds", "true", "10.0.0.4")
    assert seen["query"] == "api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"
    seen = vault.json()
    assert (seen["target"], seen["method"], seen["path"]) == ("vault:demo", "POST", "/secrets/s t")
    assert (seen["host"], json.loads(seen["body"])) == ("demo.vault.azure.net", {"a": 1})


def test_login_is_routed_by_host() -> None:
    with activate_responses(EchoEmulator()):
        seen = requests.get("https://login.microsoftonline.com/t/v2.0/keys", timeout=5).json()
    assert (seen["target"], seen["host"]) == (None, "login.microsoftonline.com")


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/",
        "https://nope.vault.azure.net/secrets/x",
        "http://demo.vault.azure.net/secrets/x",
        "http://169.254.169.254:8080/metadata/instance",
    ],
)
def test_nothing_else_is_reachable(url: str) -> None:
    with (
        activate_responses(EchoEmulator("demo")),
        pytest.raises(requests.exceptions.ConnectionError),
    ):
        requests.get(url, timeout=5)


def test_a_dropped_connection_is_a_connection_error() -> None:
    with (
        activate_responses(EchoEmulator()),
        pytest.raises(requests.exceptions.ConnectionError, match="without response"),
    ):
        requests.get("http://169.254.169.254/drop", timeout=5)


def test_the_emulator_can_join_a_mock_the_test_already_has() -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get("https://example.com/", body="elsewhere")
        add_emulator(mock, EchoEmulator("demo"))
        assert requests.get("https://example.com/", timeout=5).text == "elsewhere"
        assert requests.get("https://demo.vault.azure.net/", timeout=5).status_code == 418


def test_streamed_bodies_are_read_whole() -> None:
    with activate_responses(EchoEmulator("demo")):
        seen = requests.put(
            "https://demo.vault.azure.net/x", data=iter([b"ab", b"cd"]), timeout=5
        ).json()
    assert seen["body"] == "abcd"
