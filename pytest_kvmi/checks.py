"""The checks behind the plugin's tests, free of pytest: can this VM's managed identity read its
Key Vault secrets, and no more than that?

A :class:`Probe` runs them over one token, one instance-metadata read and one vault challenge,
however many checks run, remembering failures as well as answers. A check whose prerequisite
failed is skipped with the upstream code in its reason, so the root cause fails only once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TypeVar

from pytest_kvmi.challenge import Challenge
from pytest_kvmi.diagnosis import Code, Diagnosis, Facts, KvmiError, diagnose
from pytest_kvmi.imds import ImdsClient, InstanceInfo
from pytest_kvmi.propagation import (
    REVOCATION_SECONDS,
    Read,
    RoleSwitch,
    code_of,
    poll,
    revoke_and_restore,
    shown,
)
from pytest_kvmi.settings import SecretRef, Settings
from pytest_kvmi.token import SYSTEM_ASSIGNED, USER_ASSIGNED, AccessToken, check_token
from pytest_kvmi.vault import SecretBundle, VaultClient
from pytest_kvmi.verdicts import CheckRun, Outcome, Verdict

__all__ = ["CHECK_IDS", "Outcome", "Probe", "RoleSwitch", "Verdict"]

CHECK_IDS = (
    "imds-reachable", "identity-present", "token-audience", "token-tenant", "vm-binding",
    "secret-readable", "secret-denied", "role-revocation",
)  # fmt: skip

IMDS_DOWN = frozenset(
    {
        Code.IMDS_UNREACHABLE,
        Code.IMDS_TIMEOUT,
        Code.IMDS_PROXY_INTERCEPTED,
        Code.METADATA_HEADER_REJECTED,
        Code.IMDS_UNAVAILABLE,
        Code.IMDS_THROTTLED,
    }
)
"""Failures that mean IMDS itself did not answer (or not as IMDS)."""
T = TypeVar("T")


class _Unmet(Exception):
    """A prerequisite failed (in another check): skip with this reason."""


def _attempt(call: Callable[[], T]) -> T | Diagnosis:
    """The result, or the diagnosis it failed with: a failure is remembered like an answer."""
    try:
        return call()
    except KvmiError as error:
        return error.diagnosis


def _utc(timestamp: int) -> str:
    """The date of a secret attribute; a number past Python's dates is shown as it is."""
    try:
        return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError, OSError):
        return f"{timestamp} (epoch seconds)"


def is_this_vm(mirid: str, resource_id: str) -> bool:
    """Whether a system-assigned token's ``xms_mirid`` names the VM IMDS describes: the VM
    itself, or the scale set of a uniform scale set's instance (whose resourceId is
    ``.../virtualMachineScaleSets/<set>/virtualMachines/<n>``)."""
    mirid, resource_id = mirid.lower().rstrip("/"), resource_id.lower().rstrip("/")
    if mirid == resource_id:
        return True
    in_set = "/providers/microsoft.compute/virtualmachinescalesets/" in mirid
    return in_set and resource_id.startswith(mirid + "/virtualmachines/")


class Probe:
    """One run's shared access to IMDS and the vault: one token, one instance-metadata read,
    one challenge, whatever the number of checks."""

    def __init__(
        self,
        settings: Settings,
        imds: ImdsClient,
        vault: VaultClient | None,
        *,
        wait: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
        notify: Callable[[str], None] = lambda message: None,
    ) -> None:
        self._settings = settings
        self._imds = imds
        self._vault = vault
        self._wait = wait
        self._sleep = sleep
        self._clock = clock
        self._now = now
        self._notify = notify
        self._instance: InstanceInfo | Diagnosis | None = None
        self._token: AccessToken | Diagnosis | None = None
        self._challenge: Challenge | Diagnosis | None = None

    @property
    def vault(self) -> VaultClient | None:
        """The vault client the checks use (None without a vault), for fixtures to share."""
        return self._vault

    def token_or_none(self) -> AccessToken | None:
        """The run's one token, for fixtures to share; None when IMDS gave none (identity-present
        says why)."""
        token = self._token_outcome()
        return token if isinstance(token, AccessToken) else None

    # --- the checks ----------------------------------------------------------------------------

    def imds_reachable(self) -> Verdict:
        run = CheckRun("imds-reachable")
        found = self._instance_outcome()
        where = f"IMDS answers at {self._settings.imds_endpoint}"
        if isinstance(found, InstanceInfo):
            return run.passed(Code.OK, f"{where}: VM {found.name} in {found.resource_group}")
        if found.code in IMDS_DOWN:
            return run.failed(found)
        unread = f"instance metadata could not be read: {found.code}: {found.summary}"
        return run.passed(Code.OK, where, warnings=(unread,))

    def identity_present(self) -> Verdict:
        def check(run: CheckRun) -> Verdict:
            token = self._token_outcome()
            if isinstance(token, Diagnosis):
                self._skip_if_imds_down(token)
                return run.failed(self._with_vm_facts(token))
            claims = token.claims
            summary = (
                f"IMDS issued a token for the {claims.kind} identity with object id {claims.oid} "
                f"(client id {claims.appid})"
            )
            return run.passed(Code.OK, summary)

        return self._run(CheckRun("identity-present"), check)

    def token_audience(self) -> Verdict:
        def check(run: CheckRun) -> Verdict:
            token = self._need_token()
            found = check_token(token, audience=self._settings.cloud.audience)
            if found.code is Code.WRONG_AUDIENCE:
                return run.failed(found)
            summary = f"the token's audience is {token.claims.aud}, as Key Vault expects"
            return run.passed(Code.OK, summary)

        return self._run(CheckRun("token-audience"), check)

    def token_tenant(self) -> Verdict:
        def check(run: CheckRun) -> Verdict:
            token = self._need_token()
            vault = self._need_vault()
            challenge = self._challenge_outcome(vault)
            if isinstance(challenge, Diagnosis):
                return run.failed(challenge)
            facts = token.facts().merge(vault.facts())
            if token.is_expired(self._now()):
                return run.failed(diagnose(Code.TOKEN_EXPIRED, facts))
            tenant, trusted = token.claims.tenant_id, challenge.tenant_id
            if tenant and trusted and tenant.lower() != trusted.lower():
                return run.failed(diagnose(Code.TENANT_MISMATCH, facts))
            if not (tenant and trusted):
                unknown = f"tenants not compared (token: {tenant}, vault's challenge: {trusted})"
                return run.passed(Code.OK, unknown, warnings=(unknown,))
            return run.passed(Code.OK, f"the token's tenant {tenant} is the one the vault trusts")

        return self._run(CheckRun("token-tenant"), check)

    def vm_binding(self) -> Verdict:
        def check(run: CheckRun) -> Verdict:
            token = self._need_token()
            instance = self._instance_outcome()
            if isinstance(instance, Diagnosis):
                self._skip_if_imds_down(instance)
                return run.failed(instance)
            claims, vm = token.claims, instance.resource_id
            mirid = claims.xms_mirid or ""
            if claims.kind == SYSTEM_ASSIGNED and is_this_vm(mirid, vm):
                summary = f"the token is this VM's system-assigned identity ({vm})"
                return run.passed(Code.OK, summary)
            subscription = f"/subscriptions/{instance.subscription_id}/".lower()
            if claims.kind == USER_ASSIGNED and mirid.lower().startswith(subscription):
                summary = f"the token is {mirid}, in the VM's subscription"
                return run.passed(Code.OK, summary)
            ids = Facts(vm_resource_id=vm, token_resource_id=claims.xms_mirid or "(no xms_mirid)")
            facts = token.facts().merge(instance.facts()).merge(ids)
            return run.failed(diagnose(Code.IDENTITY_MISMATCH, facts))

        return self._run(CheckRun("vm-binding"), check)

    def secret_readable(self, secret: SecretRef) -> Verdict:
        def check(run: CheckRun) -> Verdict:
            read = self._reader(secret)
            found, steps = self._patiently(run, read, Code.FORBIDDEN_BY_RBAC)
            if isinstance(found, Diagnosis):
                return run.failed(found, steps=steps)
            if not found.value:
                return run.failed(
                    diagnose(Code.OK),
                    summary=f"{secret} is readable but its value is empty",
                    causes=("The secret was created or rotated without a value.",),
                    remedy=f"Give it a value: az keyvault secret set --vault-name "
                    f"{self._vault_name()} --name {secret.name} --file <path>",
                    steps=steps,
                )
            summary = f"{secret} is readable: 200, version {found.version}"
            return run.passed(Code.OK, summary, warnings=self._validity(secret, found), steps=steps)

        return self._run(CheckRun("secret-readable", str(secret)), check)

    def secret_denied(self, secret: SecretRef) -> Verdict:
        def check(run: CheckRun) -> Verdict:
            read = self._reader(secret)
            found, steps = self._patiently(run, read, Code.OK)
            if isinstance(found, SecretBundle):
                return run.failed(
                    diagnose(Code.OK),
                    summary=f"the identity CAN read {secret} but must not",
                    causes=(
                        "A role assignment at the secret, vault, resource group or subscription "
                        "scope grants secret reads (Secrets User, Secrets Officer, Administrator).",
                        "On an access-policy vault, a policy grants 'get' on secrets.",
                    ),
                    remedy=self._excess_remedy(secret),
                    steps=steps,
                )
            if found.code is Code.FORBIDDEN_BY_RBAC:
                summary = f"{secret} is denied as intended: 403 ForbiddenByRbac"
                return run.passed(found.code, summary, steps=steps)
            if found.code is Code.FORBIDDEN_BY_POLICY:
                rbac = (
                    f"{secret} is denied by an access policy: the vault is not on the RBAC "
                    "permission model, so this denial proves nothing about role assignments."
                )
                return run.failed(found, summary=rbac, steps=steps)
            if found.code is Code.SECRET_NOT_FOUND:
                return run.failed(
                    found,
                    summary=f"{secret} answered 404 SecretNotFound: Key Vault authorizes before "
                    "looking a secret up, so the identity has 'get' permission at that scope and "
                    "the denial is not proven.",
                    remedy=f"Create {secret.name} to test the denial against, and check what "
                    f"grants secret reads: {self._excess_remedy(secret)}",
                    steps=steps,
                )
            return run.failed(found, steps=steps)

        return self._run(CheckRun("secret-denied", str(secret)), check)

    def role_revocation(self, secret: SecretRef | None, switch: RoleSwitch | None) -> Verdict:
        def check(run: CheckRun) -> Verdict:
            if switch is None:
                raise _Unmet("only against the emulator (--kv-emulator)")
            if secret is None:
                raise _Unmet("no readable secret to revoke")
            return revoke_and_restore(
                run,
                secret,
                switch,
                self._reader(secret),
                budget=max(self._wait, REVOCATION_SECONDS),
                excess_remedy=self._excess_remedy(secret),
            )

        return self._run(CheckRun("role-revocation", str(secret) if secret else None), check)

    def identity_facts(self) -> dict[str, str | None]:
        """Who was checked, for reports: from the token if one was obtained, else from the
        identity selector. Never the token itself."""
        if isinstance(self._token, AccessToken):
            claims = self._token.claims
            return {
                "kind": claims.kind,
                "client_id": claims.appid,
                "object_id": claims.oid,
                "tenant_id": claims.tenant_id,
                "resource_id": claims.xms_mirid,
            }
        return self._settings.identity.report()

    # --- shared answers, remembered ------------------------------------------------------------

    def _instance_outcome(self) -> InstanceInfo | Diagnosis:
        if self._instance is None:
            self._instance = _attempt(self._imds.instance)
        return self._instance

    def _token_outcome(self) -> AccessToken | Diagnosis:
        if self._token is None:
            self._token = _attempt(self._imds.token)
        return self._token

    def _challenge_outcome(self, vault: VaultClient) -> Challenge | Diagnosis:
        if self._challenge is None:
            self._challenge = _attempt(vault.challenge)
        return self._challenge

    # --- prerequisites: each raises _Unmet naming the upstream check ---------------------------

    def _run(self, run: CheckRun, check: Callable[[CheckRun], Verdict]) -> Verdict:
        try:
            return check(run)
        except _Unmet as unmet:
            return run.skipped(str(unmet))

    def _skip_if_imds_down(self, failure: Diagnosis) -> None:
        """Skip when ``failure`` is IMDS not answering, as imds-reachable reports."""
        instance = self._instance_outcome() if failure.code in IMDS_DOWN else None
        if isinstance(instance, Diagnosis) and instance.code in IMDS_DOWN:
            raise _Unmet(f"no answer from IMDS ({instance.code}): see imds-reachable")

    def _need_token(self) -> AccessToken:
        token = self._token_outcome()
        if isinstance(token, Diagnosis):
            self._skip_if_imds_down(token)
            raise _Unmet(f"no token ({token.code}): see identity-present")
        return token

    def _need_vault(self) -> VaultClient:
        if self._vault is None:
            raise _Unmet("no --kv-vault given")
        return self._vault

    def _reader(self, secret: SecretRef) -> Callable[[], Read]:
        """Reads of ``secret`` with the run's token, once the vault answered its challenge."""
        token = self._need_token()
        vault = self._need_vault()
        challenge = self._challenge_outcome(vault)
        if isinstance(challenge, Diagnosis):
            raise _Unmet(
                f"the vault did not answer its challenge ({challenge.code}): see token-tenant"
            )
        return lambda: _attempt(lambda: vault.get_secret(secret, token))

    # --- helpers -------------------------------------------------------------------------------

    def _patiently(
        self, run: CheckRun, read: Callable[[], Read], propagating: Code
    ) -> tuple[Read, tuple[str, ...]]:
        """Read, and while the answer is ``propagating`` (a role change not yet visible) read
        again until ``--kv-wait`` runs out, telling each wait."""
        steps: list[str] = []

        def on_wait(found: Read, waited: float) -> None:
            message = (
                f"{run.label}: {shown(found)}, waiting for role propagation "
                f"({waited:.0f} s of {self._wait:.0f} s)"
            )
            self._notify(message)
            steps.append(message)

        found, took = poll(
            read, lambda r: code_of(r) is propagating, self._wait, self._clock, self._sleep, on_wait
        )
        if steps:
            steps.append(f"{run.label}: {shown(found)} after {took:.0f} s")
        return found, tuple(steps)

    def _with_vm_facts(self, failure: Diagnosis) -> Diagnosis:
        """``failure`` with the VM's name and group filled into its remedy, when IMDS told them."""
        instance = self._instance_outcome()
        if isinstance(instance, Diagnosis):
            return failure
        return diagnose(failure.code, failure.facts.merge(instance.facts()))

    def _validity(self, secret: SecretRef, bundle: SecretBundle) -> tuple[str, ...]:
        """Key Vault serves secrets outside their exp/nbf window; applications may not."""
        now = self._now()
        warnings = []
        if bundle.expires is not None and bundle.expires <= now:
            warnings.append(
                f"{secret} expired on {_utc(bundle.expires)} (Key Vault still serves it)"
            )
        if bundle.not_before is not None and bundle.not_before > now:
            warnings.append(
                f"{secret} is not valid before {_utc(bundle.not_before)} (Key Vault already "
                "serves it)"
            )
        return tuple(warnings)

    def _vault_name(self) -> str:
        vault = self._need_vault().vault
        return vault.name or vault.host

    def _excess_remedy(self, secret: SecretRef) -> str:
        token = self._token_outcome()
        object_id = token.claims.oid if isinstance(token, AccessToken) else None
        return (
            f"az role assignment list --assignee {object_id or '<object-id>'} --all, then delete "
            f"the assignment whose scope covers {secret.name}: az role assignment delete --ids "
            "<assignment-id> (role changes take up to 10 minutes to reach Key Vault)."
        )
