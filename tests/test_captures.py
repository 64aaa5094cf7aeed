"""Every real Azure answer in tests/data/captures is classified to the diagnosis it must get,
through the real clients over httpx.MockTransport."""

from __future__ import annotations

import httpx
import pytest

from pytest_kvmi.diagnosis import Code, KvmiError
from pytest_kvmi.imds import ImdsClient
from pytest_kvmi.vault import VaultClient
from tests.fakes import (
    FakeClock,
    Recorder,
    capture_names,
    capture_response,
    load_capture,
    settings,
    static_tokens,
    vault_handler,
)


def test_every_capture_is_covered() -> None:
    assert len(capture_names("imds")) + len(capture_names("keyvault")) == 18


def vault_answering(capture_name: str, vault: str = "kv-app-prod") -> VaultClient:
    """A client of a vault that challenges, then answers every request with the capture."""
    capture = load_capture(capture_name)
    clock = FakeClock()
    return VaultClient(
        settings(vault=vault),
        static_tokens(),
        transport=httpx.MockTransport(vault_handler(lambda request: capture_response(capture))),
        sleep=clock.sleep,
        clock=clock,
    )


@pytest.mark.parametrize("name", capture_names("imds"))
def test_imds_capture_is_classified(name: str) -> None:
    capture = load_capture(name)
    clock = FakeClock()
    recorder = Recorder(lambda request: capture_response(capture))
    client = ImdsClient(settings(), transport=recorder.transport, sleep=clock.sleep, clock=clock)
    with client, pytest.raises(KvmiError) as raised:
        client.token()
    assert raised.value.diagnosis.code == Code(capture["diagnosis"])


@pytest.mark.parametrize("name", capture_names("keyvault"))
def test_vault_capture_is_classified(name: str) -> None:
    capture = load_capture(name)
    with vault_answering(name) as client:
        if capture["diagnosis"] == "ok":
            bundle = client.get_secret("secret-for-vm")
            assert bundle.value.reveal() == "this-is-test-secret"
            assert (bundle.name, bundle.version) == (
                "secret-for-vm",
                "343c4a567da448d98d02216e51ece4ca",
            )
            assert bundle.enabled is True
            return
        with pytest.raises(KvmiError) as raised:
            client.get_secret("secret-for-vm")
    assert raised.value.diagnosis.code == Code(capture["diagnosis"])


def test_forbidden_by_rbac_remedy_names_the_real_ids() -> None:
    client = vault_answering("kv-403-forbidden-by-rbac-seed.json", vault="akv-koishizu-01")
    with client, pytest.raises(KvmiError) as raised:
        client.get_secret("secret-for-vm")
    diagnosis = raised.value.diagnosis
    assert diagnosis.remedy.startswith(
        'az role assignment create --role "Key Vault Secrets User" --assignee-object-id '
        "5fbc64bb-ecd9-4b44-9c44-03c314cf90c0 --assignee-principal-type ServicePrincipal --scope "
        "/subscriptions/42edd95d-ae8d-41c1-ac55-40bf336687b4/resourcegroups/20230413-vm-mid-kv/"
        "providers/microsoft.keyvault/vaults/akv-koishizu-01/secrets/secret-for-vm."
    )
    assert "10 minutes" in diagnosis.remedy
    assert diagnosis.facts.action == "Microsoft.KeyVault/vaults/secrets/getSecret/action"
    assert diagnosis.facts.vault_location == "japaneast"
    assert diagnosis.facts.token_tenant_id == "ec568c69-965a-495b-8823-a7f3c2dc890f"


@pytest.mark.parametrize(
    ("name", "facts"),
    [
        (
            "kv-401-invalid-audience.json",
            {
                "expected_audience": "https://vault.azure.net",
                "found_audience": "https://management.azure.com/",
            },
        ),
        (
            "kv-401-invalid-issuer.json",
            {
                "vault_tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
                "token_tenant_id": "ec568c69-965a-495b-8823-a7f3c2dc890f",
            },
        ),
        (
            "kv-403-forbidden-by-firewall.json",
            {"client_address": "20.51.100.7", "vault_name": "kv-app-prod"},
        ),
        (
            "kv-403-forbidden-by-policy.json",
            {"object_id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", "vault_name": "kv-app-prod"},
        ),
    ],
)
def test_ids_in_messages_fill_the_remedy(name: str, facts: dict[str, str]) -> None:
    with vault_answering(name) as client, pytest.raises(KvmiError) as raised:
        client.get_secret("db-password")
    known = raised.value.diagnosis.facts.known()
    assert {key: known.get(key) for key in facts} == facts
    assert "<" not in raised.value.diagnosis.remedy.replace("<pem file>", "").replace(
        "<subnet-id>", ""
    )


def test_bad_api_version_names_the_supported_one() -> None:
    with (
        vault_answering("kv-400-bad-api-version.json") as client,
        pytest.raises(KvmiError) as raised,
    ):
        client.get_secret("db-password")
    assert raised.value.diagnosis.facts.detail == (
        "api-version 7.3 is not supported; the vault supports up to 7.1"
    )
