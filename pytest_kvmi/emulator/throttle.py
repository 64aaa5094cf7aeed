"""Key Vault's service limit: a vault answers 429 beyond N requests in a sliding window."""

from __future__ import annotations

import threading
from collections import deque

from .clock import Clock

KEY_VAULT_LIMIT = 4000
KEY_VAULT_WINDOW_SECONDS = 10.0


class Throttle:
    """Counts each vault's admitted requests over the last ``window`` emulated seconds."""

    def __init__(
        self, clock: Clock, limit: int = KEY_VAULT_LIMIT, window: float = KEY_VAULT_WINDOW_SECONDS
    ) -> None:
        self._clock = clock
        self.limit = limit
        self.window = window
        self._lock = threading.Lock()
        self._admitted: dict[str, deque[float]] = {}

    def admit(self, vault: str) -> bool:
        """Record a request to ``vault`` and say whether it is within the limit.

        Refused requests are not counted, so a client that backs off recovers once the window
        has moved on.
        """
        now = self._clock.now()
        with self._lock:
            times = self._admitted.setdefault(vault.lower(), deque())
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) >= self.limit:
                return False
            times.append(now)
            return True
