"""Figure 5: reading 1,000 secrets (verifying each is readable): ``read_secrets`` against a
plain SDK loop, both over the emulator's loopback https, each including its client set-up and
token (a small part of the whole).

5 is the loopback as it is, where an answer takes well under a millisecond and both sides are
bound by the CPU they spend per request. 5b adds 10 ms before every vault answer, standing in for
the network between a VM and Key Vault, where the time is spent waiting.
"""

from __future__ import annotations

from functools import partial

from benchmarks.emulator import BULK_SECRETS, bulk_names
from benchmarks.harness import Context, Row, interleaved, ratio_row, timed
from benchmarks.sides import BULK_READS, KVMI, SDK

GOAL_SPEEDUP = 5.0
VAULT_LATENCY = 0.010
"""Seconds before each vault answer in 5b: less than a VM usually waits for Key Vault."""


def _case(context: Context, figure: str, latency: float, runs: int) -> Row:
    where = context.emulator(latency)
    names = bulk_names(BULK_SECRETS)
    for side in (KVMI, SDK):
        BULK_READS[side](where, names[:20])  # imports and first connections
    samples = interleaved(
        {side: partial(timed, partial(BULK_READS[side], where, names)) for side in (KVMI, SDK)},
        runs,
    )
    network = f", {latency * 1000:g} ms per vault answer" if latency else ", loopback"
    return ratio_row(
        figure,
        f"read {len(names):,} secrets: read_secrets vs a plain SDK loop{network}",
        samples,
        (KVMI, SDK),
        limit=1 / GOAL_SPEEDUP,
        baseline_label="SDK loop",
        goal=f"ratio <= {1 / GOAL_SPEEDUP:.2f} ({GOAL_SPEEDUP:g}x faster)",
    )


def figure(context: Context) -> list[Row]:
    return [
        _case(context, "5", 0.0, context.runs(5, 1)),
        _case(context, "5b", VAULT_LATENCY, context.runs(3, 1)),
    ]
