"""``kvmi-emulator``: flags, the JSON line scripts parse, serving, a clean exit on signals."""

from __future__ import annotations

import json
import os
import selectors
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx
import pytest

from pytest_kvmi.emulator import DEMO_SECRET, DEMO_SECRET_VALUE
from pytest_kvmi.emulator.cli import main

KEYS = {"imds_endpoint", "vault_url", "vaults", "ca_bundle", "tenant_id", "identity", "env"}
SCENARIO = Path(__file__).parent / "data" / "scenarios" / "app.toml"
TIMEOUT = 30


@contextmanager
def emulator_process(
    args: Sequence[str], env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    """The CLI in a subprocess, and its JSON line; killed if the test did not end it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_kvmi.emulator.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(TIMEOUT), "no JSON line in time"
        yield process, json.loads(process.stdout.readline())
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=TIMEOUT)


def stop(process: subprocess.Popen[str], signum: signal.Signals) -> tuple[int, str]:
    process.send_signal(signum)
    out, err = process.communicate(timeout=TIMEOUT)
    return process.returncode, out + err


def token(where: dict[str, Any]) -> str:
    answer = httpx.get(
        f"{where['imds_endpoint']}/metadata/identity/oauth2/token",
        params={"api-version": "2018-02-01", "resource": "https://vault.azure.net"},
        headers={"Metadata": "true"},
        timeout=TIMEOUT,
    )
    assert answer.status_code == 200
    value: str = answer.json()["access_token"]
    return value


def get_secret(where: dict[str, Any], vault_url: str, name: str) -> httpx.Response:
    verify = ssl.create_default_context(cafile=where["ca_bundle"])
    with httpx.Client(verify=verify, timeout=TIMEOUT) as client:
        return client.get(
            f"{vault_url}/secrets/{name}",
            params={"api-version": "7.5"},
            headers={"Authorization": f"Bearer {token(where)}"},
        )


def test_flags_serve_the_secrets_and_sigterm_ends_it_cleanly() -> None:
    flags = ["--vault", "kv-one", "--vault", "kv-two", "--secret", "db-password=flag-secret-v"]
    flags += ["--secret-env", "api-key=KVMI_TEST_API_KEY"]
    with emulator_process(flags, {"KVMI_TEST_API_KEY": "env-secret-v"}) as (process, where):
        assert set(where) == KEYS
        assert set(where["vaults"]) == {"kv-one", "kv-two"}
        assert where["vault_url"] == where["vaults"]["kv-one"]
        assert set(where["identity"]) == {"client_id", "object_id", "resource_id"}
        assert where["env"]["AZURE_POD_IDENTITY_AUTHORITY_HOST"] == where["imds_endpoint"]
        assert where["env"]["REQUESTS_CA_BUNDLE"] == where["ca_bundle"]
        assert os.path.exists(where["ca_bundle"])
        first = where["vault_url"]
        assert get_secret(where, first, "db-password").json()["value"] == "flag-secret-v"
        assert get_secret(where, first, "api-key").json()["value"] == "env-secret-v"
        assert get_secret(where, where["vaults"]["kv-two"], "db-password").status_code == 403
        status, output = stop(process, signal.SIGTERM)
    assert status == 0
    assert output == ""
    assert not os.path.exists(where["ca_bundle"])


def test_without_flags_it_serves_the_demo_until_ctrl_c() -> None:
    with emulator_process([]) as (process, where):
        assert set(where["vaults"]) == {"demo"}
        assert get_secret(where, where["vault_url"], DEMO_SECRET).json()["value"] == (
            DEMO_SECRET_VALUE
        )
        status, output = stop(process, signal.SIGINT)
    assert status == 0
    assert DEMO_SECRET_VALUE not in output


def test_a_scenario_file_is_served() -> None:
    with emulator_process(["--scenario", str(SCENARIO)]) as (process, where):
        assert where["vault_url"] in where["vaults"].values()
        status, _ = stop(process, signal.SIGTERM)
    assert status == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--vault", "x"], "a vault name is 3-24 characters"),
        (["--vault", "a--b"], "no two hyphens in a row"),
        (["--vault", "kv-ok", "--secret", "no_underscores=hidden-v"], "a secret name is"),
        (["--vault", "kv-ok", "--secret", "hidden-v"], "expected NAME=VALUE"),
        (["--secret", "s=hidden-v"], "need a --vault"),
        (["--scenario", "s.toml", "--vault", "kv-ok"], "cannot be combined"),
        (["--vault", "kv-ok", "--vault", "KV-OK"], "once"),
        (["--vault", "kv-ok", "--secret-env", "s=KVMI_UNSET_VARIABLE"], "is not set"),
        (["--scenario", "missing.toml"], "--scenario missing.toml"),
    ],
)
def test_invalid_flags_are_usage_errors_quoting_the_rule(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "hidden-v" not in err


@pytest.mark.parametrize(
    "text",
    [
        '[[role_assignments]]\nprincipal = "system"\nrole = "Key Vault Secrets User"\n'
        'scope = "vault:nowhere"\n',
        '[[vaults]]\nname = "kv"\n[[vaults.secrets]]\nname = "s"\nvalue = "v"\ntags = "x"\n',
        b"\xff\xfe not utf-8",
    ],
)
def test_a_bad_scenario_file_is_a_one_line_usage_error(
    tmp_path: Path, text: str | bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(SystemExit) as exited:
        main(["--scenario", str(path)])
    assert exited.value.code == 2
    *usage, error = capsys.readouterr().err.splitlines()
    assert error.startswith(f"kvmi-emulator: error: --scenario {path}: ")
    assert all(line.startswith(("usage:", " ")) for line in usage)


def test_the_console_script_is_this_main() -> None:
    (script,) = entry_points(group="console_scripts", name="kvmi-emulator")
    assert script.load() is main
