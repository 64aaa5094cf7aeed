"""An offline Azure for tests: a VM's IMDS, Entra token signing and the Key Vault secrets data
plane with real token checks and RBAC, as one WSGI application controlled from Python.

Framework-agnostic (no pytest here): build an :class:`Emulator`, seed it, and serve its
:attr:`Emulator.wsgi_app` through any way in.
"""

from __future__ import annotations

from .clock import Clock
from .emulator import (
    DEMO_ADMIN_SECRET,
    DEMO_ADMIN_SECRET_VALUE,
    DEMO_SECRET,
    DEMO_SECRET_VALUE,
    DEMO_VAULT,
    Emulator,
)
from .signing import SigningKey, shared_signing_key
from .state import Identity, RoleAssignment, SecretVersion, Vault, VirtualMachine

__all__ = [
    "DEMO_ADMIN_SECRET",
    "DEMO_ADMIN_SECRET_VALUE",
    "DEMO_SECRET",
    "DEMO_SECRET_VALUE",
    "DEMO_VAULT",
    "Clock",
    "Emulator",
    "Identity",
    "RoleAssignment",
    "SecretVersion",
    "SigningKey",
    "Vault",
    "VirtualMachine",
    "shared_signing_key",
]
