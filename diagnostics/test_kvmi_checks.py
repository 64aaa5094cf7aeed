"""The shipped checks: is the identity there, is its token right, can it read exactly the
secrets it should? Each is one test with a stable id; ``-m kvmi_secrets`` and friends select
areas. A failure names its diagnosis code, the likely causes and the fix."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_kvmi.plugin import Checker
    from pytest_kvmi.settings import SecretRef

pytestmark = pytest.mark.kvmi


@pytest.mark.kvmi_imds
def test_imds_reachable(kvmi: Checker) -> None:
    """Something answers at the IMDS endpoint, and it is IMDS."""
    kvmi.check("imds-reachable")


@pytest.mark.kvmi_imds
def test_identity_present(kvmi: Checker) -> None:
    """IMDS issues a token for this identity (system-assigned or the selected one)."""
    kvmi.check("identity-present")


@pytest.mark.kvmi_token
def test_token_audience(kvmi: Checker) -> None:
    """The token's audience is exactly the vault's audience for its cloud."""
    kvmi.check("token-audience")


@pytest.mark.kvmi_token
def test_token_tenant(kvmi: Checker) -> None:
    """The token's tenant is the vault's tenant (else Key Vault answers AKV10032)."""
    kvmi.check("token-tenant")


@pytest.mark.kvmi_token
def test_vm_binding(kvmi: Checker) -> None:
    """The token belongs to this VM, or to a user-assigned identity of its subscription."""
    kvmi.check("vm-binding")


@pytest.mark.kvmi_secrets
def test_secret_readable(kvmi: Checker, kvmi_readable_secret: SecretRef | None) -> None:
    """A secret that must be readable answers 200 with a value."""
    kvmi.check("secret-readable", kvmi_readable_secret)


@pytest.mark.kvmi_secrets
def test_secret_denied(kvmi: Checker, kvmi_forbidden_secret: SecretRef | None) -> None:
    """A secret this identity must not read answers 403 ForbiddenByRbac."""
    kvmi.check("secret-denied", kvmi_forbidden_secret)


@pytest.mark.kvmi_secrets
@pytest.mark.kvmi_emulator
def test_role_revocation(kvmi: Checker) -> None:
    """Revoke the role, see ForbiddenByRbac, restore it, read again (emulator only)."""
    kvmi.check("role-revocation")
