"""Naming what Key Vault said, by status and (inner) error code, never by exact wording.

The wording of Key Vault's messages has changed over the years; the codes have not. The
identifiers inside a message (caller, action, resource, vault, client address) are read out
with tolerant patterns to fill in remedies, never to decide the diagnosis.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pytest_kvmi.answers import Answer, Failure, FailureKind
from pytest_kvmi.diagnosis import Code, Diagnosis, Facts, diagnose

RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""What azure-core's retry policy retries for Key Vault."""

_FORBIDDEN = {
    "forbiddenbyrbac": Code.FORBIDDEN_BY_RBAC,
    "forbiddenbypolicy": Code.FORBIDDEN_BY_POLICY,
    "accessdenied": Code.FORBIDDEN_BY_POLICY,
    "forbiddenbyfirewall": Code.FORBIDDEN_BY_FIREWALL,
    "forbiddenbyconnection": Code.FORBIDDEN_BY_CONNECTION,
    "secretdisabled": Code.SECRET_DISABLED,
}
_FAILURES = {
    FailureKind.DNS: Code.VAULT_DNS_FAILURE,
    FailureKind.TLS: Code.VAULT_TLS_ERROR,
    FailureKind.REFUSED: Code.VAULT_UNREACHABLE,
    FailureKind.CONNECT_TIMEOUT: Code.VAULT_UNREACHABLE,
    FailureKind.READ_TIMEOUT: Code.VAULT_TIMEOUT,
    FailureKind.DROPPED: Code.VAULT_UNREACHABLE,
    FailureKind.UNDECODABLE: Code.UNEXPECTED_RESPONSE,
}

_ID = r"[^;'\s\\]+"
_PATTERNS: Mapping[str, re.Pattern[str]] = {
    "client_id": re.compile(rf"appid=({_ID})"),
    "object_id": re.compile(rf"oid=({_ID})"),
    "token_tenant_id": re.compile(r"iss=https://[^/]+/([0-9a-fA-F-]{36})"),
    "action": re.compile(r"Action:\s*'([^']+)'"),
    "vault_resource_id": re.compile(r"Resource:\s*'([^']+)'"),
    "vault_name": re.compile(r"(?:Vault:\s*|key vault ')([A-Za-z0-9-]+);location="),
    "vault_location": re.compile(r";location=([A-Za-z0-9-]+)"),
    "client_address": re.compile(r"Client address:\s*([0-9A-Fa-f.:]+)"),
}
_AUDIENCE = re.compile(r"Expected (\S+?),? found:? (\S+?)\.?$")
_ISSUER = re.compile(
    r"Expected one of https://[^/]+/([0-9a-fA-F-]{36})/?, found https://[^/]+/([0-9a-fA-F-]{36})"
)
_SUPPORTED_VERSION = re.compile(r"specified version \(([^)]+)\).*supported version \(([^)]+)\)")


def should_retry(outcome: Answer | Failure) -> bool:
    if isinstance(outcome, Failure):
        return outcome.kind is FailureKind.DROPPED
    return outcome.status in RETRIED_STATUSES


def message_facts(message: str) -> Facts:
    """The identifiers Key Vault wrote into an error message."""
    found: dict[str, Any] = {
        name: m.group(1) for name, p in _PATTERNS.items() if (m := p.search(message))
    }
    return Facts(**found)


def classify_failure(failure: Failure, facts: Facts) -> Diagnosis:
    return diagnose(_FAILURES[failure.kind], facts.merge(Facts(detail=failure.detail)))


def _error_parts(body: Mapping[str, Any] | None) -> tuple[str, str, str]:
    """``(code, inner code, message)`` of Key Vault's ``{"error": {...}}`` shape."""
    error = (body or {}).get("error")
    if not isinstance(error, dict):
        return "", "", ""
    inner = error.get("innererror")
    inner_code = inner.get("code") if isinstance(inner, dict) else None
    return str(error.get("code") or ""), str(inner_code or ""), str(error.get("message") or "")


def classify_answer(answer: Answer, facts: Facts) -> Diagnosis:
    """The diagnosis of a complete answer from the vault (``ok`` for a 200)."""
    status = answer.status
    facts = facts.merge(Facts(status=status))
    if status == 200:
        return diagnose(Code.OK, facts)
    if 300 <= status < 400:
        target = answer.headers.get("location", "(no location)")
        detail = f"HTTP {status} redirect to {target}, not followed: the token went nowhere else"
        return diagnose(Code.UNEXPECTED_RESPONSE, facts.merge(Facts(detail=detail)))
    code, inner, message = _error_parts(answer.json_object())
    facts = facts.merge(message_facts(message))
    if not code:
        return _unrecognised(answer, facts)
    if status == 401:
        return _classify_unauthorized(message, facts)
    if status == 403 and inner.lower() in _FORBIDDEN:
        return diagnose(_FORBIDDEN[inner.lower()], facts)
    if status == 404 and code == "SecretNotFound":
        return diagnose(Code.SECRET_NOT_FOUND, facts)
    if status == 429:
        return diagnose(Code.VAULT_THROTTLED, facts)
    if status == 400 and code == "BadParameter":
        return diagnose(Code.BAD_PARAMETER, facts.merge(Facts(detail=_bad_parameter(message))))
    detail = f"HTTP {status} {code}" + (f"/{inner}" if inner else "")
    return diagnose(Code.UNEXPECTED_RESPONSE, facts.merge(Facts(detail=detail)))


def _unrecognised(answer: Answer, facts: Facts) -> Diagnosis:
    if answer.status == 429:
        return diagnose(Code.VAULT_THROTTLED, facts)
    if answer.status == 401:
        return diagnose(Code.UNAUTHORIZED, facts)
    kind = answer.media_type or "no content type"
    detail = f"HTTP {answer.status}, {kind}, not a Key Vault error body"
    return diagnose(Code.UNEXPECTED_RESPONSE, facts.merge(Facts(detail=detail)))


def _classify_unauthorized(message: str, facts: Facts) -> Diagnosis:
    if "AKV10022" in message:
        match = _AUDIENCE.search(message.strip())
        if match:
            facts = facts.merge(Facts(expected_audience=match[1], found_audience=match[2]))
        return diagnose(Code.INVALID_AUDIENCE, facts)
    if "AKV10032" in message:
        match = _ISSUER.search(message)
        if match:
            facts = facts.merge(Facts(vault_tenant_id=match[1], token_tenant_id=match[2]))
        return diagnose(Code.INVALID_ISSUER, facts)
    return diagnose(Code.UNAUTHORIZED, facts)


def _bad_parameter(message: str) -> str:
    match = _SUPPORTED_VERSION.search(message)
    if match:
        return f"api-version {match[1]} is not supported; the vault supports up to {match[2]}"
    return "BadParameter"
