"""The vocabulary is complete and its texts render whatever facts are known."""

from __future__ import annotations

import re

import pytest

from pytest_kvmi.diagnosis import Code, Facts, KvmiError, diagnose

FACT_NAMES = [name for name in Facts.__dataclass_fields__ if name != "status"]
ALL_FACTS = Facts(**{name: f"value-of-{name}" for name in FACT_NAMES})
FACT_PLACEHOLDERS = [f"<{name.replace('_', '-')}>" for name in FACT_NAMES]


@pytest.mark.parametrize("code", list(Code))
def test_every_code_renders_with_and_without_facts(code: Code) -> None:
    bare = diagnose(code)
    full = diagnose(code, ALL_FACTS)
    assert bare.summary
    assert code is Code.OK or full.remedy
    for text in (full.summary, full.remedy, *full.causes):
        assert not re.search(r"[{}]", text), text
        assert not [p for p in FACT_PLACEHOLDERS if p in text], text
    assert full.render().startswith(f"{code.value}: ")


def test_unknown_facts_stay_visible_placeholders() -> None:
    remedy = diagnose(Code.FORBIDDEN_BY_RBAC).remedy
    assert "--assignee-object-id <object-id>" in remedy
    assert "--scope <vault-resource-id>" in remedy


def test_error_message_is_code_and_summary() -> None:
    error = KvmiError.of(Code.SECRET_NOT_FOUND, Facts(vault_name="kv1", secret_name="db"))
    assert str(error) == "SecretNotFound: The vault kv1 has no secret db."
    assert error.diagnosis.facts.secret_name == "db"


def test_code_values_are_the_documented_names() -> None:
    assert {c.value for c in Code} >= {
        "ok", "ImdsUnreachable", "ImdsTimeout", "ImdsProxyIntercepted", "MetadataHeaderRejected",
        "IdentityNotFound", "MultipleIdentities", "InvalidResource", "ImdsThrottled",
        "ImdsUnavailable", "TokenMalformed", "WrongAudience", "TokenExpired", "TenantMismatch",
        "VaultDnsFailure", "VaultUnreachable", "VaultTimeout", "VaultTlsError", "Unauthorized",
        "InvalidAudience", "InvalidIssuer", "ForbiddenByRbac", "ForbiddenByPolicy",
        "ForbiddenByFirewall", "ForbiddenByConnection", "SecretDisabled", "SecretNotFound",
        "VaultThrottled", "BadParameter", "UnexpectedResponse", "InvalidVaultName",
        "InvalidSecretName", "UnsafeVaultUrl",
    }  # fmt: skip
    assert str(Code.FORBIDDEN_BY_RBAC) == "ForbiddenByRbac"
