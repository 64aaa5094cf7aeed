"""The end-of-run table and the JSON report of the shipped checks (standard library only).

Rows are what each check recorded (id, target, code, summary, remedy, warnings, steps) plus
pytest's outcome and duration; none of them can hold a token or a secret value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

SCHEMA = "pytest-kvmi/report/1"
_CHECK_FIELDS = ("id", "target", "outcome", "code", "summary", "remedy", "duration_s")


def _label(row: Mapping[str, Any]) -> str:
    return f"{row['id']}[{row['target']}]" if row.get("target") else str(row["id"])


def summary_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """check / outcome / code, one line each (a skip with its reason), with warnings and
    steps beneath."""
    width = max(len("check"), *(len(_label(row)) for row in rows))
    lines = [f"{'check':<{width}}  {'outcome':<8}  code"]
    for row in rows:
        line = f"{_label(row):<{width}}  {row['outcome']:<8}  {row.get('code') or '-'}"
        if row["outcome"] == "skipped":
            line += f"  ({row.get('summary')})"
        lines.append(line)
        lines.extend(f"{'':<{width}}    warning: {w}" for w in row.get("warnings", ()))
        lines.extend(f"{'':<{width}}    {step}" for step in row.get("steps", ()))
    return lines


def build_report(
    *,
    rows: Sequence[Mapping[str, Any]],
    vault: Mapping[str, Any],
    selected: Mapping[str, str | None],
) -> dict[str, Any]:
    """The ``pytest-kvmi/report/1`` document."""
    checks = [
        {
            **{name: row.get(name) for name in _CHECK_FIELDS},
            "warnings": list(row.get("warnings", ())),
            "steps": list(row.get("steps", ())),
        }
        for row in rows
    ]
    return {
        "schema": SCHEMA,
        "vault": dict(vault),
        # What the token said of the identity (identity-present records it), else what the
        # options selected.
        "identity": next((dict(r["identity"]) for r in rows if r.get("identity")), dict(selected)),
        "checks": checks,
    }
