"""Audience faults (a token for another resource than requested, as a proxy or pod identity in
front of IMDS hands out) and the scenario files' ``[faults]`` table."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from pytest_kvmi.emulator import Emulator
from pytest_kvmi.emulator.faults import IMDS, IMDS_TOKEN
from pytest_kvmi.emulator.scenario import ScenarioError

from .conftest import imds_get, imds_token, vault_get

ARM = "https://management.azure.com"
V = {"api-version": "2018-02-01", "resource": "https://vault.azure.net"}


def audience(token: str) -> str:
    found: str = jwt.decode(token, options={"verify_signature": False})["aud"]
    return found


def test_audience_fault_issues_valid_tokens_for_another_audience(emu: Emulator) -> None:
    emu.faults.audience(ARM, times=2)
    answer = imds_get(emu, **V).json()
    assert audience(answer["access_token"]) == ARM
    assert answer["resource"] == ARM
    second = imds_token(emu)
    assert audience(second) == ARM
    response = vault_get(emu, "/secrets/app-secret", second)
    assert response.status_code == 401  # signed and current, but Key Vault refuses the audience
    assert "AKV10022" in response.json()["error"]["message"]
    assert audience(imds_token(emu)) == "https://vault.azure.net"


def test_audience_fault_without_times_lasts_until_cleared(emu: Emulator) -> None:
    emu.faults.audience(ARM)
    assert [audience(imds_token(emu)) for _ in range(3)] == [ARM] * 3
    emu.faults.clear(IMDS)
    assert audience(imds_token(emu)) == ARM
    emu.faults.clear(IMDS_TOKEN)
    assert audience(imds_token(emu)) == "https://vault.azure.net"
    with pytest.raises(ValueError, match="times"):
        emu.faults.audience(ARM, times=0)


def test_status_faults_come_before_the_audience_fault(emu: Emulator) -> None:
    emu.faults.audience(ARM, times=1)
    emu.faults.status(IMDS_TOKEN, 500)
    assert imds_get(emu, **V).status_code == 500
    assert audience(imds_token(emu)) == ARM


SCENARIO = """
[[vaults]]
name = "kv-app"

[faults]
imds = { status = 502, times = 2 }
imds-token = [{ status = 429, retry_after = 3 }, { audience = "https://management.azure.com" }]
vault = { drop = true }
"""


def test_scenario_faults_table(tmp_path: Path) -> None:
    path = tmp_path / "faults.toml"
    path.write_text(SCENARIO)
    emu = Emulator.from_scenario(path)
    assert emu.faults.pending(IMDS) == 2
    assert imds_get(emu, "/metadata/versions").status_code == 502
    throttled = imds_get(emu, **V)
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "3")
    assert audience(imds_token(emu)) == ARM
    assert audience(imds_token(emu)) == ARM
    assert emu.faults.pending("vault") == 1


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        ('[faults]\nimds = { audience = "https://x" }', "imds-token only"),
        ("[faults]\nimds = { status = 502, delay = 1 }", "exactly one"),
        ("[faults]\nimds = { status = 200 }", "error status"),
        ("[faults]\nnowhere = { status = 500 }", "unknown endpoint"),
        ("[faults]\nimds = { status = 500, tims = 2 }", "unknown keys"),
        ('faults = "imds"', "keyed by endpoint"),
    ],
)
def test_bad_scenario_faults_are_refused(tmp_path: Path, faults: str, message: str) -> None:
    path = tmp_path / "faults.toml"
    path.write_text(faults)
    with pytest.raises(ScenarioError, match=message):
        Emulator.from_scenario(path)
