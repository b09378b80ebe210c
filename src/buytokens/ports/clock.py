"""Time and identity, injected so that tests control them."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    """Tells the current time."""

    def now(self) -> datetime:
        """The current time, timezone-aware in UTC."""
        ...


class IdSource(Protocol):
    """Mints identifiers."""

    def new_id(self) -> str:
        """A fresh identifier, unique across processes and restarts."""
        ...
