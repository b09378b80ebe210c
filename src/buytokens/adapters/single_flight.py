"""Concurrent reads of one payment intent share one call to the provider."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import datetime

from buytokens.domain.checkout import CancelOutcome, IntentRequest, IntentSnapshot, ReceivedEvent
from buytokens.ports.payments import PaymentGateway


class SingleFlightPaymentGateway:
    """``PaymentGateway`` in front of another, sharing concurrent retrievals of one intent.

    The first caller for an intent id makes the provider call; whoever asks for the
    same id while it runs waits for that call's outcome (snapshot or error) instead
    of calling again, so a page polled from ten tabs costs one request. A call that
    starts after the previous one ended asks the provider afresh. Everything else
    passes straight through: creating and canceling an intent are idempotent, and
    parsing a webhook never calls the provider.
    """

    def __init__(self, inner: PaymentGateway) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._flights: dict[str, Future[IntentSnapshot]] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._inner!r})"

    def retrieve_payment_intent(self, payment_intent_id: str) -> IntentSnapshot:
        """The intent as the provider has it now, shared with concurrent callers."""
        with self._lock:
            flight = self._flights.get(payment_intent_id)
            if flight is not None:
                leading = False
            else:
                leading = True
                flight = self._flights[payment_intent_id] = Future()
        if not leading:
            return flight.result()
        try:
            snapshot = self._inner.retrieve_payment_intent(payment_intent_id)
        except BaseException as exc:
            self._land(payment_intent_id)
            flight.set_exception(exc)
            raise
        self._land(payment_intent_id)
        flight.set_result(snapshot)
        return snapshot

    def _land(self, payment_intent_id: str) -> None:
        with self._lock:
            del self._flights[payment_intent_id]

    def create_payment_intent(self, request: IntentRequest) -> IntentSnapshot:
        """Passed through: the purchase id keys the provider's own idempotency."""
        return self._inner.create_payment_intent(request)

    def cancel_payment_intent(self, payment_intent_id: str) -> CancelOutcome:
        """Passed through: canceling is idempotent at the provider."""
        return self._inner.cancel_payment_intent(payment_intent_id)

    def parse_webhook(self, payload: bytes, signature_header: str | None) -> ReceivedEvent:
        """Passed through; no provider call."""
        return self._inner.parse_webhook(payload, signature_header)

    def events_since(self, since: datetime) -> Iterator[ReceivedEvent]:
        """Passed through."""
        return self._inner.events_since(since)
