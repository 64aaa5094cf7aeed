"""Azure's own words: error bodies as IMDS, Entra and Key Vault send them.

Wording marked *captured* is byte-for-byte what the real services were seen to send; wording
marked *unverified* is a plausible stand-in where no real answer has been published.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from .wsgi import Response, json_response

LATEST_VAULT_API_VERSION = "2026-04-01"
VAULT_API_VERSIONS = frozenset(
    {"2016-10-01", "7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01", "2026-04-01"}
)


# --- IMDS ------------------------------------------------------------------------------------


def imds_identity_error(
    description: str, error: str = "invalid_request", status: int = 400
) -> Response:
    """The identity endpoint's OAuth-style error (captured shape)."""
    return json_response(status, {"error": error, "error_description": description})


IMDS_METADATA_HEADER = "Required metadata header not specified"  # captured
IMDS_MISSING_RESOURCE = "Required query variable 'resource' is missing"  # captured
IMDS_MISSING_API_VERSION = "Required query variable 'api-version' is missing"  # unverified
IMDS_IDENTITY_NOT_FOUND = "Identity not found"  # captured
IMDS_MULTIPLE_IDENTITIES = (  # captured
    "Multiple user assigned identities exist, please specify the clientId / resourceId of the "
    "identity in the token request"
)
IMDS_FORWARDED = "Request contains X-Forwarded-For header"  # unverified


def imds_invalid_resource(resource: str, tenant_id: str, now: float) -> Response:
    """Entra's AADSTS500011 relayed by IMDS (captured), with fresh trace ids and timestamp."""
    stamp = datetime.datetime.fromtimestamp(int(now), datetime.timezone.utc)
    description = (
        f"AADSTS500011: The resource principal named {resource} was not found in the tenant "
        f"named {tenant_id}. This can happen if the application has not been installed by the "
        "administrator of the tenant or consented to by any user in the tenant. You might have "
        "sent your authentication request to the wrong tenant.\r\n"
        f"Trace ID: {uuid.uuid4()}\r\nCorrelation ID: {uuid.uuid4()}\r\n"
        f"Timestamp: {stamp:%Y-%m-%d %H:%M:%S}Z"
    )
    return imds_identity_error(description, error="invalid_resource")


def imds_instance_error(message: str, newest_versions: list[str] | None = None) -> Response:
    """Errors of IMDS's non-identity endpoints (``{"error": "..."}``, the spec's ErrorResponse)."""
    payload: dict[str, Any] = {"error": message}
    if newest_versions is not None:
        payload["newest-versions"] = newest_versions
    return json_response(400, payload)


IMDS_INSTANCE_METADATA_HEADER = "Bad request. Required metadata header not specified"
IMDS_INSTANCE_NO_API_VERSION = (
    "Bad request. api-version was not specified in the request. "
    "For more information refer to aka.ms/azureimds"
)
IMDS_INSTANCE_BAD_API_VERSION = (
    "Bad request. api-version is invalid or was not specified in the request. "
    "For more information refer to aka.ms/azureimds"
)
IMDS_INSTANCE_FORWARDED = "Bad request. Request contains X-Forwarded-For header"  # unverified


# --- Key Vault -------------------------------------------------------------------------------


def vault_error(
    status: int,
    code: str,
    message: str,
    inner: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> Response:
    """Key Vault's ``{"error": {"code", "message", "innererror"?}}`` body (captured shape)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if inner is not None:
        error["innererror"] = {"code": inner}
    return json_response(status, {"error": error}, headers)


def bad_api_version(version: str) -> str:
    """Captured wording, with this emulator's latest version."""
    return (
        f"The specified version ({version}) is not recognized. "
        f"Consider using the latest supported version ({LATEST_VAULT_API_VERSION})."
    )


MISSING_API_VERSION = (  # unverified (ARM's wording for the same mistake)
    "The api-version query parameter (?api-version=) is required for all requests. "
    f"Consider using the latest supported version ({LATEST_VAULT_API_VERSION})."
)
NO_TOKEN = "AKV10000: Request is missing a Bearer, PoP, or MTLS_POP token."  # captured
UNKNOWN_SIGNING_KEY = "AKV10046: Unable to resolve the key used for signature validation."
"""Seen in a real support case for a key Key Vault could not resolve (not a full capture)."""
INVALID_TOKEN = "AKV10005: Invalid token. Signature validation failed."  # unverified
TOKEN_EXPIRED = "Error validating token: IDX10223"
"""Seen from the real service in 2020 (IDX10223 is the lifetime check); the current wording is
unpublished, so this is unverified."""
TOKEN_NOT_YET_VALID = "Token not yet valid"  # seen in a real report, without a code
THROTTLED = (  # captured
    "Request was not processed because too many requests were received. "
    "Reason: VaultRequestTypeLimitReached"
)


def invalid_audience(expected: str, found: str) -> str:
    """Captured wording (AKV10022)."""
    return f"AKV10022: Invalid audience. Expected {expected}, found: {found}."


def invalid_issuer(expected: str, found: str) -> str:
    """Captured wording (AKV10032)."""
    return f"AKV10032: Invalid issuer. Expected one of {expected}, found {found}."


def forbidden_by_rbac(caller: str, action: str, resource: str, vault_label: str) -> str:
    """Captured wording, ``\\r\\n`` separators and trailing one included."""
    return (
        "Caller is not authorized to perform action on resource.\r\n"
        "If role assignments, deny assignments or role definitions were changed recently, "
        "please observe propagation time.\r\n"
        f"Caller: {caller}\r\nAction: '{action}'\r\nResource: '{resource}'\r\n"
        f"Assignment: (not found)\r\nVault: {vault_label}\r\n"
    )


def forbidden_by_policy(caller: str, permission: str, vault_label: str) -> str:
    """Captured wording."""
    return (
        f"The user, group or application '{caller}' does not have secrets {permission} "
        f"permission on key vault '{vault_label}'. For help resolving this issue, please see "
        "https://go.microsoft.com/fwlink/?linkid=2125287"
    )


def forbidden_by_firewall(client: str, caller: str, vault_label: str) -> str:
    """Captured wording."""
    return (
        "Client address is not authorized and caller is not a trusted service.\r\n"
        f"Client address: {client}\r\nCaller: {caller}\r\nVault: {vault_label}"
    )


def forbidden_by_connection(caller: str, vault_label: str) -> str:
    """Public network access disabled (real-looking; not captured)."""
    return (
        "Public network access is disabled and request is not from a trusted service nor via "
        f"an approved private link.\r\nCaller: {caller}\r\nVault: {vault_label}"
    )


def secret_disabled(operation: str) -> str:
    """Captured wording."""
    return f"Operation {operation} is not allowed on a disabled secret."


def secret_not_found(name_or_id: str) -> str:
    """Captured wording; ``name_or_id`` is ``name`` or ``name/version``."""
    return (
        f"A secret with (name/id) {name_or_id} was not found in this key vault. If you recently "
        "deleted this secret you may be able to recover it using the correct recovery command. "
        "For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
    )
