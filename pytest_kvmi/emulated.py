"""The embedded default: an emulator set up for what the options name, and the role switch the
``role-revocation`` check uses on it.

Without names, the demo: vault ``demo``, ``app-secret`` readable by the VM's identity through
Key Vault Secrets User at that secret's scope, ``admin-secret`` with no grant. With names, the
same shape with the user's vault, secrets and identity. With a scenario file, the file decides
and the options only say what to check.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from pytest_kvmi.emulator import DEMO_ADMIN_SECRET, DEMO_SECRET, DEMO_VAULT, Emulator
from pytest_kvmi.emulator.roles import GET_SECRET, SECRETS_USER
from pytest_kvmi.emulator.state import Identity, RoleAssignment
from pytest_kvmi.settings import IdentitySelector, SecretRef, Settings

USER_IDENTITY_NAME = "kvmi-identity"


@dataclass(frozen=True)
class EmulatedTarget:
    """An emulator and what to check on it."""

    emulator: Emulator
    vault: str
    readable: tuple[SecretRef, ...]
    forbidden: tuple[SecretRef, ...]


def _identity(emulator: Emulator, selector: IdentitySelector) -> Identity:
    """The identity the options select, attached to the VM if it is user-assigned."""
    if selector.is_system_assigned:
        system = emulator.system_identity
        assert system is not None, "Emulator() has a system-assigned identity by default"
        return system
    if selector.msi_res_id:
        # /subscriptions/<sub>/resourcegroups/<rg>/providers/.../userAssignedIdentities/<name>
        parts = selector.msi_res_id.strip("/").split("/")
        return emulator.add_user_identity(
            parts[-1], subscription_id=parts[1], resource_group=parts[3]
        )
    return emulator.add_user_identity(
        USER_IDENTITY_NAME, client_id=selector.client_id, object_id=selector.object_id
    )


def demo_names(
    vault: str | None, readable: tuple[SecretRef, ...], forbidden: tuple[SecretRef, ...]
) -> tuple[str, tuple[SecretRef, ...], tuple[SecretRef, ...]]:
    """The names given, the demo's where none is: vault ``demo``, ``app-secret`` readable,
    ``admin-secret`` forbidden."""
    return (
        vault or DEMO_VAULT,
        readable or (SecretRef(DEMO_SECRET),),
        forbidden or (SecretRef(DEMO_ADMIN_SECRET),),
    )


def demo_target(
    settings: Settings,
    vault: str | None,
    readable: tuple[SecretRef, ...],
    forbidden: tuple[SecretRef, ...],
) -> EmulatedTarget:
    """The demo shape with the given names: readable secrets granted, forbidden ones not."""
    vault, readable, forbidden = demo_names(vault, readable, forbidden)
    # A user-assigned identity named by resource id lives in that id's subscription; the VM
    # joins it, as vm-binding expects of a user-assigned identity of the VM's subscription.
    res_id = settings.identity.msi_res_id
    subscription = res_id.strip("/").split("/")[1] if res_id else None
    emulator = Emulator(cloud=settings.cloud.az_environment, subscription_id=subscription)
    emulator.add_vault(vault)
    identity = _identity(emulator, settings.identity)
    for ref in readable:
        emulator.set_secret(vault, ref.name, secrets.token_urlsafe(24), version=ref.version)
        emulator.grant(identity, SECRETS_USER, f"vault:{vault}/secrets/{ref.name}")
    for ref in forbidden:
        emulator.set_secret(vault, ref.name, secrets.token_urlsafe(24), version=ref.version)
    return EmulatedTarget(emulator, vault, readable, forbidden)


def scenario_target(
    emulator: Emulator,
    vault: str | None,
    readable: tuple[SecretRef, ...],
    forbidden: tuple[SecretRef, ...],
) -> EmulatedTarget:
    """The setup a scenario file built; the vault defaults to its first one."""
    names = emulator.vault_names()
    return EmulatedTarget(
        emulator, vault or (names[0] if names else DEMO_VAULT), readable, forbidden
    )


@dataclass
class RoleSwitch:
    """Revokes and restores the role assignments that let one identity read one secret."""

    emulator: Emulator
    vault: str
    principal_id: str
    _revoked: list[RoleAssignment] = field(default_factory=list)

    def revoke(self, secret: str) -> str:
        resource = self.emulator.vault(self.vault).scope_path(secret)
        now = self.emulator.clock.now()
        covering = [
            a
            for a in self.emulator.role_assignments()
            if a.principal_id.lower() == self.principal_id.lower()
            and a.active(now)
            and a.covers(resource)
            and a.role.permits(GET_SECRET)
        ]
        for assignment in covering:
            self.emulator.revoke(self.principal_id, assignment.role, assignment.scope)
        self._revoked.extend(covering)
        return "; ".join(f"{a.role.name} at {a.scope}" for a in covering) or "nothing to revoke"

    def restore(self) -> None:
        while self._revoked:
            assignment = self._revoked.pop()
            self.emulator.grant(self.principal_id, assignment.role, assignment.scope)

    def advance(self, seconds: float) -> None:
        self.emulator.clock.advance(seconds)


def role_switch(target: EmulatedTarget, settings: Settings) -> RoleSwitch | None:
    """The switch for the identity ``settings`` select, if the emulator has it."""
    selector = settings.identity
    key = selector.client_id or selector.object_id or selector.msi_res_id or "system"
    try:
        identity = target.emulator.identity(key)
    except LookupError:
        return None
    return RoleSwitch(target.emulator, target.vault, identity.object_id)
