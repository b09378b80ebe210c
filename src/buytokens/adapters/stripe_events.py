"""Stripe's wire format, translated into the domain's payment events.

Everything here works on plain JSON (``dict``) values and does no I/O, so the
Stripe adapter and its in-memory fake share one translation and one signature
check. A genuine event whose data we cannot use translates to an event without
a ``payment_event`` rather than to an exception: a webhook that raised here would
answer 5xx, and Stripe would retry a delivery that can never succeed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import stripe

from buytokens.domain.checkout import IntentSnapshot, ReceivedEvent
from buytokens.domain.errors import InvalidMoney, InvalidWebhook
from buytokens.domain.events import (
    AttemptOutcome,
    ChargeRefunded,
    DisputeChanged,
    DisputeState,
    PaymentAttempted,
    PaymentEvent,
    PaymentSucceeded,
)
from buytokens.domain.money import Money

SIGNATURE_TOLERANCE_SECONDS = 300
"""How old a webhook signature may be before the delivery counts as a replay."""

PAYMENT_INTENT_SUCCEEDED = "payment_intent.succeeded"
PAYMENT_INTENT_FAILED = "payment_intent.payment_failed"
PAYMENT_INTENT_PROCESSING = "payment_intent.processing"
PAYMENT_INTENT_CANCELED = "payment_intent.canceled"
CHARGE_REFUNDED = "charge.refunded"
DISPUTE_CREATED = "charge.dispute.created"
DISPUTE_FUNDS_WITHDRAWN = "charge.dispute.funds_withdrawn"
DISPUTE_FUNDS_REINSTATED = "charge.dispute.funds_reinstated"
DISPUTE_CLOSED = "charge.dispute.closed"

HANDLED_EVENT_TYPES = frozenset(
    {
        PAYMENT_INTENT_SUCCEEDED,
        PAYMENT_INTENT_FAILED,
        PAYMENT_INTENT_PROCESSING,
        PAYMENT_INTENT_CANCELED,
        CHARGE_REFUNDED,
        DISPUTE_CREATED,
        DISPUTE_FUNDS_WITHDRAWN,
        DISPUTE_FUNDS_REINSTATED,
        DISPUTE_CLOSED,
    }
)
"""The Stripe event types that carry a payment event; every other type is ignored."""

_ATTEMPT_TYPES = {
    PAYMENT_INTENT_FAILED: AttemptOutcome.FAILED,
    PAYMENT_INTENT_PROCESSING: AttemptOutcome.PROCESSING,
    PAYMENT_INTENT_CANCELED: AttemptOutcome.CANCELED,
}

_DISPUTE_EVENTS = frozenset(
    {DISPUTE_CREATED, DISPUTE_FUNDS_WITHDRAWN, DISPUTE_FUNDS_REINSTATED, DISPUTE_CLOSED}
)
# An inquiry (a pre-dispute warning) moves no money until it escalates.
_INQUIRY_STATUSES = frozenset({"warning_needs_response", "warning_under_review"})
# Where a dispute object's status says it is over, that decides, whatever the event:
# ``warning_closed`` ended an inquiry that never took money; ``prevented`` (e.g.
# Visa RDR) and ``charge_refunded`` were settled by a refund, whose own
# ``charge.refunded`` takes the tokens back.
_CLOSED_STATUSES = {
    "won": DisputeState.WON,
    "lost": DisputeState.LOST,
    "warning_closed": DisputeState.NO_CHARGEBACK,
    "prevented": DisputeState.NO_CHARGEBACK,
    "charge_refunded": DisputeState.NO_CHARGEBACK,
}


def parse_signed_event(
    payload: bytes,
    signature_header: str | None,
    secret: str | None,
    *,
    tolerance: int = SIGNATURE_TOLERANCE_SECONDS,
) -> ReceivedEvent:
    """Verify ``signature_header`` over the raw ``payload`` with the SDK, then translate.

    Raises ``InvalidWebhook`` when no secret is configured (fail closed), when the
    signature is missing, forged or older than ``tolerance`` seconds, and when the
    body is not a Stripe event.
    """
    if not secret:
        raise InvalidWebhook("no webhook signing secret is configured; every event is refused")
    try:
        stripe.WebhookSignature.verify_header(payload, signature_header, secret, tolerance)
    except stripe.SignatureVerificationError as exc:
        raise InvalidWebhook("the Stripe-Signature header is missing, forged or stale") from exc
    except UnicodeDecodeError as exc:
        raise InvalidWebhook("the webhook body is not UTF-8 text") from exc
    try:
        event = json.loads(payload)
    except ValueError as exc:
        raise InvalidWebhook("the webhook body is not JSON") from exc
    except RecursionError as exc:
        # Signed or not, a body this deep is no Stripe event: a 5xx here would be retried.
        raise InvalidWebhook("the webhook body is nested too deeply to be a Stripe event") from exc
    return translate_event(event)


def sign_payload(payload: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe would send with ``payload`` (for fakes and tests)."""
    return str(
        stripe.WebhookSignature.generate_signature_header(
            payload.decode("utf-8"), secret, timestamp=timestamp
        )
    )


def translate_event(event: object) -> ReceivedEvent:
    """Translate a Stripe event (its JSON as a dict) into a received event.

    Raises ``InvalidWebhook`` only when ``event`` is not a Stripe event at all (no
    id, type or creation time); unusable data merely leaves ``payment_event`` None.
    """
    if not isinstance(event, Mapping):
        raise InvalidWebhook("the webhook body is not a JSON object")
    event_id = _text(event, "id")
    event_type = _text(event, "type")
    created = _integer(event, "created")
    kind = event.get("object", "event")
    occurred_at = _timestamp(created) if created is not None else None
    if event_id is None or event_type is None or occurred_at is None or kind != "event":
        raise InvalidWebhook("the webhook body is not a Stripe event")
    data = event.get("data")
    subject = data.get("object") if isinstance(data, Mapping) else None
    payment_event = None
    if isinstance(subject, Mapping):
        payment_event = _payment_event(event_id, event_type, subject, occurred_at)
    return ReceivedEvent(event_id, event_type, occurred_at, payment_event)


def event_for_intent(intent: Mapping[str, Any], observed_at: datetime) -> PaymentEvent | None:
    """What a retrieved PaymentIntent's status says happened, as seen at ``observed_at``.

    None while nothing has happened yet (awaiting a payment method, confirmation or
    the customer's action), and for statuses we do not act on.
    """
    intent_id = _text(intent, "id")
    status = _text(intent, "status")
    if intent_id is None or status is None:
        return None
    if status == "succeeded":
        # One id for every look-up of the same success, so repeated return-page
        # checks read as the same fact.
        return _succeeded(f"{intent_id}:retrieved", intent, observed_at)
    if status == "processing":
        return _attempted(
            f"{intent_id}:retrieved:processing", intent, AttemptOutcome.PROCESSING, observed_at
        )
    if status == "requires_payment_method" and isinstance(
        intent.get("last_payment_error"), Mapping
    ):
        return _attempted(
            f"{intent_id}:retrieved:failed", intent, AttemptOutcome.FAILED, observed_at
        )
    if status == "canceled":
        return _attempted(
            f"{intent_id}:retrieved:canceled", intent, AttemptOutcome.CANCELED, observed_at
        )
    # requires_action waits on the customer; it is not a processing payment yet.
    return None


def snapshot_intent(intent: Mapping[str, Any], observed_at: datetime) -> IntentSnapshot:
    """An ``IntentSnapshot`` of a PaymentIntent's JSON; raises ``ValueError`` if it is not one."""
    intent_id = _text(intent, "id")
    client_secret = _text(intent, "client_secret")
    status = _text(intent, "status")
    if intent_id is None or client_secret is None or status is None:
        raise ValueError("not a PaymentIntent: id, client_secret or status is missing")
    next_action = intent.get("next_action")
    return IntentSnapshot(
        id=intent_id,
        client_secret=client_secret,
        status=status,
        event=event_for_intent(intent, observed_at),
        next_action=dict(next_action) if isinstance(next_action, Mapping) else None,
    )


def _payment_event(
    event_id: str, event_type: str, subject: Mapping[str, Any], occurred_at: datetime
) -> PaymentEvent | None:
    if event_type == PAYMENT_INTENT_SUCCEEDED:
        return _succeeded(event_id, subject, occurred_at)
    outcome = _ATTEMPT_TYPES.get(event_type)
    if outcome is not None:
        return _attempted(event_id, subject, outcome, occurred_at)
    if event_type == CHARGE_REFUNDED:
        return _refunded(event_id, subject, occurred_at)
    if event_type in _DISPUTE_EVENTS:
        return _dispute(event_id, event_type, subject, occurred_at)
    return None


def _succeeded(
    event_id: str, intent: Mapping[str, Any], occurred_at: datetime
) -> PaymentSucceeded | None:
    intent_id = _text(intent, "id")
    amount = _money(intent, "amount")
    if intent_id is None or amount is None:
        return None
    metadata = intent.get("metadata")
    if not isinstance(metadata, Mapping):
        metadata = {}
    return PaymentSucceeded(
        event_id=event_id,
        payment_intent_id=intent_id,
        amount=amount,
        user_id=_text(metadata, "userId"),
        package_id=_text(metadata, "packageId"),
        occurred_at=occurred_at,
        gift=metadata.get("gift") == "true",
        purchase_id=_text(metadata, "purchaseId"),
        promo_code=_text(metadata, "promoCode"),
        discount_amount=_whole(metadata.get("discountAmount")),
    )


def _attempted(
    event_id: str, intent: Mapping[str, Any], outcome: AttemptOutcome, occurred_at: datetime
) -> PaymentAttempted | None:
    intent_id = _text(intent, "id")
    if intent_id is None:
        return None
    failure_message = None
    if outcome is AttemptOutcome.FAILED:
        error = intent.get("last_payment_error")
        if isinstance(error, Mapping):
            failure_message = _text(error, "message")
    metadata = intent.get("metadata")
    if not isinstance(metadata, Mapping):
        metadata = {}
    return PaymentAttempted(
        event_id=event_id,
        payment_intent_id=intent_id,
        outcome=outcome,
        occurred_at=occurred_at,
        failure_message=failure_message,
        purchase_id=_text(metadata, "purchaseId"),
        promo_code=_text(metadata, "promoCode"),
    )


def _whole(value: object) -> int | None:
    """A metadata value (Stripe keeps text) as a whole number of minor units, or None."""
    if not isinstance(value, str) or not value.isdecimal() or len(value) > 18:
        return None
    return int(value)


def _refunded(
    event_id: str, charge: Mapping[str, Any], occurred_at: datetime
) -> ChargeRefunded | None:
    intent_id = _reference(charge, "payment_intent")
    refunded = _money(charge, "amount_refunded")
    if intent_id is None or refunded is None:
        return None
    return ChargeRefunded(
        event_id=event_id,
        payment_intent_id=intent_id,
        amount_refunded=refunded,
        occurred_at=occurred_at,
    )


def _dispute(
    event_id: str, event_type: str, dispute: Mapping[str, Any], occurred_at: datetime
) -> DisputeChanged | None:
    dispute_id = _text(dispute, "id")
    intent_id = _reference(dispute, "payment_intent")
    amount = _money(dispute, "amount")
    if dispute_id is None or intent_id is None or amount is None:
        return None
    state = _dispute_state(event_type, dispute.get("status"))
    return DisputeChanged(
        event_id=event_id,
        payment_intent_id=intent_id,
        dispute_id=dispute_id,
        amount=amount,
        state=state,
        occurred_at=occurred_at,
    )


def _dispute_state(event_type: str, status: object) -> DisputeState:
    """What a dispute event says about the money (see ``DisputeState``).

    A chargeback takes the money: ``charge.dispute.created`` with any status but
    an inquiry's, or ``charge.dispute.funds_withdrawn``. ``funds_reinstated``
    brings it back. A closure with a status we do not know keeps what was taken.
    """
    closed = _CLOSED_STATUSES.get(status) if isinstance(status, str) else None
    if closed is not None:
        return closed
    if event_type == DISPUTE_CLOSED:
        return DisputeState.LOST
    if event_type == DISPUTE_FUNDS_REINSTATED:
        return DisputeState.REINSTATED
    if event_type == DISPUTE_CREATED and status in _INQUIRY_STATUSES:
        return DisputeState.INQUIRY
    return DisputeState.OPEN


def _text(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) and value else None


def _integer(obj: Mapping[str, Any], key: str) -> int | None:
    value = obj.get(key)
    # bool is an int to Python but never a Stripe amount or timestamp.
    return value if type(value) is int else None


def _reference(obj: Mapping[str, Any], key: str) -> str | None:
    """An id field that may also arrive expanded into the object it names."""
    value = obj.get(key)
    if isinstance(value, Mapping):
        return _text(value, "id")
    return _text(obj, key)


def _money(obj: Mapping[str, Any], amount_key: str) -> Money | None:
    amount = _integer(obj, amount_key)
    currency = _text(obj, "currency")
    if amount is None or amount < 0 or currency is None:
        return None
    try:
        return Money.of(amount, currency)
    except InvalidMoney:
        return None


def _timestamp(seconds: int) -> datetime | None:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None
