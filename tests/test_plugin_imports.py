"""Every pytest run in an environment imports the plugin: it must stay light."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("httpx", "jwt", "cryptography", "responses", "requests", "trustme")


def test_importing_the_plugin_imports_nothing_heavy() -> None:
    script = (
        "import json, sys\n"
        "import pytest_kvmi.plugin\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(result.stdout) == []


def test_the_plugin_is_registered_under_kvmi() -> None:
    from importlib.metadata import entry_points

    (entry,) = [e for e in entry_points(group="pytest11") if e.name == "kvmi"]
    assert entry.value == "pytest_kvmi.plugin"
