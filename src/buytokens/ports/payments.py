"""The payment provider."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Protocol

import attrs

from buytokens.domain.checkout import CancelOutcome, IntentRequest, IntentSnapshot, ReceivedEvent


@attrs.frozen
class EventHistory:
    """How far back a payment provider lists its events (``events_since``), and its name.

    A window starting earlier would silently miss events; the name is for the
    message that says so.
    """

    provider: str
    window: timedelta


class PaymentGateway(Protocol):
    """Creates payment intents, reads them back, and verifies the provider's events.

    Errors: ``PaymentDeclined`` (tell the user), ``GatewayUnavailable`` (retry later),
    ``GatewayRejected`` (our request or credentials are wrong: alert an operator).
    """

    def create_payment_intent(self, request: IntentRequest) -> IntentSnapshot:
        """Create an intent for the package's price with metadata userId, packageId,
        tokens and purchaseId; the same ``purchase_id`` never charges twice."""
        ...

    def retrieve_payment_intent(self, payment_intent_id: str) -> IntentSnapshot:
        """The intent as the provider has it now; ``NotFound`` if it has none."""
        ...

    def cancel_payment_intent(self, payment_intent_id: str) -> CancelOutcome:
        """Cancel the intent so that it can no longer be paid.

        Idempotent: an intent canceled already is ``CANCELED`` again. One that
        succeeded or is processing cannot be canceled: ``TOO_LATE``, not an error,
        and the payment stands. ``NotFound`` if the provider has no such intent;
        ``GatewayUnavailable`` when the provider cannot be reached (try again later).
        """
        ...

    def parse_webhook(self, payload: bytes, signature_header: str | None) -> ReceivedEvent:
        """Verify the signature over the raw ``payload`` and parse the event.

        Raises ``InvalidWebhook`` for a missing, forged or stale signature or a body
        that is not an event. A genuine event of a type we do not act on comes back
        with ``payment_event`` None.
        """
        ...

    def events_since(self, since: datetime) -> Iterator[ReceivedEvent]:
        """The provider's events created at or after ``since``, oldest first."""
        ...
