"""What the IMDS and Key Vault clients share: one connection pool, retries within one
budget, a debug log line per attempt (method, path, status: never headers or bodies)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

import httpx

from pytest_kvmi.answers import Answer, Failure, exchange
from pytest_kvmi.retry import Backoff, parse_retry_after

Outcome = Answer | Failure
S = TypeVar("S", bound="Service")


class Service:
    """A client of one HTTP service; subclasses say what to retry and how to classify."""

    name = "service"

    def __init__(self, http: httpx.Client, backoff: Backoff, log: logging.Logger) -> None:
        self._http = http
        self._backoff = backoff
        self._log = log

    def _fetch(self, request: httpx.Request, should_retry: Callable[[Outcome], bool]) -> Outcome:
        """Send ``request``, again while ``should_retry`` says so and the budget allows."""

        def retry_after(outcome: Outcome) -> float | None:
            if not should_retry(outcome):
                return None
            if isinstance(outcome, Answer):
                return parse_retry_after(outcome.headers.get("retry-after"))
            return 0.0

        return self._backoff.run(lambda: self._attempt(request), retry_after)

    def _attempt(self, request: httpx.Request) -> Outcome:
        outcome = exchange(self._http, request)
        status = outcome.status if isinstance(outcome, Answer) else outcome.kind.name
        self._log.debug("%s %s %s -> %s", self.name, request.method, request.url.path, status)
        return outcome

    def close(self) -> None:
        self._http.close()

    def __enter__(self: S) -> S:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
