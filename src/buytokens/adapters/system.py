"""The real clock and identifier source that production wires in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime


class SystemClock:
    """The real time, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class UuidIdSource:
    """Random UUID4 identifiers."""

    def new_id(self) -> str:
        return uuid.uuid4().hex
