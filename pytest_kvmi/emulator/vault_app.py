"""The Key Vault secrets data plane, with real token checks, network rules and authorization.

A request meets Key Vault's gates in this order: throttling, ``api-version`` (before
authentication: a bad version answers 400 even without a token, as captured), the bearer token
(401 with the challenge), the network (public access, firewall: 403, after the token since
their messages name the caller), the route, authorization (RBAC or access policy: 403), and
finally the secret itself (404 SecretNotFound, 403 SecretDisabled).

Tokens are accepted up to five minutes past ``exp`` (and before ``nbf``), the clock skew of
Microsoft's token validation libraries. Soft-delete is not modelled beyond the answer's shape: a
deleted secret is gone, and setting it again creates it anew.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import roles, wording
from .clouds import KEY_VAULT_APP_ID
from .signing import TokenRejected, TokenVerifier
from .state import SecretValue, SecretVersion, State, Vault, find_version
from .throttle import Throttle
from .wsgi import Request, Response, json_response

CLOCK_SKEW_SECONDS = 300
SERVICE_VERSION = "1.9.2095.1"
SECRET_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")
"""What Key Vault accepts as a secret name (the CLI checks its flags against it too)."""
_MAX_RESULTS = 25
_RETENTION_SECONDS = 90 * 86400


@dataclass(frozen=True)
class _Operation:
    kind: str  # get, set, delete, update, list, versions
    name: str | None
    version: str | None
    data_action: str
    permission: str  # the access-policy permission it needs


_OPERATIONS = {
    # (path shape, method) -> (kind, RBAC data action, access-policy permission)
    ("list", "GET"): ("list", roles.READ_METADATA, "list"),
    ("secret", "GET"): ("get", roles.GET_SECRET, "get"),
    ("secret", "PUT"): ("set", roles.SET_SECRET, "set"),
    ("secret", "DELETE"): ("delete", roles.DELETE_SECRET, "delete"),
    ("secret", "PATCH"): ("update", roles.UPDATE_SECRET, "set"),
    ("version", "GET"): ("get", roles.GET_SECRET, "get"),
    ("version", "PATCH"): ("update", roles.UPDATE_SECRET, "set"),
    ("versions", "GET"): ("versions", roles.READ_METADATA, "list"),
}


class VaultApp:
    """Answers one request for one vault of the :class:`State`."""

    def __init__(self, state: State, verifier: TokenVerifier) -> None:
        self._state = state
        self._verifier = verifier
        self.throttle: Throttle | None = None

    def __call__(self, request: Request, vault: Vault) -> Response:
        response = self._answer(request, vault)
        return Response(
            response.status, response.headers + _service_headers(request, vault), response.body
        )

    def _answer(self, request: Request, vault: Vault) -> Response:
        throttle = self.throttle
        if throttle is not None and not throttle.admit(vault.name):
            return wording.vault_error(429, "Throttled", wording.THROTTLED)
        api_version = request.query.get("api-version")
        if not api_version:
            return wording.vault_error(400, "BadParameter", wording.MISSING_API_VERSION)
        if api_version not in wording.VAULT_API_VERSIONS:
            return wording.vault_error(400, "BadParameter", wording.bad_api_version(api_version))
        claims = self._authenticate(request, vault)
        if isinstance(claims, Response):
            return claims
        caller = f"appid={claims.get('appid')};oid={claims.get('oid')};iss={claims.get('iss')}"
        if not vault.public_network_access:
            message = wording.forbidden_by_connection(caller, vault.label)
            return wording.vault_error(403, "Forbidden", message, "ForbiddenByConnection")
        if not vault.firewall_allows(request.remote_addr):
            message = wording.forbidden_by_firewall(request.remote_addr, caller, vault.label)
            return wording.vault_error(403, "Forbidden", message, "ForbiddenByFirewall")
        operation = _route(request)
        if isinstance(operation, Response):
            return operation
        denial = self._authorize(vault, operation, str(claims.get("oid", "")), caller)
        if denial is not None:
            return denial
        return self._perform(request, vault, operation, api_version)

    # --- authentication ------------------------------------------------------------------------

    def _authenticate(self, request: Request, vault: Vault) -> dict[str, Any] | Response:
        header = request.header("Authorization") or ""
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return _unauthorized(vault, wording.NO_TOKEN)
        try:
            claims = self._verifier.claims(token)
        except TokenRejected as rejected:
            message = wording.UNKNOWN_SIGNING_KEY if rejected.unknown_key else wording.INVALID_TOKEN
            return _unauthorized(vault, message)
        cloud = vault.cloud
        audience = claims.get("aud")
        if audience not in (cloud.vault_audience, KEY_VAULT_APP_ID):
            message = wording.invalid_audience(cloud.vault_audience, str(audience))
            return _unauthorized(vault, message)
        issuer = claims.get("iss")
        expected = cloud.issuer(vault.tenant_id)
        if issuer not in (expected, cloud.v2_issuer(vault.tenant_id)):
            return _unauthorized(vault, wording.invalid_issuer(expected, str(issuer)))
        now = self._state.clock.now()
        expires, not_before = claims.get("exp"), claims.get("nbf", 0)
        if not isinstance(expires, int) or not isinstance(not_before, int):
            return _unauthorized(vault, wording.INVALID_TOKEN)
        if now > expires + CLOCK_SKEW_SECONDS:
            return _unauthorized(vault, wording.TOKEN_EXPIRED)
        if now < not_before - CLOCK_SKEW_SECONDS:
            return _unauthorized(vault, wording.TOKEN_NOT_YET_VALID)
        return claims

    # --- authorization -------------------------------------------------------------------------

    def _authorize(
        self, vault: Vault, operation: _Operation, principal: str, caller: str
    ) -> Response | None:
        if vault.permission_model == "access-policy":
            granted = vault.access_policies.get(principal.lower(), frozenset())
            if operation.permission in granted or "all" in granted:
                return None
            message = wording.forbidden_by_policy(caller, operation.permission, vault.label)
            return wording.vault_error(403, "Forbidden", message, "ForbiddenByPolicy")
        resource = vault.scope_path(operation.name if operation.kind != "list" else None)
        if self._state.rbac_allows(principal, operation.data_action, resource):
            return None
        message = wording.forbidden_by_rbac(caller, operation.data_action, resource, vault.label)
        return wording.vault_error(403, "Forbidden", message, "ForbiddenByRbac")

    # --- operations ----------------------------------------------------------------------------

    def _perform(
        self, request: Request, vault: Vault, operation: _Operation, api_version: str
    ) -> Response:
        state = self._state
        base = request.base_url
        if operation.kind == "list":
            return _page(request, base, api_version, _latest_items(state, vault), "/secrets")
        name = operation.name
        assert name is not None
        if operation.kind == "set":
            return self._set(request, vault, name, base, api_version)
        versions = state.versions(vault.name, name)
        found = find_version(versions, operation.version)
        if found is None:
            shown = f"{name}/{operation.version}" if operation.version else name
            return wording.vault_error(404, "SecretNotFound", wording.secret_not_found(shown))
        if operation.kind == "versions":
            items = [(v.version, v) for v in versions]
            return _page(request, base, api_version, items, f"/secrets/{found.name}/versions")
        if operation.kind == "get":
            if not found.enabled:
                message = wording.secret_disabled("get")
                return wording.vault_error(403, "Forbidden", message, "SecretDisabled")
            return json_response(200, _bundle(base, found, api_version, with_value=True))
        if operation.kind == "update":
            changes = _update_changes(request)
            if isinstance(changes, Response):
                return changes
            updated = state.update_version(vault.name, name, operation.version, changes)
            if updated is None:  # deleted meanwhile
                return wording.vault_error(404, "SecretNotFound", wording.secret_not_found(name))
            return json_response(200, _bundle(base, updated, api_version, with_value=False))
        removed = state.delete_secret(vault.name, name)
        if not removed:  # deleted meanwhile
            return wording.vault_error(404, "SecretNotFound", wording.secret_not_found(name))
        return json_response(
            200, _deleted_bundle(base, removed[-1], api_version, state.clock.now())
        )

    def _set(
        self, request: Request, vault: Vault, name: str, base: str, api_version: str
    ) -> Response:
        body = _json_body(request)
        if isinstance(body, Response):
            return body
        value = body.get("value")
        if not isinstance(value, str):
            return _bad_parameter("Property 'value' is required and must be a string.")
        fields = _attribute_fields(body)
        if isinstance(fields, Response):
            return fields
        added = self._state.add_version(vault.name, name, SecretValue(value), **fields)
        return json_response(200, _bundle(base, added, api_version, with_value=True))


def _route(request: Request) -> _Operation | Response:
    parts = [p for p in request.path.split("/") if p]
    if not parts or parts[0] != "secrets" or len(parts) > 3:
        return wording.vault_error(404, "NotFound", "The requested resource was not found.")
    if len(parts) == 1:
        shape = "list"
    elif len(parts) == 2:
        shape = "secret"
    else:
        shape = "versions" if parts[2] == "versions" else "version"
    name = parts[1] if len(parts) > 1 else None
    if name is not None and not SECRET_NAME.fullmatch(name):
        return _bad_parameter(f"The request URI contains an invalid name: {name}")
    entry = _OPERATIONS.get((shape, request.method))
    if entry is None:
        return wording.vault_error(
            405,
            "MethodNotAllowed",
            f"The requested resource does not support http method '{request.method}'.",
        )
    kind, action, permission = entry
    version = parts[2] if shape == "version" else None
    return _Operation(kind, name, version, action, permission)


def _unauthorized(vault: Vault, message: str) -> Response:
    """401 with Key Vault's challenge naming the vault's tenant and the cloud's audience."""
    cloud = vault.cloud
    challenge = (
        f'Bearer authorization="https://{cloud.login_host}/{vault.tenant_id}", '
        f'resource="{cloud.vault_audience}"'
    )
    return wording.vault_error(
        401, "Unauthorized", message, headers=(("WWW-Authenticate", challenge),)
    )


def _bad_parameter(message: str) -> Response:
    return wording.vault_error(400, "BadParameter", message)


def _service_headers(request: Request, vault: Vault) -> tuple[tuple[str, str], ...]:
    address = request.remote_addr
    try:
        v6 = ipaddress.ip_address(address).version == 6
    except ValueError:
        v6 = False
    family = (
        "conn_type=Ipv6;addr={};act_addr_fam=InterNetworkV6;"
        if v6
        else ("conn_type=Ipv4;addr={};act_addr_fam=InterNetwork;")
    )
    return (
        ("Cache-Control", "no-cache"),
        ("x-ms-request-id", str(uuid.uuid4())),
        ("x-ms-keyvault-service-version", SERVICE_VERSION),
        ("x-ms-keyvault-network-info", family.format(address)),
        ("x-ms-keyvault-region", vault.location),
        ("X-Content-Type-Options", "nosniff"),
    )


# --- bodies ------------------------------------------------------------------------------------


def _attributes(version: SecretVersion, api_version: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {"enabled": version.enabled}
    if version.not_before is not None:
        attributes["nbf"] = version.not_before
    if version.expires is not None:
        attributes["exp"] = version.expires
    attributes["created"] = version.created
    attributes["updated"] = version.updated
    attributes["recoveryLevel"] = "Recoverable+Purgeable"
    if api_version not in ("2016-10-01", "7.0"):
        attributes["recoverableDays"] = 90
    return attributes


def _item(
    base: str, version: SecretVersion, api_version: str, *, versioned: bool
) -> dict[str, Any]:
    """A SecretItem (list entry): no value."""
    suffix = f"/{version.version}" if versioned else ""
    item: dict[str, Any] = {"id": f"{base}/secrets/{version.name}{suffix}"}
    if version.content_type is not None:
        item["contentType"] = version.content_type
    item["attributes"] = _attributes(version, api_version)
    if version.tags:
        item["tags"] = dict(version.tags)
    return item


def _bundle(
    base: str, version: SecretVersion, api_version: str, *, with_value: bool
) -> dict[str, Any]:
    """A SecretBundle, in the member order Key Vault sends."""
    bundle: dict[str, Any] = {"value": version.value.reveal()} if with_value else {}
    if version.content_type is not None:
        bundle["contentType"] = version.content_type
    bundle["id"] = f"{base}/secrets/{version.name}/{version.version}"
    bundle["attributes"] = _attributes(version, api_version)
    if version.tags:
        bundle["tags"] = dict(version.tags)
    return bundle


def _deleted_bundle(
    base: str, version: SecretVersion, api_version: str, now: float
) -> dict[str, Any]:
    """A DeletedSecretBundle (what DELETE answers): the latest version's data, no value."""
    return {
        "recoveryId": f"{base}/deletedsecrets/{version.name}",
        "deletedDate": int(now),
        "scheduledPurgeDate": int(now) + _RETENTION_SECONDS,
        **_bundle(base, version, api_version, with_value=False),
    }


def _latest_items(state: State, vault: Vault) -> list[tuple[str, SecretVersion]]:
    secrets = state.secrets.get(vault.name.lower(), {})
    return [(key, versions[-1]) for key, versions in list(secrets.items()) if versions]


def _page(
    request: Request,
    base: str,
    api_version: str,
    keyed: Iterable[tuple[str, SecretVersion]],
    path: str,
) -> Response:
    """One page of a list, ordered by key, with an absolute ``nextLink`` if more remain."""
    raw_max = request.query.get("maxresults", str(_MAX_RESULTS))
    try:
        max_results = int(raw_max)
    except ValueError:
        max_results = 0
    if not 1 <= max_results <= _MAX_RESULTS:
        return _bad_parameter(f"The value of maxresults must be between 1 and {_MAX_RESULTS}.")
    marker = ""
    token = request.query.get("$skiptoken")
    if token:
        try:
            marker = str(
                json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))["NextMarker"]
            )
        except (ValueError, KeyError, TypeError, binascii.Error):
            return _bad_parameter("The $skiptoken is invalid.")
    remaining = sorted((k, v) for k, v in keyed if k > marker) if marker else sorted(keyed)
    page = remaining[:max_results]
    versioned = path.endswith("/versions")
    body: dict[str, Any] = {
        "value": [_item(base, v, api_version, versioned=versioned) for _, v in page],
        "nextLink": None,
    }
    if len(remaining) > max_results:
        next_marker = json.dumps({"NextMarker": page[-1][0], "TargetLocation": 0})
        skiptoken = base64.urlsafe_b64encode(next_marker.encode()).decode().rstrip("=")
        body["nextLink"] = (
            f"{base}{path}?api-version={api_version}&$skiptoken={skiptoken}&maxresults={max_results}"
        )
    return json_response(200, body)


def _json_body(request: Request) -> dict[str, Any] | Response:
    raw = request.body()
    if raw is None:
        return _bad_parameter("The request body is too large.")
    try:
        body = json.loads(raw)
    except ValueError:
        return _bad_parameter("The request body is not valid JSON.")
    if not isinstance(body, dict):
        return _bad_parameter("The request body must be a JSON object.")
    return body


def _attribute_fields(body: dict[str, Any]) -> dict[str, Any] | Response:
    """Keyword arguments for :meth:`State.add_version` from a SecretSetParameters body."""
    fields: dict[str, Any] = {}
    if "contentType" in body:
        if not isinstance(body["contentType"], str | None):
            return _bad_parameter("Property 'contentType' must be a string.")
        fields["content_type"] = body["contentType"]
    if "tags" in body:
        tags = body["tags"]
        if tags is not None and not (
            isinstance(tags, dict) and all(isinstance(v, str) for v in tags.values())
        ):
            return _bad_parameter("Property 'tags' must map names to strings.")
        fields["tags"] = tags
    attributes = body.get("attributes") or {}
    if not isinstance(attributes, dict):
        return _bad_parameter("Property 'attributes' must be an object.")
    for wire, attribute, kind in (
        ("enabled", "enabled", bool),
        ("nbf", "not_before", int),
        ("exp", "expires", int),
    ):
        if wire in attributes:
            value = attributes[wire]
            if value is None and kind is int:
                fields[attribute] = None
            elif type(value) is not kind:
                return _bad_parameter(f"Property 'attributes.{wire}' has an invalid value.")
            else:
                fields[attribute] = value
    return fields


def _update_changes(request: Request) -> dict[str, Any] | Response:
    body = _json_body(request)
    if isinstance(body, Response):
        return body
    return _attribute_fields(body)
