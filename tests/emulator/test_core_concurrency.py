"""Many threads through the WSGI app while others change the state: no exception, and every
answer is one a consistent state could give."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from pytest_kvmi.emulator import Emulator

from .conftest import client, error_code, imds_get, imds_token, vault_get


def test_reads_during_grants_and_revokes_are_200_or_rbac_403(emu: Emulator, token: str) -> None:
    emu.revoke("system")
    stop = threading.Event()

    def churn() -> int:
        flips = 0
        while not stop.is_set():
            emu.grant("system", "Key Vault Secrets User", "vault:demo")
            emu.revoke("system")
            flips += 1
        return flips

    def read(_: int) -> tuple[int, str | None]:
        response = vault_get(emu, "/secrets/app-secret", token)
        return response.status_code, None if response.status_code == 200 else error_code(response)[
            1
        ]

    with ThreadPoolExecutor(max_workers=10) as pool:
        churners = [pool.submit(churn) for _ in range(2)]
        answers = list(pool.map(read, range(600)))
        stop.set()
        assert sum(f.result() for f in churners) > 0
    assert set(answers) <= {(200, None), (403, "ForbiddenByRbac")}


def test_concurrent_sets_lose_no_version(emu: Emulator) -> None:
    emu.grant("system", "Key Vault Secrets Officer", "vault:demo")
    token = imds_token(emu)

    def put(i: int) -> int:
        with client(emu) as kv:
            return kv.put(
                "/secrets/shared",
                params={"api-version": "7.4"},
                headers={"Authorization": f"Bearer {token}"},
                json={"value": f"value-{i}"},
            ).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(put, range(200)))
    assert statuses == [200] * 200
    values = {v.value.reveal() for v in emu.secret_versions("demo", "shared")}
    assert values == {f"value-{i}" for i in range(200)}
    assert len({v.version for v in emu.secret_versions("demo", "shared")}) == 200


def test_concurrent_token_requests_and_faults(emu: Emulator) -> None:
    emu.faults.status("imds-token", 429, times=50)

    def ask(_: int) -> int:
        return imds_get(
            emu, resource="https://vault.azure.net", **{"api-version": "2018-02-01"}
        ).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(ask, range(200)))
    assert statuses.count(429) == 50
    assert statuses.count(200) == 150
