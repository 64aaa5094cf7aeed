"""Acceptance through the ``responses`` activation: ``requests`` and the Azure SDK (whose default
transport is ``requests``) reach the emulator at Azure's real addresses, in process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import responses
from azure.core.exceptions import HttpResponseError
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from pytest_kvmi.emulator import DEMO_SECRET, DEMO_SECRET_VALUE, Emulator
from pytest_kvmi.emulator.responses_mock import activate_responses
from pytest_kvmi.emulator.servers import CONFLICTING_ENV
from tests.emulator.sdk import managed_identity_chain

IMDS_TOKEN_URL = "http://169.254.169.254/metadata/identity/oauth2/token"
VAULT_URL = "https://demo.vault.azure.net"


@pytest.fixture
def emulator() -> Emulator:
    return Emulator.demo()


@pytest.fixture
def mock(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[responses.RequestsMock]:
    """Azure's addresses answered by the emulator; an environment like a bare VM's."""
    for name in (*CONFLICTING_ENV, "AZURE_POD_IDENTITY_AUTHORITY_HOST"):
        monkeypatch.delenv(name, raising=False)
    with activate_responses(emulator) as mock:
        yield mock


def test_plain_requests_gets_a_token_then_the_secret(mock: responses.RequestsMock) -> None:
    token = requests.get(
        IMDS_TOKEN_URL,
        params={"api-version": "2018-02-01", "resource": "https://vault.azure.net"},
        headers={"Metadata": "true"},
        timeout=5,
    )
    assert token.status_code == 200
    secret = requests.get(
        f"{VAULT_URL}/secrets/{DEMO_SECRET}",
        params={"api-version": "7.5"},
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        timeout=5,
    )
    assert secret.status_code == 200
    assert secret.json()["value"] == DEMO_SECRET_VALUE
    assert [str(call.request.url).split("?")[0] for call in mock.calls] == [
        IMDS_TOKEN_URL,
        f"{VAULT_URL}/secrets/{DEMO_SECRET}",
    ]


def test_imds_without_the_metadata_header_is_refused(mock: responses.RequestsMock) -> None:
    answer = requests.get(
        IMDS_TOKEN_URL,
        params={"api-version": "2018-02-01", "resource": "https://vault.azure.net"},
        timeout=5,
    )
    assert answer.status_code == 400


def test_the_sdk_reads_the_secret_at_its_real_url(mock: responses.RequestsMock) -> None:
    with (
        ManagedIdentityCredential() as credential,
        SecretClient(VAULT_URL, credential) as client,
    ):
        assert client.get_secret(DEMO_SECRET).value == DEMO_SECRET_VALUE
        with pytest.raises(HttpResponseError) as raised:
            client.get_secret("admin-secret")
    assert raised.value.status_code == 403


def test_default_azure_credential_probes_imds_and_finds_it(mock: responses.RequestsMock) -> None:
    with (
        managed_identity_chain() as credential,
        SecretClient(VAULT_URL, credential) as client,
    ):
        assert client.get_secret(DEMO_SECRET).value == DEMO_SECRET_VALUE
    imds_calls = [call for call in mock.calls if str(call.request.url).startswith(IMDS_TOKEN_URL)]
    assert len(imds_calls) >= 2, "expected the probe, then the token request"
