"""The plugin end to end with pytester: the shipped checks on the embedded emulator, setups
that break each thing in turn, options at every layer, the report, and other pytest plugins."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_kvmi.emulator import Emulator
from tests.loopback import closed_port_url
from tests.pytester_support import import_the_package_once

import_the_package_once()

pytest_plugins = ["pytester"]

OTHER_TENANT = "ec568c69-965a-495b-8823-a7f3c2dc890f"
GOOD = """
[vm]
name = "vm-app"
resource_group = "rg-app"

[[vaults]]
name = "kv-app"
{vault_extra}

[[vaults.secrets]]
name = "db-password"
value = "canary-db-password-value-31d4"
{secret_extra}

[[vaults.secrets]]
name = "admin-password"
value = "canary-admin-password-value-77a0"

{assignments}
{faults}
"""
GRANT = """
[[role_assignments]]
principal = "system"
role = "Key Vault Secrets User"
scope = "vault:kv-app/secrets/db-password"
"""
NAMES = ("--kv-vault=kv-app", "--kv-secret=db-password", "--kv-forbidden-secret=admin-password")


def scenario(
    pytester: pytest.Pytester,
    *,
    vm_extra: str = "",
    vault_extra: str = "",
    secret_extra: str = "",
    assignments: str = GRANT,
    faults: str = "",
) -> str:
    text = GOOD.format(
        vault_extra=vault_extra, secret_extra=secret_extra, assignments=assignments, faults=faults
    ).replace('resource_group = "rg-app"', f'resource_group = "rg-app"\n{vm_extra}')
    path = pytester.path / "scenario.toml"
    path.write_text(text)
    return str(path)


def checks(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
    """Run pytest with a report; return the result and the checks by label."""
    report = pytester.path / "kvmi-report.json"
    result = pytester.runpytest(*args, f"--kv-report={report}")
    data = json.loads(report.read_text())
    by_label = {
        (f"{c['id']}[{c['target']}]" if c["target"] else c["id"]): (c["outcome"], c["code"])
        for c in data["checks"]
    }
    return result, by_label


def test_kv_emulator_alone_runs_every_check_and_all_pass(pytester: pytest.Pytester) -> None:
    result, by_label = checks(pytester, "--kv-emulator")
    assert result.ret == pytest.ExitCode.OK
    assert by_label == {
        "imds-reachable": ("passed", "ok"),
        "identity-present": ("passed", "ok"),
        "token-audience": ("passed", "ok"),
        "token-tenant": ("passed", "ok"),
        "vm-binding": ("passed", "ok"),
        "secret-readable[app-secret]": ("passed", "ok"),
        "secret-denied[admin-secret]": ("passed", "ForbiddenByRbac"),
        "role-revocation[app-secret]": ("passed", "ForbiddenByRbac"),
    }
    output = result.stdout.str()
    assert "kvmi: embedded emulator; vault https://demo.vault.azure.net" in output
    assert "pytest-kvmi" in output
    assert "ForbiddenByRbac" in output  # the revocation's story is shown
    result.stdout.fnmatch_lines(["*role-revocation*passed*ForbiddenByRbac*", "*revoked*"])


def test_users_names_are_created_in_the_emulator(pytester: pytest.Pytester) -> None:
    result, by_label = checks(
        pytester, "--kv-emulator", "--kv-vault=kv-prod", "--kv-secret=db", "--kv-secret=api-key",
        "--kv-forbidden-secret=root",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.OK
    assert by_label["secret-readable[db]"] == ("passed", "ok")
    assert by_label["secret-readable[api-key]"] == ("passed", "ok")
    assert by_label["secret-denied[root]"] == ("passed", "ForbiddenByRbac")
    assert "vault https://kv-prod.vault.azure.net" in result.stdout.str()


def test_user_assigned_identity_in_the_emulator(pytester: pytest.Pytester) -> None:
    client_id = "11111111-2222-3333-4444-555555555555"
    result, by_label = checks(pytester, "--kv-emulator", f"--kv-client-id={client_id}")
    assert result.ret == pytest.ExitCode.OK
    assert by_label["vm-binding"] == ("passed", "ok")
    report = json.loads((pytester.path / "kvmi-report.json").read_text())
    assert report["identity"]["kind"] == "user-assigned"
    assert report["identity"]["client_id"] == client_id


def test_user_assigned_identity_by_resource_id_in_the_emulator(pytester: pytest.Pytester) -> None:
    res_id = (
        "/subscriptions/0b1c2d3e-0000-4000-8000-000000000001/resourceGroups/rg-identities/"
        "providers/Microsoft.ManagedIdentity/userAssignedIdentities/app-id"
    )
    result, by_label = checks(pytester, "--kv-emulator", f"--kv-msi-res-id={res_id}")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert by_label["vm-binding"] == ("passed", "ok")
    assert by_label["role-revocation[app-secret]"] == ("passed", "ForbiddenByRbac")


def test_a_sovereign_vault_url_keeps_its_cloud_in_the_emulator(pytester: pytest.Pytester) -> None:
    result, by_label = checks(
        pytester, "--kv-emulator", "--kv-vault=https://kv-gov.vault.usgovcloudapi.net"
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert by_label["token-audience"] == ("passed", "ok")  # a token for vault.usgovcloudapi.net
    assert "vault https://kv-gov.vault.usgovcloudapi.net" in result.stdout.str()
    report = json.loads((pytester.path / "kvmi-report.json").read_text())
    assert report["vault"]["cloud"] == "usgov"


def test_a_good_scenario_passes(pytester: pytest.Pytester) -> None:
    result, by_label = checks(pytester, f"--kv-scenario={scenario(pytester)}", *NAMES)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert set(outcome for outcome, _ in by_label.values()) == {"passed"}


@pytest.mark.parametrize(
    ("kwargs", "failing", "code"),
    [
        (
            {"vm_extra": "system_assigned = false", "assignments": ""},
            "identity-present",
            "IdentityNotFound",
        ),
        (
            {"faults": '[faults]\nimds-token = { audience = "https://management.azure.com" }'},
            "token-audience",
            "WrongAudience",
        ),
        ({"vault_extra": f'tenant_id = "{OTHER_TENANT}"'}, "token-tenant", "TenantMismatch"),
        (
            {"vault_extra": f'tenant_id = "{OTHER_TENANT}"'},
            "secret-readable[db-password]",
            "InvalidIssuer",
        ),
        ({"assignments": ""}, "secret-readable[db-password]", "ForbiddenByRbac"),
        (
            {"vault_extra": 'permission_model = "access-policy"'},
            "secret-readable[db-password]",
            "ForbiddenByPolicy",
        ),
        (
            {"vault_extra": 'permission_model = "access-policy"'},
            "secret-denied[admin-password]",
            "ForbiddenByPolicy",
        ),
        (
            {"vault_extra": 'allow = ["203.0.113.0/24"]'},
            "secret-readable[db-password]",
            "ForbiddenByFirewall",
        ),
        ({"secret_extra": "enabled = false"}, "secret-readable[db-password]", "SecretDisabled"),
        (
            {"faults": "[faults]\nimds = { status = 502, times = 1000 }\n"
             "imds-token = { status = 502, times = 1000 }"},
            "imds-reachable",
            "ImdsProxyIntercepted",
        ),
    ],
)  # fmt: skip
def test_a_broken_setup_fails_the_right_check_with_the_right_code(
    pytester: pytest.Pytester, kwargs: dict[str, str], failing: str, code: str
) -> None:
    result, by_label = checks(pytester, f"--kv-scenario={scenario(pytester, **kwargs)}", *NAMES)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert by_label[failing] == ("failed", code)
    output = result.stdout.str()
    assert f"{code}: " in output  # the diagnosis, with its cause and fix
    assert "Fix: " in output or code == "TenantMismatch"
    assert "Traceback" not in output


def test_live_mode_over_real_sockets_and_tls(pytester: pytest.Pytester) -> None:
    """The path a VM takes, end to end: IMDS over http, the vault over https trusted through
    --kv-ca-bundle, no emulator in the process (it serves from loopback servers here)."""
    with Emulator.demo().serve() as servers:
        result, by_label = checks(
            pytester,
            f"--kv-vault={servers.vault_url('demo')}",
            f"--kv-imds-endpoint={servers.imds_endpoint}",
            f"--kv-ca-bundle={servers.ca_bundle}",
            "--kv-secret=app-secret",
            "--kv-forbidden-secret=admin-secret",
        )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert by_label["secret-readable[app-secret]"] == ("passed", "ok")
    assert by_label["secret-denied[admin-secret]"] == ("passed", "ForbiddenByRbac")
    assert by_label["token-tenant"] == ("passed", "ok")
    assert by_label["role-revocation"][0] == "skipped"  # only against the emulator
    result.stdout.fnmatch_lines(["kvmi: live, IMDS at http://127.0.0.1:*"])


def test_no_imds_at_all(pytester: pytest.Pytester) -> None:
    result, by_label = checks(
        pytester, "--kv-vault=kv-app", f"--kv-imds-endpoint={closed_port_url()}", "--kv-secret=db"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert by_label["imds-reachable"] == ("failed", "ImdsUnreachable")
    assert by_label["identity-present"][0] == "skipped"
    assert by_label["secret-readable[db]"][0] == "skipped"
    result.stdout.fnmatch_lines(["*ImdsUnreachable: Nothing accepted a connection*"])


def test_failures_name_the_real_ids(pytester: pytest.Pytester) -> None:
    result, _ = checks(pytester, f"--kv-scenario={scenario(pytester, assignments='')}", *NAMES)
    output = result.stdout.str()
    assert (
        'az role assignment create --role "Key Vault Secrets User" --assignee-object-id ' in output
    )
    assert "/providers/microsoft.keyvault/vaults/kv-app/secrets/db-password" in output
    assert "<object-id>" not in output


def test_propagation_is_waited_for_with_kv_wait(pytester: pytest.Pytester) -> None:
    path = scenario(pytester)
    text = Path(path).read_text() + "\n[settings]\npropagation_delay = 120\n"
    Path(path).write_text(text)
    result, by_label = checks(pytester, f"--kv-scenario={path}", *NAMES)
    assert by_label["secret-readable[db-password]"] == ("failed", "ForbiddenByRbac")
    result, by_label = checks(pytester, f"--kv-scenario={path}", *NAMES, "--kv-wait=600")
    assert by_label["secret-readable[db-password]"] == ("passed", "ok")
    result.stdout.fnmatch_lines(["*kvmi: *waiting*"])


def test_checks_without_targets_are_skipped_with_the_reason(pytester: pytest.Pytester) -> None:
    result, by_label = checks(pytester, f"--kv-scenario={scenario(pytester)}", "--kv-vault=kv-app")
    assert by_label["secret-readable"] == ("skipped", None)
    assert by_label["secret-denied"] == ("skipped", None)
    result.stdout.fnmatch_lines(["*no secret to check: give --kv-secret=NAME*"])


def test_report_schema(pytester: pytest.Pytester) -> None:
    checks(pytester, "--kv-emulator")
    report = json.loads((pytester.path / "kvmi-report.json").read_text())
    assert report["schema"] == "pytest-kvmi/report/1"
    assert report["vault"]["url"] == "https://demo.vault.azure.net"
    assert report["identity"]["kind"] == "system-assigned"
    assert report["identity"]["object_id"]
    check = report["checks"][0]
    assert set(check) >= {"id", "target", "outcome", "code", "summary", "remedy", "duration_s"}


def test_the_installed_package_finds_its_checks(tmp_path: Path) -> None:
    """From an unrelated directory, as a user runs it: the package as installed (a wheel
    under tox, editable in development) carries the shipped checks."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--kv-emulator", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "8 passed" in result.stdout


def test_markers_select_areas(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--kv-emulator", "-m", "kvmi_imds")
    result.assert_outcomes(passed=2, deselected=6)


# --- options -----------------------------------------------------------------------------


def test_precedence_command_line_over_env_over_ini(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\nkv_vault = from-ini\nkv_timeout = 7\nkv_wait = 3\n")
    monkeypatch.setenv("KVMI_VAULT", "from-env")
    monkeypatch.setenv("KVMI_WAIT", "4")
    result = pytester.runpytest("--kv-vault=from-cli", "--co")
    result.stdout.fnmatch_lines(
        [
            "kvmi: vault=from-cli (command line)",
            "kvmi: timeout=7 (ini kv_timeout)",
            "kvmi: wait=4 (env KVMI_WAIT)",
        ]
    )
    monkeypatch.delenv("KVMI_VAULT")
    result = pytester.runpytest("--co", "--kv-checks")
    result.stdout.fnmatch_lines(["kvmi: vault=from-ini (ini kv_vault)"])


def test_vault_from_env_configures_fixtures_without_replacing_the_users_tests(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        test_mine="def test_mine(kv_settings):\n    assert kv_settings.vault.name == 'kv1'\n"
    )
    monkeypatch.setenv("KVMI_VAULT", "kv1")
    pytester.runpytest().assert_outcomes(passed=1)


def test_shipped_checks_alongside_the_users_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mine="def test_mine():\n    pass\n")
    result = pytester.runpytest("--kv-emulator", "--kv-checks", "test_mine.py")
    result.assert_outcomes(passed=9)
    result = pytester.runpytest("--kv-emulator", "test_mine.py")
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("args", "rule"),
    [
        (["--kv-vault=ab"], "3-24 characters"),
        (["--kv-vault=http://myvault.vault.azure.net"], "only sent over https"),
        (["--kv-vault=kv1", "--kv-secret=db_password"], "1-127 letters, digits and hyphens"),
        (["--kv-vault=kv1", "--kv-forbidden-secret=x/123"], "32-character hex version"),
        (["--kv-vault=kv1", "--kv-client-id=nope"], "select at most one user-assigned identity"),
        (
            ["--kv-vault=kv1", f"--kv-client-id={'1' * 8}-1111-1111-1111-{'1' * 12}",
             f"--kv-object-id={'1' * 8}-1111-1111-1111-{'1' * 12}"],
            "select at most one",
        ),
        (["--kv-vault=kv1", "--kv-timeout=abc"], "a number of seconds"),
        (["--kv-vault=kv1", "--kv-timeout=0"], "a finite number of seconds >= 0.01"),
        (["--kv-vault=kv1", "--kv-wait=-1"], "a finite number of seconds >= 0"),
        (["--kv-vault=kv1", "--kv-retry-budget=soon"], "is not a number of seconds"),
        (["--kv-vault=kv1", "--kv-cloud=mars"], "one of: public, usgov, china"),
        (["--kv-scenario=missing.toml"], "a scenario file (TOML or JSON)"),
        (["--kv-scenario=test_x.py"], "a scenario file ends in .toml or .json"),
        (["--kv-vault=kv1", "--kv-imds-endpoint=169.254.169.254"], "an http(s) URL"),
        (["--kv-vault=kv1", "--kv-ca-bundle=/nonexistent.pem"], "a readable PEM file"),
    ],
)  # fmt: skip
def test_bad_values_are_usage_errors_that_quote_the_rule(
    pytester: pytest.Pytester, args: list[str], rule: str
) -> None:
    pytester.makepyfile(test_x="")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert rule in result.stderr.str()
    assert "Traceback" not in result.stderr.str()


# --- the rest of pytest ------------------------------------------------------------------


def test_disabled_with_p_no_kvmi(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mine="def test_mine():\n    pass\n")
    pytester.runpytest("-p", "no:kvmi").assert_outcomes(passed=1)
    result = pytester.runpytest("-p", "no:kvmi", "--kv-emulator")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_unusual_user_ini_does_not_break_the_checks(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        """
        [pytest]
        python_files = check_*.py
        python_functions = check_*
        python_classes = Check
        filterwarnings = error
        addopts = --strict-markers -p no:cacheprovider
        """
    )
    # A fresh process, as a user runs it: in-process, the package is already imported and
    # pytest's "cannot be rewritten" warning would be an error under filterwarnings = error.
    result = pytester.runpytest_subprocess("--kv-emulator")
    result.assert_outcomes(passed=8)


def test_junit_xml_carries_the_vault_and_client_id(pytester: pytest.Pytester) -> None:
    pytester.runpytest("--kv-emulator", "--junitxml=junit.xml")
    xml = (pytester.path / "junit.xml").read_text()
    assert 'name="kvmi_vault" value="https://demo.vault.azure.net"' in xml
    assert 'name="kvmi_client_id" value="' in xml


def test_with_xdist(pytester: pytest.Pytester) -> None:
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess("--kv-emulator", "-n", "2", f"--kv-report={report}")
    result.assert_outcomes(passed=8)
    assert len(json.loads(report.read_text())["checks"]) == 8


# --- fixtures for users' own tests -------------------------------------------------------

USER_TESTS = """
import httpx
import pytest
import requests
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient


def test_sdk_at_production_urls_in_process(kv_emulator):
    kv_emulator.set_secret("demo", "db", "from-the-emulator")
    kv_emulator.grant("system", "Key Vault Secrets User", "vault:demo")
    with ManagedIdentityCredential() as credential, SecretClient(
        "https://demo.vault.azure.net", credential
    ) as client:
        assert client.get_secret("db").value == "from-the-emulator"


def test_httpx_code(kv_emulator):
    token = httpx.get(
        "http://169.254.169.254/metadata/identity/oauth2/token",
        params={"api-version": "2018-02-01", "resource": "https://vault.azure.net"},
        headers={"Metadata": "true"},
    ).json()["access_token"]
    answer = httpx.get(
        "https://demo.vault.azure.net/secrets/admin-secret?api-version=7.5",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.json()["error"]["innererror"]["code"] == "ForbiddenByRbac"


def test_requests_code(kv_emulator, kv_responses):
    requests.get(
        "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01"
        "&resource=https://vault.azure.net",
        headers={"Metadata": "true"},
    )
    assert len(kv_responses.calls) == 1


def test_sdk_env_on_loopback(kv_sdk_env):
    with ManagedIdentityCredential() as credential, SecretClient(
        kv_sdk_env.vault_url("demo"), credential, verify_challenge_resource=False
    ) as client:
        assert client.get_secret("app-secret").value


@pytest.mark.kv_emulator(scenario="scenario.toml")
def test_scenario_marker(kv_emulator):
    assert kv_emulator.vault_names() == ["kv-app"]
"""


def test_fixtures_for_users_tests(pytester: pytest.Pytester) -> None:
    scenario(pytester)
    pytester.makepyfile(test_users=USER_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


def test_fixtures_have_useful_docstrings(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--fixtures")
    for name in (
        "kv_settings",
        "kv_token",
        "kv_vault",
        "kv_emulator",
        "kv_sdk_env",
        "kv_responses",
    ):
        result.stdout.fnmatch_lines([f"{name}*", "*?*"])
    output = result.stdout.str()
    assert (
        "no docstring available" not in output.split("fixtures defined from pytest_kvmi.plugin")[-1]
    )


# --- never a token or a secret value, anywhere -------------------------------------------

CANARY_TESTS = """
import os


def test_dump_token_and_fail(kv_token, kv_vault):
    with open(os.environ["KVMI_TEST_TOKEN_FILE"], "w") as out:
        out.write(kv_token.bearer())
    bundle = kv_vault.get_secret("db-password", kv_token)
    assert bundle.value == "something else"
"""


@pytest.mark.parametrize(
    "extra",
    [
        ["-vv", "-l", "--tb=long", "--full-trace", "--log-cli-level=DEBUG"],
        ["-s", "-rA", "--tb=native", "--showlocals"],
        ["-n", "2", "-vv", "-l"],
    ],
    ids=["verbose-locals-debug", "no-capture", "xdist"],
)
def test_canaries_never_appear(
    pytester: pytest.Pytester,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
) -> None:
    token_file = tmp_path_factory.mktemp("outside") / "token"
    monkeypatch.setenv("KVMI_TEST_TOKEN_FILE", str(token_file))
    # The identity may read every secret: secret-denied fails after reading the forbidden one.
    path = scenario(pytester, assignments=GRANT.replace("/secrets/db-password", ""))
    pytester.makepyfile(test_canary=CANARY_TESTS)
    result = pytester.runpytest_subprocess(
        f"--kv-scenario={path}", *NAMES, "--kv-checks", "test_canary.py",
        "--junitxml=junit.xml", "-o", "junit_logging=all", "--kv-report=report.json", *extra,
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*secret-denied*admin-password*failed*"])
    token = token_file.read_text()
    canaries = [
        token,
        token.split(".")[2],
        "canary-db-password-value-31d4",
        "canary-admin-password-value-77a0",
    ]
    texts = [result.stdout.str(), result.stderr.str()]
    inputs = {"scenario.toml", "test_canary.py"}  # the values are in the setup, on purpose
    outputs = [p for p in pytester.path.rglob("*") if p.is_file() and p.name not in inputs]
    assert any(".pytest_cache" in p.parts for p in outputs)  # the cache is scanned too
    texts += [p.read_text(errors="replace") for p in outputs]
    assert (pytester.path / "report.json").exists()
    assert (pytester.path / "junit.xml").exists()
    for canary in canaries:
        assert not [text for text in texts if canary in text]
