"""Entra's public documents for the emulated tenants: OpenID discovery and the signing keys.

Only public keys are published, so anyone (a test, a client library) can verify the emulator's
tokens exactly as they would verify Entra's.
"""

from __future__ import annotations

from typing import Any

from .clouds import CLOUDS, PUBLIC, Cloud
from .signing import SigningKey
from .state import State
from .wsgi import Request, Response, json_response

_SHARED_TENANTS = frozenset({"common", "organizations", "consumers"})


class EntraApp:
    """Answers ``/<tenant>/.well-known/openid-configuration`` (v1 and v2.0) and the JWKS."""

    def __init__(self, state: State, key: SigningKey) -> None:
        self._state = state
        self._keys = {"keys": [key.jwk()]}

    def __call__(self, request: Request) -> Response:
        parts = [p for p in request.path.split("/") if p]
        if request.method != "GET":
            return json_response(405, {"error": "invalid_request", "error_description": "GET only"})
        if parts in (["discovery", "keys"], ["common", "discovery", "keys"]):
            return json_response(200, self._keys)
        if not parts:
            return json_response(404, {"error": "not_found"})
        tenant, rest = parts[0], parts[1:]
        if not self._known(tenant):
            return json_response(
                400,
                {
                    "error": "invalid_tenant",
                    "error_description": f"AADSTS90002: Tenant '{tenant}' not found.",
                },
            )
        if rest in (["discovery", "keys"], ["discovery", "v2.0", "keys"]):
            return json_response(200, self._keys)
        cloud = _cloud_for_host(request.host)
        if rest == [".well-known", "openid-configuration"]:
            return json_response(200, _discovery(request.base_url, tenant, cloud, v2=False))
        if rest == ["v2.0", ".well-known", "openid-configuration"]:
            return json_response(200, _discovery(request.base_url, tenant, cloud, v2=True))
        return json_response(404, {"error": "not_found"})

    def _known(self, tenant: str) -> bool:
        state = self._state
        tenant = tenant.lower()
        return (
            tenant in _SHARED_TENANTS
            or tenant == state.tenant_id.lower()
            or any(v.tenant_id.lower() == tenant for v in list(state.vaults.values()))
        )


def _cloud_for_host(host: str) -> Cloud:
    return next((c for c in CLOUDS if c.login_host == host), PUBLIC)


def _discovery(base: str, tenant: str, cloud: Cloud, *, v2: bool) -> dict[str, Any]:
    """The discovery document; endpoints point back at whichever host was asked."""
    prefix = f"{base}/{tenant}"
    oauth = f"{prefix}/oauth2/v2.0" if v2 else f"{prefix}/oauth2"
    return {
        "token_endpoint": f"{oauth}/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{prefix}/discovery/v2.0/keys" if v2 else f"{prefix}/discovery/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": [
            "code",
            "id_token",
            "code id_token",
            "token id_token",
            "token",
        ],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": cloud.v2_issuer(tenant) if v2 else cloud.issuer(tenant),
        "authorization_endpoint": f"{oauth}/authorize",
        "tenant_region_scope": "NA",
        "cloud_instance_name": cloud.login_host.removeprefix("login."),
    }
