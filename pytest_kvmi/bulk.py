"""Reading many secrets at once: one connection pool, bounded concurrency, and a request rate
kept under Key Vault's service limit, so checking a whole vault is fast without being throttled.

Every secret gets a :class:`ReadResult`, in input order; one secret's failure is its result's
diagnosis, never an exception. Values stay redacted.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pytest_kvmi.diagnosis import Code, Diagnosis, Facts, KvmiError, diagnose
from pytest_kvmi.retry import Clock, Sleep
from pytest_kvmi.settings import SecretRef, parse_secret
from pytest_kvmi.token import AccessToken
from pytest_kvmi.vault import SecretBundle, VaultClient

DEFAULT_CONCURRENCY = 16


@dataclass(frozen=True)
class RateLimit:
    """At most ``requests`` in any ``per`` seconds."""

    requests: int
    per: float

    def __post_init__(self) -> None:
        if self.requests < 1 or not self.per > 0:
            raise ValueError(f"{self!r}: at least one request in a positive number of seconds")


KEY_VAULT_LIMIT = RateLimit(3600, 10.0)
"""Key Vault allows 4,000 secret GETs per 10 s per vault; a margin below it leaves room for
other clients and for clocks that disagree on where a window starts."""


class RateLimiter:
    """A sliding-window limiter shared by threads: :meth:`acquire` blocks until a request may go.

    Pass one instance to several :func:`read_secrets` calls to share one budget between them.
    """

    def __init__(
        self, limit: RateLimit, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
    ) -> None:
        self.limit = limit
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._admitted: deque[float] = deque()

    def acquire(self) -> None:
        """Wait (outside the lock) until fewer than ``limit.requests`` were admitted in the last
        ``limit.per`` seconds, then count this request."""
        while True:
            with self._lock:
                now = self._clock()
                while self._admitted and self._admitted[0] + self.limit.per <= now:
                    self._admitted.popleft()
                if len(self._admitted) < self.limit.requests:
                    self._admitted.append(now)
                    return
                wait = self._admitted[0] + self.limit.per - now
            self._sleep(wait)


@dataclass(frozen=True)
class ReadResult:
    """One secret's outcome: its bundle (value redacted) if readable, and the diagnosis."""

    secret: SecretRef
    bundle: SecretBundle | None
    diagnosis: Diagnosis

    @property
    def ok(self) -> bool:
        return self.diagnosis.ok


def read_secrets(
    vault: VaultClient,
    secrets: Iterable[SecretRef | str],
    token: AccessToken,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    rate: RateLimit | RateLimiter = KEY_VAULT_LIMIT,
) -> list[ReadResult]:
    """Read every secret with ``token``, ``concurrency`` at a time, under ``rate``.

    Names are checked first (a bad one raises SettingsError before any request). The vault's
    challenge is asked once, before fanning out; if it fails, that KvmiError is raised, since no
    secret could be read. The limiter counts each read, not the one challenge nor the retries of
    a throttled read (those honour Retry-After). ``vault`` must keep at least ``concurrency``
    connections open (its ``pool_size``).
    """
    if concurrency < 1:
        raise ValueError(f"concurrency {concurrency}: at least 1")
    if concurrency > vault.pool_size:
        raise ValueError(
            f"concurrency {concurrency} exceeds the vault client's pool of {vault.pool_size} "
            f"connections: build the VaultClient with pool_size={concurrency}"
        )
    refs = [parse_secret(s) if isinstance(s, str) else s for s in secrets]
    if not refs:
        return []
    limiter = rate if isinstance(rate, RateLimiter) else RateLimiter(rate)
    vault.challenge()
    facts = token.facts().merge(vault.facts())

    def read(ref: SecretRef) -> ReadResult:
        limiter.acquire()
        try:
            bundle = vault.get_secret(ref, token)
        except KvmiError as error:
            return ReadResult(ref, None, error.diagnosis)
        return ReadResult(ref, bundle, diagnose(Code.OK, facts.merge(Facts(secret_name=ref.name))))

    with ThreadPoolExecutor(max_workers=min(concurrency, len(refs))) as pool:
        return list(pool.map(read, refs))
