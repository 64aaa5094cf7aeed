"""Naming what IMDS (or whatever answered in its place) said."""

from __future__ import annotations

import re

from pytest_kvmi.answers import Answer, Failure, FailureKind
from pytest_kvmi.diagnosis import Code, Diagnosis, Facts, diagnose

RETRIED_STATUSES = frozenset({404, 410, 429, *range(500, 600)})
"""What IMDS's guidance says to retry; every other 4xx is final."""

_AADSTS = re.compile(r"AADSTS\d+")


def is_foreign(answer: Answer) -> bool:
    """A non-empty body that is not JSON: IMDS always answers JSON, a proxy often does not."""
    return bool(answer.body.reveal().strip()) and answer.json_object() is None


def should_retry(outcome: Answer | Failure) -> bool:
    if isinstance(outcome, Failure):
        return outcome.kind is FailureKind.DROPPED
    return outcome.status in RETRIED_STATUSES and not is_foreign(outcome)


def classify_failure(failure: Failure, facts: Facts) -> Diagnosis:
    facts = facts.merge(Facts(detail=failure.detail))
    if failure.kind is FailureKind.READ_TIMEOUT:
        return diagnose(Code.IMDS_TIMEOUT, facts)
    if failure.kind in (FailureKind.DROPPED, FailureKind.UNDECODABLE):
        return diagnose(Code.IMDS_UNAVAILABLE, facts)
    return diagnose(Code.IMDS_UNREACHABLE, facts)


def classify_error(answer: Answer, facts: Facts) -> Diagnosis:
    """The diagnosis of a non-200 answer (or of a 200 that is not IMDS's)."""
    status = answer.status
    facts = facts.merge(Facts(status=status, detail=f"HTTP {status}"))
    body = answer.json_object()
    if body is None and (answer.body.reveal().strip() or status in (200, 407) or status < 400):
        kind = answer.media_type or "no content type"
        return diagnose(
            Code.IMDS_PROXY_INTERCEPTED, facts.merge(Facts(detail=f"HTTP {status}, {kind}"))
        )
    error = str((body or {}).get("error", ""))
    description = str((body or {}).get("error_description", ""))
    lowered = description.lower()
    if status == 400:
        return _classify_bad_request(error, description, lowered, facts)
    if status == 403 and "unreachable" in (lowered or str(body).lower()):
        return diagnose(
            Code.IMDS_UNREACHABLE, facts.merge(Facts(detail="403: network unreachable"))
        )
    if status == 429:
        return diagnose(Code.IMDS_THROTTLED, facts)
    if status in RETRIED_STATUSES:
        return diagnose(Code.IMDS_UNAVAILABLE, facts)
    return diagnose(
        Code.UNEXPECTED_RESPONSE, facts.merge(Facts(detail=f"IMDS HTTP {status} {error}".strip()))
    )


def _classify_bad_request(error: str, description: str, lowered: str, facts: Facts) -> Diagnosis:
    if error == "invalid_resource" or "aadsts500011" in lowered:
        found = _AADSTS.search(description)
        return diagnose(
            Code.INVALID_RESOURCE, facts.merge(Facts(detail=found.group() if found else error))
        )
    if ("metadata" in lowered and "header" in lowered) or "x-forwarded-for" in lowered:
        return diagnose(Code.METADATA_HEADER_REJECTED, facts)
    if "identity not found" in lowered:
        return diagnose(Code.IDENTITY_NOT_FOUND, facts)
    if "multiple user assigned" in lowered:
        return diagnose(Code.MULTIPLE_IDENTITIES, facts)
    if "resource" in lowered:
        return diagnose(
            Code.INVALID_RESOURCE, facts.merge(Facts(detail="the resource parameter was refused"))
        )
    return diagnose(
        Code.UNEXPECTED_RESPONSE, facts.merge(Facts(detail=f"IMDS HTTP 400 {error}".strip()))
    )
