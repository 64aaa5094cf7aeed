"""The emulator in its own process (``kvmi-emulator --scenario``), as both sides' target.

Serving from another process keeps the server's work off the measured process's interpreter
lock. Standard library only: the fresh-process sides import this module too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

WHERE_ENV = "KVMI_BENCH_WHERE"
"""How a side started in a fresh process learns where the emulator is."""
DEMO = "demo"
BULK = "bulk"
READABLE = "app-secret"
FORBIDDEN = "admin-secret"
BULK_SECRETS = 1000


def bulk_names(count: int = BULK_SECRETS) -> list[str]:
    return [f"bulk-{i:04}" for i in range(count)]


@dataclass(frozen=True)
class Where:
    """The emulator's addresses, CA and environment (the CLI's JSON line)."""

    imds_endpoint: str
    vaults: Mapping[str, str]
    ca_bundle: str
    env: Mapping[str, str]

    def child_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment in which azure-identity finds only the emulator's IMDS."""
        from pytest_kvmi.emulator.servers import CONFLICTING_ENV

        env = {k: v for k, v in (base or os.environ).items() if k not in CONFLICTING_ENV}
        env.update(self.env)
        env[WHERE_ENV] = json.dumps(asdict(self))
        return env

    @classmethod
    def from_env(cls) -> Where:
        data = json.loads(os.environ[WHERE_ENV])
        return cls(data["imds_endpoint"], data["vaults"], data["ca_bundle"], data["env"])


LATENCY_ANSWERS = 1_000_000
"""How many vault answers a latency applies to: more than any benchmark run sends."""


def scenario(bulk_count: int, vault_latency: float = 0.0) -> dict[str, object]:
    """Vault ``demo``: one secret granted at its own scope, one granted to nobody (as
    ``Emulator.demo()``); vault ``bulk``: ``bulk_count`` secrets, all granted by a vault-scope
    role (one assignment, as a real setup would have). ``vault_latency`` delays every vault
    answer, standing in for the network between a VM and Key Vault."""
    role = "Key Vault Secrets User"
    faults = {"vault": {"delay": vault_latency, "times": LATENCY_ANSWERS}} if vault_latency else {}
    return {
        "faults": faults,
        "vaults": [
            {
                "name": DEMO,
                "secrets": [
                    {"name": READABLE, "value": "bench-readable"},
                    {"name": FORBIDDEN, "value": "bench-forbidden"},
                ],
            },
            {
                "name": BULK,
                "secrets": [{"name": n, "value": f"v-{n}"} for n in bulk_names(bulk_count)],
            },
        ],
        "role_assignments": [
            {"principal": "system", "role": role, "scope": f"vault:{DEMO}/secrets/{READABLE}"},
            {"principal": "system", "role": role, "scope": f"vault:{BULK}"},
        ],
    }


@contextlib.contextmanager
def emulator_process(bulk_count: int = BULK_SECRETS, vault_latency: float = 0.0) -> Iterator[Where]:
    """Serve the scenario from ``python -m pytest_kvmi.emulator.cli`` until the block ends."""
    with tempfile.TemporaryDirectory(prefix="kvmi-bench-") as tmp:
        path = Path(tmp) / "scenario.json"
        path.write_text(json.dumps(scenario(bulk_count, vault_latency)), encoding="utf-8")
        argv = [sys.executable, "-m", "pytest_kvmi.emulator.cli", "--scenario", str(path)]
        with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as process:
            try:
                assert process.stdout is not None
                line = process.stdout.readline()
                if not line:
                    raise RuntimeError("kvmi-emulator exited before saying where it serves")
                data = json.loads(line)
                yield Where(data["imds_endpoint"], data["vaults"], data["ca_bundle"], data["env"])
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
