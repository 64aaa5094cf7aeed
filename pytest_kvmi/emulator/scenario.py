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

Unknown keys and values of the wrong type are errors, so a typo does not silently change the
setup.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
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

_Check = tuple[Callable[[Any], bool], str]
_STRING: _Check = (lambda v: isinstance(v, str), "a string")
_BOOL: _Check = (lambda v: isinstance(v, bool), "true or false")
_INT: _Check = (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer")
_NUMBER: _Check = (
    lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "a number",
)
_STRINGS: _Check = (
    lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "an array of strings",
)
_STRING_TABLE: _Check = (
    lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
    "a table of strings",
)
_NESTED: _Check = (lambda v: True, "")  # checked by the code that reads the nested table

_TOP = {
    "tenant_id": _STRING, "settings": _NESTED, "vm": _NESTED, "user_identities": _NESTED,
    "vaults": _NESTED, "role_assignments": _NESTED, "faults": _NESTED,
}  # fmt: skip
_SETTINGS = {
    "clock_start": _NUMBER, "token_lifetime": _NUMBER, "propagation_delay": _NUMBER,
    "throttling": _BOOL,
}  # fmt: skip
_VM = {
    "name": _STRING, "subscription_id": _STRING, "resource_group": _STRING, "location": _STRING,
    "vm_id": _STRING, "cloud": _STRING, "system_assigned": _BOOL, "system_client_id": _STRING,
    "system_object_id": _STRING,
}  # fmt: skip
_USER_IDENTITY = {
    "name": _STRING, "client_id": _STRING, "object_id": _STRING, "resource_group": _STRING,
    "subscription_id": _STRING,
}  # fmt: skip
_VAULT = {
    "name": _STRING, "tenant_id": _STRING, "subscription_id": _STRING,
    "resource_group": _STRING, "location": _STRING, "cloud": _STRING,
    "permission_model": _STRING, "allow": _STRINGS, "default_action": _STRING,
    "public_network_access": _BOOL, "secrets": _NESTED, "access_policies": _NESTED,
}  # fmt: skip
_SECRET = {
    "name": _STRING, "value": _STRING, "content_type": _STRING, "tags": _STRING_TABLE,
    "enabled": _BOOL, "not_before": _INT, "expires": _INT,
}  # fmt: skip
_POLICY = {"principal": _STRING, "permissions": _STRINGS}
_ASSIGNMENT = {"principal": _STRING, "role": _STRING, "scope": _STRING}
_FAULT_KINDS = ("status", "delay", "drop", "audience")
_FAULT = {
    "status": _INT, "delay": _NUMBER, "drop": _BOOL, "audience": _STRING, "times": _INT,
    "retry_after": _INT,
}  # fmt: skip


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
    except (UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
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
    with _reported("vm"):
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
        name = _required(identity, "name", "user identity")
        with _reported("user_identities"):
            emulator.add_user_identity(name, **{k: v for k, v in identity.items() if k != "name"})
    for vault in _tables(data, "vaults", _VAULT):
        _add_vault(emulator, vault)
    for assignment in _tables(data, "role_assignments", _ASSIGNMENT):
        principal, role, scope = (
            _required(assignment, key, "role assignment") for key in ("principal", "role", "scope")
        )
        with _reported("role_assignments"):
            emulator.grant(principal, role, scope)
    _add_faults(emulator, data.get("faults", {}))
    return emulator


@contextmanager
def _reported(where: str) -> Iterator[None]:
    """What the control API raises for a bad value, as a ScenarioError naming the table."""
    try:
        yield
    except (TypeError, ValueError, LookupError, AttributeError) as error:
        raise ScenarioError(f"{where}: {error}") from error


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
            with _reported(where):
                _add_fault(emulator.faults, endpoint, kinds[0], fault)


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
    with _reported(f"vaults: vault {name!r}"):
        emulator.add_vault(name, **settings)
    for secret in _tables(vault, "secrets", _SECRET, "vaults.secrets"):
        secret_name = _required(secret, "name", f"a secret of vault {name!r}")
        value = _required(secret, "value", f"secret {secret_name!r}")
        options = {k: v for k, v in secret.items() if k not in ("name", "value")}
        with _reported(f"vaults.secrets: secret {secret_name!r} of vault {name!r}"):
            emulator.set_secret(name, secret_name, value, **options)
    for policy in _tables(vault, "access_policies", _POLICY, "vaults.access_policies"):
        principal = _required(policy, "principal", "access policy")
        with _reported(f"vaults.access_policies: vault {name!r}"):
            emulator.set_access_policy(name, principal, policy.get("permissions", []))


def _check(table: Mapping[str, Any], allowed: Mapping[str, _Check], where: str) -> None:
    """Unknown keys and values of the wrong type are errors: either would change the setup."""
    unknown = set(table) - set(allowed)
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    for key, value in table.items():
        test, what = allowed[key]
        if not test(value):  # the type only: the value may be a secret
            raise ScenarioError(f"{where}: {key!r} must be {what}, not {type(value).__name__}")


def _table(data: Mapping[str, Any], key: str, allowed: Mapping[str, _Check]) -> Mapping[str, Any]:
    table = data.get(key, {})
    if not isinstance(table, dict):
        raise ScenarioError(f"{key}: must be a table/object")
    _check(table, allowed, key)
    return table


def _tables(
    data: Mapping[str, Any], key: str, allowed: Mapping[str, _Check], where: str | None = None
) -> list[Mapping[str, Any]]:
    where = where or key
    tables = data.get(key, [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ScenarioError(f"{where}: must be an array of tables/objects")
    for table in tables:
        _check(table, allowed, where)
    return tables


def _required(table: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in table:
        raise ScenarioError(f"{where}: {key!r} is required")
    return table[key]
