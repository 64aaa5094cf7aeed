"""What every figure shares: interleaved timing, medians, a row per comparison, the table.

Machines are noisy, so every comparison is measured side by side in one run, with the sides
alternating (ABBA order) so drift hits both alike, and is reported as a ratio of medians.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.emulator import Where, emulator_process

ROOT = Path(__file__).resolve().parent.parent
"""The repository: working directory of the subprocesses that run ``-m benchmarks...``."""


@dataclass(frozen=True)
class Row:
    """One figure's comparison: the project's value beside the baseline's, and the goal.

    ``ratio`` is ours / baseline (for times: below 1 means the project is faster). A baseline
    that hit its time cap is ``capped``: the true value is at least ``baseline``.
    """

    figure: str
    title: str
    unit: str
    ours: float
    baseline: float | None
    goal: str
    met: bool
    ours_label: str = "pytest-kvmi"
    baseline_label: str = ""
    capped: bool = False
    samples: Mapping[str, Sequence[float]] = field(default_factory=dict)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0 or self.ours == 0:
            return None
        return self.ours / self.baseline


def ratio_row(
    figure: str,
    title: str,
    samples: Mapping[str, Sequence[float]],
    sides: tuple[str, str],
    *,
    limit: float,
    baseline_label: str,
    goal: str | None = None,
) -> Row:
    """A timed comparison whose goal is ``median(ours) / median(baseline) <= limit``;
    ``sides`` names the (ours, baseline) samples."""
    ours, baseline = median(samples[sides[0]]), median(samples[sides[1]])
    return Row(
        figure=figure,
        title=title,
        unit="s",
        ours=ours,
        baseline=baseline,
        goal=goal or f"ratio <= {limit:g}",
        met=ours / baseline <= limit,
        baseline_label=baseline_label,
        samples=samples,
    )


class Context:
    """How hard to measure (``quick`` is for trying the harness out, not for figures), and the
    emulator, started in its own process on first use and stopped when ``stack`` closes."""

    def __init__(self, stack: contextlib.ExitStack, *, quick: bool = False) -> None:
        self.quick = quick
        self._stack = stack
        self._emulators: dict[float, Where] = {}

    def runs(self, full: int, quick: int = 1) -> int:
        return quick if self.quick else full

    @property
    def where(self) -> Where:
        """The emulator as it is (no added latency)."""
        return self.emulator()

    def emulator(self, vault_latency: float = 0.0) -> Where:
        """The emulator with ``vault_latency`` seconds before every vault answer, started on
        first use; this process's environment then points azure-identity at it."""
        if vault_latency not in self._emulators:
            self._emulators[vault_latency] = self._stack.enter_context(
                emulator_process(vault_latency=vault_latency)
            )
        where = self._emulators[vault_latency]
        env = where.child_env()
        os.environ.clear()
        os.environ.update(env)
        return where


Figure = Callable[[Context], list[Row]]


def timed(action: Callable[[], object]) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def interleaved(sides: Mapping[str, Callable[[], float]], runs: int) -> dict[str, list[float]]:
    """Each side measured ``runs`` times, one of each per round, the order reversed every other
    round; each callable returns its own measurement (seconds)."""
    names = list(sides)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(runs):
        for name in names if round_number % 2 == 0 else reversed(names):
            samples[name].append(sides[name]())
    return samples


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def run_process(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path = ROOT
) -> float:
    """Wall seconds of a whole process (interpreter start and imports included); it must exit 0."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return elapsed


def python(*args: str) -> list[str]:
    """argv for this interpreter (the benchmark's environment) running ``args``."""
    return [sys.executable, *args]


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    return f"{value:,.0f} {unit}"


def table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table (it is pasted into benchmarks/README.md as is)."""
    head = ("Figure", "What", "pytest-kvmi", "Baseline", "Ratio", "Goal", "Met")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        baseline = "-"
        if row.baseline is not None:
            baseline = (">= " if row.capped else "") + _fmt(row.baseline, row.unit)
            baseline += f" ({row.baseline_label})" if row.baseline_label else ""
        ratio = "-" if row.ratio is None else ("<= " if row.capped else "") + f"{row.ratio:.3f}"
        cells = (
            row.figure,
            row.title,
            _fmt(row.ours, row.unit),
            baseline,
            ratio,
            row.goal,
            "yes" if row.met else "**no**",
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> dict[str, object]:
    """Where the figures were taken: they mean little without it."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_at_start": load,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_results(path: Path, rows: Sequence[Row], quick: bool, started: dict[str, object]) -> None:
    data = {
        "machine": started,
        "quick": quick,
        "figures": [{**asdict(row), "ratio": row.ratio} for row in rows],
    }
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
