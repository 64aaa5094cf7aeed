"""The Key Vault client: token safety gates, the challenge, failures and retries."""

from __future__ import annotations

import ssl

import httpx
import pytest

from pytest_kvmi.challenge import parse_challenge
from pytest_kvmi.diagnosis import Code, KvmiError
from pytest_kvmi.settings import PUBLIC, Vault
from pytest_kvmi.token import AccessToken
from pytest_kvmi.vault import VaultClient
from tests.fakes import (
    CHALLENGE,
    TENANT,
    FakeClock,
    Recorder,
    capture_response,
    load_capture,
    make_jwt,
    sequence,
    settings,
    vault_handler,
)

SECRET_BODY = {
    "value": "s3cr3t",
    "id": "https://kv1.vault.azure.net/secrets/db/0123456789abcdef0123456789abcdef",
    "attributes": {"enabled": True, "created": 1, "updated": 2, "exp": 99, "nbf": 0},
    "contentType": "text/plain",
    "tags": {"team": "a"},
}


class CountingTokens:
    """A token source that counts how often a token was asked for."""

    def __init__(self, raw: str | None = None) -> None:
        self.calls = 0
        self._token = AccessToken.parse(raw or make_jwt())

    def __call__(self) -> AccessToken:
        self.calls += 1
        return self._token


def client_for(
    recorder: Recorder, tokens: CountingTokens, vault: str = "kv1", **kwargs: object
) -> VaultClient:
    clock = FakeClock()
    return VaultClient(
        settings(vault=vault, **kwargs),
        tokens,
        transport=recorder.transport,
        sleep=clock.sleep,
        clock=clock,
    )


def test_reads_a_secret_after_the_challenge() -> None:
    recorder = Recorder(vault_handler(lambda request: httpx.Response(200, json=SECRET_BODY)))
    tokens = CountingTokens()
    with client_for(recorder, tokens) as client:
        bundle = client.get_secret("db/0123456789abcdef0123456789abcdef")
        assert client.challenge().tenant_id == TENANT
    challenge_request, secret_request = recorder.requests
    assert "authorization" not in challenge_request.headers
    assert secret_request.headers["authorization"] == f"Bearer {tokens._token.bearer()}"
    assert secret_request.url.path == "/secrets/db/0123456789abcdef0123456789abcdef"
    assert secret_request.url.params["api-version"] == "7.5"
    assert str(secret_request.url).startswith("https://kv1.vault.azure.net/")
    assert bundle.value.reveal() == "s3cr3t"
    assert (bundle.name, bundle.version, bundle.content_type) == (
        "db",
        "0123456789abcdef0123456789abcdef",
        "text/plain",
    )
    assert (bundle.enabled, bundle.expires, bundle.not_before, bundle.tags) == (
        True,
        99,
        0,
        {"team": "a"},
    )
    assert tokens.calls == 1


def test_challenge_is_asked_once_per_client() -> None:
    recorder = Recorder(vault_handler(lambda request: httpx.Response(200, json=SECRET_BODY)))
    with client_for(recorder, CountingTokens()) as client:
        client.get_secret("db")
        client.get_secret("db")
    assert [("authorization" in r.headers) for r in recorder.requests] == [False, True, True]


@pytest.mark.parametrize(
    ("header", "tenant", "audience"),
    [
        (CHALLENGE, TENANT, "https://vault.azure.net"),
        (
            f'Bearer authorization="https://login.windows.net/{TENANT}", '
            'resource="https://vault.azure.net"',
            TENANT,
            "https://vault.azure.net",
        ),
        (
            'Bearer authorization="https://login.microsoftonline.com/t1/", scope="https://vault.azure.net/.default"',
            "t1",
            "https://vault.azure.net",
        ),
        (
            'Bearer authorization_uri="https://login.microsoftonline.us/t2", resource=https://vault.usgovcloudapi.net/',
            "t2",
            "https://vault.usgovcloudapi.net",
        ),
    ],
)
def test_challenge_parsing(header: str, tenant: str, audience: str) -> None:
    challenge = parse_challenge(header)
    assert challenge is not None
    assert (challenge.tenant_id, challenge.audience) == (tenant, audience)


@pytest.mark.parametrize(
    "header", [None, "", "Basic realm=x", "Bearer", 'Negotiate authorization="x"']
)
def test_no_bearer_challenge(header: str | None) -> None:
    assert parse_challenge(header) is None


@pytest.mark.parametrize(
    "resource",
    [
        "https://management.azure.com",
        "https://management.azure.com/",
        "https://graph.microsoft.com",
        "https://vault.usgovcloudapi.net",  # another cloud's vault audience than the vault's
        "https://evil.example",
    ],
)
def test_a_challenge_for_anything_but_the_vault_audience_gets_no_token(resource: str) -> None:
    header = (
        f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", resource="{resource}"'
    )
    recorder = Recorder(lambda request: httpx.Response(401, headers={"WWW-Authenticate": header}))
    tokens = CountingTokens()
    with client_for(recorder, tokens) as client, pytest.raises(KvmiError) as raised:
        client.get_secret("db")
    assert tokens.calls == 0
    assert all("authorization" not in r.headers for r in recorder.requests)
    assert "no token was requested or sent" in str(raised.value)


def test_a_redirect_is_not_followed_with_the_token() -> None:
    recorder = Recorder(
        vault_handler(
            lambda request: httpx.Response(302, headers={"Location": "https://evil.example/steal"})
        )
    )
    with client_for(recorder, CountingTokens()) as client, pytest.raises(KvmiError) as raised:
        client.get_secret("db")
    assert raised.value.diagnosis.code is Code.UNEXPECTED_RESPONSE
    assert {r.url.host for r in recorder.requests} == {"kv1.vault.azure.net"}
    assert "not followed" in str(raised.value)


def test_a_hand_built_unsafe_vault_is_refused_before_any_token() -> None:
    built = settings(vault="kv1")
    unsafe = Vault(url="http://evil.example", host="evil.example", cloud=PUBLIC, name=None)
    tokens = CountingTokens()
    with pytest.raises(KvmiError) as raised:
        VaultClient(type(built)(vault=unsafe), tokens)
    assert raised.value.diagnosis.code is Code.UNSAFE_VAULT_URL
    assert tokens.calls == 0


def test_loopback_http_vault_is_allowed_for_emulators() -> None:
    recorder = Recorder(vault_handler(lambda request: httpx.Response(200, json=SECRET_BODY)))
    with client_for(recorder, CountingTokens(), vault="http://127.0.0.1:8080") as client:
        assert client.get_secret("db").value.reveal() == "s3cr3t"
    assert recorder.requests[-1].url.host == "127.0.0.1"


def _raise(error: Exception) -> Recorder:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    return Recorder(handler)


def _tls_error() -> httpx.ConnectError:
    error = httpx.ConnectError("handshake")
    error.__cause__ = ssl.SSLCertVerificationError(
        "certificate verify failed: self-signed certificate"
    )
    return error


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (httpx.ConnectError("[Errno -2] Name or service not known"), Code.VAULT_DNS_FAILURE),
        (
            httpx.ConnectError("[Errno -3] Temporary failure in name resolution"),
            Code.VAULT_DNS_FAILURE,
        ),
        (_tls_error(), Code.VAULT_TLS_ERROR),
        (httpx.ConnectError("[Errno 111] Connection refused"), Code.VAULT_UNREACHABLE),
        (httpx.ConnectTimeout("timed out"), Code.VAULT_UNREACHABLE),
        (httpx.ReadTimeout("timed out"), Code.VAULT_TIMEOUT),
        (httpx.RemoteProtocolError("Server disconnected"), Code.VAULT_UNREACHABLE),
    ],
)
def test_transport_failures_are_named(error: Exception, code: Code) -> None:
    with client_for(_raise(error), CountingTokens()) as client, pytest.raises(KvmiError) as raised:
        client.get_secret("db")
    assert raised.value.diagnosis.code is code
    assert raised.value.diagnosis.facts.vault_host == "kv1.vault.azure.net"


def test_429_then_200_is_retried() -> None:
    throttled = capture_response(load_capture("kv-429-throttled.json"))
    recorder = Recorder(vault_handler(sequence(throttled, httpx.Response(200, json=SECRET_BODY))))
    with client_for(recorder, CountingTokens()) as client:
        client.get_secret("db")
    assert len(recorder.requests) == 3


def test_persistent_5xx_is_unexpected_after_the_budget() -> None:
    recorder = Recorder(vault_handler(lambda request: httpx.Response(503, text="busy")))
    with (
        client_for(recorder, CountingTokens(), retry_budget=3) as client,
        pytest.raises(KvmiError) as raised,
    ):
        client.get_secret("db")
    assert raised.value.diagnosis.code is Code.UNEXPECTED_RESPONSE
    assert len(recorder.requests) > 3


def test_an_unchallenged_answer_is_classified() -> None:
    firewall = capture_response(load_capture("kv-403-forbidden-by-firewall.json"))
    tokens = CountingTokens()
    with (
        client_for(Recorder(lambda request: firewall), tokens) as client,
        pytest.raises(KvmiError) as raised,
    ):
        client.get_secret("db")
    assert raised.value.diagnosis.code is Code.FORBIDDEN_BY_FIREWALL
    assert tokens.calls == 0


def test_a_200_to_an_unauthenticated_request_is_unexpected() -> None:
    tokens = CountingTokens()
    recorder = Recorder(lambda request: httpx.Response(200, json=SECRET_BODY))
    with client_for(recorder, tokens) as client, pytest.raises(KvmiError) as raised:
        client.get_secret("db")
    assert raised.value.diagnosis.code is Code.UNEXPECTED_RESPONSE
    assert tokens.calls == 0
