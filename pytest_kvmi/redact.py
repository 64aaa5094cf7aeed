"""Wrappers for values that must never be printed: tokens and secret values."""

from __future__ import annotations

import hmac
from typing import Generic, NoReturn, TypeVar

T = TypeVar("T")

REDACTED = "<redacted>"


class Redacted(Generic[T]):
    """Holds a value whose ``repr`` and ``str`` never show it.

    The value comes out only through :meth:`reveal`, so every place that exposes a token or a
    secret is a call that can be searched for. Pickling is refused so the value cannot travel
    into caches, worker processes or reports by accident.
    """

    __slots__ = ("_value",)

    def __init__(self, value: T) -> None:
        self._value = value

    def reveal(self) -> T:
        """The wrapped value: call this only where it must leave the process (a header, an app)."""
        return self._value

    def __repr__(self) -> str:
        return f"Redacted({REDACTED})"

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return repr(self)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Redacted):
            return NotImplemented
        mine, theirs = self._value, other._value
        if isinstance(mine, str) and isinstance(theirs, str):
            return hmac.compare_digest(mine.encode(), theirs.encode())
        return bool(mine == theirs)

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> NoReturn:
        raise TypeError("a redacted value cannot be pickled")
