"""README stays true: its test command is what CI runs, and it explains every diagnosis."""

from __future__ import annotations

import re
from pathlib import Path

from pytest_kvmi.diagnosis import Code

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def test_ci_runs_readmes_test_command() -> None:
    command = "python3 -m pip install tox && python3 -m tox"
    assert f"```sh\n{command}\n```" in README
    assert command in (ROOT / ".ci" / "run").read_text()


def test_readme_has_the_main_job_command() -> None:
    assert "```sh\npython3 -m pip install . && python3 -m pytest --kv-emulator\n```" in README


def test_troubleshooting_lists_every_diagnosis_code() -> None:
    table = README.split("## Troubleshooting: every diagnosis")[1].split("\n## ")[0]
    listed = set(re.findall(r"^\| `([A-Za-z]+)` \|", table, re.MULTILINE))
    assert listed == {code.value for code in Code}
