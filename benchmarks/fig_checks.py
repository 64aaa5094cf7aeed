"""Figure 3: the same checks (a token, a readable secret, a forbidden one) with pytest-kvmi's
clients and with azure-identity + azure-keyvault-secrets, over the emulator's loopback https.

(a) a fresh process per check run, imports included; (b) a warm loop in this process with new
client objects every iteration (so both sides pay for their connections, TLS handshake and
token request each time, as separate test runs would; neither reuses a token cache).
"""

from __future__ import annotations

from functools import partial

from benchmarks.harness import Context, Row, interleaved, python, ratio_row, run_process, timed
from benchmarks.sides import CHECKS, KVMI, SDK

GOAL = 0.5
ITERATIONS = 20
"""Checks per warm-loop sample: one sample is their mean, so a sample is not one noisy call."""


def figure(context: Context) -> list[Row]:
    where = context.where
    env = where.child_env()
    fresh = interleaved(
        {
            side: partial(run_process, python("-m", "benchmarks.sides", "checks", side), env=env)
            for side in (KVMI, SDK)
        },
        context.runs(15, 3),
    )
    for side in (KVMI, SDK):
        CHECKS[side](where)  # imports and first connections out of the warm figure

    def warm(side: str) -> float:
        return timed(lambda: [CHECKS[side](where) for _ in range(ITERATIONS)]) / ITERATIONS

    loop = interleaved({side: partial(warm, side) for side in (KVMI, SDK)}, context.runs(9, 3))
    measured = {
        "3a": ("checks in a fresh process (imports included)", fresh),
        "3b": (f"checks in a warm loop (new clients each time, mean of {ITERATIONS})", loop),
    }
    return [
        ratio_row(key, title, samples, (KVMI, SDK), limit=GOAL, baseline_label="SDK")
        for key, (title, samples) in measured.items()
    ]
