"""Every pytest run in an environment imports the plugin: it must stay light."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("httpx", "jwt", "cryptography", "responses", "requests", "trustme")


def test_importing_the_plugin_imports_nothing_heavy() -> None:
    """Only the standard library, pytest, and the plugin's own standard-library-only options:
    none of the package's clients, and none of the libraries they use."""
    script = (
        "import json, sys\n"
        "import pytest_kvmi.plugin\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('pytest_kvmi') or m in"
        f" {HEAVY!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(result.stdout) == ["pytest_kvmi", "pytest_kvmi.options", "pytest_kvmi.plugin"]


def test_the_plugin_is_registered_under_kvmi() -> None:
    from importlib.metadata import entry_points

    (entry,) = [e for e in entry_points(group="pytest11") if e.name == "kvmi"]
    assert entry.value == "pytest_kvmi.plugin"
