"""Retrying within one time budget, the way IMDS asks clients to (exponential backoff,
Retry-After honoured), with the clock and sleep injectable so tests never wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar

T = TypeVar("T")

Sleep = Callable[[float], None]
Clock = Callable[[], float]


@dataclass(frozen=True)
class Backoff:
    """Delays of ``first * 2**attempt`` capped at ``cap``, all within ``budget`` seconds."""

    budget: float
    first: float = 0.25
    cap: float = 4.0
    sleep: Sleep = time.sleep
    clock: Clock = time.monotonic

    def run(
        self,
        attempt: Callable[[], T],
        retry_after: Callable[[T], float | None],
    ) -> T:
        """Call ``attempt`` until ``retry_after`` of its outcome is None (done) or the next wait
        would overrun the budget; the last outcome is returned either way."""
        deadline = self.clock() + self.budget
        tries = 0
        while True:
            outcome = attempt()
            asked = retry_after(outcome)
            if asked is None:
                return outcome
            delay = max(asked, min(self.first * 2**tries, self.cap))
            if self.clock() + delay > deadline:
                return outcome
            self.sleep(delay)
            tries += 1


def parse_retry_after(value: str | None) -> float:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date); 0 if absent or bad."""
    if not value:
        return 0.0
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return 0.0
    return max(0.0, moment.timestamp() - time.time())
