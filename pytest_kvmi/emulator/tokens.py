"""The claims Entra puts in a managed identity's v1 access token."""

from __future__ import annotations

import secrets
from typing import Any

from .clouds import Cloud
from .state import Identity

DEFAULT_TOKEN_LIFETIME = 86400.0
"""Managed identity tokens live about 24 hours."""


def managed_identity_claims(
    *,
    identity: Identity,
    tenant_id: str,
    cloud: Cloud,
    audience: str,
    issued_at: float,
    lifetime: float = DEFAULT_TOKEN_LIFETIME,
) -> dict[str, Any]:
    """v1 claims as a VM's managed identity gets them (``aud`` exactly as requested)."""
    issuer = cloud.issuer(tenant_id)
    return {
        "aud": audience,
        "iss": issuer,
        "iat": int(issued_at),
        "nbf": int(issued_at),
        "exp": int(issued_at + lifetime),
        "aio": secrets.token_urlsafe(48),
        "appid": identity.client_id,
        "appidacr": "2",
        "idp": issuer,
        "idtyp": "app",
        "oid": identity.object_id,
        "sub": identity.object_id,
        "tid": tenant_id,
        "uti": secrets.token_urlsafe(16),
        "ver": "1.0",
        "xms_mirid": identity.resource_id,
    }
