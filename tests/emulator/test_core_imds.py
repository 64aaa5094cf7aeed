"""IMDS (tokens, identity selection, metadata endpoints) and Entra's published documents."""

from __future__ import annotations

import jwt
import pytest

from pytest_kvmi.emulator import Emulator

from .conftest import IMDS_URL, START, TOKEN_PATH, client, imds_get, imds_token

V = {"api-version": "2018-02-01"}


def _error(response_json: dict[str, str]) -> str:
    return response_json["error_description"]


def test_token_answer_shape_and_claims(emu: Emulator) -> None:
    response = imds_get(emu, resource="https://vault.azure.net", **V)
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    body = response.json()
    assert list(body) == [
        "access_token", "client_id", "expires_in", "expires_on",
        "ext_expires_in", "not_before", "resource", "token_type",
    ]  # fmt: skip
    assert all(isinstance(value, str) for value in body.values())
    assert body["expires_on"] == str(int(START + 86400))
    identity = emu.system_identity
    assert identity is not None
    key = emu.signing_key
    header = jwt.get_unverified_header(body["access_token"])
    assert header["kid"] == header["x5t"] == key.kid
    claims = jwt.decode(
        body["access_token"], key.public_key, algorithms=["RS256"], audience="https://vault.azure.net",
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )  # fmt: skip
    issuer = f"https://sts.windows.net/{emu.tenant_id}/"
    assert claims["iss"] == claims["idp"] == issuer
    assert claims["oid"] == claims["sub"] == identity.object_id
    assert claims["appid"] == body["client_id"] == identity.client_id
    assert (claims["appidacr"], claims["idtyp"], claims["ver"]) == ("2", "app", "1.0")
    assert claims["xms_mirid"] == (
        f"/subscriptions/{emu.vm.subscription_id}/resourcegroups/rg-kvmi"
        "/providers/Microsoft.Compute/virtualMachines/vm-kvmi"
    )
    assert claims["exp"] - claims["iat"] == 86400


@pytest.mark.parametrize(
    "resource",
    [
        "https://vault.azure.net",
        "https://vault.azure.net/",
        "https://management.azure.com/",
        "https://storage.azure.com/",
    ],
)
def test_audience_is_exactly_the_resource(emu: Emulator, resource: str) -> None:
    token = imds_token(emu, resource)
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == resource


def test_token_is_reused_until_close_to_expiry(emu: Emulator) -> None:
    first = imds_token(emu)
    emu.clock.advance(3600)
    assert imds_token(emu) == first
    assert (
        imds_get(emu, resource="https://vault.azure.net", bypass_cache="true", **V).json()[
            "access_token"
        ]
        != first
    )
    emu.clock.advance(86400)
    assert imds_token(emu) != first


def test_user_assigned_selectors() -> None:
    emu = Emulator()
    uai = emu.add_user_identity("uai-app")
    for name, value in (
        ("client_id", uai.client_id),
        ("object_id", uai.object_id),
        ("msi_res_id", uai.resource_id),
        ("mi_res_id", uai.resource_id.upper()),
    ):
        token = imds_token(emu, **{name: value})
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["oid"] == uai.object_id
        assert claims["xms_mirid"] == uai.resource_id
    unknown = imds_get(
        emu,
        resource="https://vault.azure.net",
        client_id="00000000-0000-0000-0000-000000000000",
        **V,
    )
    assert (unknown.status_code, _error(unknown.json())) == (400, "Identity not found")


def test_selectors_are_mutually_exclusive(emu: Emulator) -> None:
    identity = emu.system_identity
    assert identity is not None
    response = imds_get(
        emu,
        resource="https://vault.azure.net",
        client_id=identity.client_id,
        object_id=identity.object_id,
        **V,
    )
    assert response.status_code == 400


def test_one_user_assigned_identity_answers_system_requests() -> None:
    emu = Emulator(system_assigned=False)
    uai = emu.add_user_identity("only")
    claims = jwt.decode(imds_token(emu), options={"verify_signature": False})
    assert claims["oid"] == uai.object_id


def test_system_identity_wins_over_user_assigned(emu: Emulator) -> None:
    emu.add_user_identity("a")
    emu.add_user_identity("b")
    identity = emu.system_identity
    assert identity is not None
    assert (
        jwt.decode(imds_token(emu), options={"verify_signature": False})["oid"]
        == identity.object_id
    )
    emu.set_system_identity(False)
    assert _error(imds_get(emu, resource="https://vault.azure.net", **V).json()).startswith(
        "Multiple user"
    )


@pytest.mark.parametrize(
    ("headers", "params", "status"),
    [
        ({"Metadata": "True"}, {**V, "resource": "https://vault.azure.net"}, 400),
        (
            {"Metadata": "true", "X-Forwarded-For": "10.0.0.1"},
            {**V, "resource": "https://vault.azure.net"},
            400,
        ),
        ({"Metadata": "true"}, {"resource": "https://vault.azure.net"}, 400),
        (
            {"Metadata": "true"},
            {"api-version": "2099-01-01", "resource": "https://vault.azure.net"},
            400,
        ),
    ],
)
def test_token_request_refusals(
    emu: Emulator, headers: dict[str, str], params: dict[str, str], status: int
) -> None:
    with client(emu, IMDS_URL) as imds:
        response = imds.get(TOKEN_PATH, params=params, headers=headers)
    assert response.status_code == status
    assert response.json()["error"] == "invalid_request"


def test_repeated_parameter_and_method(emu: Emulator) -> None:
    with client(emu, IMDS_URL) as imds:
        repeated = imds.get(
            f"{TOKEN_PATH}?api-version=2018-02-01&resource=https://vault.azure.net&resource=https://storage.azure.com",
            headers={"Metadata": "true"},
        )
        posted = imds.post(
            TOKEN_PATH,
            params={**V, "resource": "https://vault.azure.net"},
            headers={"Metadata": "true"},
        )
    assert repeated.status_code == 400
    assert posted.status_code == 405


def test_unknown_resource_names_the_tenant(emu: Emulator) -> None:
    response = imds_get(emu, resource="https://vault.azure.net/x", **V)
    assert response.json()["error"] == "invalid_resource"
    assert f"was not found in the tenant named {emu.tenant_id}." in _error(response.json())
    assert "Timestamp: 2023-11-14 22:13:20Z" in _error(response.json())


def test_instance_metadata(emu: Emulator) -> None:
    body = imds_get(emu, "/metadata/instance", **{"api-version": "2021-02-01"}).json()
    compute = body["compute"]
    assert compute["resourceId"] == emu.vm.resource_id
    assert (compute["vmId"], compute["azEnvironment"]) == (emu.vm.vm_id, "AzurePublicCloud")
    assert body["network"]["interface"][0]["ipv4"]["ipAddress"][0]["privateIpAddress"] == "10.0.0.4"
    leaf = imds_get(
        emu,
        "/metadata/instance/compute/location",
        **{"api-version": "2021-02-01", "format": "text"},
    )
    assert leaf.text == "eastus"


def test_instance_metadata_refusals(emu: Emulator) -> None:
    missing = imds_get(emu, "/metadata/instance")
    assert missing.status_code == 400
    assert missing.json()["error"].startswith("Bad request. api-version was not specified")
    assert missing.json()["newest-versions"][0] == "2023-07-01"
    with client(emu, IMDS_URL) as imds:
        no_header = imds.get("/metadata/instance", params={"api-version": "2021-02-01"})
    assert no_header.json() == {"error": "Bad request. Required metadata header not specified"}


def test_identity_info_and_versions(emu: Emulator) -> None:
    info = imds_get(emu, "/metadata/identity/info", **V).json()
    assert info == {"tenantId": emu.tenant_id, "subscriptionId": emu.vm.subscription_id}
    assert "2023-07-01" in imds_get(emu, "/metadata/versions").json()["apiVersions"]


def test_scheduled_events_can_be_approved(emu: Emulator) -> None:
    event_id = emu.schedule_event("Reboot")
    document = imds_get(emu, "/metadata/scheduledevents", **{"api-version": "2020-07-01"}).json()
    (event,) = document["Events"]
    assert (event["EventId"], event["EventStatus"], event["Resources"]) == (
        event_id,
        "Scheduled",
        ["vm-kvmi"],
    )
    with client(emu, IMDS_URL) as imds:
        approved = imds.post(
            "/metadata/scheduledevents",
            params={"api-version": "2020-07-01"},
            headers={"Metadata": "true"},
            json={"StartRequests": [{"EventId": event_id}]},
        )
    assert approved.status_code == 200
    assert emu.scheduled_event_status(event_id) == "Started"


def test_entra_discovery_and_keys_verify_tokens(emu: Emulator) -> None:
    with client(emu, "https://login.microsoftonline.com") as entra:
        discovery = entra.get(f"/{emu.tenant_id}/.well-known/openid-configuration").json()
        assert discovery["issuer"] == f"https://sts.windows.net/{emu.tenant_id}/"
        keys = entra.get(discovery["jwks_uri"]).json()
        assert entra.get("/not-a-tenant/discovery/keys").status_code == 400
    (jwk,) = keys["keys"]
    assert set(jwk) >= {"kty", "kid", "x5t", "n", "e", "x5c"}
    assert "d" not in jwk  # public only
    public = jwt.PyJWK(jwk).key
    claims = jwt.decode(
        imds_token(emu),
        public,
        algorithms=["RS256"],
        audience="https://vault.azure.net",
        issuer=discovery["issuer"],
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert claims["tid"] == emu.tenant_id
