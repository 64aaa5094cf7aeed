"""Faults survived end to end: the real IMDS and Key Vault clients against the real emulator,
misbehaving through its fault injection, each case ending in a pass or the named diagnosis.

Waits are asserted on a fake clock injected into the clients, so nothing really sleeps; only
the timeout case runs on the emulator's loopback servers (the in-process transport has no
timeouts) and is bounded in wall time.

The rest of the hardening picture: tests/test_imds.py (retry rules on mock answers, proxies,
no IMDS at all), tests/test_vault.py (token safety, redirects, transport failures),
tests/test_bad_bodies.py (garbage bodies), tests/test_redaction.py (canaries),
tests/test_hardening_load.py (load and concurrency), tests/test_hardening_cli.py (bad input).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from pytest_kvmi.diagnosis import Code, KvmiError
from pytest_kvmi.emulator import DEMO_SECRET, DEMO_SECRET_VALUE, DEMO_VAULT, Emulator
from pytest_kvmi.imds import ImdsClient
from pytest_kvmi.settings import Settings
from pytest_kvmi.vault import VaultClient
from tests.fakes import FakeClock

BUDGET = 10.0
"""The clients' default retry budget, spelled out so the assertions below can use it."""

Inject = Callable[[Emulator], None]


@pytest.fixture
def emu() -> Iterator[Emulator]:
    emulator = Emulator.demo()
    yield emulator
    emulator.faults.clear()


def imds_client(emu: Emulator, clock: FakeClock) -> ImdsClient:
    settings = Settings.build(retry_budget=BUDGET, env={})
    return ImdsClient(settings, transport=emu.transport(), sleep=clock.sleep, clock=clock)


def vault_client(emu: Emulator, clock: FakeClock, imds: ImdsClient) -> VaultClient:
    settings = Settings.build(vault=DEMO_VAULT, retry_budget=BUDGET, env={})
    return VaultClient(
        settings, imds.token, transport=emu.transport(), sleep=clock.sleep, clock=clock
    )


@pytest.mark.parametrize(
    ("inject", "waits"),
    [
        pytest.param(lambda e: e.faults.status("imds-token", 410, times=3), [0.25, 0.5, 1.0],
                     id="410x3-then-200"),
        pytest.param(lambda e: e.faults.status("imds-token", 429, retry_after=3), [3.0],
                     id="429-retry-after-3"),
        pytest.param(lambda e: e.faults.status("imds-token", 500), [0.25], id="500-then-200"),
        pytest.param(lambda e: e.faults.status("imds-token", 503, times=2), [0.25, 0.5],
                     id="503x2-then-200"),
        pytest.param(lambda e: e.faults.drop("imds-token"), [0.25], id="dropped-then-200"),
    ],
)  # fmt: skip
def test_imds_token_survives_transient_faults(
    emu: Emulator, inject: Inject, waits: list[float]
) -> None:
    """IMDS's guidance (retry 410/429/5xx, honour Retry-After) holds against the emulator's
    real fault bodies, and the token that finally comes is the VM identity's own."""
    clock = FakeClock()
    inject(emu)
    started = time.monotonic()
    with imds_client(emu, clock) as imds:
        token = imds.token()
    assert time.monotonic() - started < 2.0  # nothing really slept
    assert clock.sleeps == waits
    assert emu.faults.pending("imds-token") == 0
    identity = emu.system_identity
    assert identity is not None
    assert token.claims.oid == identity.object_id
    assert token.claims.aud == "https://vault.azure.net"


@pytest.mark.parametrize(
    ("inject", "waits"),
    [
        pytest.param(lambda e: e.faults.status("vault", 429, retry_after=2), [2.0],
                     id="429-retry-after-2"),
        pytest.param(lambda e: e.faults.status("vault", 429, times=2), [0.25, 0.5],
                     id="429x2-without-retry-after"),
        pytest.param(lambda e: e.faults.status("vault", 503), [0.25], id="503-then-200"),
        pytest.param(lambda e: e.faults.status("vault", 502, times=2), [0.25, 0.5],
                     id="502-html-x2-then-200"),
        pytest.param(lambda e: e.faults.drop("vault"), [0.25], id="dropped-then-200"),
    ],
)  # fmt: skip
def test_secret_read_survives_transient_vault_faults(
    emu: Emulator, inject: Inject, waits: list[float]
) -> None:
    """The fault hits the authenticated GET itself (the challenge is asked first), so the
    retried request is the one carrying the token."""
    clock = FakeClock()
    with imds_client(emu, clock) as imds, vault_client(emu, clock, imds) as vault:
        vault.challenge()
        inject(emu)
        bundle = vault.get_secret(DEMO_SECRET)
    assert bundle.value.reveal() == DEMO_SECRET_VALUE
    assert clock.sleeps == waits
    assert emu.faults.pending("vault") == 0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_vault_5xx_that_persists_is_unexpected_after_the_budget(emu: Emulator, status: int) -> None:
    """Retries stop when the next wait would overrun the budget: the verdict is the named
    diagnosis with the status, after every allowed attempt and no more."""
    clock = FakeClock()
    planned = 1000
    with imds_client(emu, clock) as imds, vault_client(emu, clock, imds) as vault:
        vault.challenge()
        emu.faults.status("vault", status, times=planned)
        with pytest.raises(KvmiError) as raised:
            vault.get_secret(DEMO_SECRET)
    diagnosis = raised.value.diagnosis
    assert diagnosis.code is Code.UNEXPECTED_RESPONSE
    assert diagnosis.facts.status == status
    attempts = planned - emu.faults.pending("vault")
    assert attempts == len(clock.sleeps) + 1 > 3
    assert sum(clock.sleeps) <= BUDGET
    assert sum(clock.sleeps) + 4.0 > BUDGET  # one more wait (at most the cap) would overrun


@pytest.mark.parametrize(
    ("status", "code"), [(410, Code.IMDS_UNAVAILABLE), (500, Code.IMDS_UNAVAILABLE)]
)
def test_imds_fault_that_persists_is_named_after_the_budget(
    emu: Emulator, status: int, code: Code
) -> None:
    clock = FakeClock()
    planned = 1000
    emu.faults.status("imds-token", status, times=planned)
    with imds_client(emu, clock) as imds, pytest.raises(KvmiError) as raised:
        imds.token()
    assert raised.value.diagnosis.code is code
    assert planned - emu.faults.pending("imds-token") == len(clock.sleeps) + 1
    assert sum(clock.sleeps) <= BUDGET


def test_imds_throttling_beyond_the_budget_gives_up_without_waiting(emu: Emulator) -> None:
    """A Retry-After longer than the whole budget is not slept on: ImdsThrottled at once."""
    clock = FakeClock()
    emu.faults.status("imds-token", 429, retry_after=60)
    with imds_client(emu, clock) as imds, pytest.raises(KvmiError) as raised:
        imds.token()
    assert raised.value.diagnosis.code is Code.IMDS_THROTTLED
    assert clock.sleeps == []


TIMEOUT = 0.3
DELAY = 1.5


@pytest.mark.parametrize(
    ("endpoint", "code"), [("imds-token", Code.IMDS_TIMEOUT), ("vault", Code.VAULT_TIMEOUT)]
)
def test_a_service_slower_than_the_timeout_is_named_in_bounded_time(
    endpoint: str, code: Code
) -> None:
    """Over real sockets: the answer is delayed past ``timeout``, so the verdict comes after
    about the timeout, not after the delay, and a read timeout is not retried."""
    emu = Emulator.demo()
    with emu.serve() as servers:
        settings = Settings.build(
            vault=servers.vault_url(DEMO_VAULT),
            imds_endpoint=servers.imds_endpoint,
            ca_bundle=servers.ca_bundle,
            timeout=TIMEOUT,
            env={},
        )
        with ImdsClient(settings) as imds, VaultClient(settings, imds.token) as vault:
            emu.faults.delay(endpoint, DELAY)
            started = time.monotonic()
            with pytest.raises(KvmiError) as raised:
                vault.get_secret(DEMO_SECRET)
            elapsed = time.monotonic() - started
        assert raised.value.diagnosis.code is code
        assert TIMEOUT * 0.9 <= elapsed < 1.0 < DELAY
        assert emu.faults.pending(endpoint) == 0
