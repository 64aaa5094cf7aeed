"""The control side: scenario files, fault injection, throttling, the clock, and redaction."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from pytest_kvmi.emulator import Clock, Emulator
from pytest_kvmi.emulator.contract import DropConnection
from pytest_kvmi.emulator.faults import IMDS, IMDS_TOKEN, VAULT
from pytest_kvmi.emulator.scenario import ScenarioError
from pytest_kvmi.emulator.transports import call_app, make_environ
from pytest_kvmi.emulator.wsgi import Request

from .conftest import (
    DATA,
    IMDS_URL,
    VM_ADDRESS,
    client,
    error_code,
    imds_get,
    imds_token,
    vault_get,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

V = {"api-version": "2018-02-01", "resource": "https://vault.azure.net"}


@pytest.mark.parametrize("name", ["app.toml", "app.json"])
def test_scenario_files(name: str) -> None:
    emu = Emulator.from_scenario(DATA / "scenarios" / name)
    assert emu.tenant_id == "72f988bf-86f1-41af-91ab-2d7cd011db47"
    assert emu.system_identity is None
    assert emu.vault_names() == ["kv-app", "kv-legacy"]
    assert emu.clock.now() == 1700000000
    token = imds_token(emu)  # the one user-assigned identity answers
    # the grant is still propagating (30 s)
    assert vault_get(emu, "/secrets/db-password", token, vault="kv-app").status_code == 403
    emu.clock.advance(30)
    assert vault_get(emu, "/secrets/db-password", token, vault="kv-app").json()["tags"] == {
        "team": "app"
    }
    assert vault_get(emu, "/secrets/legacy", token, vault="kv-legacy").status_code == 200
    outside = vault_get(emu, "/secrets/legacy", token, vault="kv-legacy", remote_addr="192.0.2.1")
    assert error_code(outside)[1] == "ForbiddenByFirewall"


@pytest.mark.parametrize(
    ("text", "suffix"),
    [
        ('[vm]\nnmae = "typo"\n', ".toml"),
        ('{"vaults": [{"secrets": []}]}', ".json"),
        ("not = [valid", ".toml"),
        ("{}", ".yaml"),
    ],
)
def test_bad_scenario_files_are_refused(tmp_path: Path, text: str, suffix: str) -> None:
    path = tmp_path / f"scenario{suffix}"
    path.write_text(text)
    with pytest.raises(ScenarioError):
        Emulator.from_scenario(path)


BAD_VALUE_VAULT = '[[vaults]]\nname = "kv-app"\n[[vaults.secrets]]\nname = "s"\nvalue = "v"\n'


@pytest.mark.parametrize(
    ("text", "where", "key"),
    [
        (
            '[[role_assignments]]\nprincipal = "system"\nrole = "Key Vault Secrets User"\n'
            'scope = "vault:nowhere"\n',
            "role_assignments",
            "nowhere",
        ),
        (BAD_VALUE_VAULT + 'tags = "x"\n', "vaults.secrets", "tags"),
        (BAD_VALUE_VAULT + "tags = { team = 1 }\n", "vaults.secrets", "tags"),
        (BAD_VALUE_VAULT + 'expires = "soon"\n', "vaults.secrets", "expires"),
        (BAD_VALUE_VAULT + "not_before = true\n", "vaults.secrets", "not_before"),
        (BAD_VALUE_VAULT + 'enabled = "false"\n', "vaults.secrets", "enabled"),
        (BAD_VALUE_VAULT + "content_type = 1\n", "vaults.secrets", "content_type"),
        ('[[vaults]]\nname = "kv"\n[[vaults.secrets]]\nname = "s"\nvalue = 1234\n', "", "value"),
        ('[vm]\nsystem_assigned = "no"\n', "vm", "system_assigned"),
        ('[settings]\nthrottling = "off"\n', "settings", "throttling"),
        (
            '[vm]\nsystem_assigned = false\n[[vaults]]\nname = "kv"\n'
            'permission_model = "access-policy"\n'
            '[[vaults.access_policies]]\nprincipal = "system"\npermissions = ["get"]\n',
            "vaults.access_policies",
            "system",
        ),
    ],
)
def test_bad_scenario_values_are_refused_naming_where(
    tmp_path: Path, text: str, where: str, key: str
) -> None:
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as refused:
        Emulator.from_scenario(path)
    assert isinstance(refused.value, ValueError)  # what the plugin turns into a usage error
    assert where in str(refused.value)
    assert key in str(refused.value)
    assert "1234" not in str(refused.value)  # a value is never echoed: it may be a secret


def test_default_emulator_is_empty_but_valid() -> None:
    emu = Emulator()
    assert emu.vault_names() == []
    assert emu.system_identity is not None
    assert imds_token(emu)


def test_status_faults_are_consumed_in_order(emu: Emulator) -> None:
    emu.faults.status(IMDS_TOKEN, 410, times=2)
    emu.faults.status(IMDS_TOKEN, 429, retry_after=7)
    answers = [imds_get(emu, **V) for _ in range(4)]
    assert [r.status_code for r in answers] == [410, 410, 429, 200]
    assert answers[2].headers["Retry-After"] == "7"
    assert emu.faults.pending(IMDS_TOKEN) == 0


def test_faults_are_per_endpoint(emu: Emulator) -> None:
    emu.faults.status(IMDS, 500)
    assert imds_get(emu, **V).status_code == 200
    assert imds_get(emu, "/metadata/versions").status_code == 500


def test_gateway_fault_sends_html(emu: Emulator, token: str) -> None:
    emu.faults.status(VAULT, 502)
    response = vault_get(emu, "/secrets/app-secret", token)
    assert response.status_code == 502
    assert response.headers["Content-Type"] == "text/html"
    assert "<h1>502 Bad Gateway</h1>" in response.text
    assert vault_get(emu, "/secrets/app-secret", token).status_code == 200


def test_drop_raises_drop_connection(emu: Emulator) -> None:
    emu.faults.drop(IMDS_TOKEN)
    with pytest.raises(DropConnection):
        imds_get(emu, **V)
    assert imds_get(emu, **V).status_code == 200


def test_delay_really_waits_then_answers(emu: Emulator) -> None:
    emu.faults.delay(IMDS_TOKEN, 0.05)
    started = time.perf_counter()
    assert imds_get(emu, **V).status_code == 200
    assert time.perf_counter() - started >= 0.05


def test_fault_arguments_are_checked(emu: Emulator) -> None:
    with pytest.raises(ValueError, match="unknown endpoint"):
        emu.faults.status("nowhere", 500)
    with pytest.raises(ValueError, match="error status"):
        emu.faults.status(VAULT, 200)
    emu.faults.drop(VAULT, times=3)
    emu.faults.clear()
    assert emu.faults.pending(VAULT) == 0


def test_throttling_at_key_vaults_real_limit(emu: Emulator, token: str) -> None:
    emu.enable_throttling()
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/secrets/app-secret",
        "QUERY_STRING": "api-version=7.4",
        "HTTP_HOST": "demo.vault.azure.net",
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "REMOTE_ADDR": "203.0.113.9",
        "wsgi.url_scheme": "https",
    }
    statuses: list[str] = []
    for _ in range(4001):
        emu.wsgi_app(dict(environ), lambda status, headers: statuses.append(status))
    assert statuses[:4000] == ["200 OK"] * 4000
    assert statuses[4000] == "429 Too Many Requests"
    emu.clock.advance(10)
    assert vault_get(emu, "/secrets/app-secret", token).status_code == 200
    emu.disable_throttling()


def test_clock_only_moves_forward() -> None:
    clock = Clock(start=100.0)
    clock.advance(5)
    assert clock.now() == 105.0
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)
    assert abs(Clock().now() - time.time()) < 5


def test_secret_values_never_reach_repr_or_str(emu: Emulator, token: str) -> None:
    canary = "canary-9f8e7d6c-do-not-print"
    emu.set_secret("demo", "app-secret", canary)
    version = emu.secret("demo", "app-secret")
    assert version is not None
    texts = [repr(version), str(version), repr(version.value), str(version.value), repr(emu)]
    texts += [repr(emu.secret_versions("demo", "app-secret")), repr(emu.vault("demo"))]
    assert not any(canary in text for text in texts)
    assert version.value.reveal() == canary
    assert vault_get(emu, "/secrets/app-secret", token).json()["value"] == canary


def _environ(host: str, path: str, query: str, headers: list[tuple[str, str]]) -> WSGIEnvironment:
    return make_environ(
        method="GET",
        scheme="http" if host == "169.254.169.254" else "https",
        host_header=host,
        server_name=host,
        target=None,
        raw_path=path,
        query=query,
        headers=headers,
        body=b"",
        remote_addr=VM_ADDRESS,
        server_port=80 if host == "169.254.169.254" else 443,
    )


def test_answers_keep_secret_values_and_tokens_out_of_their_repr(emu: Emulator) -> None:
    canary = "canary-5a4b3c2d-do-not-print"
    emu.set_secret("demo", "app-secret", canary)
    imds = _environ(
        "169.254.169.254",
        "/metadata/identity/oauth2/token",
        "api-version=2018-02-01&resource=https://vault.azure.net",
        [("Metadata", "true")],
    )
    token_answer = call_app(emu.wsgi_app, imds)
    token = json.loads(token_answer.body)["access_token"]
    secret = _environ(
        "demo.vault.azure.net",
        "/secrets/app-secret",
        "api-version=7.4",
        [("Authorization", f"Bearer {token}")],
    )
    secret_answer = call_app(emu.wsgi_app, secret)
    assert canary in secret_answer.body.decode()
    responses = [emu.wsgi_app.respond(Request(env)) for env in (imds, secret)]
    assert all(r.status == 200 for r in responses)
    assert token not in repr(token_answer) + repr(responses[0])
    assert canary not in repr(secret_answer) + repr(responses[1])


def test_unexpected_failure_is_a_500_without_details(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object) -> None:
        raise RuntimeError("boom holding a secret")

    monkeypatch.setattr(emu.wsgi_app, "_dispatch", explode)
    with client(emu, IMDS_URL) as imds:
        response = imds.get("/metadata/versions")
    assert response.status_code == 500
    assert "secret" not in response.text


def test_identity_lookup_and_errors(emu: Emulator) -> None:
    uai = emu.add_user_identity("uai-x")
    assert emu.identity("uai-x") == emu.identity(uai.client_id) == uai
    with pytest.raises(LookupError):
        emu.identity("nobody")
    emu.remove_user_identity("uai-x")
    assert emu.user_identities == ()
    with pytest.raises(ValueError, match="unknown role"):
        emu.grant("system", "Owner", "vault:demo")
    with pytest.raises(ValueError, match="scope"):
        emu.grant("system", "Key Vault Reader", "demo")
    with pytest.raises(ValueError, match="exists"):
        emu.add_vault("demo")


def test_demo_identity_and_vault_url() -> None:
    emu = Emulator.demo()
    assert emu.vault_url("demo") == "https://demo.vault.azure.net"
    with httpx.Client(transport=httpx.WSGITransport(app=emu.wsgi_app)) as any_client:
        assert (
            any_client.get(
                "https://demo.vault.azure.net/secrets/app-secret?api-version=7.4"
            ).status_code
            == 401
        )
