"""Each real Azure response in tests/data/captures: the emulator, driven into the same situation,
answers with the same status, headers, codes and wording (ids, addresses and times masked)."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest

from pytest_kvmi.emulator import Clock, Emulator
from pytest_kvmi.emulator.faults import IMDS_TOKEN

from .conftest import CAPTURES, capture, client, imds_get, imds_token, mask, vault_get

MS_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "ec568c69-965a-495b-8823-a7f3c2dc890f"
PROD_APP = ("3c1b2a8e-7a4e-4f5b-9d8e-2f1a0b9c8d7e", "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d")


def _token_request(emu: Emulator) -> httpx.Response:
    return imds_get(emu, resource="https://vault.azure.net", **{"api-version": "2018-02-01"})


def _identity_not_found() -> httpx.Response:
    return _token_request(Emulator(system_assigned=False))


def _invalid_resource() -> httpx.Response:
    emu = Emulator(tenant_id=MS_TENANT)
    return imds_get(emu, resource="https://vault.azure.net/x", **{"api-version": "2018-02-01"})


def _metadata_header() -> httpx.Response:
    with client(Emulator(), "http://169.254.169.254") as imds:
        params = {"api-version": "2018-02-01", "resource": "https://vault.azure.net"}
        return imds.get("/metadata/identity/oauth2/token", params=params)


def _missing_resource() -> httpx.Response:
    return imds_get(Emulator(), **{"api-version": "2018-02-01"})


def _multiple_identities() -> httpx.Response:
    emu = Emulator(system_assigned=False)
    emu.add_user_identity("uai-one")
    emu.add_user_identity("uai-two")
    return _token_request(emu)


def _imds_status(status: int) -> Callable[[], httpx.Response]:
    def drive() -> httpx.Response:
        emu = Emulator()
        emu.faults.status(IMDS_TOKEN, status)
        return _token_request(emu)

    return drive


def _seed_emulator() -> Emulator:
    """The seed blog post's setup: its tenant, ids, subscription, group, vault and secret."""
    emu = Emulator(
        tenant_id=OTHER_TENANT,
        subscription_id="42edd95d-ae8d-41c1-ac55-40bf336687b4",
        resource_group="20230413-vm-mid-kv",
        location="japaneast",
        system_assigned=False,
        clock=Clock(start=1681375010),
    )
    emu.set_system_identity(
        client_id="2716e189-2dd0-421f-9979-ed43cee39dc1",
        object_id="5fbc64bb-ecd9-4b44-9c44-03c314cf90c0",
    )
    emu.add_vault("akv-koishizu-01")
    emu.set_secret(
        "akv-koishizu-01",
        "secret-for-vm",
        "this-is-test-secret",
        version="343c4a567da448d98d02216e51ece4ca",
    )
    emu.grant("system", "Key Vault Secrets User", "vault:akv-koishizu-01/secrets/secret-for-vm")
    return emu


def _seed_get(emu: Emulator) -> httpx.Response:
    return vault_get(
        emu,
        "/secrets/secret-for-vm",
        imds_token(emu),
        vault="akv-koishizu-01",
        api_version="2016-10-01",
    )


def _secret_seed() -> httpx.Response:
    return _seed_get(_seed_emulator())


def _forbidden_by_rbac_seed() -> httpx.Response:
    emu = _seed_emulator()
    token = imds_token(emu)
    assert emu.revoke("system") == 1
    return vault_get(
        emu, "/secrets/secret-for-vm", token, vault="akv-koishizu-01", api_version="2016-10-01"
    )


def _bad_api_version() -> httpx.Response:
    return vault_get(Emulator.demo(), "/secrets/app-secret", api_version="7.9")


def _ms_vault(**settings: object) -> Emulator:
    emu = Emulator(tenant_id=MS_TENANT, system_assigned=False)
    emu.set_system_identity(client_id=PROD_APP[0], object_id=PROD_APP[1])
    emu.add_vault("kv-app-prod", location="eastus", **settings)  # type: ignore[arg-type]
    emu.set_secret("kv-app-prod", "db-password", "s3cret")
    return emu


def _challenge() -> httpx.Response:
    return vault_get(_ms_vault(), "/secrets/db-password", vault="kv-app-prod")


def _invalid_audience() -> httpx.Response:
    emu = _ms_vault()
    token = imds_token(emu, "https://management.azure.com/")
    return vault_get(emu, "/secrets/db-password", token, vault="kv-app-prod")


def _invalid_issuer() -> httpx.Response:
    emu = Emulator(tenant_id=OTHER_TENANT)
    emu.add_vault("kv-app-prod", tenant_id=MS_TENANT)
    return vault_get(emu, "/secrets/db-password", imds_token(emu), vault="kv-app-prod")


def _forbidden_by_firewall() -> httpx.Response:
    emu = _ms_vault(allow=["10.0.0.0/8"])
    emu.grant("system", "Key Vault Secrets User", "vault:kv-app-prod")
    token = imds_token(emu)
    return vault_get(
        emu, "/secrets/db-password", token, vault="kv-app-prod", remote_addr="20.51.100.7"
    )


def _forbidden_by_policy() -> httpx.Response:
    emu = _ms_vault(permission_model="access-policy")
    emu.set_access_policy("kv-app-prod", "system", ["list"])
    return vault_get(emu, "/secrets/db-password", imds_token(emu), vault="kv-app-prod")


def _secret_disabled() -> httpx.Response:
    emu = Emulator.demo()
    emu.disable_secret("demo", "app-secret")
    return vault_get(emu, "/secrets/app-secret", imds_token(emu))


def _secret_not_found() -> httpx.Response:
    emu = Emulator.demo()
    emu.grant("system", "Key Vault Secrets User", "vault:demo")
    return vault_get(emu, "/secrets/db-password", imds_token(emu))


def _throttled() -> httpx.Response:
    emu = Emulator.demo()
    emu.enable_throttling(limit=1)
    token = imds_token(emu)
    assert vault_get(emu, "/secrets/app-secret", token).status_code == 200
    return vault_get(emu, "/secrets/app-secret", token)


DRIVERS: dict[str, Callable[[], httpx.Response]] = {
    "imds-400-identity-not-found": _identity_not_found,
    "imds-400-invalid-resource": _invalid_resource,
    "imds-400-metadata-header": _metadata_header,
    "imds-400-missing-resource": _missing_resource,
    "imds-400-multiple-identities": _multiple_identities,
    "imds-410": _imds_status(410),
    "imds-429": _imds_status(429),
    "kv-200-secret-seed": _secret_seed,
    "kv-400-bad-api-version": _bad_api_version,
    "kv-401-challenge": _challenge,
    "kv-401-invalid-audience": _invalid_audience,
    "kv-401-invalid-issuer": _invalid_issuer,
    "kv-403-forbidden-by-firewall": _forbidden_by_firewall,
    "kv-403-forbidden-by-policy": _forbidden_by_policy,
    "kv-403-forbidden-by-rbac-seed": _forbidden_by_rbac_seed,
    "kv-403-secret-disabled": _secret_disabled,
    "kv-404-secret-not-found": _secret_not_found,
    "kv-429-throttled": _throttled,
}
_VERSION_IN_MESSAGE = re.compile(r"\(\d[\d.-]*\)")


def test_every_capture_has_a_driver() -> None:
    files = {p.stem for p in CAPTURES.glob("*.json")}
    assert files == set(DRIVERS)


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_emulator_answers_like_the_capture(name: str) -> None:
    expected = capture(name)
    response = DRIVERS[name]()
    assert response.status_code == expected["status"]
    for header in ("Content-Type", "WWW-Authenticate"):
        assert response.headers.get(header) == expected["headers"].get(header), header
    body, wanted = response.text, expected["body"]
    if name == "kv-400-bad-api-version":  # the capture's service knew other versions
        body, wanted = (_VERSION_IN_MESSAGE.sub("(<v>)", text) for text in (body, wanted))
    assert mask(body) == mask(wanted)


def test_seed_secret_is_byte_for_byte_without_masking() -> None:
    assert _secret_seed().text == capture("kv-200-secret-seed")["body"]


def test_rbac_denial_is_byte_for_byte_without_masking() -> None:
    assert _forbidden_by_rbac_seed().text == capture("kv-403-forbidden-by-rbac-seed")["body"]
