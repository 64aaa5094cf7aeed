"""Figure 2: the whole diagnostic run on the embedded default, against bare pytest start-up in
the same environment, and where the extra time goes."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

from benchmarks.harness import Context, Row, interleaved, median, python, run_process

GOAL_EXTRA = 0.5
PYTEST_ENV = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")

# Each phase of what `pytest --kv-emulator` adds, timed in a fresh interpreter (cold imports,
# no signing key yet), in the order the plugin does them.
PHASES = """
import json, time
marks = [time.perf_counter()]
import pytest_kvmi.checks, pytest_kvmi.emulated, pytest_kvmi.imds, pytest_kvmi.vault
marks.append(time.perf_counter())
from pytest_kvmi.emulator import shared_signing_key
shared_signing_key()
marks.append(time.perf_counter())
from pytest_kvmi.emulated import demo_names, demo_target
from pytest_kvmi.settings import Settings
vault, readable, forbidden = demo_names(None, (), ())
settings = Settings.build(vault=vault, env={})
target = demo_target(settings, vault, readable, forbidden)
marks.append(time.perf_counter())
from pytest_kvmi.checks import Probe
from pytest_kvmi.emulated import role_switch
from pytest_kvmi.imds import ImdsClient
from pytest_kvmi.vault import VaultClient
transport = target.emulator.transport()
imds = ImdsClient(settings, transport=transport)
probe = Probe(settings, imds, VaultClient(settings, imds.token, transport=transport))
verdicts = [probe.imds_reachable(), probe.identity_present(), probe.token_audience(),
            probe.token_tenant(), probe.vm_binding(), probe.secret_readable(readable[0]),
            probe.secret_denied(forbidden[0]),
            probe.role_revocation(readable[0], role_switch(target, settings))]
marks.append(time.perf_counter())
assert all(v.outcome.value == "passed" for v in verdicts), verdicts
print(json.dumps([b - a for a, b in zip(marks, marks[1:])]))
"""
PHASE_NAMES = ("imports", "signing key and certificate", "emulator setup", "8 checks")


def _phases(env: dict[str, str], runs: int) -> dict[str, float]:
    """Median seconds of each phase over ``runs`` fresh interpreters."""
    samples: list[list[float]] = []
    for _ in range(runs):
        done = subprocess.run(
            python("-c", PHASES), env=env, capture_output=True, text=True, check=True
        )
        samples.append(json.loads(done.stdout))
    return {name: median([s[i] for s in samples]) for i, name in enumerate(PHASE_NAMES)}


def figure(context: Context) -> list[Row]:
    """``pytest --kv-emulator`` against ``pytest`` running one trivial test."""
    env = {k: v for k, v in os.environ.items() if k not in PYTEST_ENV}
    base = python("-m", "pytest", "-q", "-p", "no:cacheprovider")
    with tempfile.TemporaryDirectory(prefix="kvmi-bench-run-") as tmp:
        root = Path(tmp)
        (root / "test_trivial.py").write_text("def test_trivial():\n    pass\n", encoding="utf-8")
        samples = interleaved(
            {
                "kvmi": lambda: run_process([*base, "--kv-emulator"], env=env, cwd=root),
                "bare": lambda: run_process([*base, "test_trivial.py"], env=env, cwd=root),
            },
            context.runs(15, 3),
        )
    phases = _phases(env, context.runs(9, 2))
    ours, bare = median(samples["kvmi"]), median(samples["bare"])
    where = ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in phases.items())
    return [
        Row(
            figure="2",
            title="pytest --kv-emulator (8 checks) vs bare pytest start-up",
            unit="s",
            ours=ours,
            baseline=bare,
            goal=f"extra < {GOAL_EXTRA:g} s",
            met=ours - bare < GOAL_EXTRA,
            baseline_label="pytest, one trivial test",
            samples=samples,
            note=f"extra {(ours - bare) * 1000:.0f} ms; where it goes (cold, in a fresh "
            f"interpreter): {where}; TLS: none, the embedded default answers in-process",
        )
    ]
