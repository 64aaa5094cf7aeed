"""The pytest-free checks against the in-process emulator: every pass, failure and skip."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from pytest_kvmi.checks import CHECK_IDS, Outcome, Probe, Verdict, is_this_vm
from pytest_kvmi.emulator import Clock, Emulator, RoleAssignment
from pytest_kvmi.emulator.faults import IMDS, IMDS_TOKEN
from pytest_kvmi.imds import ImdsClient
from pytest_kvmi.settings import SecretRef, Settings
from pytest_kvmi.vault import VaultClient

START = 1_700_000_000.0
SECRETS_USER = "Key Vault Secrets User"
ARM = "https://management.azure.com"
OTHER_TENANT = "00000000-0000-4000-8000-000000000001"
APP = SecretRef("app-secret")
ADMIN = SecretRef("admin-secret")


class Recorder(httpx.BaseTransport):
    """Counts requests by path; once ``broken``, fails every request as a bug would."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.paths: Counter[str] = Counter()
        self.broken = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths[request.url.path] += 1
        if self.broken:
            raise RuntimeError("the transport broke")
        return self.inner.handle_request(request)


class FakeTime:
    """A monotonic clock and sleep that never wait: sleeping moves the emulator's clock."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.elapsed = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.elapsed

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.elapsed += seconds
        self.emu.clock.advance(seconds)


class Switch:
    """The RoleSwitch a plugin would build: the system identity's assignments, off and on."""

    def __init__(self, emu: Emulator, transport: Recorder | None = None) -> None:
        self.emu = emu
        self.transport = transport
        self.revoked: list[RoleAssignment] = []
        self.restored = 0

    def revoke(self, secret: str) -> str:
        oid = self.emu.identity("system").object_id
        self.revoked = [a for a in self.emu.role_assignments() if a.principal_id == oid]
        for assignment in self.revoked:
            self.emu.revoke("system", assignment.role, assignment.scope)
        if self.transport is not None:
            self.transport.broken = True
        return ", ".join(f"{a.role.name} at {a.scope}" for a in self.revoked)

    def restore(self) -> None:
        self.restored += 1
        for assignment in self.revoked:
            self.emu.grant("system", assignment.role, assignment.scope)

    def advance(self, seconds: float) -> None:
        self.emu.clock.advance(seconds)


@dataclasses.dataclass
class Rig:
    emu: Emulator
    transport: Recorder
    time: FakeTime
    notes: list[str]
    make: Callable[..., Probe]

    def probe(self, **options: Any) -> Probe:
        return self.make(**options)


@pytest.fixture
def rig() -> Iterator[Rig]:
    """The demo emulator, and Probes on it built by ``rig.probe(vault=..., wait=..., ...)``."""
    emu = Emulator.demo(clock=Clock(start=START))
    transport = Recorder(emu.transport())
    fake = FakeTime(emu)
    notes: list[str] = []
    clients: list[ImdsClient | VaultClient] = []

    def make(
        vault: str | None = "demo",
        wait: float = 0.0,
        clock: Callable[[], float] | None = None,
        **settings: Any,
    ) -> Probe:
        built = Settings.build(vault=vault, env={}, retry_budget=0, **settings)
        imds = ImdsClient(built, transport=transport)
        kv = VaultClient(built, imds.token, transport=transport) if vault else None
        clients.extend(c for c in (imds, kv) if c is not None)
        return Probe(
            built,
            imds,
            kv,
            wait=wait,
            sleep=fake.sleep,
            clock=clock or fake.clock,
            now=emu.clock.now,
            notify=notes.append,
        )

    yield Rig(emu, transport, fake, notes, make)
    for client in clients:
        client.close()


def every_check(probe: Probe, switch: Switch | None = None) -> list[Verdict]:
    return [
        probe.imds_reachable(),
        probe.identity_present(),
        probe.token_audience(),
        probe.token_tenant(),
        probe.vm_binding(),
        probe.secret_readable(APP),
        probe.secret_denied(ADMIN),
        probe.role_revocation(APP, switch),
    ]


def outcomes(verdicts: list[Verdict]) -> dict[str, tuple[Outcome, str | None]]:
    return {v.check: (v.outcome, v.code) for v in verdicts}


PASSED, FAILED, SKIPPED = Outcome.PASSED, Outcome.FAILED, Outcome.SKIPPED


# --- the whole picture -----------------------------------------------------------------------


def test_demo_setup_passes_every_check(rig: Rig) -> None:
    verdicts = every_check(rig.probe(), Switch(rig.emu))
    assert [v.check for v in verdicts] == list(CHECK_IDS)
    assert outcomes(verdicts) == {
        "imds-reachable": (PASSED, "ok"),
        "identity-present": (PASSED, "ok"),
        "token-audience": (PASSED, "ok"),
        "token-tenant": (PASSED, "ok"),
        "vm-binding": (PASSED, "ok"),
        "secret-readable": (PASSED, "ok"),
        "secret-denied": (PASSED, "ForbiddenByRbac"),
        "role-revocation": (PASSED, "ForbiddenByRbac"),
    }
    system = rig.emu.identity("system")
    assert "system-assigned" in verdicts[1].summary
    assert system.object_id in verdicts[1].summary
    assert rig.emu.vm.resource_id in verdicts[4].summary
    assert verdicts[5].target == "app-secret"
    assert verdicts[6].summary == "admin-secret is denied as intended: 403 ForbiddenByRbac"
    assert all(not v.causes and not v.remedy and not v.warnings for v in verdicts[:7])


def test_one_token_one_instance_read_one_challenge_per_probe(rig: Rig) -> None:
    probe = rig.probe()
    for _ in range(2):
        every_check(probe)
        probe.secret_readable(SecretRef("missing"))
    assert rig.transport.paths["/metadata/identity/oauth2/token"] == 1
    assert rig.transport.paths["/metadata/instance"] == 1
    assert rig.transport.paths["/secrets"] == 1
    assert rig.transport.paths["/secrets/app-secret"] == 2


def test_the_token_and_vault_client_are_shared_with_fixtures(rig: Rig) -> None:
    probe = rig.probe()
    token = probe.token_or_none()
    assert token is not None
    assert token is probe.token_or_none()
    assert probe.vault is not None
    assert probe.vault.get_secret(APP, token).name == "app-secret"
    assert probe.identity_present().outcome is PASSED
    assert rig.transport.paths["/metadata/identity/oauth2/token"] == 1
    rig.emu.set_system_identity(False)
    assert rig.probe(vault=None).token_or_none() is None
    assert rig.probe(vault=None).vault is None


def test_failures_are_remembered_too(rig: Rig) -> None:
    rig.emu.set_system_identity(False)
    probe = rig.probe(vault="nowhere")
    for _ in range(2):
        every_check(probe)
    assert rig.transport.paths["/metadata/identity/oauth2/token"] == 1


def test_identity_facts_come_from_the_token_once_there_is_one(rig: Rig) -> None:
    uai = rig.emu.add_user_identity("uai-app")
    probe = rig.probe(client_id=uai.client_id)
    assert probe.identity_facts() == {
        "kind": "user-assigned",
        "client_id": uai.client_id,
        "object_id": None,
        "tenant_id": None,
        "resource_id": None,
    }
    probe.identity_present()
    assert probe.identity_facts() == {
        "kind": "user-assigned",
        "client_id": uai.client_id,
        "object_id": uai.object_id,
        "tenant_id": rig.emu.tenant_id,
        "resource_id": uai.resource_id,
    }


# --- IMDS and the identity ---------------------------------------------------------------------


def test_imds_behind_a_proxy_fails_once_and_skips_the_rest(rig: Rig) -> None:
    rig.emu.faults.status(IMDS, 502, times=10)
    rig.emu.faults.status(IMDS_TOKEN, 502, times=10)
    verdicts = every_check(rig.probe(), Switch(rig.emu))
    assert outcomes(verdicts)["imds-reachable"] == (FAILED, "ImdsProxyIntercepted")
    for verdict in verdicts[1:]:
        assert (verdict.outcome, verdict.code) == (SKIPPED, None), verdict
        assert verdict.summary == "no answer from IMDS (ImdsProxyIntercepted): see imds-reachable"
    assert "NO_PROXY" in verdicts[0].remedy


def test_token_endpoint_failing_alone_fails_identity_present(rig: Rig) -> None:
    rig.emu.faults.status(IMDS_TOKEN, 410)
    verdicts = every_check(rig.probe())
    assert outcomes(verdicts)["imds-reachable"] == (PASSED, "ok")
    assert outcomes(verdicts)["identity-present"] == (FAILED, "ImdsUnavailable")
    assert verdicts[2].summary == "no token (ImdsUnavailable): see identity-present"


def test_other_imds_answers_still_prove_imds_answers(rig: Rig) -> None:
    rig.emu.faults.status(IMDS, 400)
    probe = rig.probe()
    reachable = probe.imds_reachable()
    assert (reachable.outcome, reachable.code) == (PASSED, "ok")
    assert reachable.warnings[0].startswith("instance metadata could not be read: Unexpected")
    assert (probe.vm_binding().outcome, probe.vm_binding().code) == (FAILED, "UnexpectedResponse")


def test_no_system_identity(rig: Rig) -> None:
    rig.emu.set_system_identity(False)
    verdicts = every_check(rig.probe(), Switch(rig.emu))
    present = verdicts[1]
    assert (present.outcome, present.code) == (FAILED, "IdentityNotFound")
    assert "az vm identity assign --name vm-kvmi --resource-group rg-kvmi" in present.remedy
    assert outcomes(verdicts)["imds-reachable"] == (PASSED, "ok")
    for verdict in verdicts[2:]:
        assert verdict.outcome is SKIPPED
        assert verdict.summary == "no token (IdentityNotFound): see identity-present"


def test_several_user_identities_and_none_selected(rig: Rig) -> None:
    rig.emu.set_system_identity(False)
    rig.emu.add_user_identity("uai-a")
    rig.emu.add_user_identity("uai-b")
    present = rig.probe().identity_present()
    assert (present.outcome, present.code) == (FAILED, "MultipleIdentities")
    assert "--kv-client-id" in present.remedy


def test_wrong_audience_from_whatever_answers_for_imds(rig: Rig) -> None:
    rig.emu.faults.audience(ARM)
    probe = rig.probe()
    audience = probe.token_audience()
    assert (audience.outcome, audience.code) == (FAILED, "WrongAudience")
    assert ARM in audience.summary
    assert "https://vault.azure.net" in audience.summary
    assert "resource=https://vault.azure.net" in audience.remedy
    assert probe.secret_readable(APP).code == "InvalidAudience"


def test_vm_binding_accepts_a_user_identity_of_the_vms_subscription(rig: Rig) -> None:
    uai = rig.emu.add_user_identity("uai-app", resource_group="rg-identities")
    binding = rig.probe(msi_res_id=uai.resource_id).vm_binding()
    assert (binding.outcome, binding.code) == (PASSED, "ok")
    assert uai.resource_id in binding.summary


def test_vm_binding_refuses_an_identity_of_another_subscription(rig: Rig) -> None:
    uai = rig.emu.add_user_identity(
        "uai-far", subscription_id="11111111-2222-3333-4444-555555555555"
    )
    binding = rig.probe(client_id=uai.client_id).vm_binding()
    assert (binding.outcome, binding.code) == (FAILED, "IdentityMismatch")
    assert uai.resource_id in binding.summary
    assert rig.emu.vm.resource_id in binding.summary
    assert f"--identities {uai.resource_id}" in binding.remedy


# --- the vault's tenant --------------------------------------------------------------------------


def test_vault_of_another_tenant(rig: Rig) -> None:
    rig.emu.add_vault("kv-other", tenant_id=OTHER_TENANT)
    rig.emu.set_secret("kv-other", "app-secret", "value")
    probe = rig.probe(vault="kv-other")
    tenant = probe.token_tenant()
    assert (tenant.outcome, tenant.code) == (FAILED, "TenantMismatch")
    assert rig.emu.tenant_id in tenant.summary
    assert OTHER_TENANT in tenant.summary
    assert "AKV10032" in tenant.summary
    assert (probe.secret_readable(APP).outcome, probe.secret_readable(APP).code) == (
        FAILED,
        "InvalidIssuer",
    )


def test_expired_token(rig: Rig) -> None:
    probe = rig.probe()
    probe.identity_present()
    rig.emu.clock.advance(2 * 86400)
    tenant = probe.token_tenant()
    assert (tenant.outcome, tenant.code) == (FAILED, "TokenExpired")


def test_vault_that_does_not_answer_its_challenge(rig: Rig) -> None:
    probe = rig.probe(vault="nowhere")
    tenant = probe.token_tenant()
    assert (tenant.outcome, tenant.code) == (FAILED, "VaultUnreachable")  # in-process: no DNS
    for verdict in (probe.secret_readable(APP), probe.secret_denied(ADMIN)):
        assert verdict.outcome is SKIPPED
        assert verdict.summary == (
            "the vault did not answer its challenge (VaultUnreachable): see token-tenant"
        )


def test_without_a_vault_vault_checks_skip(rig: Rig) -> None:
    verdicts = every_check(rig.probe(vault=None), Switch(rig.emu))
    skipped = {v.check: v.summary for v in verdicts if v.outcome is SKIPPED}
    assert set(skipped) == {"token-tenant", "secret-readable", "secret-denied", "role-revocation"}
    assert set(skipped.values()) == {"no --kv-vault given"}


# --- secret-readable -----------------------------------------------------------------------------


def test_revoked_role(rig: Rig) -> None:
    rig.emu.revoke("system")
    readable = rig.probe().secret_readable(APP)
    assert (readable.outcome, readable.code) == (FAILED, "ForbiddenByRbac")
    oid = rig.emu.identity("system").object_id
    assert f"--assignee-object-id {oid}" in readable.remedy
    assert rig.time.sleeps == []


def test_propagating_grant_is_waited_for(rig: Rig) -> None:
    rig.emu.propagation_delay = 30
    rig.emu.set_secret("demo", "db", "value")
    rig.emu.grant("system", SECRETS_USER, "vault:demo/secrets/db")
    readable = rig.probe(wait=600).secret_readable(SecretRef("db"))
    assert (readable.outcome, readable.code) == (PASSED, "ok")
    assert rig.time.sleeps == [10, 10, 10]
    assert rig.notes == [
        f"secret-readable[db]: 403 ForbiddenByRbac, waiting for role propagation ({s} s of 600 s)"
        for s in (0, 10, 20)
    ]
    assert readable.steps == (*rig.notes, "secret-readable[db]: 200 after 30 s")


def test_wait_runs_out(rig: Rig) -> None:
    rig.emu.revoke("system")
    readable = rig.probe(wait=25).secret_readable(APP)
    assert (readable.outcome, readable.code) == (FAILED, "ForbiddenByRbac")
    assert rig.time.sleeps == [10, 10, 5]
    assert readable.steps[-1] == "secret-readable[app-secret]: 403 ForbiddenByRbac after 25 s"


def test_a_sleep_that_does_not_move_the_clock_still_ends_the_wait(rig: Rig) -> None:
    rig.emu.revoke("system")
    stuck = rig.probe(wait=600, clock=lambda: 0.0)  # as with the emulator's advance as sleep
    readable = stuck.secret_readable(APP)
    assert (readable.outcome, readable.code) == (FAILED, "ForbiddenByRbac")
    assert sum(rig.time.sleeps) == 600


def test_firewall(rig: Rig) -> None:
    rig.emu.set_firewall("demo", ["10.0.0.0/8"])
    probe = rig.probe()
    readable = probe.secret_readable(APP)
    assert (readable.outcome, readable.code) == (FAILED, "ForbiddenByFirewall")
    assert "127.0.0.1" in readable.summary
    assert probe.token_tenant().outcome is PASSED


def test_disabled_secret(rig: Rig) -> None:
    rig.emu.disable_secret("demo", "app-secret")
    readable = rig.probe().secret_readable(APP)
    assert (readable.outcome, readable.code) == (FAILED, "SecretDisabled")
    assert "--name app-secret --enabled true" in readable.remedy


def utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_expired_and_not_yet_valid_secrets_pass_with_warnings(rig: Rig) -> None:
    expired, early = int(START - 3600), int(START + 3600)
    rig.emu.set_secret("demo", "app-secret", "v", expires=expired, not_before=early)
    readable = rig.probe().secret_readable(APP)
    assert (readable.outcome, readable.code) == (PASSED, "ok")
    assert readable.warnings == (
        f"app-secret expired on {utc(expired)} (Key Vault still serves it)",
        f"app-secret is not valid before {utc(early)} (Key Vault already serves it)",
    )
    assert "Warnings:\n  - app-secret expired on" in readable.render()


def test_empty_value(rig: Rig) -> None:
    rig.emu.set_secret("demo", "app-secret", "")
    readable = rig.probe().secret_readable(APP)
    assert (readable.outcome, readable.code) == (FAILED, "ok")
    assert readable.summary == "app-secret is readable but its value is empty"
    assert "az keyvault secret set --vault-name demo --name app-secret" in readable.remedy


# --- secret-denied -------------------------------------------------------------------------------


def test_denied_secret_that_is_readable(rig: Rig) -> None:
    denied = rig.probe().secret_denied(APP)
    assert (denied.outcome, denied.code) == (FAILED, "ok")
    assert denied.summary == "the identity CAN read app-secret but must not"
    oid = rig.emu.identity("system").object_id
    assert f"az role assignment list --assignee {oid} --all" in denied.remedy
    assert "covers app-secret" in denied.remedy


def test_denied_secret_still_readable_while_a_revocation_propagates(rig: Rig) -> None:
    rig.emu.propagation_delay = 15
    rig.emu.revoke("system")
    denied = rig.probe(wait=600).secret_denied(APP)
    assert (denied.outcome, denied.code) == (PASSED, "ForbiddenByRbac")
    assert rig.notes[0] == (
        "secret-denied[app-secret]: 200, waiting for role propagation (0 s of 600 s)"
    )
    assert denied.steps[-1] == "secret-denied[app-secret]: 403 ForbiddenByRbac after 20 s"


def test_access_policy_denial_proves_nothing_about_roles(rig: Rig) -> None:
    rig.emu.add_vault("legacy", permission_model="access-policy")
    rig.emu.set_secret("legacy", "admin-secret", "v")
    denied = rig.probe(vault="legacy").secret_denied(ADMIN)
    assert (denied.outcome, denied.code) == (FAILED, "ForbiddenByPolicy")
    assert "not on the RBAC permission model" in denied.summary
    assert "az keyvault set-policy --name legacy" in denied.remedy


def test_missing_secret_does_not_prove_a_denial(rig: Rig) -> None:
    rig.emu.grant("system", SECRETS_USER, "vault:demo")
    denied = rig.probe().secret_denied(SecretRef("missing"))
    assert (denied.outcome, denied.code) == (FAILED, "SecretNotFound")
    assert "authorizes before looking a secret up" in denied.summary
    assert "az role assignment list --assignee" in denied.remedy


def test_denied_check_fails_with_other_diagnoses(rig: Rig) -> None:
    rig.emu.set_public_network_access("demo", False)
    denied = rig.probe().secret_denied(ADMIN)
    assert (denied.outcome, denied.code) == (FAILED, "ForbiddenByConnection")


# --- role-revocation -----------------------------------------------------------------------------


def test_role_revocation_tells_the_story(rig: Rig) -> None:
    switch = Switch(rig.emu)
    verdict = rig.probe().role_revocation(APP, switch)
    assert (verdict.outcome, verdict.code) == (PASSED, "ForbiddenByRbac")
    scope = rig.emu.vault("demo").scope_path("app-secret")
    assert verdict.steps == (
        "read app-secret: 200",
        f"revoked Key Vault Secrets User at {scope}",
        "read app-secret: 403 ForbiddenByRbac after 0 s",
        "restored the assignment",
        "read app-secret: 200 after 0 s",
    )
    assert switch.restored == 1
    assert rig.probe().secret_readable(APP).outcome is PASSED


def test_role_revocation_moves_the_emulated_clock_through_propagation(rig: Rig) -> None:
    rig.emu.propagation_delay = 120
    started = time.perf_counter()
    verdict = rig.probe().role_revocation(APP, Switch(rig.emu))
    assert time.perf_counter() - started < 1
    assert verdict.outcome is PASSED
    assert verdict.steps[2] == "read app-secret: 403 ForbiddenByRbac after 120 s"
    assert verdict.steps[4] == "read app-secret: 200 after 120 s"
    assert rig.time.sleeps == []


def test_role_revocation_restores_even_when_a_read_raises(rig: Rig) -> None:
    switch = Switch(rig.emu, rig.transport)
    with pytest.raises(RuntimeError, match="transport broke"):
        rig.probe().role_revocation(APP, switch)
    assert switch.restored == 1
    rig.transport.broken = False
    assert rig.probe().secret_readable(APP).outcome is PASSED


def test_role_revocation_fails_when_another_assignment_still_grants(rig: Rig) -> None:
    switch = Switch(rig.emu)
    original = switch.revoke

    def revoke_one_keep_other(secret: str) -> str:
        described = original(secret)
        rig.emu.grant("system", SECRETS_USER, "vault:demo")
        return described

    switch.revoke = revoke_one_keep_other  # type: ignore[method-assign]
    verdict = rig.probe().role_revocation(APP, switch)
    assert (verdict.outcome, verdict.code) == (FAILED, "ok")
    assert verdict.summary.startswith("app-secret stayed readable 600 s after revoking")
    assert switch.restored == 1


def test_role_revocation_needs_a_readable_secret(rig: Rig) -> None:
    probe = rig.probe()
    verdict = probe.role_revocation(ADMIN, Switch(rig.emu))
    assert (verdict.outcome, verdict.code) == (FAILED, "ForbiddenByRbac")
    assert verdict.steps == ("read admin-secret: 403 ForbiddenByRbac",)


@pytest.mark.parametrize(
    ("secret", "with_switch", "reason"),
    [
        (APP, False, "only against the emulator (--kv-emulator)"),
        (None, True, "no readable secret to revoke"),
    ],
)
def test_role_revocation_skips(
    rig: Rig, secret: SecretRef | None, with_switch: bool, reason: str
) -> None:
    verdict = rig.probe().role_revocation(secret, Switch(rig.emu) if with_switch else None)
    assert (verdict.outcome, verdict.code, verdict.summary) == (SKIPPED, None, reason)


# --- what is shown -------------------------------------------------------------------------------


def test_render() -> None:
    verdict = Verdict(
        "secret-readable", "db", FAILED, "ForbiddenByRbac", "refused", ("a", "b"), "grant it",
        warnings=("w",), steps=("s",),
    )  # fmt: skip
    assert verdict.render() == (
        "ForbiddenByRbac: refused\nLikely causes:\n  - a\n  - b\nFix: grant it\n"
        "Warnings:\n  - w\nSteps:\n  - s"
    )
    assert Verdict("vm-binding", None, SKIPPED, None, "why").render() == "skipped: why"


def test_secret_values_and_tokens_never_reach_a_verdict(rig: Rig) -> None:
    canary = "canary-5b1e-never-print-me"
    rig.emu.set_secret("demo", "app-secret", canary)
    rig.emu.set_secret("demo", "admin-secret", canary, expires=int(START - 1))
    rig.emu.grant("system", SECRETS_USER, "vault:demo")
    probe = rig.probe(wait=30)
    verdicts = [
        *every_check(probe, Switch(rig.emu)),
        probe.secret_readable(ADMIN),
        probe.secret_denied(SecretRef("missing")),
    ]
    assert [(v.outcome, v.code) for v in verdicts[5:7]] == [(PASSED, "ok"), (FAILED, "ok")]
    token = rig.emu.mint_token()
    signature = token.rsplit(".", 1)[1]
    for verdict in verdicts:
        texts = [verdict.render(), repr(verdict), *map(str, dataclasses.astuple(verdict))]
        assert not [t for t in texts if canary in t or signature in t or "eyJ" in t], verdict
    assert not [note for note in rig.notes if canary in note or "eyJ" in note]


SCALE_SET = (
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss"
)


@pytest.mark.parametrize(
    ("mirid", "resource_id", "same"),
    [
        (f"{SCALE_SET[:-len('virtualMachineScaleSets/ss')]}virtualMachines/vm1",
         f"{SCALE_SET[:-len('virtualMachineScaleSets/ss')]}virtualMachines/vm1", True),
        (SCALE_SET.lower(), f"{SCALE_SET}/virtualMachines/3", True),  # a uniform scale set
        (SCALE_SET, f"{SCALE_SET}2/virtualMachines/3", False),  # another set, same prefix
        (SCALE_SET, SCALE_SET.replace("/ss", "/other"), False),
        ("/subscriptions/s/resourcegroups/rg/providers/Microsoft.Compute/virtualMachines/vm1",
         "/subscriptions/s/resourcegroups/rg/providers/Microsoft.Compute/virtualMachines/vm1/x",
         False),  # only a scale set has instances below it
    ],
)  # fmt: skip
def test_is_this_vm(mirid: str, resource_id: str, same: bool) -> None:
    assert is_this_vm(mirid, resource_id) is same


@pytest.mark.parametrize(("field", "timestamp"), [("not_before", 10**12), ("expires", -(10**12))])
def test_secret_dates_outside_pythons_range_are_shown_not_raised(
    rig: Rig, field: str, timestamp: int
) -> None:
    rig.emu.set_secret("demo", APP.name, "a-value", **{field: timestamp})
    verdict = rig.probe().secret_readable(APP)
    assert verdict.outcome is Outcome.PASSED
    assert f"{timestamp} (epoch seconds)" in " ".join(verdict.warnings)
