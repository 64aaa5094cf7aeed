"""The Instance Metadata Service client: managed identity tokens and what the VM knows of itself.

It talks to IMDS directly (never through a proxy: ``trust_env=False``), with ``Metadata: true``
and without ``X-Forwarded-For``; retries what IMDS says to retry within one time budget; and turns
every other outcome into a :class:`~pytest_kvmi.diagnosis.KvmiError` with a named diagnosis.
"""

from __future__ import annotations

import logging
import ssl
import time
from dataclasses import dataclass
from typing import Any

import httpx

from pytest_kvmi import imds_classify
from pytest_kvmi.answers import Answer, Failure, whole_number
from pytest_kvmi.diagnosis import Code, Diagnosis, Facts, KvmiError, diagnose
from pytest_kvmi.redact import Redacted
from pytest_kvmi.retry import Backoff, Clock, Sleep
from pytest_kvmi.service import Service
from pytest_kvmi.settings import Settings
from pytest_kvmi.token import AccessToken

log = logging.getLogger("pytest_kvmi.imds")

TOKEN_PATH = "/metadata/identity/oauth2/token"
TOKEN_API_VERSION = "2018-02-01"
INSTANCE_PATH = "/metadata/instance"
INSTANCE_API_VERSION = "2021-02-01"
IDENTITY_INFO_PATH = "/metadata/identity/info"
IDENTITY_INFO_API_VERSION = "2018-02-01"
CONNECT_TIMEOUT_CAP = 1.0
"""IMDS is link-local: a connection that takes longer than this will not come."""


@dataclass(frozen=True)
class InstanceInfo:
    """The VM as instance metadata describes it (the ``compute`` section)."""

    name: str
    resource_group: str
    subscription_id: str
    resource_id: str
    location: str
    vm_id: str
    az_environment: str

    def facts(self) -> Facts:
        return Facts(
            vm_name=self.name,
            resource_group=self.resource_group,
            subscription_id=self.subscription_id,
        )


@dataclass(frozen=True)
class IdentityInfo:
    """The tenant (and subscription) of the VM's identities."""

    tenant_id: str
    subscription_id: str | None


def _token_from(answer: Answer, facts: Facts) -> AccessToken | Diagnosis:
    """The token in a 200 body, or why there is none. Returns rather than raises, so no frame
    holding the parsed body is ever part of a traceback."""
    body = answer.json_object()
    if body is None:
        return imds_classify.classify_error(answer, facts)
    raw = Redacted(body.pop("access_token", None))
    if not isinstance(raw.reveal(), str):
        return diagnose(
            Code.TOKEN_MALFORMED, facts.merge(Facts(detail="no access_token in the answer"))
        )
    try:
        return AccessToken.parse(
            raw, expires_on=whole_number(body.get("expires_on")), resource=body.get("resource")
        )
    except KvmiError as error:
        return error.diagnosis


def _tls_context(endpoint: str) -> ssl.SSLContext | bool:
    """httpx's default CAs for an https endpoint; for IMDS's plain http, a context that trusts
    nothing and is never used, since httpx would otherwise load certifi's bundle (tens of ms)
    for every client."""
    if endpoint.lower().startswith("https:"):
        return True
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


class ImdsClient(Service):
    """Asks IMDS for tokens and metadata; one connection pool, closed by :meth:`close`."""

    name = "IMDS"

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self._settings = settings
        timeout = httpx.Timeout(
            settings.timeout, connect=min(settings.timeout, CONNECT_TIMEOUT_CAP)
        )
        http = httpx.Client(
            base_url=settings.imds_endpoint,
            headers={"Metadata": "true"},
            timeout=timeout,
            trust_env=False,
            follow_redirects=False,
            transport=transport,
            verify=_tls_context(settings.imds_endpoint),
        )
        super().__init__(http, Backoff(settings.retry_budget, sleep=sleep, clock=clock), log)

    def facts(self) -> Facts:
        return Facts(
            imds_endpoint=self._settings.imds_endpoint,
            identity=self._settings.identity.describe(),
            expected_audience=self._settings.cloud.audience,
        )

    def token(self, resource: str | None = None) -> AccessToken:
        """A token for ``resource`` (the vault audience of the cloud by default)."""
        resource = resource or self._settings.cloud.audience
        params = {
            "api-version": TOKEN_API_VERSION,
            "resource": resource,
            **self._settings.identity.query(),
        }
        outcome = _token_from(self._get(TOKEN_PATH, params), self.facts())
        if isinstance(outcome, Diagnosis):
            raise KvmiError(outcome)
        return outcome

    def instance(self) -> InstanceInfo:
        """The VM's name, resource group, subscription and resource id."""
        compute = self._metadata(INSTANCE_PATH, INSTANCE_API_VERSION).get("compute")
        if not isinstance(compute, dict):
            raise self._unexpected("instance metadata without a compute section")
        fields = {
            "name": "name",
            "resource_group": "resourceGroupName",
            "subscription_id": "subscriptionId",
            "resource_id": "resourceId",
            "location": "location",
            "vm_id": "vmId",
            "az_environment": "azEnvironment",
        }
        return InstanceInfo(**{key: str(compute.get(wire, "")) for key, wire in fields.items()})

    def identity_info(self) -> IdentityInfo:
        """The tenant of the VM's managed identities."""
        info = self._metadata(IDENTITY_INFO_PATH, IDENTITY_INFO_API_VERSION)
        tenant = info.get("tenantId")
        if not isinstance(tenant, str):
            raise self._unexpected("identity info without a tenantId")
        subscription = info.get("subscriptionId")
        return IdentityInfo(tenant, subscription if isinstance(subscription, str) else None)

    def _metadata(self, path: str, api_version: str) -> dict[str, Any]:
        answer = self._get(path, {"api-version": api_version})
        body = answer.json_object()
        if body is None:
            raise KvmiError(imds_classify.classify_error(answer, self.facts()))
        return body

    def _unexpected(self, detail: str) -> KvmiError:
        return KvmiError.of(Code.UNEXPECTED_RESPONSE, self.facts().merge(Facts(detail=detail)))

    def _get(self, path: str, params: dict[str, str]) -> Answer:
        """A 200 answer from IMDS, retried per its guidance, or the diagnosis as an error."""
        request = self._http.build_request("GET", path, params=params)
        outcome = self._fetch(request, imds_classify.should_retry)
        if isinstance(outcome, Failure):
            raise KvmiError(imds_classify.classify_failure(outcome, self.facts()))
        if outcome.status != 200:
            raise KvmiError(imds_classify.classify_error(outcome, self.facts()))
        return outcome
