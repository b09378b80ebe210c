"""PromoCodes in dicts, atomic under one lock. Nothing survives the process."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime

import attrs

from buytokens.domain.promo_uses import PromoUse, UseState
from buytokens.domain.promotions import PromoCode


class InMemoryPromoCodes:
    """PromoCodes keyed by code and by checkout id; the lock makes each write a
    compare-and-set, and ``write_use`` checks the two unique tickets itself."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: dict[str, PromoCode] = {}
        self._uses: dict[str, PromoUse] = {}

    def create(self, promo: PromoCode) -> bool:
        with self._lock:
            if promo.code in self._codes:
                return False
            self._codes[promo.code] = promo
            return True

    def get(self, code: str) -> PromoCode | None:
        with self._lock:
            return self._codes.get(code)

    def codes(self) -> Sequence[PromoCode]:
        with self._lock:
            promos = list(self._codes.values())
        promos.sort(key=lambda p: (p.created_at, p.code), reverse=True)
        return promos

    def disable(self, code: str) -> bool:
        with self._lock:
            promo = self._codes.get(code)
            if promo is None:
                return False
            self._codes[code] = promo.disable()
            return True

    def live_uses(self, code: str) -> Sequence[PromoUse]:
        with self._lock:
            return [
                u
                for u in self._uses.values()
                if u.code == code and u.state is not UseState.RELEASED
            ]

    def find_use(self, checkout_id: str) -> PromoUse | None:
        with self._lock:
            return self._uses.get(checkout_id)

    def write_use(self, use: PromoUse, previous: PromoUse | None) -> bool:
        with self._lock:
            if self._uses.get(use.checkout_id) != previous:
                return False
            if use.state is not UseState.RELEASED:
                for other in self._uses.values():
                    if (
                        other.checkout_id == use.checkout_id
                        or other.code != use.code
                        or other.state is UseState.RELEASED
                    ):
                        continue
                    if use.ticket is not None and other.ticket == use.ticket:
                        return False
                    if other.user_id == use.user_id and other.user_ticket == use.user_ticket:
                        return False
            self._uses[use.checkout_id] = use
            return True

    def retire(self, stale: PromoUse, now: datetime, *, intent_canceled: bool = False) -> bool:
        with self._lock:
            stored = self._uses.get(stale.checkout_id)
            if stored != stale or stored.state is not UseState.HELD or now < stored.held_until:
                return False
            self._uses[stale.checkout_id] = stored.released(cancel_pending=not intent_canceled)
            return True

    def pending_cancels(self) -> Sequence[PromoUse]:
        with self._lock:
            return [u for u in self._uses.values() if u.cancel_pending]

    def release(self, checkout_id: str) -> PromoUse | None:
        with self._lock:
            stored = self._uses.get(checkout_id)
            if stored is None or stored.state is not UseState.HELD:
                return None
            released = stored.released()
            self._uses[checkout_id] = released
            return released

    def attach_intent(self, checkout_id: str, payment_intent_id: str) -> None:
        with self._lock:
            stored = self._uses.get(checkout_id)
            if stored is not None and stored.state is UseState.HELD:
                self._uses[checkout_id] = attrs.evolve(stored, payment_intent_id=payment_intent_id)
