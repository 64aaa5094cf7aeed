"""The control side: scenario files, fault injection, throttling, the clock, and redaction."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from pytest_kvmi.emulator import Clock, Emulator
from pytest_kvmi.emulator.contract import DropConnection
from pytest_kvmi.emulator.faults import IMDS, IMDS_TOKEN, VAULT
from pytest_kvmi.emulator.scenario import ScenarioError

from .conftest import DATA, IMDS_URL, client, error_code, imds_get, imds_token, vault_get

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
