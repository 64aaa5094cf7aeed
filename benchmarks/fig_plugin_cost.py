"""Figure 1: what installing pytest-kvmi costs every other pytest run in the environment."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from benchmarks.harness import Context, Row, interleaved, python, ratio_row, run_process

GOAL = 1.03
FILES = 5
TESTS_PER_FILE = 12
PYTEST_ENV = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")


def _project(root: Path) -> None:
    """A small project that has nothing to do with Azure: a few modules of plain tests."""
    for number in range(FILES):
        tests = "\n\n".join(
            f"def test_case_{number}_{case}():\n    assert {case} + 1 > {case}"
            for case in range(TESTS_PER_FILE)
        )
        (root / f"test_module_{number}.py").write_text(tests + "\n", encoding="utf-8")


def figure(context: Context) -> list[Row]:
    """``pytest --collect-only -q`` with the plugin against the same with ``-p no:kvmi``."""
    env = {k: v for k, v in os.environ.items() if k not in PYTEST_ENV}
    base = python("-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider")
    with tempfile.TemporaryDirectory(prefix="kvmi-bench-project-") as tmp:
        root = Path(tmp)
        _project(root)
        trace = subprocess.run(
            [*base, "--trace-config"], cwd=root, env=env, capture_output=True, text=True
        )
        if "pytest_kvmi" not in trace.stdout:
            raise RuntimeError("the kvmi plugin is not registered: is pytest-kvmi installed?")
        samples = interleaved(
            {
                "with": lambda: run_process(base, env=env, cwd=root),
                "without": lambda: run_process([*base, "-p", "no:kvmi"], env=env, cwd=root),
            },
            context.runs(30, 4),
        )
    title = f"pytest --collect-only -q, {FILES * TESTS_PER_FILE} unrelated tests"
    return [
        ratio_row("1", title, samples, ("with", "without"), limit=GOAL, baseline_label="-p no:kvmi")
    ]
