"""Waiting out role propagation: reading a secret until the answer is final, and the
role-revocation experiment (readable, revoke, denied, restore, readable again) on an emulator.

Role changes take up to 10 minutes to reach Key Vault, so a 403 right after a grant (or a 200
right after a revocation) is not yet an answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from pytest_kvmi.diagnosis import Code, Diagnosis, diagnose
from pytest_kvmi.settings import SecretRef
from pytest_kvmi.vault import SecretBundle
from pytest_kvmi.verdicts import CheckRun, Verdict

POLL_SECONDS = 10.0
"""Pause between reads while a role change propagates."""
REVOCATION_SECONDS = 600.0
"""Emulated time allowed for a revocation to show: real propagation takes up to 10 minutes."""

Read = SecretBundle | Diagnosis
"""One read of a secret: the bundle, or why there is none."""


class RoleSwitch(Protocol):
    """What role-revocation needs from an emulator (the plugin adapts the real one)."""

    def revoke(self, secret: str) -> str:
        """Revoke the assignments that let the identity read ``secret``; describe them."""
        ...

    def restore(self) -> None:
        """Put the revoked assignments back."""
        ...

    def advance(self, seconds: float) -> None:
        """Move the emulated clock, so propagation happens without real waiting."""
        ...


def code_of(read: Read) -> Code:
    return Code.OK if isinstance(read, SecretBundle) else read.code


def shown(read: Read) -> str:
    """``200`` or ``403 ForbiddenByRbac``: what a read answered, for steps."""
    if isinstance(read, SecretBundle):
        return "200"
    return f"{read.facts.status} {read.code}" if read.facts.status else str(read.code)


def poll(
    read: Callable[[], Read],
    pending: Callable[[Read], bool],
    budget: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    on_wait: Callable[[Read, float], None] = lambda read, waited: None,
) -> tuple[Read, float]:
    """Read until ``pending`` says the answer is final or ``budget`` seconds are spent; return
    the last answer and the seconds it took. Time spent is at least the time slept, so a
    ``sleep`` that does not move ``clock`` (an emulated one) still ends the wait."""
    start, slept = clock(), 0.0

    def spent() -> float:
        return max(clock() - start, slept)

    found = read()
    while pending(found) and (waited := spent()) < budget:
        on_wait(found, waited)
        pause = min(POLL_SECONDS, budget - waited)
        sleep(pause)
        slept += pause
        found = read()
    return found, spent()


class _EmulatedTime:
    """Time that passes by moving the emulator's clock: propagation without real waiting."""

    def __init__(self, switch: RoleSwitch) -> None:
        self._switch = switch
        self._elapsed = 0.0

    def now(self) -> float:
        return self._elapsed

    def sleep(self, seconds: float) -> None:
        self._switch.advance(seconds)
        self._elapsed += seconds


def revoke_and_restore(
    run: CheckRun,
    secret: SecretRef,
    switch: RoleSwitch,
    read: Callable[[], Read],
    *,
    budget: float,
    excess_remedy: str,
) -> Verdict:
    """The experiment, each phase given ``budget`` emulated seconds; the assignment is
    restored whatever happens. ``excess_remedy`` is the fix when revoking changes nothing."""
    found = read()
    steps = [f"read {secret}: {shown(found)}"]
    if isinstance(found, Diagnosis):
        return run.failed(found, steps=tuple(steps))
    emulated = _EmulatedTime(switch)

    def read_while(pending: Code) -> Read:
        found, took = poll(
            read, lambda r: code_of(r) is pending, budget, emulated.now, emulated.sleep
        )
        steps.append(f"read {secret}: {shown(found)} after {took:.0f} s")
        return found

    try:
        revoked = switch.revoke(secret.name)
        steps.append(f"revoked {revoked}")
        denied = read_while(Code.OK)
    finally:
        switch.restore()
    steps.append("restored the assignment")
    if isinstance(denied, SecretBundle):
        return run.failed(
            diagnose(Code.OK),
            summary=f"{secret} stayed readable {budget:.0f} s after revoking {revoked}",
            causes=("Another assignment (or a broader scope) also lets the identity read it.",),
            remedy=excess_remedy,
            steps=tuple(steps),
        )
    if denied.code is not Code.FORBIDDEN_BY_RBAC:
        return run.failed(denied, steps=tuple(steps))
    back = read_while(Code.FORBIDDEN_BY_RBAC)
    if isinstance(back, Diagnosis):
        return run.failed(back, steps=tuple(steps))
    summary = (
        f"revoking {revoked} denied {secret} (403 ForbiddenByRbac); restoring it made "
        f"{secret} readable again"
    )
    return run.passed(denied.code, summary, steps=tuple(steps))
