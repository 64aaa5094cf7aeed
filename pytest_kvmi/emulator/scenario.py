"""Scenario files: a whole emulated setup in one TOML or JSON file.

The format (JSON has the same structure; every key but the vault and secret names is optional)::

    tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47"

    [settings]
    clock_start = 1700000000        # freeze the emulated clock here (default: wall clock)
    token_lifetime = 86400          # seconds
    propagation_delay = 0           # seconds before a grant/revoke takes effect
    throttling = false              # Key Vault's 4,000 requests / 10 s per vault

    [vm]
    name = "vm-app"
    subscription_id = "..."
    resource_group = "rg-app"
    location = "westeurope"
    vm_id = "..."
    cloud = "AzurePublicCloud"      # or AzureUSGovernmentCloud, AzureChinaCloud
    system_assigned = true
    system_client_id = "..."        # fixed ids for the system identity
    system_object_id = "..."

    [[user_identities]]
    name = "uai-app"
    client_id = "..."
    object_id = "..."
    resource_group = "rg-identities"

    [[vaults]]
    name = "kv-app"
    permission_model = "rbac"       # or "access-policy"
    tenant_id = "..."               # also subscription_id, resource_group, location, cloud
    allow = ["203.0.113.0/24"]      # firewall allow list (empty: everyone)
    default_action = "Deny"
    public_network_access = true

    [[vaults.secrets]]
    name = "db-password"
    value = "..."
    content_type = "text/plain"
    tags = { team = "app" }
    enabled = true
    not_before = 1700000000
    expires = 1800000000

    [[vaults.access_policies]]      # for access-policy vaults
    principal = "system"
    permissions = ["get", "list"]

    [[role_assignments]]
    principal = "system"            # "system", a user identity's name, or an object id
    role = "Key Vault Secrets User" # a built-in role's name or id
    scope = "vault:kv-app/secrets/db-password"   # or an ARM id

    [faults]                        # keyed by endpoint: imds-token, imds, vault, entra
    imds = { status = 502, times = 1000 }      # a table, or an array of them
    imds-token = [
        { status = 502, times = 1000 },        # "IMDS behind a proxy"; retry_after = 7 also
        { audience = "https://management.azure.com" },  # tokens for another audience
    ]
    # one of: status (times = 1), delay = <seconds> (times = 1), drop = true (times = 1),
    # audience (imds-token only; times absent: every token answer)

Unknown keys are errors, so a typo does not silently change the setup.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

from .clock import Clock
from .faults import IMDS_TOKEN, Faults

if TYPE_CHECKING:
    from .emulator import Emulator

_TOP = {"tenant_id", "settings", "vm", "user_identities", "vaults", "role_assignments", "faults"}
_SETTINGS = {"clock_start", "token_lifetime", "propagation_delay", "throttling"}
_VM = {
    "name", "subscription_id", "resource_group", "location", "vm_id", "cloud",
    "system_assigned", "system_client_id", "system_object_id",
}  # fmt: skip
_USER_IDENTITY = {"name", "client_id", "object_id", "resource_group", "subscription_id"}
_VAULT = {
    "name", "tenant_id", "subscription_id", "resource_group", "location", "cloud",
    "permission_model", "allow", "default_action", "public_network_access", "secrets",
    "access_policies",
}  # fmt: skip
_SECRET = {"name", "value", "content_type", "tags", "enabled", "not_before", "expires"}
_POLICY = {"principal", "permissions"}
_ASSIGNMENT = {"principal", "role", "scope"}
_FAULT_KINDS = ("status", "delay", "drop", "audience")
_FAULT = {*_FAULT_KINDS, "times", "retry_after"}


class ScenarioError(ValueError):
    """A scenario file that does not describe a valid setup."""


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The scenario in a ``.toml`` or ``.json`` file, as plain data."""
    file = Path(path)
    try:
        if file.suffix.lower() == ".json":
            data = json.loads(file.read_text(encoding="utf-8"))
        elif file.suffix.lower() == ".toml":
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        else:
            raise ScenarioError(f"{file}: a scenario file ends in .toml or .json")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise ScenarioError(f"{file}: {error}") from error
    if not isinstance(data, dict):
        raise ScenarioError(f"{file}: the top level must be a table/object")
    return data


def build(factory: type[Emulator], data: Mapping[str, Any]) -> Emulator:
    """An emulator set up as ``data`` (a loaded scenario) describes."""
    _check(data, _TOP, "scenario")
    settings = _table(data, "settings", _SETTINGS)
    vm = _table(data, "vm", _VM)
    start = settings.get("clock_start")
    emulator = factory(
        tenant_id=data.get("tenant_id"),
        subscription_id=vm.get("subscription_id"),
        resource_group=vm.get("resource_group", "rg-kvmi"),
        vm_name=vm.get("name", "vm-kvmi"),
        location=vm.get("location", "eastus"),
        cloud=vm.get("cloud", "AzurePublicCloud"),
        vm_id=vm.get("vm_id"),
        system_assigned=False,
        clock=Clock(start=float(start)) if start is not None else None,
        token_lifetime=float(settings.get("token_lifetime", 86400)),
        propagation_delay=float(settings.get("propagation_delay", 0)),
    )
    if vm.get("system_assigned", True):
        emulator.set_system_identity(
            True, client_id=vm.get("system_client_id"), object_id=vm.get("system_object_id")
        )
    if settings.get("throttling", False):
        emulator.enable_throttling()
    for identity in _tables(data, "user_identities", _USER_IDENTITY):
        emulator.add_user_identity(
            _required(identity, "name", "user identity"),
            **{k: v for k, v in identity.items() if k != "name"},
        )
    for vault in _tables(data, "vaults", _VAULT):
        _add_vault(emulator, vault)
    for assignment in _tables(data, "role_assignments", _ASSIGNMENT):
        emulator.grant(
            _required(assignment, "principal", "role assignment"),
            _required(assignment, "role", "role assignment"),
            _required(assignment, "scope", "role assignment"),
        )
    _add_faults(emulator, data.get("faults", {}))
    return emulator


def _add_faults(emulator: Emulator, faults: Any) -> None:
    if not isinstance(faults, dict):
        raise ScenarioError("faults: must be a table/object keyed by endpoint")
    for endpoint, planned in faults.items():
        where = f"faults.{endpoint}"
        for fault in _tables(
            {where: planned if isinstance(planned, list) else [planned]}, where, _FAULT
        ):
            kinds = [kind for kind in _FAULT_KINDS if kind in fault]
            if len(kinds) != 1:
                raise ScenarioError(f"{where}: give exactly one of {list(_FAULT_KINDS)}")
            try:
                _add_fault(emulator.faults, endpoint, kinds[0], fault)
            except (TypeError, ValueError) as error:
                raise ScenarioError(f"{where}: {error}") from error


def _add_fault(plan: Faults, endpoint: str, kind: str, fault: Mapping[str, Any]) -> None:
    """One planned fault; ``times`` defaults to every answer for an audience, else one."""
    times = fault.get("times")
    if kind == "audience":
        if endpoint != IMDS_TOKEN:
            raise ValueError(f"audience faults apply to {IMDS_TOKEN} only")
        plan.audience(fault["audience"], times=times)
        return
    count = 1 if times is None else times
    if kind == "status":
        plan.status(endpoint, fault["status"], times=count, retry_after=fault.get("retry_after"))
    elif kind == "delay":
        plan.delay(endpoint, float(fault["delay"]), times=count)
    elif fault["drop"]:
        plan.drop(endpoint, times=count)


def _add_vault(emulator: Emulator, vault: Mapping[str, Any]) -> None:
    name = _required(vault, "name", "vault")
    settings = {k: v for k, v in vault.items() if k not in ("name", "secrets", "access_policies")}
    try:
        emulator.add_vault(name, **settings)
    except (TypeError, ValueError) as error:
        raise ScenarioError(f"vault {name!r}: {error}") from error
    for secret in _tables(vault, "secrets", _SECRET):
        secret_name = _required(secret, "name", f"a secret of vault {name!r}")
        value = _required(secret, "value", f"secret {secret_name!r}")
        options = {k: v for k, v in secret.items() if k not in ("name", "value")}
        emulator.set_secret(name, secret_name, value, **options)
    for policy in _tables(vault, "access_policies", _POLICY):
        emulator.set_access_policy(
            name,
            _required(policy, "principal", "access policy"),
            policy.get("permissions", []),
        )


def _check(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")


def _table(data: Mapping[str, Any], key: str, allowed: set[str]) -> Mapping[str, Any]:
    table = data.get(key, {})
    if not isinstance(table, dict):
        raise ScenarioError(f"{key}: must be a table/object")
    _check(table, allowed, key)
    return table


def _tables(data: Mapping[str, Any], key: str, allowed: set[str]) -> list[Mapping[str, Any]]:
    tables = data.get(key, [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ScenarioError(f"{key}: must be an array of tables/objects")
    for table in tables:
        _check(table, allowed, key)
    return tables


def _required(table: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in table:
        raise ScenarioError(f"{where}: {key!r} is required")
    return table[key]
