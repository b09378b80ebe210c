"""One crash injector for every store's crash tests: kill the process at its n-th operation."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class SimulatedCrash(BaseException):
    """The process died here; no ``except Exception`` of the code under test catches it."""


class CrashAt:
    """Counts the operations passed through it and crashes at the ``n``-th, before or after it.

    A crash is final: every later operation crashes too, as nothing runs in a
    killed process. ``error`` instead fails that one operation with another
    exception (e.g. a driver error for a reply lost after the write took effect)
    and lets the rest run. With ``n`` None it only counts.
    """

    def __init__(
        self,
        n: int | None = None,
        *,
        after: bool = False,
        error: Callable[[], Exception] | None = None,
    ) -> None:
        self.n = n
        self.after = after
        self.error = error
        self.count = 0
        self.dead = False

    def arm(self, n: int | None) -> None:
        """Start counting again, to crash at the ``n``-th operation from now (None: never)."""
        self.n, self.count, self.dead = n, 0, False

    def __call__(self, operation: Callable[[], T]) -> T:
        """Run ``operation`` unless this is where the process dies."""
        if self.dead:
            raise SimulatedCrash("the process is dead")
        self.count += 1
        if self.count != self.n:
            return operation()
        if self.after:
            operation()
        if self.error is not None:
            raise self.error()
        self.dead = True
        raise SimulatedCrash(f"crash {'after' if self.after else 'before'} operation {self.n}")


def crashing_connection(crash: CrashAt) -> type[sqlite3.Connection]:
    """A connection class whose every statement, on any thread, passes through ``crash``."""

    class CrashingConnection(sqlite3.Connection):
        def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
            return crash(lambda: sqlite3.Connection.execute(self, sql, parameters))

    return CrashingConnection
