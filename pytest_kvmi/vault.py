"""The Key Vault data-plane client: the vault's challenge, and secrets read with a token.

A bearer token is only fetched and sent after two gates: the vault URL passed the settings'
safety rule (https under the cloud's vault suffix, or loopback), and the vault's challenge named
a Key Vault audience. Redirects are never followed. Secret values are kept redacted.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from pytest_kvmi import vault_classify
from pytest_kvmi.answers import Answer, Failure, whole_number
from pytest_kvmi.challenge import Challenge, parse_challenge
from pytest_kvmi.diagnosis import Code, Diagnosis, Facts, KvmiError, diagnose
from pytest_kvmi.redact import Redacted
from pytest_kvmi.retry import Backoff, Clock, Sleep
from pytest_kvmi.service import Service
from pytest_kvmi.settings import (
    SecretRef,
    Settings,
    Vault,
    parse_secret,
    parse_vault,
)
from pytest_kvmi.token import AccessToken

log = logging.getLogger("pytest_kvmi.vault")

API_VERSION = "7.5"
"""Supported by every Key Vault of the public and sovereign clouds."""
DEFAULT_POOL_SIZE = 20
"""Connections kept open for reuse (httpx's default); concurrent readers need one each."""

TokenSource = Callable[[], AccessToken]


@dataclass(frozen=True)
class SecretBundle:
    """A secret as Key Vault returned it; ``value`` stays redacted until revealed."""

    id: str
    name: str
    version: str
    value: Redacted[str]
    content_type: str | None = None
    enabled: bool | None = None
    not_before: int | None = None
    expires: int | None = None
    created: int | None = None
    updated: int | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_answer(cls, answer: Answer) -> SecretBundle | None:
        """The bundle in a 200 answer, or None if malformed. The value is wrapped as soon as it
        is parsed; this returns rather than raises, so its frame is never in a traceback."""
        body = answer.json_object() or {}
        value: Redacted[str] = Redacted(body.pop("value", None))
        secret_id = body.get("id")
        found = body.get("attributes")
        attributes: Mapping[str, Any] = found if isinstance(found, dict) else {}
        if not isinstance(secret_id, str) or not isinstance(value.reveal(), str):
            return None
        segments = secret_id.rstrip("/").split("/")
        name, version = (segments[-2], segments[-1]) if len(segments) >= 6 else (segments[-1], "")
        tags = body.get("tags")

        enabled = attributes.get("enabled")
        content_type = body.get("contentType")
        return cls(
            id=secret_id,
            name=name,
            version=version,
            value=value,
            content_type=content_type if isinstance(content_type, str) else None,
            enabled=enabled if isinstance(enabled, bool) else None,
            not_before=whole_number(attributes.get("nbf")),
            expires=whole_number(attributes.get("exp")),
            created=whole_number(attributes.get("created")),
            updated=whole_number(attributes.get("updated")),
            tags={str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {},
        )


class VaultClient(Service):
    """Reads secrets from one vault over one connection pool; close with :meth:`close`."""

    name = "Key Vault"

    def __init__(
        self,
        settings: Settings,
        tokens: TokenSource,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        api_version: str = API_VERSION,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> None:
        if settings.vault is None:
            raise ValueError("VaultClient needs settings with a vault")
        # Re-check here too: a Vault built by hand must pass the same token-safety rule.
        self.vault: Vault = parse_vault(settings.vault.url, settings.vault.cloud)
        self._cloud = settings.cloud
        self._tokens = tokens
        self._api_version = api_version
        self._challenge: Challenge | None = None
        self.pool_size = pool_size
        http = httpx.Client(
            base_url=self.vault.url,
            timeout=settings.timeout,
            # A context, not the path: httpx 0.28 deprecates verify=<path> with a warning.
            verify=ssl.create_default_context(cafile=settings.ca_bundle)
            if settings.ca_bundle
            else True,
            trust_env=not self.vault.is_loopback,
            follow_redirects=False,
            transport=transport,
            # httpx's defaults (100 open, 20 kept alive), unless more are asked to be kept.
            limits=httpx.Limits(
                max_connections=max(pool_size, 100), max_keepalive_connections=pool_size
            ),
        )
        super().__init__(http, Backoff(settings.retry_budget, sleep=sleep, clock=clock), log)

    def facts(self) -> Facts:
        return Facts(
            vault_name=self.vault.name,
            vault_host=self.vault.host,
            expected_audience=self._cloud.audience,
            vault_tenant_id=self._challenge.tenant_id if self._challenge else None,
        )

    def challenge(self) -> Challenge:
        """The vault's 401 challenge (asked once, without a token): its tenant and audience."""
        if self._challenge is None:
            answer = self._send("GET", "/secrets", {"maxresults": "1"}, None)
            found = parse_challenge(answer.headers.get("www-authenticate"))
            if answer.status != 401 or found is None:
                raise KvmiError(self._unchallenged(answer))
            self._challenge = self._checked(found)
        return self._challenge

    def get_secret(self, secret: SecretRef | str, token: AccessToken | None = None) -> SecretBundle:
        """The secret (latest, or the pinned version), read with ``token`` or a fresh one."""
        ref = parse_secret(secret) if isinstance(secret, str) else secret
        self.challenge()
        token = token or self._tokens()
        answer = self._send("GET", ref.path, {}, token)
        facts = token.facts().merge(self.facts()).merge(Facts(secret_name=ref.name))
        diagnosis = vault_classify.classify_answer(answer, facts)
        if not diagnosis.ok:
            raise KvmiError(diagnosis)
        bundle = SecretBundle.from_answer(answer)
        if bundle is None:
            detail = "HTTP 200 without a secret bundle"
            raise KvmiError.of(Code.UNEXPECTED_RESPONSE, facts.merge(Facts(detail=detail)))
        return bundle

    def _checked(self, found: Challenge) -> Challenge:
        """Refuse a challenge that would make us request any token but the vault's own."""
        audience = found.audience
        if audience != self._cloud.audience:  # the cloud's is always a Key Vault audience
            detail = (
                f"the vault's challenge asks for a token for {audience!r}, not the "
                f"{self._cloud.name} cloud's Key Vault audience {self._cloud.audience}; "
                "no token was requested or sent"
            )
            raise KvmiError.of(Code.UNEXPECTED_RESPONSE, self.facts().merge(Facts(detail=detail)))
        return found

    def _unchallenged(self, answer: Answer) -> Diagnosis:
        diagnosis = vault_classify.classify_answer(answer, self.facts())
        if diagnosis.ok or diagnosis.code is Code.UNAUTHORIZED:
            detail = (
                f"HTTP {answer.status} without a Bearer challenge to an unauthenticated request"
            )
            return diagnose(Code.UNEXPECTED_RESPONSE, self.facts().merge(Facts(detail=detail)))
        return diagnosis

    def _send(
        self, method: str, path: str, params: Mapping[str, str], token: AccessToken | None
    ) -> Answer:
        """One request, retried per azure-core's policy within the budget; a transport failure
        raises its diagnosis."""
        request = self._http.build_request(
            method,
            path,
            params={"api-version": self._api_version, **params},
            headers=httpx.Headers({"Authorization": f"Bearer {token.bearer()}"}) if token else None,
        )
        outcome = self._fetch(request, vault_classify.should_retry)
        if isinstance(outcome, Failure):
            raise KvmiError(vault_classify.classify_failure(outcome, self.facts()))
        return outcome
