"""What a check concludes: a :class:`Verdict`, safe to print and to write to a report.

Kept apart from the checks themselves so reports and the plugin can handle verdicts without
knowing how they were reached.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pytest_kvmi.diagnosis import Code, Diagnosis


class Outcome(enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Verdict:
    """One check's conclusion. No field ever holds a token or a secret value."""

    check: str
    """The stable check id, e.g. ``secret-readable``."""
    target: str | None
    """The secret (``str(SecretRef)``) for secret checks, else None."""
    outcome: Outcome
    code: str | None
    """The code of what the services answered (``ok`` on a readable secret, ``ForbiddenByRbac``
    on a denied one); None only when skipped before any answer."""
    summary: str
    causes: tuple[str, ...] = ()
    remedy: str = ""
    warnings: tuple[str, ...] = ()
    steps: tuple[str, ...] = ()
    """What was done, in order (waits, revocations), for display."""

    def render(self) -> str:
        """The multi-line text shown to a person, e.g. as a pytest failure message."""
        lines = [f"{self.code or self.outcome.value}: {self.summary}"]
        lines += _section("Likely causes:", self.causes)
        if self.remedy:
            lines.append(f"Fix: {self.remedy}")
        lines += _section("Warnings:", self.warnings)
        lines += _section("Steps:", self.steps)
        return "\n".join(lines)


def _section(title: str, items: tuple[str, ...]) -> list[str]:
    return [title, *(f"  - {item}" for item in items)] if items else []


@dataclass(frozen=True)
class CheckRun:
    """One check about to run: makes its verdicts from diagnoses."""

    check: str
    target: str | None = None

    @property
    def label(self) -> str:
        """``secret-readable[db]``: the check and its target, as test ids show them."""
        return f"{self.check}[{self.target}]" if self.target else self.check

    def passed(
        self,
        code: Code,
        summary: str,
        *,
        warnings: tuple[str, ...] = (),
        steps: tuple[str, ...] = (),
    ) -> Verdict:
        """A pass; ``code`` is what the services answered (``ok``, or the intended denial)."""
        return Verdict(
            self.check,
            self.target,
            Outcome.PASSED,
            code.value,
            summary,
            warnings=warnings,
            steps=steps,
        )

    def failed(
        self,
        diagnosis: Diagnosis,
        *,
        summary: str | None = None,
        causes: tuple[str, ...] | None = None,
        remedy: str | None = None,
        steps: tuple[str, ...] = (),
    ) -> Verdict:
        """A failure told by ``diagnosis``, with any of its texts replaced."""
        return Verdict(
            self.check,
            self.target,
            Outcome.FAILED,
            diagnosis.code.value,
            diagnosis.summary if summary is None else summary,
            diagnosis.causes if causes is None else causes,
            diagnosis.remedy if remedy is None else remedy,
            steps=steps,
        )

    def skipped(self, reason: str) -> Verdict:
        return Verdict(self.check, self.target, Outcome.SKIPPED, None, reason)
