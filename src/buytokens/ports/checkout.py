"""Records the checkout and the webhook need beside the balances."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

import attrs


@attrs.frozen
class KeyReservation:
    """A client's idempotency key, as first used."""

    fingerprint: str  # what the first request asked for (package and method)
    reserved_at: datetime
    payment_intent_id: str | None  # None while the first request is still creating it


class CheckoutKeys(Protocol):
    """Remembers each user's idempotency keys so a repeated request gets the same intent."""

    def reserve(
        self, user_id: str, key: str, fingerprint: str, at: datetime
    ) -> KeyReservation | None:
        """Reserve ``(user_id, key)`` atomically.

        Returns None when this call made the reservation (the caller goes on to
        create the intent), or the reservation that already exists.
        """
        ...

    def complete(self, user_id: str, key: str, payment_intent_id: str) -> None:
        """Attach the created intent to the reservation."""
        ...

    def release(self, user_id: str, key: str) -> None:
        """Forget an uncompleted reservation, so that the request can be tried again."""
        ...


@runtime_checkable
class AwaitableCheckoutKeys(Protocol):
    """Checkout keys whose completion an event loop can await without parking a thread."""

    async def complete_awaiting(self, user_id: str, key: str, payment_intent_id: str) -> None:
        """``CheckoutKeys.complete``, awaited: returns once the completion is durable."""
        ...

    async def release_awaiting(self, user_id: str, key: str) -> None:
        """``CheckoutKeys.release``, awaited."""
        ...


class EventJournal(Protocol):
    """The audit trail of every provider event received, and what became of it: its read side.

    Deliveries are written through the balance store's unit of work
    (``PurchaseUnitOfWork.commit`` and ``record_delivery``), never here.
    Raises ``StoreUnavailable`` when the store cannot be reached.
    """

    def deliveries(self, event_id: str) -> tuple[str, int] | None:
        """The latest disposition and the number of deliveries of one event, or None."""
        ...
