"""Load: 32 threads, 5,000 reads over the emulator's loopback https servers while another
thread grants and revokes the role, and concurrent PUTs of one secret losing no version.

Over loopback rather than in-process on purpose: keep-alive connections, TLS and one server
thread per connection are what a real pool of readers meets; on 2 cores this still runs in a
few seconds (measured), so nothing had to be moved in-process.

The rest of the hardening picture: tests/emulator/test_core_concurrency.py (the WSGI core under
threads, in-process), tests/test_hardening_faults.py (faults end to end),
tests/test_hardening_cli.py (bad input).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest

from pytest_kvmi.emulator import DEMO_SECRET, DEMO_VAULT, Emulator
from pytest_kvmi.emulator.servers import LoopbackServers

THREADS = 32
REQUESTS = 5_000
API = {"api-version": "7.5"}
ROLE = "Key Vault Secrets User"
SCOPE = f"vault:{DEMO_VAULT}/secrets/{DEMO_SECRET}"


@pytest.fixture
def served() -> Iterator[tuple[Emulator, LoopbackServers]]:
    emu = Emulator.demo()
    with emu.serve() as servers:
        yield emu, servers


def token_for(servers: LoopbackServers) -> str:
    answer = httpx.get(
        f"{servers.imds_endpoint}/metadata/identity/oauth2/token",
        params={"api-version": "2018-02-01", "resource": "https://vault.azure.net"},
        headers={"Metadata": "true"},
        trust_env=False,
    )
    assert answer.status_code == 200
    token: str = answer.json()["access_token"]
    return token


def vault_http(servers: LoopbackServers, token: str) -> httpx.Client:
    """One keep-alive client per thread, trusting only the servers' throwaway CA."""
    return httpx.Client(
        base_url=servers.vault_url(DEMO_VAULT),
        verify=servers.client_ssl_context(),
        headers={"Authorization": f"Bearer {token}"},
        trust_env=False,
        timeout=30.0,
    )


class Epochs:
    """A seqlock over the role's state: even epoch ``2k`` means "stable in state k", odd means
    "changing". ``granted[k]`` is state k. A request bracketed by epochs ``e0`` and ``e1`` can
    only have seen the states ``e0 // 2`` to ``(e1 + 1) // 2``."""

    def __init__(self, granted: bool) -> None:
        self.epoch = 0
        self.granted = [granted]

    def possible(self, before: int, after: int) -> set[bool]:
        return set(self.granted[before // 2 : (after + 1) // 2 + 1])


@dataclass(frozen=True)
class Read:
    before: int
    after: int
    status: int
    inner_code: str | None


def test_reads_under_role_churn_match_the_assignment_of_their_moment(
    served: tuple[Emulator, LoopbackServers],
) -> None:
    """No 5xx, only 200 or 403 ForbiddenByRbac, and never an answer the role's state during
    the whole request rules out."""
    emu, servers = served
    token = token_for(servers)
    epochs = Epochs(granted=True)
    done = threading.Event()

    def churn() -> None:
        granted = True
        while not done.is_set():
            epochs.epoch += 1  # odd: changing
            if granted:
                assert emu.revoke("system", ROLE, SCOPE) == 1
            else:
                emu.grant("system", ROLE, SCOPE)
            granted = not granted
            epochs.granted.append(granted)
            epochs.epoch += 1  # even: stable
            time.sleep(0.002)  # let stable windows exist; the readers do the work

    def reader(count: int) -> list[Read]:
        reads = []
        with vault_http(servers, token) as http:
            for _ in range(count):
                before = epochs.epoch
                answer = http.get(f"/secrets/{DEMO_SECRET}", params=API)
                after = epochs.epoch
                inner = None
                if answer.status_code != 200:
                    inner = answer.json().get("error", {}).get("innererror", {}).get("code")
                reads.append(Read(before, after, answer.status_code, inner))
        return reads

    per_thread = [REQUESTS // THREADS + (i < REQUESTS % THREADS) for i in range(THREADS)]
    churner = threading.Thread(target=churn, name="role-churn")
    churner.start()
    try:
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            reads = [r for found in pool.map(reader, per_thread) for r in found]
    finally:
        done.set()
        churner.join()

    assert len(reads) == REQUESTS
    assert {(r.status, r.inner_code) for r in reads} <= {(200, None), (403, "ForbiddenByRbac")}
    wrong = [
        r
        for r in reads
        if (r.status == 200 and epochs.possible(r.before, r.after) == {False})
        or (r.status == 403 and epochs.possible(r.before, r.after) == {True})
    ]
    assert wrong == []
    # The check above could not fail if no read fell in a stable window, or nothing churned.
    stable = [r for r in reads if len(epochs.possible(r.before, r.after)) == 1]
    assert {r.status for r in stable} == {200, 403}
    assert len(epochs.granted) > 20


def test_concurrent_puts_of_one_secret_lose_no_version(
    served: tuple[Emulator, LoopbackServers],
) -> None:
    """Every PUT, released together from a barrier, gets its own version, and the vault
    lists exactly those new versions afterwards."""
    emu, servers = served
    emu.grant("system", "Key Vault Secrets Officer", f"vault:{DEMO_VAULT}")
    token = token_for(servers)
    rounds = 8
    existing = {v.version for v in emu.secret_versions(DEMO_VAULT, DEMO_SECRET)}
    barrier = threading.Barrier(THREADS)

    def writer(index: int) -> list[str]:
        versions = []
        with vault_http(servers, token) as http:
            for n in range(rounds):
                barrier.wait(timeout=30)
                answer = http.put(
                    f"/secrets/{DEMO_SECRET}", params=API, json={"value": f"v-{index}-{n}"}
                )
                assert answer.status_code == 200, answer.text
                versions.append(answer.json()["id"].rsplit("/", 1)[-1])
        return versions

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        returned = [v for found in pool.map(writer, range(THREADS)) for v in found]

    listed = [v.version for v in emu.secret_versions(DEMO_VAULT, DEMO_SECRET)]
    new = set(listed) - existing
    assert len(listed) == len(set(listed)) == len(existing) + THREADS * rounds
    assert sorted(new) == sorted(returned)
    values = {v.value.reveal() for v in emu.secret_versions(DEMO_VAULT, DEMO_SECRET)}
    assert {f"v-{i}-{n}" for i in range(THREADS) for n in range(rounds)} <= values
