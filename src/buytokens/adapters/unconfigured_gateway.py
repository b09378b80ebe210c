"""A gateway for a deployment without a Stripe secret key: webhooks verify, payments refuse."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import NoReturn

from buytokens.adapters.stripe_events import parse_signed_event
from buytokens.domain.checkout import CancelOutcome, IntentRequest, IntentSnapshot, ReceivedEvent
from buytokens.domain.errors import ConfigurationError


class UnconfiguredPaymentGateway:
    """Refuses every call to Stripe with a ConfigurationError naming STRIPE_SECRET_KEY."""

    def __init__(self, webhook_secret: str | None) -> None:
        self._webhook_secret = webhook_secret

    def create_payment_intent(self, request: IntentRequest) -> IntentSnapshot:
        _refuse()

    def retrieve_payment_intent(self, payment_intent_id: str) -> IntentSnapshot:
        _refuse()

    def cancel_payment_intent(self, payment_intent_id: str) -> CancelOutcome:
        _refuse()

    def parse_webhook(self, payload: bytes, signature_header: str | None) -> ReceivedEvent:
        return parse_signed_event(payload, signature_header, self._webhook_secret)

    def events_since(self, since: datetime) -> Iterator[ReceivedEvent]:
        _refuse()


def _refuse() -> NoReturn:
    raise ConfigurationError(
        "payments are not configured: set STRIPE_SECRET_KEY", code="payments_not_configured"
    )
