"""The :class:`Emulator` facade: one object holding an emulated tenant, VM and vaults, its WSGI
application, and the control API tests use to seed and change all of it while it runs."""

from __future__ import annotations

import ipaddress
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from . import roles, scenario
from .app import EmulatorApp
from .clock import Clock
from .clouds import cloud_named
from .entra_app import EntraApp
from .faults import Faults
from .imds_app import ImdsApp, http_date
from .signing import SigningKey, TokenVerifier, shared_signing_key
from .state import (
    Identity,
    PermissionModel,
    RoleAssignment,
    ScheduledEvent,
    SecretValue,
    SecretVersion,
    State,
    Vault,
    VirtualMachine,
    find_version,
)
from .throttle import KEY_VAULT_LIMIT, KEY_VAULT_WINDOW_SECONDS, Throttle
from .tokens import DEFAULT_TOKEN_LIFETIME, managed_identity_claims
from .vault_app import VaultApp

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    import responses

    from .servers import LoopbackServers
    from .transports import AsyncEmulatorTransport, EmulatorTransport

DEMO_VAULT = "demo"
DEMO_SECRET = "app-secret"
DEMO_SECRET_VALUE = "demo-app-secret-value"
DEMO_ADMIN_SECRET = "admin-secret"
DEMO_ADMIN_SECRET_VALUE = "demo-admin-secret-value"
ACCESS_POLICY_PERMISSIONS = frozenset(
    {"get", "list", "set", "delete", "backup", "restore", "recover", "purge", "all"}
)

Principal = Identity | str
"""An :class:`Identity`, ``"system"``, a user-assigned identity's name, or any object id."""


class Emulator:
    """An offline Azure: the VM's IMDS, Entra's token signing and Key Vault's data plane.

    ``Emulator()`` is an empty but valid setup: a tenant, a VM with a system-assigned identity,
    no vaults. Everything can be changed at run time from any thread. Serve :attr:`wsgi_app`
    through any WSGI way in; the emulator itself knows nothing of sockets or test frameworks.

    The signing key is by default :func:`~.signing.shared_signing_key`, one key shared by all
    emulators of the process (key generation is slow); pass ``signing_key=SigningKey()`` for an
    emulator whose tokens no other emulator accepts.
    """

    def __init__(
        self,
        *,
        tenant_id: str | None = None,
        subscription_id: str | None = None,
        resource_group: str = "rg-kvmi",
        vm_name: str = "vm-kvmi",
        location: str = "eastus",
        cloud: str = "AzurePublicCloud",
        vm_id: str | None = None,
        system_assigned: bool = True,
        clock: Clock | None = None,
        signing_key: SigningKey | None = None,
        token_lifetime: float = DEFAULT_TOKEN_LIFETIME,
        propagation_delay: float = 0.0,
    ) -> None:
        self.clock = clock or Clock()
        self.signing_key = signing_key or shared_signing_key()
        vm = VirtualMachine(
            subscription_id=subscription_id or str(uuid.uuid4()),
            resource_group=resource_group,
            name=vm_name,
            location=location,
            vm_id=vm_id or str(uuid.uuid4()),
            cloud=cloud_named(cloud),
        )
        self._state = State(self.clock, tenant_id or str(uuid.uuid4()), vm)
        self._state.propagation_delay = propagation_delay
        self.faults = Faults()
        self._imds = ImdsApp(self._state, self.signing_key, token_lifetime, self.faults)
        self._vault_app = VaultApp(self._state, TokenVerifier([self.signing_key]))
        self.wsgi_app = EmulatorApp(
            self._state,
            self._imds,
            self._vault_app,
            EntraApp(self._state, self.signing_key),
            self.faults,
        )
        """The WSGI application answering for IMDS, every vault and Entra's documents."""
        if system_assigned:
            self.set_system_identity(True)

    @classmethod
    def demo(cls, **kwargs: Any) -> Emulator:
        """Vault ``demo`` (RBAC) with ``app-secret``, readable by the VM's system-assigned
        identity as Key Vault Secrets User at that secret's scope, and ``admin-secret``, which
        nobody is granted."""
        emulator = cls(**kwargs)
        emulator.add_vault(DEMO_VAULT)
        emulator.set_secret(DEMO_VAULT, DEMO_SECRET, DEMO_SECRET_VALUE)
        emulator.set_secret(DEMO_VAULT, DEMO_ADMIN_SECRET, DEMO_ADMIN_SECRET_VALUE)
        emulator.grant("system", roles.SECRETS_USER, f"vault:{DEMO_VAULT}/secrets/{DEMO_SECRET}")
        return emulator

    @classmethod
    def from_scenario(cls, path: str | os.PathLike[str]) -> Emulator:
        """An emulator set up by a TOML or JSON scenario file (format: :mod:`.scenario`)."""
        return scenario.build(cls, scenario.load(path))

    # --- tenant, VM and identities -------------------------------------------------------------

    @property
    def tenant_id(self) -> str:
        """The tenant of the VM's identities (and, by default, of every vault)."""
        return self._state.tenant_id

    @property
    def vm(self) -> VirtualMachine:
        return self._state.vm

    @property
    def system_identity(self) -> Identity | None:
        """The VM's system-assigned identity, or None if it has none."""
        return self._state.system_identity

    @property
    def user_identities(self) -> tuple[Identity, ...]:
        return tuple(self._state.user_identities.values())

    def identity(self, key: str) -> Identity:
        """An identity by ``"system"``, name, client id, object id or resource id."""
        state = self._state
        if key == "system":
            if state.system_identity is None:
                raise LookupError("the VM has no system-assigned identity")
            return state.system_identity
        wanted = key.lower()
        for identity in state.identities():
            keys = (identity.name, identity.client_id, identity.object_id, identity.resource_id)
            if wanted in (k.lower() for k in keys):
                return identity
        raise LookupError(f"the VM has no identity {key!r}")

    def set_system_identity(
        self, enabled: bool = True, *, client_id: str | None = None, object_id: str | None = None
    ) -> Identity | None:
        """Turn the system-assigned identity on (new ids unless given) or off."""
        state = self._state
        identity = None
        if enabled:
            identity = Identity(
                kind="system",
                name=state.vm.name,
                client_id=client_id or str(uuid.uuid4()),
                object_id=object_id or str(uuid.uuid4()),
                resource_id=state.vm.mirid,
            )
        with state.lock:
            state.system_identity = identity
        self._imds.forget_tokens()
        return identity

    def add_user_identity(
        self,
        name: str,
        *,
        client_id: str | None = None,
        object_id: str | None = None,
        resource_group: str | None = None,
        subscription_id: str | None = None,
    ) -> Identity:
        """Assign a user-assigned identity to the VM (by default in the VM's resource group)."""
        vm = self._state.vm
        resource_id = (
            f"/subscriptions/{subscription_id or vm.subscription_id}/resourcegroups/"
            f"{resource_group or vm.resource_group}/providers/"
            f"Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
        )
        identity = Identity(
            kind="user",
            name=name,
            client_id=client_id or str(uuid.uuid4()),
            object_id=object_id or str(uuid.uuid4()),
            resource_id=resource_id,
        )
        with self._state.lock:
            self._state.user_identities[name.lower()] = identity
        return identity

    def remove_user_identity(self, name: str) -> None:
        """Unassign a user-assigned identity from the VM."""
        with self._state.lock:
            del self._state.user_identities[name.lower()]
        self._imds.forget_tokens()

    # --- vaults ---------------------------------------------------------------------------------

    def add_vault(
        self,
        name: str,
        *,
        tenant_id: str | None = None,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        location: str | None = None,
        cloud: str | None = None,
        permission_model: PermissionModel = "rbac",
        allow: Iterable[str] = (),
        default_action: Literal["Allow", "Deny"] | None = None,
        public_network_access: bool = True,
    ) -> Vault:
        """Create a vault; unset places default to the VM's (tenant, subscription, group...)."""
        if permission_model not in ("rbac", "access-policy"):
            raise ValueError(
                f"permission_model must be 'rbac' or 'access-policy', not {permission_model!r}"
            )
        state = self._state
        vm = state.vm
        vault = Vault(
            name=name,
            tenant_id=tenant_id or state.tenant_id,
            subscription_id=subscription_id or vm.subscription_id,
            resource_group=resource_group or vm.resource_group,
            location=location or vm.location,
            cloud=cloud_named(cloud) if cloud else vm.cloud,
            permission_model=permission_model,
            public_network_access=public_network_access,
        )
        vault = _with_firewall(vault, allow, default_action)
        with state.lock:
            if name.lower() in state.vaults:
                raise ValueError(f"a vault named {name!r} exists already")
            state.vaults[name.lower()] = vault
            state.secrets[name.lower()] = {}
        return vault

    def remove_vault(self, name: str) -> None:
        with self._state.lock:
            del self._state.vaults[name.lower()]
            del self._state.secrets[name.lower()]

    def vault(self, name: str) -> Vault:
        found = self._state.vault(name)
        if found is None:
            raise LookupError(f"no vault named {name!r}")
        return found

    def vault_names(self) -> list[str]:
        return [v.name for v in list(self._state.vaults.values())]

    def vault_url(self, name: str) -> str:
        """The vault's real URL, e.g. ``https://demo.vault.azure.net``."""
        vault = self.vault(name)
        return f"https://{vault.name}.{vault.cloud.vault_suffix}"

    def set_firewall(
        self,
        vault: str,
        allow: Iterable[str] = (),
        default_action: Literal["Allow", "Deny"] | None = None,
    ) -> None:
        """Network rules: IPs/CIDRs allowed. ``default_action`` defaults to ``Deny`` when the
        list is non-empty and ``Allow`` when it is empty (everyone passes)."""
        self._replace_vault(vault, lambda v: _with_firewall(v, allow, default_action))

    def set_public_network_access(self, vault: str, enabled: bool) -> None:
        """Disabled, every request is refused with 403 ForbiddenByConnection."""
        self._replace_vault(vault, lambda v: replace(v, public_network_access=enabled))

    def set_access_policy(
        self, vault: str, principal: Principal, permissions: Iterable[str]
    ) -> None:
        """Secret permissions of one principal on an ``access-policy`` vault (replaces any)."""
        wanted = frozenset(p.lower() for p in permissions)
        unknown = wanted - ACCESS_POLICY_PERMISSIONS
        if unknown:
            raise ValueError(f"unknown secret permissions: {sorted(unknown)}")
        object_id = self._principal_id(principal).lower()
        self._replace_vault(
            vault, lambda v: replace(v, access_policies={**v.access_policies, object_id: wanted})
        )

    def remove_access_policy(self, vault: str, principal: Principal) -> None:
        object_id = self._principal_id(principal).lower()
        self._replace_vault(
            vault,
            lambda v: replace(
                v, access_policies={k: p for k, p in v.access_policies.items() if k != object_id}
            ),
        )

    # --- secrets -------------------------------------------------------------------------------

    def set_secret(
        self,
        vault: str,
        name: str,
        value: str,
        *,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
        enabled: bool = True,
        not_before: int | None = None,
        expires: int | None = None,
        version: str | None = None,
    ) -> SecretVersion:
        """Add a new latest version (``version``: 32 hex digits, random by default)."""
        return self._state.add_version(
            vault,
            name,
            SecretValue(value),
            content_type=content_type,
            tags=tags,
            enabled=enabled,
            not_before=not_before,
            expires=expires,
            version=version,
        )

    def secret(self, vault: str, name: str, version: str | None = None) -> SecretVersion | None:
        """A version (the latest by default); its value is ``.value.reveal()``."""
        return find_version(self._state.versions(vault, name), version)

    def secret_versions(self, vault: str, name: str) -> tuple[SecretVersion, ...]:
        return self._state.versions(vault, name)

    def disable_secret(self, vault: str, name: str, version: str | None = None) -> None:
        """Disable a version (the latest by default): GET answers 403 SecretDisabled."""
        self._set_enabled(vault, name, version, False)

    def enable_secret(self, vault: str, name: str, version: str | None = None) -> None:
        self._set_enabled(vault, name, version, True)

    def delete_secret(self, vault: str, name: str) -> bool:
        """Delete a secret with all its versions; False if there was none."""
        return bool(self._state.delete_secret(vault, name))

    # --- RBAC ----------------------------------------------------------------------------------

    @property
    def propagation_delay(self) -> float:
        """Emulated seconds before a grant or revoke takes effect (0: at once)."""
        return self._state.propagation_delay

    @propagation_delay.setter
    def propagation_delay(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("propagation delay cannot be negative")
        self._state.propagation_delay = seconds

    def grant(self, principal: Principal, role: str | roles.Role, scope: str) -> RoleAssignment:
        """Assign a built-in role (name or id) at a scope.

        ``scope`` is an ARM id (``/subscriptions/<sub>``, ``.../resourceGroups/<rg>``, a vault's
        or a secret's id), or ``vault:<name>`` or ``vault:<name>/secrets/<secret>``.
        """
        state = self._state
        with state.lock:
            now = self.clock.now()
            assignment = RoleAssignment(
                id=str(uuid.uuid4()),
                principal_id=self._principal_id(principal),
                role=roles.role_named(role),
                scope=self._scope_path(scope),
                effective_from=now + state.propagation_delay,
            )
            key = assignment.principal_id.lower()
            state.assignments[key] = (*_unexpired(state.assignments.get(key, ()), now), assignment)
        return assignment

    def revoke(
        self, principal: Principal, role: str | roles.Role | None = None, scope: str | None = None
    ) -> int:
        """Remove the principal's assignments (only of ``role`` / at ``scope`` if given).

        Returns how many were revoked; each stops counting after the propagation delay.
        """
        state = self._state
        wanted_role = roles.role_named(role) if role is not None else None
        wanted_scope = self._scope_path(scope) if scope is not None else None
        with state.lock:
            now = self.clock.now()
            until = now + state.propagation_delay
            key = self._principal_id(principal).lower()
            kept, revoked = [], 0
            for a in _unexpired(state.assignments.get(key, ()), now):
                matches = (wanted_role is None or a.role == wanted_role) and (
                    wanted_scope is None or a.scope == wanted_scope
                )
                if matches and a.effective_until is None:
                    a = replace(a, effective_until=until)
                    revoked += 1
                kept.append(a)
            state.assignments[key] = tuple(kept)
        return revoked

    def role_assignments(self) -> list[RoleAssignment]:
        """Every assignment not yet fully revoked (some may still be propagating)."""
        now = self.clock.now()
        return [
            a for group in list(self._state.assignments.values()) for a in _unexpired(group, now)
        ]

    # --- tokens, events, throttling ------------------------------------------------------------

    @property
    def token_lifetime(self) -> float:
        """Lifetime in seconds of tokens IMDS issues from now on."""
        return self._imds.token_lifetime

    @token_lifetime.setter
    def token_lifetime(self, seconds: float) -> None:
        self._imds.token_lifetime = seconds
        self._imds.forget_tokens()

    def mint_token(
        self,
        *,
        audience: str | None = None,
        identity: Principal | None = None,
        tenant_id: str | None = None,
        issued_at: float | None = None,
        lifetime: float | None = None,
        key: SigningKey | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> str:
        """A token as IMDS would issue, bent as a test needs: another ``tenant_id`` (issuer),
        another ``audience``, an ``issued_at``/``lifetime`` in the past, a foreign ``key``, or
        any ``claims`` overridden. Defaults: the system identity (else the first one) asking
        for the VM cloud's Key Vault audience now."""
        state = self._state
        if isinstance(identity, str):
            identity = self.identity(identity)
        if identity is None:
            identities = state.identities()
            identity = identities[0] if identities else self._anonymous_identity()
        payload = managed_identity_claims(
            identity=identity,
            tenant_id=tenant_id or state.tenant_id,
            cloud=state.vm.cloud,
            audience=audience or state.vm.cloud.vault_audience,
            issued_at=self.clock.now() if issued_at is None else issued_at,
            lifetime=self.token_lifetime if lifetime is None else lifetime,
        )
        payload.update(claims or {})
        return (key or self.signing_key).sign(payload)

    def schedule_event(
        self,
        event_type: str = "Reboot",
        *,
        not_before: float | None = None,
        duration_seconds: int = -1,
        description: str = "",
    ) -> str:
        """Publish a scheduled event on IMDS (``/metadata/scheduledevents``); returns its id.

        ``not_before`` defaults to 15 emulated minutes from now. Clients approve it with POST.
        """
        state = self._state
        event = ScheduledEvent(
            event_id=str(uuid.uuid4()).upper(),
            event_type=event_type,
            status="Scheduled",
            not_before=http_date(not_before if not_before is not None else self.clock.now() + 900),
            description=description,
            duration_seconds=duration_seconds,
        )
        with state.lock:
            state.scheduled_events[event.event_id] = event
            state.events_incarnation += 1
        return event.event_id

    def scheduled_event_status(self, event_id: str) -> str:
        """``Scheduled``, or ``Started`` once a client approved it."""
        return self._state.scheduled_events[event_id].status

    def enable_throttling(
        self, limit: int = KEY_VAULT_LIMIT, window: float = KEY_VAULT_WINDOW_SECONDS
    ) -> None:
        """Answer 429 Throttled beyond ``limit`` requests per vault in ``window`` emulated
        seconds (default: Key Vault's real 4,000 per 10 s)."""
        self._vault_app.throttle = Throttle(self.clock, limit, window)

    def disable_throttling(self) -> None:
        self._vault_app.throttle = None

    # --- ways in (imported on use: each pulls in its own libraries) ----------------------------

    def transport(self, *, client_address: str = "127.0.0.1") -> EmulatorTransport:
        """An httpx transport answering at Azure's real addresses in-process, without sockets."""
        from .transports import EmulatorTransport

        return EmulatorTransport(self, client_address=client_address)

    def async_transport(self, *, client_address: str = "127.0.0.1") -> AsyncEmulatorTransport:
        """The same as :meth:`transport`, for ``httpx.AsyncClient``."""
        from .transports import AsyncEmulatorTransport

        return AsyncEmulatorTransport(self, client_address=client_address)

    def serve(self, *, entra: bool = False) -> LoopbackServers:
        """Started loopback servers (IMDS over http, each vault over https); stop them with
        ``stop()`` or use the result as a context manager."""
        from .servers import serve

        return serve(self, entra=entra)

    def activate_responses(
        self, *, client_address: str = "127.0.0.1"
    ) -> AbstractContextManager[responses.RequestsMock]:
        """A context in which ``requests`` calls to Azure's real addresses reach this emulator."""
        from .responses_mock import activate_responses

        return activate_responses(self, client_address=client_address)

    def __repr__(self) -> str:
        return f"Emulator(tenant_id={self.tenant_id!r}, vaults={self.vault_names()!r})"

    # --- helpers -------------------------------------------------------------------------------

    def _principal_id(self, principal: Principal) -> str:
        if isinstance(principal, Identity):
            return principal.object_id
        try:
            return self.identity(principal).object_id
        except LookupError:
            if principal == "system":
                raise
            return principal

    def _scope_path(self, scope: str) -> str:
        if scope.startswith("/"):
            return scope.rstrip("/").lower()
        if scope.startswith("vault:"):
            name, _, secret = scope[len("vault:") :].partition("/secrets/")
            return self.vault(name).scope_path(secret or None)
        raise ValueError(
            f"scope {scope!r} is neither an ARM id nor vault:<name>[/secrets/<secret>]"
        )

    def _replace_vault(self, name: str, change: Any) -> None:
        state = self._state
        with state.lock:
            current = state.vault(name)
            if current is None:
                raise LookupError(f"no vault named {name!r}")
            state.vaults[name.lower()] = change(current)

    def _set_enabled(self, vault: str, name: str, version: str | None, enabled: bool) -> None:
        if self._state.update_version(vault, name, version, {"enabled": enabled}) is None:
            raise LookupError(f"vault {vault!r} has no secret {name!r} version {version!r}")

    def _anonymous_identity(self) -> Identity:
        vm = self._state.vm
        return Identity("system", vm.name, str(uuid.uuid4()), str(uuid.uuid4()), vm.mirid)


def _with_firewall(
    vault: Vault, allow: Iterable[str], default_action: Literal["Allow", "Deny"] | None
) -> Vault:
    networks = tuple(ipaddress.ip_network(entry, strict=False) for entry in allow)
    action = default_action or ("Deny" if networks else "Allow")
    if action not in ("Allow", "Deny"):
        raise ValueError(f"default_action must be 'Allow' or 'Deny', not {action!r}")
    return replace(vault, allow=networks, default_action=action)


def _unexpired(assignments: Iterable[RoleAssignment], now: float) -> tuple[RoleAssignment, ...]:
    return tuple(a for a in assignments if a.effective_until is None or a.effective_until > now)
