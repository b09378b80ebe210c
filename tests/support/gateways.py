"""A payment gateway that holds its retrievals until the test lets them through."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime

from buytokens.domain.checkout import IntentRequest, IntentSnapshot, ReceivedEvent
from buytokens.ports.payments import PaymentGateway


class GatedGateway:
    """``PaymentGateway`` in front of another: every retrieval waits at a gate and is counted.

    It stands for a Stripe that is slow to answer: ``calls`` says how many
    retrievals reached it, ``release()`` lets every waiting and later one through.
    """

    def __init__(self, inner: PaymentGateway) -> None:
        self._inner = inner
        self._gate = threading.Event()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self.calls = 0

    def release(self) -> None:
        """Let every retrieval through, now and from now on."""
        self._gate.set()

    def wait_for_calls(self, count: int, timeout: float = 10) -> bool:
        """Block until at least ``count`` retrievals arrived; False on timeout."""
        with self._arrived:
            return self._arrived.wait_for(lambda: self.calls >= count, timeout)

    def retrieve_payment_intent(self, payment_intent_id: str) -> IntentSnapshot:
        with self._arrived:
            self.calls += 1
            self._arrived.notify_all()
        if not self._gate.wait(timeout=30):
            raise AssertionError("the test never released the gate")
        return self._inner.retrieve_payment_intent(payment_intent_id)

    def create_payment_intent(self, request: IntentRequest) -> IntentSnapshot:
        return self._inner.create_payment_intent(request)

    def parse_webhook(self, payload: bytes, signature_header: str | None) -> ReceivedEvent:
        return self._inner.parse_webhook(payload, signature_header)

    def events_since(self, since: datetime) -> Iterator[ReceivedEvent]:
        return self._inner.events_since(since)
