"""In-memory adapters: thread-safe fakes for tests and for services that embed the core."""

from __future__ import annotations

import itertools
import threading
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from buytokens.adapters.system import SystemClock
from buytokens.domain.checkout import Delivery
from buytokens.domain.crediting import PurchaseTransition
from buytokens.domain.errors import ConcurrentUpdate
from buytokens.domain.ledger import LedgerChange, LedgerEntry
from buytokens.domain.purchases import Purchase
from buytokens.domain.users import canonical_user_id
from buytokens.ports.checkout import KeyReservation
from buytokens.ports.clock import Clock


class FixedClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward by ``delta``."""
        with self._lock:
            self._now += delta


class SequentialIdSource:
    """Predictable identifiers for tests: ``prefix-1``, ``prefix-2``, ..."""

    def __init__(self, prefix: str = "id") -> None:
        self._prefix = prefix
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def new_id(self) -> str:
        with self._lock:
            return f"{self._prefix}-{next(self._counter)}"


class InMemoryBalanceRepository:
    """A BalanceRepository in a dict, atomic under one lock. Nothing survives the process."""

    def __init__(
        self, clock: Clock | None = None, journal: InMemoryEventJournal | None = None
    ) -> None:
        self._clock: Clock = clock or SystemClock()
        self.journal = journal or InMemoryEventJournal()
        self._lock = threading.Lock()
        self._purchases: dict[str, Purchase] = {}
        self._balances: dict[str, int] = defaultdict(int)
        self._entries: dict[str, list[LedgerEntry]] = defaultdict(list)
        self._keys: dict[str, LedgerEntry] = {}

    def get_purchase(self, payment_intent_id: str) -> Purchase | None:
        with self._lock:
            return self._purchases.get(payment_intent_id)

    def add_purchase(self, purchase: Purchase) -> Purchase:
        with self._lock:
            return self._purchases.setdefault(purchase.payment_intent_id, purchase)

    def commit(self, transition: PurchaseTransition) -> tuple[LedgerEntry, ...]:
        purchase = transition.purchase
        with self._lock:
            stored = self._purchases.get(purchase.payment_intent_id)
            stored_version = None if stored is None else stored.version
            if stored_version != transition.expected_version:
                raise ConcurrentUpdate(
                    f"purchase {purchase.payment_intent_id} is at version {stored_version}, "
                    f"not {transition.expected_version}"
                )
            if any(change.key in self._keys for change in transition.changes):
                raise ConcurrentUpdate(f"purchase {purchase.payment_intent_id} already applied")
            self._purchases[purchase.payment_intent_id] = purchase
            if transition.delivery is not None:
                self.journal.note(transition.delivery)
            return tuple(self._apply(change) for change in transition.changes)

    def record_delivery(self, delivery: Delivery) -> None:
        self.journal.note(delivery)

    def record_adjustment(self, change: LedgerChange) -> LedgerEntry:
        with self._lock:
            existing = self._keys.get(change.key)
            if existing is not None:
                return existing
            return self._apply(change)

    def _apply(self, change: LedgerChange) -> LedgerEntry:
        entry = LedgerEntry.from_change(change, self._balances[change.user_id], self._clock.now())
        self._balances[change.user_id] = entry.balance_after
        self._entries[change.user_id].append(entry)
        self._keys[change.key] = entry
        return entry

    def balance(self, user_id: str) -> int:
        user_id = canonical_user_id(user_id)
        with self._lock:
            return self._balances.get(user_id, 0)

    def purchases(self, user_id: str, limit: int = 100) -> Sequence[Purchase]:
        user_id = canonical_user_id(user_id)
        with self._lock:
            mine = [p for p in self._purchases.values() if p.user_id == user_id]
        mine.sort(key=lambda p: (p.created_at, p.payment_intent_id), reverse=True)
        return mine[:limit]

    def ledger(self, user_id: str, limit: int = 100) -> Sequence[LedgerEntry]:
        user_id = canonical_user_id(user_id)
        with self._lock:
            return list(reversed(self._entries.get(user_id, [])))[:limit]

    def purchase_ledger(self, payment_intent_id: str) -> Sequence[LedgerEntry]:
        with self._lock:
            return [e for e in self._keys.values() if e.payment_intent_id == payment_intent_id]

    def flagged_purchases(self, limit: int = 100) -> Sequence[Purchase]:
        with self._lock:
            flagged = [p for p in self._purchases.values() if p.review_reason is not None]
        flagged.sort(key=lambda p: (p.updated_at, p.payment_intent_id))
        return flagged[:limit]


class InMemoryCheckoutKeys:
    """CheckoutKeys in a dict."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, str], KeyReservation] = {}

    def reserve(
        self, user_id: str, key: str, fingerprint: str, at: datetime
    ) -> KeyReservation | None:
        with self._lock:
            existing = self._keys.get((user_id, key))
            if existing is None:
                self._keys[(user_id, key)] = KeyReservation(fingerprint, at, None)
            return existing

    def complete(self, user_id: str, key: str, payment_intent_id: str) -> None:
        with self._lock:
            reservation = self._keys[(user_id, key)]
            self._keys[(user_id, key)] = KeyReservation(
                reservation.fingerprint, reservation.reserved_at, payment_intent_id
            )

    def release(self, user_id: str, key: str) -> None:
        with self._lock:
            reservation = self._keys.get((user_id, key))
            if reservation is not None and reservation.payment_intent_id is None:
                del self._keys[(user_id, key)]


class InMemoryEventJournal:
    """EventJournal in a dict: event id to (type, disposition, deliveries).

    The in-memory store writes it (``note``), as the other stores write their journal.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, tuple[str, str, int]] = {}

    def note(self, delivery: Delivery) -> None:
        """Record one delivery."""
        with self._lock:
            _type, _disposition, count = self._events.get(delivery.event_id, ("", "", 0))
            self._events[delivery.event_id] = (delivery.event_type, delivery.disposition, count + 1)

    def deliveries(self, event_id: str) -> tuple[str, int] | None:
        with self._lock:
            known = self._events.get(event_id)
        return None if known is None else (known[1], known[2])
