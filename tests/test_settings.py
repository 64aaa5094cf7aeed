"""Settings are validated before any network call; each refusal quotes the rule."""

from __future__ import annotations

import pytest

from pytest_kvmi.diagnosis import Code
from pytest_kvmi.settings import (
    CHINA,
    PUBLIC,
    SECRET_NAME_RULE,
    US_GOVERNMENT,
    VAULT_NAME_RULE,
    VAULT_URL_RULE,
    IdentitySelector,
    SettingsError,
    parse_secret,
    parse_vault,
    resolve_imds_endpoint,
)
from tests.fakes import settings

GUID = "2716e189-2dd0-421f-9979-ed43cee39dc1"


@pytest.mark.parametrize("name", ["abc", "my-vault-1", "A" + "b" * 22 + "9", "kv-app-prod"])
def test_valid_vault_names_become_urls(name: str) -> None:
    vault = parse_vault(name)
    assert vault.url == f"https://{name}.vault.azure.net"
    assert vault.cloud is PUBLIC
    assert vault.name == name


@pytest.mark.parametrize(
    "name", ["ab", "a" * 25, "1vault", "vault-", "my--vault", "my_vault", "vault.name", ""]
)
def test_invalid_vault_names_quote_the_rule(name: str) -> None:
    with pytest.raises(SettingsError) as raised:
        parse_vault(name)
    assert raised.value.diagnosis.code is Code.INVALID_VAULT_NAME
    assert VAULT_NAME_RULE in str(raised.value)


@pytest.mark.parametrize(
    ("url", "expected", "cloud"),
    [
        ("https://myvault.vault.azure.net", "https://myvault.vault.azure.net", PUBLIC),
        ("https://MyVault.vault.azure.net/", "https://myvault.vault.azure.net", PUBLIC),
        (
            "https://gov-kv.vault.usgovcloudapi.net",
            "https://gov-kv.vault.usgovcloudapi.net",
            US_GOVERNMENT,
        ),
        ("https://cn-kv.vault.azure.cn/", "https://cn-kv.vault.azure.cn", CHINA),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080", PUBLIC),
        ("https://127.0.0.5:8443/", "https://127.0.0.5:8443", PUBLIC),
        ("https://[::1]:8443", "https://[::1]:8443", PUBLIC),
        ("http://localhost:1234", "http://localhost:1234", PUBLIC),
    ],
)
def test_safe_vault_urls(url: str, expected: str, cloud: object) -> None:
    vault = parse_vault(url)
    assert vault.url == expected
    assert vault.cloud is cloud


@pytest.mark.parametrize(
    "url",
    [
        "http://myvault.vault.azure.net",  # token over plain http
        "https://myvault.vault.azure.net.evil.example",  # suffix must end the host
        "https://vault.azure.net",  # no vault label
        "https://evil.example/?x=.vault.azure.net",
        "https://myvault.vault.azure.net/secrets/x",  # a path
        "https://user:pw@myvault.vault.azure.net",
        "https://10.0.0.4",  # private but not loopback
        "ftp://127.0.0.1",
        "https://myvault.vault.azure.net:99999",
    ],
)
def test_unsafe_vault_urls_are_refused(url: str) -> None:
    with pytest.raises(SettingsError) as raised:
        parse_vault(url)
    assert raised.value.diagnosis.code in (Code.UNSAFE_VAULT_URL, Code.INVALID_VAULT_NAME)
    assert "No token was requested or sent" in str(raised.value) or VAULT_NAME_RULE in str(
        raised.value
    )


def test_a_url_of_another_cloud_than_the_chosen_one_is_refused() -> None:
    with pytest.raises(SettingsError) as raised:
        settings(vault="https://kv1.vault.azure.cn", cloud="public")
    assert VAULT_URL_RULE in str(raised.value)


def test_cloud_follows_the_vault_url_and_gives_the_audience() -> None:
    built = settings(vault="https://kv1.vault.usgovcloudapi.net")
    assert built.cloud.audience == "https://vault.usgovcloudapi.net"
    assert settings(vault="kv1", cloud="china").vault.url == "https://kv1.vault.azure.cn"  # type: ignore[union-attr]
    assert not PUBLIC.audience.endswith("/")


@pytest.mark.parametrize(
    ("value", "name", "version"),
    [
        ("db-password", "db-password", None),
        ("a", "a", None),
        ("x" * 127, "x" * 127, None),
        ("s/343C4A567DA448D98D02216E51ECE4CA", "s", "343c4a567da448d98d02216e51ece4ca"),
    ],
)
def test_valid_secret_names(value: str, name: str, version: str | None) -> None:
    ref = parse_secret(value)
    assert (ref.name, ref.version) == (name, version)


@pytest.mark.parametrize(
    "value", ["", "x" * 128, "db_password", "db password", "s/123", "s/" + "g" * 32, "a/b/c"]
)
def test_invalid_secret_names_quote_the_rule(value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        parse_secret(value)
    assert raised.value.diagnosis.code is Code.INVALID_SECRET_NAME
    assert SECRET_NAME_RULE in str(raised.value)


def test_identity_selectors() -> None:
    assert IdentitySelector().is_system_assigned
    assert IdentitySelector(client_id=GUID).query() == {"client_id": GUID}
    res = (
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/"
        "userAssignedIdentities/id1"
    )
    assert IdentitySelector(msi_res_id=res).query() == {"msi_res_id": res}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"client_id": GUID, "object_id": GUID},
        {"client_id": "not-a-guid"},
        {"msi_res_id": "/subscriptions/s/resourceGroups/rg"},
    ],
)
def test_bad_identity_selectors(kwargs: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="select at most one user-assigned identity"):
        IdentitySelector(**kwargs)


def test_imds_endpoint_precedence() -> None:
    env = {"AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:9999/"}
    assert resolve_imds_endpoint(None, {}) == "http://169.254.169.254"
    assert resolve_imds_endpoint(None, env) == "http://127.0.0.1:9999"
    assert resolve_imds_endpoint("http://127.0.0.1:1", env) == "http://127.0.0.1:1"
    with pytest.raises(SettingsError, match="an http"):
        resolve_imds_endpoint("169.254.169.254", {})


@pytest.mark.parametrize(
    "endpoint",
    ["http://[::1", "http://127.0.0.1:99999", "http://127.0.0.1:0", "http://169.254.169.254/x",
     "http://169.254.169.254?a=b", "http://u:p@169.254.169.254", "ftp://169.254.169.254"],
)  # fmt: skip
def test_malformed_imds_endpoints_are_refused_with_the_rule(endpoint: str) -> None:
    for env in ({}, {"AZURE_POD_IDENTITY_AUTHORITY_HOST": endpoint}):
        with pytest.raises(SettingsError, match="an http\\(s\\) URL with no path"):
            resolve_imds_endpoint(endpoint if not env else None, env)


@pytest.mark.parametrize(
    ("kwargs", "rule"),
    [
        ({"cloud": "mars"}, "one of: public, usgov, china"),
        ({"timeout": 0}, "a finite number of seconds"),
        ({"timeout": float("nan")}, "a finite number of seconds"),
        ({"retry_budget": -1}, "a finite number of seconds >= 0"),
        ({"ca_bundle": "/nonexistent/ca.pem"}, "a readable PEM file"),
    ],
)
def test_other_bad_settings(kwargs: dict[str, object], rule: str) -> None:
    with pytest.raises(SettingsError, match=rule) as raised:
        settings(**kwargs)
    assert raised.value.diagnosis.code is Code.INVALID_SETTING
