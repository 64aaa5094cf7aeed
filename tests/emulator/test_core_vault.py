"""Key Vault data plane: authorization semantics, token checks, api-versions, the secret
operations and their bodies."""

from __future__ import annotations

import httpx
import pytest

from pytest_kvmi.emulator import Emulator, SigningKey

from .conftest import client, error_code, imds_token, vault_get

SECRET = "/secrets/app-secret"


def _status(emu: Emulator, path: str = SECRET, token: str | None = None) -> tuple[int, str | None]:
    response = vault_get(emu, path, token or imds_token(emu))
    code = None if response.status_code == 200 else error_code(response)[1]
    return response.status_code, code


def test_demo_reads_its_secret_and_not_the_admin_one(kv: httpx.Client) -> None:
    ok = kv.get(SECRET)
    assert ok.status_code == 200
    assert ok.json()["value"] == "demo-app-secret-value"
    assert ok.json()["id"].startswith("https://demo.vault.azure.net/secrets/app-secret/")
    denied = kv.get("/secrets/admin-secret")
    assert (denied.status_code, error_code(denied)) == (403, ("Forbidden", "ForbiddenByRbac"))
    assert (
        "Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'"
        in denied.json()["error"]["message"]
    )


@pytest.mark.parametrize("level", ["subscription", "resource-group", "vault", "secret"])
def test_assignment_at_each_scope_level_reaches_the_secret(level: str) -> None:
    emu = Emulator.demo()
    emu.revoke("system")
    vault = emu.vault("demo")
    subscription = f"/subscriptions/{vault.subscription_id}"
    scope = {
        "subscription": subscription,
        "resource-group": f"{subscription}/resourceGroups/{vault.resource_group}",
        "vault": vault.resource_id,
        "secret": vault.resource_id + "/secrets/admin-secret",
    }[level]
    emu.grant("system", "Key Vault Secrets User", scope)
    assert _status(emu, "/secrets/admin-secret") == (200, None)
    expected_other = (200, None) if level != "secret" else (403, "ForbiddenByRbac")
    assert _status(emu, SECRET) == expected_other


def test_assignment_on_another_vault_or_group_does_not_reach() -> None:
    emu = Emulator.demo()
    emu.add_vault("other", resource_group="rg-other")
    emu.grant("system", "Key Vault Administrator", "vault:other")
    emu.grant(
        "system",
        "Key Vault Administrator",
        f"/subscriptions/{emu.vm.subscription_id}/resourceGroups/rg-other",
    )
    assert _status(emu, "/secrets/admin-secret") == (403, "ForbiddenByRbac")


@pytest.mark.parametrize(
    ("role", "get", "listing"),
    [
        ("Key Vault Secrets User", 200, 200),
        ("Key Vault Secrets Officer", 200, 200),
        ("Key Vault Administrator", 200, 200),
        ("Key Vault Reader", 403, 200),
        ("Key Vault Contributor", 403, 403),
        ("21090545-7ca7-4776-b22c-e363652d74d2", 403, 200),  # Reader by id
    ],
)
def test_each_built_in_role_grants_its_data_actions(role: str, get: int, listing: int) -> None:
    emu = Emulator.demo()
    emu.revoke("system")
    emu.grant("system", role, "vault:demo")
    token = imds_token(emu)
    assert vault_get(emu, SECRET, token).status_code == get
    assert vault_get(emu, "/secrets", token).status_code == listing


def test_secret_scoped_reader_cannot_list_the_vault(emu: Emulator, token: str) -> None:
    response = vault_get(emu, "/secrets", token)
    assert response.status_code == 403
    message = response.json()["error"]["message"]
    assert "Action: 'Microsoft.KeyVault/vaults/secrets/readMetadata/action'" in message
    assert f"Resource: '{emu.vault('demo').scope_path()}'" in message


def test_revoke_takes_effect_and_regrant_restores(emu: Emulator, token: str) -> None:
    assert emu.revoke("system", "Key Vault Secrets User", "vault:demo/secrets/app-secret") == 1
    assert _status(emu, SECRET, token) == (403, "ForbiddenByRbac")
    emu.grant(emu.system_identity or "system", "Key Vault Secrets User", "vault:demo")
    assert _status(emu, SECRET, token) == (200, None)


def test_propagation_delay_holds_grants_and_revokes_back(emu: Emulator, token: str) -> None:
    emu.propagation_delay = 120
    emu.revoke("system")
    assert _status(emu, SECRET, token) == (200, None)
    emu.clock.advance(119)
    assert _status(emu, SECRET, token) == (200, None)
    emu.clock.advance(1)
    assert _status(emu, SECRET, token) == (403, "ForbiddenByRbac")
    emu.grant("system", "Key Vault Secrets User", "vault:demo")
    emu.clock.advance(60)
    assert _status(emu, SECRET, token) == (403, "ForbiddenByRbac")
    emu.clock.advance(60)
    assert _status(emu, SECRET, token) == (200, None)
    assert len(emu.role_assignments()) == 1


def test_access_policy_vault_uses_policies_not_roles() -> None:
    emu = Emulator()
    emu.add_vault("ap", permission_model="access-policy")
    emu.set_secret("ap", "one", "v1")
    emu.grant("system", "Key Vault Administrator", "vault:ap")
    token = imds_token(emu)
    denied = vault_get(emu, "/secrets/one", token, vault="ap")
    assert (denied.status_code, error_code(denied)[1]) == (403, "ForbiddenByPolicy")
    emu.set_access_policy("ap", "system", ["get"])
    assert vault_get(emu, "/secrets/one", token, vault="ap").status_code == 200
    listing = vault_get(emu, "/secrets", token, vault="ap")
    assert "does not have secrets list permission" in listing.json()["error"]["message"]
    emu.remove_access_policy("ap", "system")
    assert vault_get(emu, "/secrets/one", token, vault="ap").status_code == 403


def test_firewall_allows_listed_addresses_only(emu: Emulator, token: str) -> None:
    emu.set_firewall("demo", ["198.51.100.0/24", "203.0.113.9"])
    assert vault_get(emu, SECRET, token, remote_addr="198.51.100.77").status_code == 200
    assert vault_get(emu, SECRET, token, remote_addr="203.0.113.9").status_code == 200
    blocked = vault_get(emu, SECRET, token, remote_addr="192.0.2.1")
    assert error_code(blocked) == ("Forbidden", "ForbiddenByFirewall")
    assert "Client address: 192.0.2.1\r\n" in blocked.json()["error"]["message"]
    emu.set_firewall("demo")
    assert vault_get(emu, SECRET, token, remote_addr="192.0.2.1").status_code == 200


def test_public_network_access_disabled(emu: Emulator, token: str) -> None:
    emu.set_public_network_access("demo", False)
    response = vault_get(emu, SECRET, token)
    assert (response.status_code, error_code(response)) == (
        403,
        ("Forbidden", "ForbiddenByConnection"),
    )
    assert response.json()["error"]["message"].endswith("Vault: demo;location=eastus")


def test_network_rules_come_after_the_token_check(emu: Emulator) -> None:
    emu.set_public_network_access("demo", False)
    assert vault_get(emu, SECRET).status_code == 401


# --- tokens --------------------------------------------------------------------------------


def _unauthorized(emu: Emulator, token: str) -> str:
    response = vault_get(emu, SECRET, token)
    assert response.status_code == 401
    challenge = f'Bearer authorization="https://login.microsoftonline.com/{emu.tenant_id}", '
    assert response.headers["WWW-Authenticate"] == challenge + 'resource="https://vault.azure.net"'
    message: str = response.json()["error"]["message"]
    return message


def test_expired_token_is_refused_after_the_clock_skew(emu: Emulator, token: str) -> None:
    emu.clock.advance(emu.token_lifetime + 300)
    assert vault_get(emu, SECRET, token).status_code == 200
    emu.clock.advance(1)
    assert "IDX10223" in _unauthorized(emu, token)


def test_token_not_yet_valid(emu: Emulator) -> None:
    token = emu.mint_token(issued_at=emu.clock.now() + 3600)
    assert _unauthorized(emu, token) == "Token not yet valid"


def test_foreign_key_is_refused(emu: Emulator) -> None:
    assert _unauthorized(emu, emu.mint_token(key=SigningKey())).startswith("AKV10046:")


def test_tampered_token_is_refused(emu: Emulator, token: str) -> None:
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}AAAA"
    assert _unauthorized(emu, tampered).startswith("AKV10005:")
    assert _unauthorized(emu, "not-a-jwt").startswith("AKV10005:")


@pytest.mark.parametrize(
    "audience",
    ["https://vault.azure.net/", "https://demo.vault.azure.net", "https://storage.azure.com"],
)
def test_wrong_audience(emu: Emulator, audience: str) -> None:
    message = _unauthorized(emu, emu.mint_token(audience=audience))
    assert (
        message
        == f"AKV10022: Invalid audience. Expected https://vault.azure.net, found: {audience}."
    )


def test_key_vault_app_id_is_an_accepted_audience(emu: Emulator) -> None:
    token = emu.mint_token(audience="cfa8b339-82a2-471a-a3c9-0fc0be7a4093")
    assert vault_get(emu, SECRET, token).status_code == 200


def test_other_tenant_token(emu: Emulator) -> None:
    other = "11111111-2222-3333-4444-555555555555"
    message = _unauthorized(emu, emu.mint_token(tenant_id=other))
    assert message == (
        f"AKV10032: Invalid issuer. Expected one of https://sts.windows.net/{emu.tenant_id}/, "
        f"found https://sts.windows.net/{other}/."
    )


def test_sovereign_vault_challenges_with_its_cloud() -> None:
    emu = Emulator(cloud="AzureUSGovernment")
    emu.add_vault("gov")
    with client(emu, "https://gov.vault.usgovcloudapi.net") as kv:
        response = kv.get(SECRET, params={"api-version": "7.4"})
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer authorization="https://login.microsoftonline.us/{emu.tenant_id}", '
        'resource="https://vault.usgovcloudapi.net"'
    )
    token = imds_token(emu, "https://vault.usgovcloudapi.net")
    emu.grant("system", "Key Vault Secrets User", "vault:gov")
    with client(emu, "https://gov.vault.usgovcloudapi.net") as kv:
        missing = kv.get(
            SECRET, params={"api-version": "7.4"}, headers={"Authorization": f"Bearer {token}"}
        )
    assert error_code(missing) == ("SecretNotFound", None)


# --- api-versions, paths, headers ---------------------------------------------------------


@pytest.mark.parametrize(
    "version",
    ["2016-10-01", "7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01", "2026-04-01"],
)
def test_supported_api_versions(emu: Emulator, token: str, version: str) -> None:
    response = vault_get(emu, SECRET, token, api_version=version)
    assert response.status_code == 200
    assert ("recoverableDays" in response.json()["attributes"]) == (
        version not in ("2016-10-01", "7.0")
    )


def test_api_version_is_checked_before_the_token(emu: Emulator) -> None:
    response = vault_get(emu, SECRET, api_version="1.0")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "The specified version (1.0) is not recognized. "
        "Consider using the latest supported version (2026-04-01)."
    )
    with client(emu) as kv:
        missing = kv.get(SECRET)
    assert (missing.status_code, error_code(missing)) == (400, ("BadParameter", None))


@pytest.mark.parametrize(
    "path", ["/secrets/app-secret", "/secrets/app-secret/", "//secrets/app-secret"]
)
def test_path_variants(kv: httpx.Client, path: str) -> None:
    response = kv.get("https://demo.vault.azure.net" + path)  # absolute: "//x" would be a host
    assert response.url.path == path
    assert response.json()["value"] == "demo-app-secret-value"


def test_get_by_version_and_missing_version(emu: Emulator, kv: httpx.Client) -> None:
    first = emu.secret("demo", "app-secret")
    assert first is not None
    emu.set_secret("demo", "app-secret", "second")
    assert kv.get(SECRET).json()["value"] == "second"
    assert kv.get(f"{SECRET}/{first.version}").json()["value"] == "demo-app-secret-value"
    missing = kv.get(f"{SECRET}/{'0' * 32}")
    assert missing.status_code == 404
    assert f"(name/id) app-secret/{'0' * 32} was not found" in missing.json()["error"]["message"]


def test_service_headers(kv: httpx.Client) -> None:
    response = kv.get(SECRET)
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers["x-ms-keyvault-network-info"] == (
        "conn_type=Ipv4;addr=203.0.113.9;act_addr_fam=InterNetwork;"
    )
    assert response.headers["x-ms-keyvault-region"] == "eastus"
    assert len(response.headers["x-ms-request-id"]) == 36


def test_unknown_vault_and_host_answer_404(emu: Emulator, token: str) -> None:
    response = vault_get(emu, SECRET, token, vault="nope")
    assert response.status_code == 404
    assert "no vault named 'nope'" in response.text
    with client(emu, "https://example.com") as other:
        assert other.get("/").status_code == 404


def test_invalid_secret_name(kv: httpx.Client) -> None:
    response = kv.get("/secrets/bad_name")
    assert (response.status_code, error_code(response)) == (400, ("BadParameter", None))


# --- set, update, delete, list ------------------------------------------------------------


@pytest.fixture
def officer(emu: Emulator) -> httpx.Client:
    emu.grant("system", "Key Vault Secrets Officer", "vault:demo")
    return client(emu)


def _call(
    kv: httpx.Client,
    emu: Emulator,
    method: str,
    path: str,
    *,
    query: dict[str, str] | None = None,
    **kwargs: object,
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {imds_token(emu)}"}
    params = {"api-version": "7.4", **(query or {})}
    return kv.request(method, path, params=params, headers=headers, **kwargs)  # type: ignore[arg-type]


def test_set_creates_versions_with_attributes(emu: Emulator, officer: httpx.Client) -> None:
    emu.clock.advance(10)
    body = {
        "value": "hunter2",
        "contentType": "text/plain",
        "tags": {"env": "test"},
        "attributes": {"exp": 1800000000},
    }
    response = _call(officer, emu, "PUT", "/secrets/new-one", json=body)
    assert response.status_code == 200
    bundle = response.json()
    assert bundle["value"] == "hunter2"
    assert bundle["contentType"] == "text/plain"
    assert bundle["tags"] == {"env": "test"}
    assert bundle["attributes"]["exp"] == 1800000000
    assert bundle["attributes"]["created"] == int(emu.clock.now())
    assert bundle["id"].rsplit("/", 1)[1] == emu.secret_versions("demo", "new-one")[0].version
    _call(officer, emu, "PUT", "/secrets/new-one", json={"value": "v2"})
    assert [v.value.reveal() for v in emu.secret_versions("demo", "new-one")] == ["hunter2", "v2"]


def test_set_without_a_token_gets_the_challenge_first(emu: Emulator) -> None:
    with client(emu) as kv:
        response = kv.put("/secrets/x", params={"api-version": "7.4"}, content=b"")
    assert response.status_code == 401


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"value": 3}', b'{"value": "x", "attributes": {"enabled": "yes"}}'],
)
def test_set_with_a_bad_body(emu: Emulator, officer: httpx.Client, body: bytes) -> None:
    response = _call(officer, emu, "PUT", "/secrets/x", content=body)
    assert (response.status_code, error_code(response)) == (400, ("BadParameter", None))


def test_reader_cannot_set(emu: Emulator, kv: httpx.Client) -> None:
    response = _call(kv, emu, "PUT", SECRET, json={"value": "x"})
    assert "setSecret/action" in response.json()["error"]["message"]


def test_update_disables_then_get_is_secret_disabled(emu: Emulator, officer: httpx.Client) -> None:
    version = emu.secret("demo", "app-secret")
    assert version is not None
    response = _call(
        officer,
        emu,
        "PATCH",
        f"{SECRET}/{version.version}",
        json={"attributes": {"enabled": False}, "tags": {"a": "b"}},
    )
    assert response.status_code == 200
    assert "value" not in response.json()
    assert response.json()["attributes"]["enabled"] is False
    assert response.json()["tags"] == {"a": "b"}
    disabled = _call(officer, emu, "GET", SECRET)
    assert error_code(disabled) == ("Forbidden", "SecretDisabled")
    emu.enable_secret("demo", "app-secret")
    assert _call(officer, emu, "GET", SECRET).status_code == 200


def test_disabled_is_checked_after_authorization(emu: Emulator, kv: httpx.Client) -> None:
    emu.disable_secret("demo", "admin-secret")
    assert error_code(kv.get("/secrets/admin-secret")) == ("Forbidden", "ForbiddenByRbac")


def test_delete_answers_a_deleted_bundle(emu: Emulator, officer: httpx.Client) -> None:
    response = _call(officer, emu, "DELETE", SECRET)
    assert response.status_code == 200
    body = response.json()
    assert body["recoveryId"] == "https://demo.vault.azure.net/deletedsecrets/app-secret"
    assert body["scheduledPurgeDate"] - body["deletedDate"] == 90 * 86400
    assert "value" not in body
    assert _call(officer, emu, "GET", SECRET).status_code == 404
    assert _call(officer, emu, "DELETE", SECRET).status_code == 404


def test_method_not_allowed(emu: Emulator, officer: httpx.Client) -> None:
    assert _call(officer, emu, "POST", SECRET).status_code == 405


def test_list_pages_with_next_links(emu: Emulator, officer: httpx.Client) -> None:
    for i in range(5):
        emu.set_secret("demo", f"s{i}", "v", content_type="text/plain")
    seen: list[str] = []
    response = _call(officer, emu, "GET", "/secrets", query={"maxresults": "3"})
    pages = 0
    while True:
        pages += 1
        body = response.json()
        assert len(body["value"]) <= 3
        seen += [item["id"].rsplit("/", 1)[1] for item in body["value"]]
        assert all("value" not in item for item in body["value"])
        if body["nextLink"] is None:
            break
        assert body["nextLink"].startswith(
            "https://demo.vault.azure.net/secrets?api-version=7.4&$skiptoken="
        )
        response = officer.get(
            body["nextLink"], headers={"Authorization": f"Bearer {imds_token(emu)}"}
        )
    assert pages == 3
    assert seen == sorted(["admin-secret", "app-secret", "s0", "s1", "s2", "s3", "s4"])


def test_list_versions(emu: Emulator, officer: httpx.Client) -> None:
    emu.set_secret("demo", "app-secret", "v2")
    response = _call(officer, emu, "GET", f"{SECRET}/versions")
    ids = sorted(item["id"] for item in response.json()["value"])
    expected = sorted(
        f"https://demo.vault.azure.net{SECRET}/{v.version}"
        for v in emu.secret_versions("demo", "app-secret")
    )
    assert ids == expected


@pytest.mark.parametrize(
    "query", [{"maxresults": "0"}, {"maxresults": "26"}, {"maxresults": "x"}, {"$skiptoken": "%%%"}]
)
def test_list_rejects_bad_paging(
    emu: Emulator, officer: httpx.Client, query: dict[str, str]
) -> None:
    response = _call(officer, emu, "GET", "/secrets", query=query)
    assert (response.status_code, error_code(response)) == (400, ("BadParameter", None))


def test_loopback_host_shapes_ids(emu: Emulator, token: str) -> None:
    environ_target = {"kvmi.target": "vault:demo"}
    transport = httpx.WSGITransport(
        app=lambda env, start: emu.wsgi_app({**env, **environ_target}, start)
    )
    with httpx.Client(transport=transport, base_url="https://127.0.0.1:8443") as kv:
        response = kv.get(
            SECRET, params={"api-version": "7.4"}, headers={"Authorization": f"Bearer {token}"}
        )
    assert response.json()["id"].startswith("https://127.0.0.1:8443/secrets/app-secret/")


@pytest.mark.parametrize(
    ("cloud", "login", "vault_host"),
    [
        ("AzureUSGovernment", "login.microsoftonline.us", "gov.vault.usgovcloudapi.net"),
        ("AzureChinaCloud", "login.chinacloudapi.cn", "gov.vault.azure.cn"),
    ],
)
def test_the_v2_issuer_entra_publishes_is_one_the_vault_accepts(
    cloud: str, login: str, vault_host: str
) -> None:
    emu = Emulator(cloud=cloud)
    emu.add_vault("gov")
    emu.set_secret("gov", "app-secret", "sovereign-value")
    emu.grant("system", "Key Vault Secrets User", "vault:gov")
    with client(emu, f"https://{login}") as entra:
        path = f"/{emu.tenant_id}/v2.0/.well-known/openid-configuration"
        issuer = entra.get(path).json()["issuer"]
    assert issuer.startswith(f"https://{login}/")
    token = emu.mint_token(claims={"iss": issuer})
    with client(emu, f"https://{vault_host}") as kv:
        answer = kv.get(
            SECRET, params={"api-version": "7.4"}, headers={"Authorization": f"Bearer {token}"}
        )
    assert answer.status_code == 200, answer.text
