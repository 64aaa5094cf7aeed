"""Run the benchmarks: ``python -m benchmarks.run [--quick] [--only 1,5]`` (or ``tox -e bench``).

Prints the table and writes benchmarks/results.json. A figure is a function of the
:class:`~benchmarks.harness.Context` returning rows; add one to FIGURES.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks import (
    fig_bulk,
    fig_capacity,
    fig_checks,
    fig_emulator_run,
    fig_no_imds,
    fig_plugin_cost,
)
from benchmarks.harness import Context, Figure, Row, machine, table, write_results

FIGURES: dict[str, Figure] = {
    "1": fig_plugin_cost.figure,
    "2": fig_emulator_run.figure,
    "3": fig_checks.figure,
    "4": fig_no_imds.figure,
    "5": fig_bulk.figure,
    "6": fig_capacity.figure,
}
RESULTS = Path(__file__).resolve().parent / "results.json"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few runs: to try the harness")
    parser.add_argument("--only", default=",".join(FIGURES), help="figures to run, e.g. 1,5")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args(argv)
    chosen = [key.strip() for key in args.only.split(",") if key.strip()]
    unknown = [key for key in chosen if key not in FIGURES]
    if unknown:
        parser.error(f"unknown figures {unknown}; known: {', '.join(FIGURES)}")
    started = machine()
    rows: list[Row] = []
    with contextlib.ExitStack() as stack:
        context = Context(stack, quick=args.quick)
        for key in chosen:
            sys.stderr.write(f"figure {key}...\n")
            rows.extend(FIGURES[key](context))
    write_results(args.out, rows, args.quick, started)
    sys.stdout.write(table(rows) + "\n")
    for row in rows:
        if row.note:
            sys.stdout.write(f"{row.figure}: {row.note}\n")
    sys.stdout.write(f"(written to {args.out})\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
