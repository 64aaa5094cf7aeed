"""Acceptance: the official Azure SDK (azure-identity, azure-keyvault-secrets) against the
emulator's loopback servers, configured only as a VM's code would be: environment and a CA."""

from __future__ import annotations

from collections.abc import Iterator

import jwt
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from pytest_kvmi.emulator import DEMO_SECRET, DEMO_SECRET_VALUE, DEMO_VAULT, Emulator
from pytest_kvmi.emulator.servers import CONFLICTING_ENV, LoopbackServers, serve
from tests.emulator.sdk import managed_identity_chain

SCOPE = "https://vault.azure.net/.default"


@pytest.fixture
def emulator() -> Emulator:
    return Emulator.demo()


@pytest.fixture
def servers(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServers]:
    """The servers, and this process's environment pointing azure-identity at their IMDS."""
    with serve(emulator) as servers:
        for name in CONFLICTING_ENV:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv(
            "AZURE_POD_IDENTITY_AUTHORITY_HOST", servers.env["AZURE_POD_IDENTITY_AUTHORITY_HOST"]
        )
        yield servers


@pytest.fixture
def credential(servers: LoopbackServers) -> Iterator[ManagedIdentityCredential]:
    with ManagedIdentityCredential() as credential:
        yield credential


@pytest.fixture
def client(
    servers: LoopbackServers, credential: ManagedIdentityCredential
) -> Iterator[SecretClient]:
    with SecretClient(
        servers.vault_url(DEMO_VAULT),
        credential,
        verify_challenge_resource=False,  # the vault's URL is 127.0.0.1, its challenge says Azure
        connection_verify=servers.ca_bundle,
    ) as client:
        yield client


def error_codes(error: HttpResponseError) -> tuple[str | None, str | None]:
    assert error.error is not None
    inner = error.error.innererror or {}
    return error.error.code, inner.get("code")


def test_managed_identity_credential_gets_the_system_identity_a_vault_token(
    emulator: Emulator, credential: ManagedIdentityCredential
) -> None:
    token = credential.get_token(SCOPE)
    claims = jwt.decode(token.token, options={"verify_signature": False})
    assert emulator.system_identity is not None
    assert claims["oid"] == emulator.system_identity.object_id
    assert claims["aud"].rstrip("/") == "https://vault.azure.net"


def test_secret_client_reads_the_granted_secret(client: SecretClient) -> None:
    secret = client.get_secret(DEMO_SECRET)
    assert secret.value == DEMO_SECRET_VALUE
    assert secret.name == DEMO_SECRET


def test_a_revoked_role_is_403_forbidden_by_rbac(emulator: Emulator, client: SecretClient) -> None:
    assert client.get_secret(DEMO_SECRET).value == DEMO_SECRET_VALUE
    assert emulator.revoke("system") == 1
    with pytest.raises(HttpResponseError) as raised:
        client.get_secret(DEMO_SECRET)
    assert raised.value.status_code == 403
    assert error_codes(raised.value) == ("Forbidden", "ForbiddenByRbac")


def test_a_secret_nobody_was_granted_is_403(client: SecretClient) -> None:
    with pytest.raises(HttpResponseError) as raised:
        client.get_secret("admin-secret")
    assert raised.value.status_code == 403
    assert error_codes(raised.value) == ("Forbidden", "ForbiddenByRbac")


def test_a_missing_secret_is_resource_not_found(emulator: Emulator, client: SecretClient) -> None:
    emulator.grant("system", "Key Vault Secrets User", f"vault:{DEMO_VAULT}")
    with pytest.raises(ResourceNotFoundError) as raised:
        client.get_secret("no-such-secret")
    assert raised.value.status_code == 404
    assert error_codes(raised.value)[0] == "SecretNotFound"


def test_a_disabled_secret_is_403_secret_disabled(emulator: Emulator, client: SecretClient) -> None:
    emulator.disable_secret(DEMO_VAULT, DEMO_SECRET)
    with pytest.raises(HttpResponseError) as raised:
        client.get_secret(DEMO_SECRET)
    assert raised.value.status_code == 403
    assert error_codes(raised.value) == ("Forbidden", "SecretDisabled")


def test_listing_follows_next_links_through_every_page(
    emulator: Emulator, client: SecretClient
) -> None:
    emulator.grant("system", "Key Vault Secrets User", f"vault:{DEMO_VAULT}")
    created = {f"bulk-{i:02}" for i in range(30)}
    for name in created:
        emulator.set_secret(DEMO_VAULT, name, "v")
    pages = client.list_properties_of_secrets(max_page_size=7).by_page()
    names = [[secret.name for secret in page] for page in pages]
    assert {name for page in names for name in page} == created | {DEMO_SECRET, "admin-secret"}
    assert len(names) >= 5
    assert all(len(page) <= 7 for page in names)


def test_default_azure_credential_finds_the_managed_identity(servers: LoopbackServers) -> None:
    with (
        managed_identity_chain() as credential,
        SecretClient(
            servers.vault_url(DEMO_VAULT),
            credential,
            verify_challenge_resource=False,
            connection_verify=servers.ca_bundle,
        ) as client,
    ):
        assert client.get_secret(DEMO_SECRET).value == DEMO_SECRET_VALUE


def test_requests_ca_bundle_alone_makes_the_vault_trusted(
    servers: LoopbackServers, credential: ManagedIdentityCredential, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = servers.vault_url(DEMO_VAULT)
    with (
        SecretClient(url, credential, verify_challenge_resource=False, retry_total=0) as untrusting,
        pytest.raises(ServiceRequestError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        untrusting.get_secret(DEMO_SECRET)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", servers.env["REQUESTS_CA_BUNDLE"])
    with SecretClient(url, credential, verify_challenge_resource=False) as client:
        assert client.get_secret(DEMO_SECRET).value == DEMO_SECRET_VALUE


def test_a_vault_created_while_serving_is_reachable(
    emulator: Emulator, servers: LoopbackServers, credential: ManagedIdentityCredential
) -> None:
    emulator.add_vault("late")
    emulator.set_secret("late", "s", "late-value")
    emulator.grant("system", "Key Vault Secrets User", "vault:late")
    url = servers.add_vault("late")
    with SecretClient(
        url, credential, verify_challenge_resource=False, connection_verify=servers.ca_bundle
    ) as client:
        assert client.get_secret("s").value == "late-value"
