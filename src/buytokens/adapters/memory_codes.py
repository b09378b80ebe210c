"""RedemptionCodes in a dict, atomic under one lock. Nothing survives the process."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime

import attrs

from buytokens.domain.codes import CodeRecord, check_gift_index, check_same_gift
from buytokens.domain.errors import StoreCorrupted
from buytokens.domain.users import canonical_user_id


class InMemoryRedemptionCodes:
    """RedemptionCodes keyed by digest; the lock makes ``claim`` a compare-and-set."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: dict[str, CodeRecord] = {}

    def add(self, records: Sequence[CodeRecord]) -> None:
        if any(record.redeemed_by is not None for record in records):
            raise ValueError("only new, unredeemed codes can be added")
        with self._lock:
            digests = [record.digest for record in records]
            if len(set(digests)) != len(digests) or any(d in self._codes for d in digests):
                raise StoreCorrupted("a code with this digest is already stored")
            for record in records:
                self._codes[record.digest] = _as_stored(record)

    def index_gift(self, record: CodeRecord) -> None:
        check_gift_index(record)
        with self._lock:
            stored = self._codes.setdefault(record.digest, _as_stored(record))
        check_same_gift(stored, record)

    def find(self, digest: str) -> CodeRecord | None:
        with self._lock:
            return self._codes.get(digest)

    def claim(self, digest: str, user_id: str, at: datetime) -> bool:
        user_id = canonical_user_id(user_id)
        with self._lock:
            record = self._codes.get(digest)
            if record is None or record.redeemed_by is not None:
                return False
            self._codes[digest] = attrs.evolve(record, redeemed_by=user_id, redeemed_at=at)
            return True

    def mark_credited(self, digest: str) -> None:
        with self._lock:
            record = self._codes.get(digest)
            if record is not None and record.redeemed_by is not None:
                self._codes[digest] = attrs.evolve(record, credited=True)

    def codes(self, *, unredeemed_only: bool = False, limit: int = 1000) -> Sequence[CodeRecord]:
        with self._lock:
            records = [
                r for r in self._codes.values() if not unredeemed_only or r.redeemed_by is None
            ]
        records.sort(key=lambda r: (r.created_at, r.digest), reverse=True)
        return records[: max(limit, 0)]

    def uncredited(self, limit: int = 100) -> Sequence[CodeRecord]:
        with self._lock:
            waiting = [r for r in self._codes.values() if r.redeemed_by and not r.credited]
        waiting.sort(key=lambda r: (r.redeemed_at, r.digest))
        return waiting[: max(limit, 0)]


def _as_stored(record: CodeRecord) -> CodeRecord:
    """What a store keeps: a gift's void and pending reasons are views of its purchase."""
    return attrs.evolve(record, void_reason=None, pending_reason=None)
