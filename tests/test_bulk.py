"""Reading many secrets: order, per-secret outcomes, one challenge and one token, the bounded
concurrency and the rate limiter (on a fake clock: nothing here waits)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_kvmi.bulk import RateLimit, RateLimiter, ReadResult, read_secrets
from pytest_kvmi.diagnosis import Code, KvmiError
from pytest_kvmi.emulator import (
    DEMO_ADMIN_SECRET,
    DEMO_SECRET,
    DEMO_SECRET_VALUE,
    DEMO_VAULT,
    Emulator,
)
from pytest_kvmi.imds import ImdsClient
from pytest_kvmi.settings import SecretRef, SettingsError
from pytest_kvmi.token import AccessToken
from pytest_kvmi.vault import VaultClient
from tests.fakes import FakeClock, Recorder, make_jwt, settings, vault_handler

VERSION = "0123456789abcdef0123456789abcdef"
SECRETS_USER = "Key Vault Secrets User"


def no_tokens() -> AccessToken:
    """The clients' token source, which must not be used: read_secrets is handed its token."""
    raise AssertionError("read_secrets asked the client for another token")


class LockedClock(FakeClock):
    """A fake clock several threads may sleep on."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        with self._lock:
            super().sleep(seconds)


def bundle_for(request: httpx.Request) -> httpx.Response:
    """Key Vault's 200 for whatever secret was asked for."""
    name = request.url.path.split("/")[2]
    body = {"value": "v", "id": f"https://kv1.vault.azure.net/secrets/{name}/{VERSION}"}
    return httpx.Response(200, json=body)


def mock_client(recorder: Recorder, pool_size: int = 20) -> VaultClient:
    return VaultClient(
        settings(vault="kv1"), no_tokens, transport=recorder.transport, pool_size=pool_size
    )


@pytest.fixture
def emulator() -> Emulator:
    """The demo vault, plus a granted secret that is disabled and a granted name that is absent."""
    emulator = Emulator.demo()
    emulator.set_secret(DEMO_VAULT, "switched-off", "v", enabled=False)
    for name in ("switched-off", "absent"):
        emulator.grant("system", SECRETS_USER, f"vault:{DEMO_VAULT}/secrets/{name}")
    return emulator


@pytest.fixture
def token(emulator: Emulator) -> AccessToken:
    with ImdsClient(settings(), transport=emulator.transport()) as imds:
        return imds.token()


@pytest.fixture
def vault(emulator: Emulator) -> Iterator[VaultClient]:
    with VaultClient(
        settings(vault=DEMO_VAULT), no_tokens, transport=emulator.transport()
    ) as client:
        yield client


def codes(results: list[ReadResult]) -> list[tuple[str, Code]]:
    return [(str(result.secret), result.diagnosis.code) for result in results]


def test_each_secret_has_its_own_outcome_in_input_order(
    vault: VaultClient, token: AccessToken
) -> None:
    names = [DEMO_ADMIN_SECRET, "absent", DEMO_SECRET, "switched-off"] * 5
    results = read_secrets(vault, names, token, concurrency=4)
    expected = {
        DEMO_SECRET: Code.OK,
        DEMO_ADMIN_SECRET: Code.FORBIDDEN_BY_RBAC,
        "absent": Code.SECRET_NOT_FOUND,
        "switched-off": Code.SECRET_DISABLED,
    }
    assert codes(results) == [(name, expected[name]) for name in names]
    readable = [result for result in results if result.ok]
    assert all(result.bundle is not None for result in readable)
    assert all(result.bundle is None for result in results if not result.ok)
    assert readable[0].bundle is not None
    assert readable[0].bundle.value.reveal() == DEMO_SECRET_VALUE
    assert readable[0].diagnosis.facts.secret_name == DEMO_SECRET
    assert readable[0].diagnosis.facts.vault_tenant_id is not None
    assert DEMO_SECRET_VALUE not in repr(results)


def test_many_secrets_come_back_in_input_order(emulator: Emulator, token: AccessToken) -> None:
    names = [f"bulk-{i:03}" for i in range(60)]
    for name in names:
        emulator.set_secret(DEMO_VAULT, name, f"value-{name}")
    emulator.grant("system", SECRETS_USER, f"vault:{DEMO_VAULT}")
    refs = [SecretRef(name) for name in reversed(names)]
    with VaultClient(
        settings(vault=DEMO_VAULT), no_tokens, transport=emulator.transport(), pool_size=8
    ) as vault:
        results = read_secrets(vault, refs, token, concurrency=8)
    assert [result.secret for result in results] == refs
    assert [r.bundle.name if r.bundle else None for r in results] == [r.name for r in refs]


def test_one_challenge_one_token_and_never_a_token_request() -> None:
    recorder = Recorder(vault_handler(bundle_for))
    token = AccessToken.parse(make_jwt())
    with mock_client(recorder) as vault:
        results = read_secrets(vault, [f"s{i}" for i in range(40)], token)
    assert all(result.ok for result in results)
    unauthenticated = [r for r in recorder.requests if "authorization" not in r.headers]
    assert len(unauthenticated) == 1
    assert len(recorder.requests) == 41
    assert {r.headers.get("authorization") for r in recorder.requests[1:]} == {
        f"Bearer {token.bearer()}"
    }


def test_concurrency_reaches_its_bound_and_never_exceeds_it() -> None:
    concurrency = 4
    gate = threading.Barrier(concurrency, timeout=10)
    lock = threading.Lock()
    in_flight = [0]
    peak = [0]

    def answer(request: httpx.Request) -> httpx.Response:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        gate.wait()  # only passes once `concurrency` requests are in flight together
        with lock:
            in_flight[0] -= 1
        return bundle_for(request)

    recorder = Recorder(vault_handler(answer))
    with mock_client(recorder, pool_size=concurrency) as vault:
        names = [f"s{i}" for i in range(concurrency * 6)]
        results = read_secrets(vault, names, AccessToken.parse(make_jwt()), concurrency=concurrency)
    assert all(result.ok for result in results)
    assert peak[0] == concurrency


def test_one_secrets_transport_failure_is_its_diagnosis() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/dropped"):
            raise httpx.ConnectError("refused", request=request)
        return bundle_for(request)

    with mock_client(Recorder(vault_handler(answer))) as vault:
        results = read_secrets(vault, ["before", "dropped", "after"], AccessToken.parse(make_jwt()))
    assert codes(results) == [
        ("before", Code.OK),
        ("dropped", Code.VAULT_UNREACHABLE),
        ("after", Code.OK),
    ]


def test_a_bad_name_is_refused_before_any_request() -> None:
    recorder = Recorder(vault_handler(bundle_for))
    with mock_client(recorder) as vault, pytest.raises(SettingsError) as raised:
        read_secrets(vault, ["fine", "not_valid!"], AccessToken.parse(make_jwt()))
    assert raised.value.diagnosis.code is Code.INVALID_SECRET_NAME
    assert recorder.requests == []


def test_a_vault_without_a_challenge_raises_once_and_reads_nothing() -> None:
    recorder = Recorder(lambda request: httpx.Response(200, json={}))
    with mock_client(recorder) as vault, pytest.raises(KvmiError) as raised:
        read_secrets(vault, ["a", "b"], AccessToken.parse(make_jwt()))
    assert raised.value.diagnosis.code is Code.UNEXPECTED_RESPONSE
    assert len(recorder.requests) == 1


def test_nothing_to_read_sends_nothing() -> None:
    recorder = Recorder(vault_handler(bundle_for))
    with mock_client(recorder) as vault:
        assert read_secrets(vault, [], AccessToken.parse(make_jwt())) == []
    assert recorder.requests == []


@pytest.mark.parametrize(("concurrency", "rule"), [(0, "at least 1"), (21, "pool_size=21")])
def test_concurrency_must_fit_the_connection_pool(concurrency: int, rule: str) -> None:
    recorder = Recorder(vault_handler(bundle_for))
    with mock_client(recorder) as vault, pytest.raises(ValueError, match=rule):
        read_secrets(vault, ["a"], AccessToken.parse(make_jwt()), concurrency=concurrency)
    assert recorder.requests == []


def test_the_limiter_paces_a_bulk_read_on_a_shared_budget() -> None:
    clock = LockedClock()
    limiter = RateLimiter(RateLimit(10, 10.0), clock=clock, sleep=clock.sleep)
    with mock_client(Recorder(vault_handler(bundle_for))) as vault:
        token = AccessToken.parse(make_jwt())
        first = read_secrets(vault, [f"s{i}" for i in range(20)], token, rate=limiter)
        assert clock.now >= 10.0  # 20 reads at 10 per 10 s
        second = read_secrets(vault, ["t"], token, rate=limiter)
    assert all(result.ok for result in first + second)
    assert clock.now >= 20.0


@given(
    requests=st.integers(min_value=1, max_value=6),
    per=st.floats(min_value=0.5, max_value=20.0),
    gaps=st.lists(st.floats(min_value=0.0, max_value=15.0), max_size=40),
)
def test_the_limiter_admits_at_most_the_limit_in_any_window_and_waits_no_longer(
    requests: int, per: float, gaps: list[float]
) -> None:
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(requests, per), clock=clock, sleep=clock.sleep)
    admitted: list[float] = []
    for gap in gaps:
        arrival = clock.now + gap
        clock.now = arrival
        limiter.acquire()
        admitted.append(clock.now)
        earliest = admitted[-1 - requests] + per if len(admitted) > requests else arrival
        assert clock.now == pytest.approx(max(arrival, earliest))
    for moment in admitted:
        assert sum(moment < other + per and other <= moment for other in admitted) <= requests


@pytest.mark.parametrize("limit", [(0, 1.0), (1, 0.0)])
def test_a_rate_limit_needs_requests_and_time(limit: tuple[int, float]) -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimit(*limit)
