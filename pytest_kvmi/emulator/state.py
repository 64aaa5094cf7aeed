"""What the emulated Azure knows: tenant, VM, identities, vaults, secrets and role assignments.

Records are frozen: a change replaces a record under :attr:`State.lock`, so request handlers read
a consistent record without taking the lock. The control API that changes them is
:class:`pytest_kvmi.emulator.Emulator`.
"""

from __future__ import annotations

import ipaddress
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .clock import Clock
from .clouds import Cloud
from .roles import Role

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
PermissionModel = Literal["rbac", "access-policy"]


class SecretValue:
    """A secret's value, kept out of every repr and str so it never reaches a log or report."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The value itself: call only where it is meant to leave (a GET answer, a test)."""
        return self._value

    def __repr__(self) -> str:
        return "SecretValue(<redacted>)"

    __str__ = __repr__


@dataclass(frozen=True)
class SecretVersion:
    """One version of a secret with its attributes (times are whole emulated seconds)."""

    name: str
    version: str
    value: SecretValue
    created: int
    updated: int
    enabled: bool = True
    not_before: int | None = None
    expires: int | None = None
    content_type: str | None = None
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Identity:
    """A managed identity of the VM. ``resource_id`` is what its tokens carry as ``xms_mirid``."""

    kind: Literal["system", "user"]
    name: str
    client_id: str
    object_id: str
    resource_id: str

    @property
    def principal_id(self) -> str:
        """Azure's other name for the object id (role assignments use it)."""
        return self.object_id


@dataclass(frozen=True)
class VirtualMachine:
    """The VM whose IMDS the emulator plays."""

    subscription_id: str
    resource_group: str
    name: str
    location: str
    vm_id: str
    cloud: Cloud
    private_ip: str = "10.0.0.4"
    public_ip: str = ""
    mac_address: str = "000D3A000001"
    vm_size: str = "Standard_B2s"
    os_type: str = "Linux"

    @property
    def resource_id(self) -> str:
        """The VM's ARM id as IMDS's ``compute.resourceId`` spells it."""
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Compute/virtualMachines/{self.name}"
        )

    @property
    def mirid(self) -> str:
        """The VM's ARM id as a system-assigned identity's ``xms_mirid`` claim spells it."""
        return (
            f"/subscriptions/{self.subscription_id}/resourcegroups/{self.resource_group}"
            f"/providers/Microsoft.Compute/virtualMachines/{self.name}"
        )


@dataclass(frozen=True)
class Vault:
    """A Key Vault and the settings its data plane enforces."""

    name: str
    tenant_id: str
    subscription_id: str
    resource_group: str
    location: str
    cloud: Cloud
    permission_model: PermissionModel = "rbac"
    allow: tuple[IPNetwork, ...] = ()
    default_action: Literal["Allow", "Deny"] = "Allow"
    public_network_access: bool = True
    access_policies: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @property
    def resource_id(self) -> str:
        """The vault's ARM id (usable as a role-assignment scope)."""
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.KeyVault/vaults/{self.name}"
        )

    def scope_path(self, secret: str | None = None) -> str:
        """Lower-case ARM path of the vault or one secret, as RBAC matches and reports it."""
        path = self.resource_id.lower()
        return f"{path}/secrets/{secret.lower()}" if secret else path

    @property
    def label(self) -> str:
        """``name;location=loc``: how Key Vault's denials name the vault."""
        return f"{self.name};location={self.location}"

    def firewall_allows(self, address: str) -> bool:
        """Whether a client at ``address`` passes the vault's network rules."""
        if self.default_action == "Allow":
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.allow)


@dataclass(frozen=True)
class RoleAssignment:
    """A role granted to a principal at a scope, effective within ``[effective_from, until)``."""

    id: str
    principal_id: str
    role: Role
    scope: str
    effective_from: float
    effective_until: float | None = None

    def active(self, now: float) -> bool:
        """Whether the assignment has propagated and not yet been revoked at ``now``."""
        return self.effective_from <= now and (
            self.effective_until is None or now < self.effective_until
        )

    def covers(self, resource_path: str) -> bool:
        """Scope inheritance: a scope covers itself and everything below it."""
        return resource_path == self.scope or resource_path.startswith(self.scope + "/")


@dataclass(frozen=True)
class ScheduledEvent:
    """One IMDS scheduled event (the Scheduled Events API's document entry)."""

    event_id: str
    event_type: str
    status: str
    not_before: str
    description: str
    duration_seconds: int
    event_source: str = "Platform"


class State:
    """Every record the emulated services read; writers hold :attr:`lock` while replacing them."""

    def __init__(self, clock: Clock, tenant_id: str, vm: VirtualMachine) -> None:
        self.lock = threading.Lock()
        self.clock = clock
        self.tenant_id = tenant_id
        self.vm = vm
        self.system_identity: Identity | None = None
        self.user_identities: dict[str, Identity] = {}
        self.vaults: dict[str, Vault] = {}
        self.secrets: dict[str, dict[str, tuple[SecretVersion, ...]]] = {}
        self.assignments: dict[str, tuple[RoleAssignment, ...]] = {}
        self.propagation_delay = 0.0
        self.scheduled_events: dict[str, ScheduledEvent] = {}
        self.events_incarnation = 1

    def vault(self, name: str) -> Vault | None:
        """The vault called ``name`` (case-insensitive), if any."""
        return self.vaults.get(name.lower())

    def versions(self, vault: str, secret: str) -> tuple[SecretVersion, ...]:
        """A secret's versions, oldest first; empty if there is no such secret."""
        return self.secrets.get(vault.lower(), {}).get(secret.lower(), ())

    def rbac_allows(self, principal_id: str, data_action: str, resource_path: str) -> bool:
        """Whether an active assignment at or above ``resource_path`` grants ``data_action``."""
        now = self.clock.now()
        return any(
            a.active(now) and a.covers(resource_path) and a.role.permits(data_action)
            for a in self.assignments.get(principal_id.lower(), ())
        )

    def identities(self) -> tuple[Identity, ...]:
        """The VM's identities, system-assigned first."""
        users = tuple(self.user_identities.values())
        return (self.system_identity, *users) if self.system_identity else users

    def add_version(
        self,
        vault: str,
        name: str,
        value: SecretValue,
        *,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
        enabled: bool = True,
        not_before: int | None = None,
        expires: int | None = None,
        version: str | None = None,
    ) -> SecretVersion:
        """Store a new latest version (created/updated now); the secret is created if new."""
        with self.lock:
            secrets = self.secrets[self._vault_key(vault)]
            existing = secrets.get(name.lower(), ())
            now = int(self.clock.now())
            added = SecretVersion(
                name=existing[0].name if existing else name,
                version=version or uuid.uuid4().hex,
                value=value,
                created=now,
                updated=now,
                enabled=enabled,
                not_before=not_before,
                expires=expires,
                content_type=content_type,
                tags=tuple(sorted((tags or {}).items())),
            )
            secrets[name.lower()] = (*existing, added)
            return added

    def update_version(
        self, vault: str, name: str, version: str | None, changes: Mapping[str, Any]
    ) -> SecretVersion | None:
        """Change attributes of one version (the latest if ``version`` is None); None if absent.

        ``changes`` maps :class:`SecretVersion` attribute names (``enabled``, ``not_before``,
        ``expires``, ``content_type``, ``tags``) to new values; ``updated`` becomes now.
        """
        with self.lock:
            secrets = self.secrets[self._vault_key(vault)]
            versions = secrets.get(name.lower(), ())
            index = _version_index(versions, version)
            if index is None:
                return None
            fields = dict(changes)
            if "tags" in fields:
                fields["tags"] = tuple(sorted((fields["tags"] or {}).items()))
            changed = replace(versions[index], updated=int(self.clock.now()), **fields)
            secrets[name.lower()] = (*versions[:index], changed, *versions[index + 1 :])
            return changed

    def delete_secret(self, vault: str, name: str) -> tuple[SecretVersion, ...]:
        """Remove a secret with all its versions; returns them (empty if there was none)."""
        with self.lock:
            return self.secrets[self._vault_key(vault)].pop(name.lower(), ())

    def _vault_key(self, vault: str) -> str:
        key = vault.lower()
        if key not in self.vaults:
            raise KeyError(f"no vault named {vault!r}")
        return key


def _version_index(versions: tuple[SecretVersion, ...], version: str | None) -> int | None:
    if not versions:
        return None
    if version is None:
        return len(versions) - 1
    wanted = version.lower()
    return next((i for i, v in enumerate(versions) if v.version == wanted), None)


def find_version(versions: tuple[SecretVersion, ...], version: str | None) -> SecretVersion | None:
    """The given version (the latest if ``version`` is None), or None."""
    index = _version_index(versions, version)
    return None if index is None else versions[index]
