"""The IMDS client: what it sends, what it retries, and how fast it gives up."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from pytest_kvmi.diagnosis import Code, KvmiError
from pytest_kvmi.imds import ImdsClient
from pytest_kvmi.token import SYSTEM_ASSIGNED
from tests.fakes import (
    CLIENT_ID,
    OBJECT_ID,
    TENANT,
    FakeClock,
    Recorder,
    imds_token_body,
    sequence,
    settings,
)
from tests.loopback import closed_port_url, json_server, silent_server

GUID = "11111111-2222-3333-4444-555555555555"


def json_response(status: int, body: object, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def imds(handler: Recorder, clock: FakeClock | None = None, **kwargs: object) -> ImdsClient:
    clock = clock or FakeClock()
    return ImdsClient(
        settings(**kwargs), transport=handler.transport, sleep=clock.sleep, clock=clock
    )


def test_token_request_shape_and_parsing() -> None:
    recorder = Recorder(lambda request: json_response(200, imds_token_body()))
    with imds(recorder, client_id=GUID) as client:
        token = client.token()
    (request,) = recorder.requests
    assert request.method == "GET"
    assert request.url.path == "/metadata/identity/oauth2/token"
    assert dict(request.url.params) == {
        "api-version": "2018-02-01",
        "resource": "https://vault.azure.net",
        "client_id": GUID,
    }
    assert request.headers["Metadata"] == "true"
    assert "x-forwarded-for" not in request.headers
    assert str(request.url).startswith("http://169.254.169.254/")
    assert token.claims.oid == OBJECT_ID
    assert token.claims.appid == CLIENT_ID
    assert token.claims.tenant_id == TENANT
    assert token.claims.kind == SYSTEM_ASSIGNED
    assert isinstance(token.expires_on, int)
    assert token.resource == "https://vault.azure.net"


def test_sovereign_cloud_asks_for_its_audience() -> None:
    recorder = Recorder(lambda request: json_response(200, imds_token_body()))
    with imds(recorder, cloud="usgov") as client:
        client.token()
    assert recorder.requests[0].url.params["resource"] == "https://vault.usgovcloudapi.net"


def test_410_three_times_then_200_passes_within_the_budget() -> None:
    clock = FakeClock()
    recorder = Recorder(sequence(*[httpx.Response(410)] * 3, json_response(200, imds_token_body())))
    with imds(recorder, clock) as client:
        client.token()
    assert len(recorder.requests) == 4
    assert clock.sleeps == [0.25, 0.5, 1.0]


def test_retry_after_is_honoured() -> None:
    clock = FakeClock()
    throttled = json_response(429, {"error": "too_many_requests"}, **{"Retry-After": "3"})
    recorder = Recorder(sequence(throttled, json_response(200, imds_token_body())))
    with imds(recorder, clock) as client:
        client.token()
    assert clock.sleeps == [3.0]


def test_retry_after_beyond_the_budget_gives_up_at_once() -> None:
    clock = FakeClock()
    throttled = json_response(429, {"error": "too_many_requests"}, **{"Retry-After": "60"})
    recorder = Recorder(sequence(throttled))
    with imds(recorder, clock) as client, pytest.raises(KvmiError) as raised:
        client.token()
    assert raised.value.diagnosis.code is Code.IMDS_THROTTLED
    assert clock.sleeps == []


def test_500_until_the_budget_runs_out_is_imds_unavailable() -> None:
    clock = FakeClock()
    recorder = Recorder(sequence(json_response(500, {"error": "server_error"})))
    with imds(recorder, clock, retry_budget=5) as client, pytest.raises(KvmiError) as raised:
        client.token()
    assert raised.value.diagnosis.code is Code.IMDS_UNAVAILABLE
    assert sum(clock.sleeps) <= 5
    assert len(recorder.requests) == len(clock.sleeps) + 1 > 2


@pytest.mark.parametrize("status", [400, 401, 403, 405])
def test_other_4xx_are_never_retried(status: int) -> None:
    recorder = Recorder(lambda request: json_response(status, {"error": "invalid_request"}))
    with imds(recorder) as client, pytest.raises(KvmiError):
        client.token()
    assert len(recorder.requests) == 1


def test_a_connection_dropped_until_the_budget_runs_out_says_so() -> None:
    recorder = Recorder(sequence(httpx.RemoteProtocolError("Server disconnected")))
    with imds(recorder, retry_budget=2) as client, pytest.raises(KvmiError) as raised:
        client.token()
    diagnosis = raised.value.diagnosis
    assert diagnosis.code is Code.IMDS_UNAVAILABLE
    assert "the connection closed without a complete answer" in diagnosis.summary
    assert "<" not in diagnosis.summary


def test_dropped_connection_is_retried() -> None:
    recorder = Recorder(
        sequence(
            httpx.RemoteProtocolError("Server disconnected"), json_response(200, imds_token_body())
        )
    )
    with imds(recorder) as client:
        client.token()
    assert len(recorder.requests) == 2


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(502, html="<html><body>Bad Gateway</body></html>"),
        httpx.Response(200, html="<!DOCTYPE html><title>Proxy login</title>"),
        httpx.Response(407, headers={"Proxy-Authenticate": "Basic"}),
        httpx.Response(302, headers={"Location": "http://proxy.example/login"}),
        httpx.Response(504, text="Gateway Timeout", headers={"Via": "1.1 squid"}),
    ],
)
def test_something_else_answering_is_proxy_intercepted_without_retries(
    response: httpx.Response,
) -> None:
    recorder = Recorder(lambda request: response)
    with imds(recorder) as client, pytest.raises(KvmiError) as raised:
        client.token()
    assert raised.value.diagnosis.code is Code.IMDS_PROXY_INTERCEPTED
    assert len(recorder.requests) == 1


@pytest.mark.parametrize(
    ("status", "error", "description", "code"),
    [
        # IMDS refuses a forwarded request: a proxy is in the way, as with the Metadata header.
        (400, "invalid_request", "Request contains X-Forwarded-For header",
         Code.METADATA_HEADER_REJECTED),
        # Docker Desktop's proxy answers 403 when IMDS is unreachable (as azure-identity knows).
        (403, "forbidden", "connecting to 169.254.169.254:80: unreachable network",
         Code.IMDS_UNREACHABLE),
    ],
)  # fmt: skip
def test_json_refusals_are_named(status: int, error: str, description: str, code: Code) -> None:
    body = {"error": error, "error_description": description}
    recorder = Recorder(lambda request: json_response(status, body))
    with imds(recorder) as client, pytest.raises(KvmiError) as raised:
        client.token()
    assert raised.value.diagnosis.code is code
    assert len(recorder.requests) == 1  # a 4xx is never retried


def test_instance_and_identity_info() -> None:
    compute = {
        "name": "vm1",
        "resourceGroupName": "rg1",
        "subscriptionId": "sub1",
        "resourceId": "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Compute/"
        "virtualMachines/vm1",
        "location": "japaneast",
        "vmId": "vmid",
        "azEnvironment": "AzurePublicCloud",
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/metadata/instance":
            assert request.url.params["api-version"] == "2021-02-01"
            return json_response(200, {"compute": compute, "network": {}})
        return json_response(200, {"tenantId": TENANT, "subscriptionId": "sub1"})

    with imds(Recorder(handler)) as client:
        instance = client.instance()
        info = client.identity_info()
    assert (instance.name, instance.resource_group, instance.subscription_id) == (
        "vm1",
        "rg1",
        "sub1",
    )
    assert instance.resource_id.endswith("/virtualMachines/vm1")
    assert instance.facts().vm_name == "vm1"
    assert (info.tenant_id, info.subscription_id) == (TENANT, "sub1")


def test_instance_without_compute_is_unexpected() -> None:
    recorder = Recorder(lambda request: json_response(200, {"network": {}}))
    with imds(recorder) as client, pytest.raises(KvmiError) as raised:
        client.instance()
    assert raised.value.diagnosis.code is Code.UNEXPECTED_RESPONSE


# --- real sockets on loopback -----------------------------------------------------------


def test_no_imds_at_all_is_a_quick_verdict() -> None:
    started = time.monotonic()
    with (
        ImdsClient(settings(imds_endpoint=closed_port_url())) as client,
        pytest.raises(KvmiError) as raised,
    ):
        client.token()
    assert raised.value.diagnosis.code is Code.IMDS_UNREACHABLE
    assert time.monotonic() - started < 2.5


def test_imds_that_never_answers_times_out_in_bounded_time() -> None:
    with silent_server() as url:
        started = time.monotonic()
        with (
            ImdsClient(settings(imds_endpoint=url, timeout=0.3)) as client,
            pytest.raises(KvmiError) as raised,
        ):
            client.token()
        elapsed = time.monotonic() - started
    assert raised.value.diagnosis.code is Code.IMDS_TIMEOUT
    assert elapsed < 2.0


def test_imds_is_never_reached_through_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    dead_proxy = closed_port_url()
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, dead_proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    body = json.dumps(imds_token_body()).encode()
    with json_server(body) as (url, seen), ImdsClient(settings(imds_endpoint=url)) as client:
        client.token()
    assert seen[0]["metadata"] == "true"
    assert "x-forwarded-for" not in seen[0]
