"""The Instance Metadata Service of the emulated VM (``http://169.254.169.254/metadata/...``).

Choices where the real service's answer is unpublished (see :mod:`.wording`): a request carrying
``X-Forwarded-For`` gets 400 ``invalid_request`` "Request contains X-Forwarded-For header"
(IMDS refuses proxied requests); a repeated query parameter gets 400 ``invalid_request``; the
token endpoint answers other methods with 405 ``method_not_allowed``.
"""

from __future__ import annotations

import email.utils
import json
import threading
from dataclasses import replace
from typing import Any

from . import wording
from .clouds import is_known_resource
from .faults import Faults
from .signing import SigningKey
from .state import Identity, State
from .tokens import managed_identity_claims
from .wsgi import Request, Response, json_response, text_response

TOKEN_PATH = "/metadata/identity/oauth2/token"
API_VERSIONS = (
    "2017-03-01", "2017-04-02", "2017-08-01", "2017-10-01", "2017-12-01", "2018-02-01",
    "2018-04-02", "2018-10-01", "2019-02-01", "2019-03-11", "2019-04-30", "2019-06-01",
    "2019-06-04", "2019-08-01", "2019-08-15", "2019-11-01", "2020-06-01", "2020-07-15",
    "2020-09-01", "2020-10-01", "2020-12-01", "2021-01-01", "2021-02-01", "2021-03-01",
    "2021-05-01", "2021-08-01", "2021-10-01", "2021-11-01", "2021-11-15", "2021-12-13",
    "2022-02-01", "2022-03-01", "2022-07-01", "2022-08-01", "2022-11-01", "2023-07-01",
)  # fmt: skip
_EVENTS_API_VERSIONS = frozenset(
    {"2017-08-01", "2017-11-01", "2019-01-01", "2019-04-01", "2019-08-01", "2020-07-01"}
)
"""Scheduled Events has its own versions, not listed by ``/metadata/versions``."""
_TOKEN_API_VERSIONS = frozenset(v for v in API_VERSIONS if v >= "2018-02-01")
_NEWEST = sorted(API_VERSIONS, reverse=True)[:3]
_SELECTORS = ("client_id", "object_id", "msi_res_id", "mi_res_id")
_REUSE_MARGIN = 300.0
"""IMDS hands out its cached token until it is this close (seconds) to expiry."""


class ImdsApp:
    """Answers IMDS paths for the VM in :class:`State`, signing tokens with ``key``; ``faults``
    may plan tokens for another audience than the one requested."""

    def __init__(
        self, state: State, key: SigningKey, token_lifetime: float, faults: Faults | None = None
    ) -> None:
        self._state = state
        self._key = key
        self.token_lifetime = token_lifetime
        self._faults = faults or Faults()
        self._tokens: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        self._tokens_lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        if path == TOKEN_PATH:
            return self._token(request)
        refusal = self._refuse_instance_request(request, needs_version=path != "/metadata/versions")
        if refusal is not None:
            return refusal
        if path == "/metadata/versions":
            return json_response(200, {"apiVersions": list(API_VERSIONS)})
        if path == "/metadata/identity/info":
            state = self._state
            return json_response(
                200, {"tenantId": state.tenant_id, "subscriptionId": state.vm.subscription_id}
            )
        if path == "/metadata/scheduledevents":
            return self._scheduled_events(request)
        if path == "/metadata/instance" or path.startswith("/metadata/instance/"):
            return self._instance(request, path)
        return json_response(404, {"error": "Not found"})

    # --- identity token ------------------------------------------------------------------------

    def _token(self, request: Request) -> Response:
        if request.method != "GET":
            return wording.imds_identity_error(
                "The request method is not supported", "method_not_allowed", 405
            )
        if request.header("Metadata") != "true":
            return wording.imds_identity_error(wording.IMDS_METADATA_HEADER)
        if request.header("X-Forwarded-For") is not None:
            return wording.imds_identity_error(wording.IMDS_FORWARDED)
        repeated = request.repeated_parameter()
        if repeated is not None:
            return wording.imds_identity_error(f"Query parameter '{repeated}' is repeated")
        query = request.query
        version = query.get("api-version")
        if not version:
            return wording.imds_identity_error(wording.IMDS_MISSING_API_VERSION)
        if version not in _TOKEN_API_VERSIONS:
            return wording.imds_identity_error(f"Invalid api-version '{version}'")
        resource = query.get("resource")
        if not resource:
            return wording.imds_identity_error(wording.IMDS_MISSING_RESOURCE)
        selectors = [name for name in _SELECTORS if name in query]
        if len(selectors) > 1:
            return wording.imds_identity_error(
                "Only one of client_id, object_id or msi_res_id may be specified"
            )
        identity = self._select_identity(selectors[0], query[selectors[0]]) if selectors else None
        if isinstance(identity, Response):
            return identity
        if identity is None:
            identity = self._default_identity()
            if isinstance(identity, Response):
                return identity
        if not is_known_resource(resource):
            return wording.imds_invalid_resource(resource, self._state.tenant_id, self._now())
        resource = self._faults.take_audience() or resource
        token, claims = self._issue(identity, resource, bypass=query.get("bypass_cache") == "true")
        now = int(self._now())
        lifetime = str(max(claims["exp"] - now, 0))
        return json_response(
            200,
            {
                "access_token": token,
                "client_id": identity.client_id,
                "expires_in": lifetime,
                "expires_on": str(claims["exp"]),
                "ext_expires_in": lifetime,
                "not_before": str(claims["nbf"]),
                "resource": resource,
                "token_type": "Bearer",
            },
        )

    def _select_identity(self, selector: str, value: str) -> Identity | Response:
        wanted = value.lower()
        for identity in self._state.identities():
            field = {
                "client_id": identity.client_id,
                "object_id": identity.object_id,
            }.get(selector, identity.resource_id)
            if field.lower() == wanted:
                return identity
        return wording.imds_identity_error(wording.IMDS_IDENTITY_NOT_FOUND)

    def _default_identity(self) -> Identity | Response:
        """System-assigned if present, else the only user-assigned one (IMDS's rule)."""
        state = self._state
        if state.system_identity is not None:
            return state.system_identity
        users = list(state.user_identities.values())
        if len(users) == 1:
            return users[0]
        if users:
            return wording.imds_identity_error(wording.IMDS_MULTIPLE_IDENTITIES)
        return wording.imds_identity_error(wording.IMDS_IDENTITY_NOT_FOUND)

    def _issue(
        self, identity: Identity, resource: str, *, bypass: bool
    ) -> tuple[str, dict[str, Any]]:
        """A cached token while it has a while to live, as IMDS does; a fresh one otherwise."""
        key = (identity.object_id, resource)
        now = self._now()
        cached = None if bypass else self._tokens.get(key)
        if cached is not None and cached[1]["iat"] <= now < cached[1]["exp"] - _REUSE_MARGIN:
            return cached
        claims = managed_identity_claims(
            identity=identity,
            tenant_id=self._state.tenant_id,
            cloud=self._state.vm.cloud,
            audience=resource,
            issued_at=now,
            lifetime=self.token_lifetime,
        )
        issued = (self._key.sign(claims), claims)
        with self._tokens_lock:
            self._tokens[key] = issued
        return issued

    def forget_tokens(self) -> None:
        """Drop cached tokens (an identity changed, so its old tokens must not be handed out)."""
        with self._tokens_lock:
            self._tokens.clear()

    # --- other endpoints -----------------------------------------------------------------------

    def _refuse_instance_request(self, request: Request, *, needs_version: bool) -> Response | None:
        if request.header("Metadata") != "true":
            return wording.imds_instance_error(wording.IMDS_INSTANCE_METADATA_HEADER)
        if request.header("X-Forwarded-For") is not None:
            return wording.imds_instance_error(wording.IMDS_INSTANCE_FORWARDED)
        if request.repeated_parameter() is not None:
            return wording.imds_instance_error(wording.IMDS_INSTANCE_BAD_API_VERSION, _NEWEST)
        if not needs_version:
            return None
        version = request.query.get("api-version")
        if not version:
            return wording.imds_instance_error(wording.IMDS_INSTANCE_NO_API_VERSION, _NEWEST)
        events = request.path.rstrip("/") == "/metadata/scheduledevents"
        if version not in API_VERSIONS and not (events and version in _EVENTS_API_VERSIONS):
            return wording.imds_instance_error(wording.IMDS_INSTANCE_BAD_API_VERSION, _NEWEST)
        return None

    def _instance(self, request: Request, path: str) -> Response:
        if request.method != "GET":
            return json_response(405, {"error": "Method not allowed"})
        node: Any = self.instance_document()
        for part in path.split("/")[3:]:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return json_response(404, {"error": "Not found"})
        if request.query.get("format") == "text":
            text = node if isinstance(node, str) else json.dumps(node)
            return text_response(200, text)
        if not isinstance(node, dict):
            return json_response(400, {"error": "Bad request. Use format=text for a leaf value"})
        return json_response(200, node)

    def instance_document(self) -> dict[str, Any]:
        """``/metadata/instance``: compute and network sections shaped as in the 2023-07-01 spec."""
        vm = self._state.vm
        addresses = [{"privateIpAddress": vm.private_ip, "publicIpAddress": vm.public_ip}]
        return {
            "compute": {
                "azEnvironment": vm.cloud.name,
                "isHostCompatibilityLayerVm": "false",
                "location": vm.location,
                "name": vm.name,
                "offer": "",
                "osType": vm.os_type,
                "placementGroupId": "",
                "platformFaultDomain": "0",
                "platformUpdateDomain": "0",
                "priority": "",
                "provider": "Microsoft.Compute",
                "publisher": "",
                "resourceGroupName": vm.resource_group,
                "resourceId": vm.resource_id,
                "sku": "",
                "subscriptionId": vm.subscription_id,
                "tags": "",
                "tagsList": [],
                "version": "",
                "vmId": vm.vm_id,
                "vmScaleSetName": "",
                "vmSize": vm.vm_size,
                "zone": "",
            },
            "network": {
                "interface": [
                    {
                        "ipv4": {
                            "ipAddress": addresses,
                            "subnet": [{"address": "10.0.0.0", "prefix": "24"}],
                        },
                        "ipv6": {"ipAddress": []},
                        "macAddress": vm.mac_address,
                    }
                ]
            },
        }

    def _scheduled_events(self, request: Request) -> Response:
        state = self._state
        if request.method == "POST":
            try:
                body = json.loads(request.body() or b"")
                wanted = {item["EventId"] for item in body["StartRequests"]}
            except (ValueError, TypeError, KeyError):
                return json_response(400, {"error": "Bad request. Invalid StartRequests body"})
            with state.lock:
                for event_id in wanted & state.scheduled_events.keys():
                    event = state.scheduled_events[event_id]
                    state.scheduled_events[event_id] = replace(event, status="Started")
                state.events_incarnation += 1
            return Response(200, (), b"")
        if request.method != "GET":
            return json_response(405, {"error": "Method not allowed"})
        events = [
            {
                "EventId": e.event_id,
                "EventType": e.event_type,
                "ResourceType": "VirtualMachine",
                "Resources": [state.vm.name],
                "EventStatus": e.status,
                "NotBefore": e.not_before,
                "Description": e.description,
                "EventSource": e.event_source,
                "DurationInSeconds": e.duration_seconds,
            }
            for e in state.scheduled_events.values()
        ]
        return json_response(
            200, {"DocumentIncarnation": state.events_incarnation, "Events": events}
        )

    def _now(self) -> float:
        return self._state.clock.now()


def http_date(timestamp: float) -> str:
    """``Mon, 19 Sep 2016 18:29:47 GMT``: how Scheduled Events writes NotBefore."""
    return email.utils.formatdate(timestamp, usegmt=True)
