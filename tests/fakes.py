"""Test doubles: tokens, a clock that moves when slept on, and recording mock transports."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt

from pytest_kvmi.settings import Settings
from pytest_kvmi.token import AccessToken

CAPTURES = Path(__file__).parent / "data" / "captures"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OBJECT_ID = "5fbc64bb-ecd9-4b44-9c44-03c314cf90c0"
CLIENT_ID = "2716e189-2dd0-421f-9979-ed43cee39dc1"
VM_MIRID = (
    "/subscriptions/42edd95d-ae8d-41c1-ac55-40bf336687b4/resourcegroups/rg"
    "/providers/Microsoft.Compute/virtualMachines/vm1"
)
CHALLENGE = (
    f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
    'resource="https://vault.azure.net"'
)
_HMAC_KEY = "test-only-hmac-key-that-is-long-enough-for-pyjwt"


def load_capture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CAPTURES / name).read_text())
    return data


def capture_names(service: str) -> list[str]:
    return sorted(
        p.name for p in CAPTURES.glob("*.json") if load_capture(p.name)["service"] == service
    )


def capture_response(capture: dict[str, Any]) -> httpx.Response:
    return httpx.Response(
        capture["status"], headers=capture["headers"], content=capture["body"].encode()
    )


def make_jwt(**overrides: Any) -> str:
    """A JWT with managed-identity claims (signature irrelevant: the clients decode unverified)."""
    now = int(time.time())
    claims = {
        "aud": "https://vault.azure.net",
        "iss": f"https://sts.windows.net/{TENANT}/",
        "tid": TENANT,
        "oid": OBJECT_ID,
        "appid": CLIENT_ID,
        "xms_mirid": VM_MIRID,
        "idtyp": "app",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        **overrides,
    }
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, _HMAC_KEY)


def imds_token_body(raw: str | None = None, **extra: Any) -> dict[str, Any]:
    """IMDS's 200 body: every number a string."""
    now = int(time.time())
    body = {
        "access_token": raw if raw is not None else make_jwt(),
        "client_id": CLIENT_ID,
        "expires_in": "86399",
        "expires_on": str(now + 86399),
        "ext_expires_in": "86399",
        "not_before": str(now),
        "resource": "https://vault.azure.net",
        "token_type": "Bearer",
    }
    body.update(extra)
    return body


@dataclass
class FakeClock:
    """A monotonic clock that only moves when slept on, recording every sleep."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class Recorder:
    """A MockTransport that answers from a handler and keeps every request it saw."""

    handler: Handler
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def sequence(*responses: httpx.Response | Exception) -> Handler:
    """A handler answering with each item in turn (raising the exceptions), then the last."""
    items: Iterator[httpx.Response | Exception] = iter(responses)
    last: list[httpx.Response | Exception] = [responses[-1]]

    def handler(request: httpx.Request) -> httpx.Response:
        item = next(items, last[0])
        last[0] = item
        if isinstance(item, Exception):
            raise item
        return item

    return handler


def vault_handler(answer: Handler) -> Handler:
    """A vault that challenges unauthenticated requests and answers the rest with ``answer``."""

    def handler(request: httpx.Request) -> httpx.Response:
        if "authorization" not in request.headers:
            return capture_response(load_capture("kv-401-challenge.json"))
        return answer(request)

    return handler


def static_tokens(raw: str | None = None) -> Callable[[], AccessToken]:
    token = AccessToken.parse(raw or make_jwt())
    return lambda: token


def settings(**kwargs: Any) -> Settings:
    kwargs.setdefault("env", {})
    return Settings.build(**kwargs)
