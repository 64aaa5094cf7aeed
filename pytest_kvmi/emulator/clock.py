"""The emulator's notion of now: real time by default, movable by tests so nothing sleeps."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Clock:
    """Seconds since the epoch, shifted by however far tests have advanced it.

    ``Clock()`` follows the wall clock; ``Clock(start=...)`` is frozen at ``start`` and moves only
    through :meth:`advance`. Token lifetimes, secret timestamps, propagation delays and throttling
    windows all read this clock, never :func:`time.time` directly.
    """

    def __init__(self, start: float | None = None, *, source: Callable[[], float] = time.time):
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen = start
        self._source = source

    def now(self) -> float:
        """Current emulated time (seconds since the epoch)."""
        base = self._frozen if self._frozen is not None else self._source()
        return base + self._offset

    def advance(self, seconds: float) -> None:
        """Move emulated time forward; negative values are refused (time only goes forward)."""
        if seconds < 0:
            raise ValueError("the emulated clock only moves forward")
        with self._lock:
            self._offset += seconds

    def __repr__(self) -> str:
        mode = "frozen" if self._frozen is not None else "wall"
        return f"Clock({mode}, now={self.now():.3f})"
