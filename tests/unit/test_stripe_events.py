"""Translating Stripe's JSON events and intents into payment events."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import stripe

from buytokens.adapters.stripe_events import (
    HANDLED_EVENT_TYPES,
    event_for_intent,
    parse_signed_event,
    sign_payload,
    snapshot_intent,
    translate_event,
)
from buytokens.domain.errors import InvalidWebhook
from buytokens.domain.events import (
    AttemptOutcome,
    ChargeRefunded,
    DisputeChanged,
    DisputeState,
    PaymentAttempted,
    PaymentSucceeded,
)
from buytokens.domain.money import Money

CREATED = 1_790_000_000
WHEN = datetime.fromtimestamp(CREATED, UTC)
SECRET = "whsec_unit_test_secret"


def event(event_type: str, subject: dict[str, Any], **envelope: Any) -> dict[str, Any]:
    return {
        "id": "evt_1",
        "object": "event",
        "type": event_type,
        "created": CREATED,
        "data": {"object": subject},
        **envelope,
    }


def intent(**fields: Any) -> dict[str, Any]:
    return {
        "id": "pi_1",
        "object": "payment_intent",
        "amount": 3500,
        "currency": "cny",
        "status": "requires_payment_method",
        "client_secret": "pi_1_secret_x",
        "metadata": {"userId": "user-1", "packageId": "package_500k", "tokens": "500000"},
        "last_payment_error": None,
        **fields,
    }


def test_succeeded_intent_becomes_payment_succeeded_with_its_metadata() -> None:
    """A payment_intent.succeeded event carries id, money, metadata and the event time."""
    received = translate_event(event("payment_intent.succeeded", intent(status="succeeded")))
    assert received.event_id == "evt_1"
    assert received.type == "payment_intent.succeeded"
    assert received.created_at == WHEN
    assert received.payment_event == PaymentSucceeded(
        event_id="evt_1",
        payment_intent_id="pi_1",
        amount=Money(3500, "cny"),
        user_id="user-1",
        package_id="package_500k",
        occurred_at=WHEN,
    )


PROMO_METADATA = {
    "userId": "user-1",
    "packageId": "package_500k",
    "purchaseId": "k1",
    "promoCode": "SPRING-20",
}


@pytest.mark.parametrize(
    ("discount", "parsed"), [("700", 700), ("-7", None), ("7.5", None), ("", None), (7, None)]
)
def test_a_promo_checkout_carries_its_code_discount_and_purchase_id(
    discount: object, parsed: int | None
) -> None:
    """promoCode, purchaseId and a whole-number discountAmount come through; anything else
    as a discount is None (and the crediting rules then refuse to guess)."""
    metadata = {**PROMO_METADATA, "discountAmount": discount}
    subject = intent(status="succeeded", amount=2800, metadata=metadata)
    paid = translate_event(event("payment_intent.succeeded", subject)).payment_event
    assert isinstance(paid, PaymentSucceeded)
    assert (paid.purchase_id, paid.promo_code, paid.discount_amount) == ("k1", "SPRING-20", parsed)
    canceled = translate_event(event("payment_intent.canceled", {**subject, "status": "canceled"}))
    assert isinstance(canceled.payment_event, PaymentAttempted)
    assert (canceled.payment_event.purchase_id, canceled.payment_event.promo_code) == (
        "k1",
        "SPRING-20",
    )


def test_event_time_is_timezone_aware_utc() -> None:
    """occurred_at is an aware UTC datetime, never a naive local one."""
    received = translate_event(event("payment_intent.succeeded", intent()))
    assert received.payment_event is not None
    assert received.payment_event.occurred_at.utcoffset() is not None
    assert received.payment_event.occurred_at.tzinfo == UTC


@pytest.mark.parametrize("metadata", [{}, None, {"userId": "", "packageId": 7}])
def test_missing_metadata_becomes_none_rather_than_an_error(metadata: object) -> None:
    """Absent or malformed userId/packageId translate to None for the crediting rules to judge."""
    received = translate_event(event("payment_intent.succeeded", intent(metadata=metadata)))
    assert isinstance(received.payment_event, PaymentSucceeded)
    assert received.payment_event.user_id is None
    assert received.payment_event.package_id is None


def test_upper_case_currency_is_normalised() -> None:
    """Money always holds the lower-case currency code."""
    received = translate_event(event("payment_intent.succeeded", intent(currency="CNY")))
    assert isinstance(received.payment_event, PaymentSucceeded)
    assert received.payment_event.amount == Money(3500, "cny")


def test_failed_intent_carries_the_last_payment_error_message() -> None:
    """payment_intent.payment_failed becomes a FAILED attempt with the bank's message."""
    failed = intent(
        last_payment_error={"code": "card_declined", "message": "Your card was declined."}
    )
    received = translate_event(event("payment_intent.payment_failed", failed))
    assert received.payment_event == PaymentAttempted(
        event_id="evt_1",
        payment_intent_id="pi_1",
        outcome=AttemptOutcome.FAILED,
        occurred_at=WHEN,
        failure_message="Your card was declined.",
    )


@pytest.mark.parametrize(
    ("event_type", "outcome"),
    [
        ("payment_intent.processing", AttemptOutcome.PROCESSING),
        ("payment_intent.canceled", AttemptOutcome.CANCELED),
        ("payment_intent.payment_failed", AttemptOutcome.FAILED),
    ],
)
def test_attempt_events_map_to_their_outcome(event_type: str, outcome: AttemptOutcome) -> None:
    """Processing, canceled and failed intents become attempts with that outcome."""
    received = translate_event(event(event_type, intent()))
    assert isinstance(received.payment_event, PaymentAttempted)
    assert received.payment_event.outcome is outcome
    assert received.payment_event.failure_message is None


def test_refund_carries_the_cumulative_amount_refunded_of_the_charge() -> None:
    """charge.refunded names the charge's intent and its total refunded so far."""
    charge = {
        "id": "ch_1",
        "object": "charge",
        "amount": 3500,
        "amount_refunded": 1200,
        "currency": "cny",
        "payment_intent": "pi_1",
    }
    received = translate_event(event("charge.refunded", charge))
    assert received.payment_event == ChargeRefunded(
        event_id="evt_1",
        payment_intent_id="pi_1",
        amount_refunded=Money(1200, "cny"),
        occurred_at=WHEN,
    )


def test_refund_with_an_expanded_payment_intent_uses_its_id() -> None:
    """An expanded payment_intent object is read by its id."""
    charge = {"amount_refunded": 3500, "currency": "cny", "payment_intent": {"id": "pi_9"}}
    received = translate_event(event("charge.refunded", charge))
    assert isinstance(received.payment_event, ChargeRefunded)
    assert received.payment_event.payment_intent_id == "pi_9"


def dispute(**fields: Any) -> dict[str, Any]:
    return {
        "id": "dp_1",
        "object": "dispute",
        "amount": 3500,
        "currency": "cny",
        "charge": "ch_1",
        "payment_intent": "pi_1",
        "status": "needs_response",
        **fields,
    }


def test_created_chargeback_is_open() -> None:
    """charge.dispute.created for a chargeback holds the disputed amount back."""
    received = translate_event(event("charge.dispute.created", dispute()))
    assert received.payment_event == DisputeChanged(
        event_id="evt_1",
        payment_intent_id="pi_1",
        dispute_id="dp_1",
        amount=Money(3500, "cny"),
        state=DisputeState.OPEN,
        occurred_at=WHEN,
    )


@pytest.mark.parametrize(
    ("event_type", "status", "state"),
    [
        ("charge.dispute.created", "needs_response", DisputeState.OPEN),
        ("charge.dispute.created", "under_review", DisputeState.OPEN),
        ("charge.dispute.created", None, DisputeState.OPEN),
        ("charge.dispute.created", "warning_needs_response", DisputeState.INQUIRY),
        ("charge.dispute.created", "warning_under_review", DisputeState.INQUIRY),
        ("charge.dispute.funds_withdrawn", "needs_response", DisputeState.OPEN),
        ("charge.dispute.funds_withdrawn", None, DisputeState.OPEN),
        ("charge.dispute.funds_reinstated", "under_review", DisputeState.REINSTATED),
        ("charge.dispute.funds_reinstated", None, DisputeState.REINSTATED),
        ("charge.dispute.funds_reinstated", "won", DisputeState.WON),
        ("charge.dispute.funds_reinstated", "lost", DisputeState.LOST),
        ("charge.dispute.closed", "won", DisputeState.WON),
        ("charge.dispute.closed", "lost", DisputeState.LOST),
        ("charge.dispute.closed", "warning_closed", DisputeState.NO_CHARGEBACK),
        ("charge.dispute.closed", "prevented", DisputeState.NO_CHARGEBACK),
        ("charge.dispute.closed", "charge_refunded", DisputeState.NO_CHARGEBACK),
        ("charge.dispute.closed", "under_review", DisputeState.LOST),
        ("charge.dispute.closed", None, DisputeState.LOST),
    ],
)
def test_dispute_events_say_where_the_money_is(
    event_type: str, status: str | None, state: DisputeState
) -> None:
    """A chargeback takes the money, an inquiry does not; a closed status decides; unknown keeps."""
    assert event_type in HANDLED_EVENT_TYPES
    received = translate_event(event(event_type, dispute(status=status)))
    assert isinstance(received.payment_event, DisputeChanged)
    assert received.payment_event.state is state


@pytest.mark.parametrize("event_type", ["customer.created", "charge.succeeded", "invoice.paid"])
def test_other_event_types_have_no_payment_event(event_type: str) -> None:
    """Genuine events we do not act on come back without a payment event."""
    received = translate_event(event(event_type, intent(status="succeeded")))
    assert received.type == event_type
    assert received.payment_event is None
    assert event_type not in HANDLED_EVENT_TYPES


@pytest.mark.parametrize(
    ("event_type", "subject"),
    [
        ("charge.refunded", {"amount_refunded": 100, "currency": "cny"}),
        (
            "charge.refunded",
            {"amount_refunded": "100", "currency": "cny", "payment_intent": "pi_1"},
        ),
        ("charge.dispute.created", dispute(payment_intent=None)),
        ("charge.dispute.closed", dispute(amount=None)),
        ("payment_intent.succeeded", intent(amount=None)),
        ("payment_intent.succeeded", intent(amount=True)),
        ("payment_intent.succeeded", intent(amount=-5)),
        ("payment_intent.succeeded", intent(currency="yuan")),
        ("payment_intent.succeeded", intent(id=None)),
        ("payment_intent.payment_failed", intent(id=42)),
    ],
)
def test_unusable_data_of_a_genuine_event_gives_no_payment_event(
    event_type: str, subject: dict[str, Any]
) -> None:
    """A handled type whose data we cannot use is kept, but never raises."""
    received = translate_event(event(event_type, subject))
    assert received.payment_event is None


@pytest.mark.parametrize("data", [None, {}, {"object": "pi_1"}, []])
def test_an_event_without_an_object_has_no_payment_event(data: object) -> None:
    """A missing or non-object data.object is unusable data, not an invalid event."""
    received = translate_event({**event("payment_intent.succeeded", {}), "data": data})
    assert received.payment_event is None


@pytest.mark.parametrize(
    "body",
    [
        [],
        "event",
        {"type": "payment_intent.succeeded", "created": CREATED},
        {"id": "evt_1", "created": CREATED},
        {"id": "evt_1", "type": "payment_intent.succeeded"},
        {"id": "evt_1", "type": "payment_intent.succeeded", "created": "yesterday"},
        {"id": "evt_1", "type": "payment_intent.succeeded", "created": 10**20},
        {"id": "pi_1", "object": "payment_intent", "type": "x", "created": CREATED},
    ],
)
def test_something_that_is_not_an_event_is_an_invalid_webhook(body: object) -> None:
    """Without an id, a type and a creation time it is not a Stripe event."""
    with pytest.raises(InvalidWebhook):
        translate_event(body)


def test_retrieved_succeeded_intent_is_a_success_with_a_stable_event_id() -> None:
    """A succeeded intent reads as a success keyed '<intent>:retrieved'."""
    observed = datetime(2026, 1, 2, tzinfo=UTC)
    found = event_for_intent(intent(status="succeeded"), observed)
    assert found == PaymentSucceeded(
        event_id="pi_1:retrieved",
        payment_intent_id="pi_1",
        amount=Money(3500, "cny"),
        user_id="user-1",
        package_id="package_500k",
        occurred_at=observed,
    )


@pytest.mark.parametrize(
    ("fields", "outcome"),
    [
        ({"status": "processing"}, AttemptOutcome.PROCESSING),
        ({"status": "canceled"}, AttemptOutcome.CANCELED),
        (
            {"status": "requires_payment_method", "last_payment_error": {"message": "Declined."}},
            AttemptOutcome.FAILED,
        ),
    ],
)
def test_retrieved_intent_status_maps_to_an_attempt(
    fields: dict[str, Any], outcome: AttemptOutcome
) -> None:
    """Processing, canceled and failed-then-waiting intents read as attempts."""
    found = event_for_intent(intent(**fields), WHEN)
    assert isinstance(found, PaymentAttempted)
    assert found.outcome is outcome
    assert found.event_id.startswith("pi_1:retrieved:")


@pytest.mark.parametrize(
    "status",
    ["requires_payment_method", "requires_confirmation", "requires_action", "requires_capture"],
)
def test_retrieved_intent_where_nothing_happened_yet_has_no_event(status: str) -> None:
    """An intent still waiting on the customer has nothing to apply."""
    assert event_for_intent(intent(status=status), WHEN) is None


def test_snapshot_keeps_id_secret_status_and_next_action() -> None:
    """A snapshot exposes what the page needs and the status as an event."""
    action = {"type": "wechat_pay_display_qr_code"}
    snapshot = snapshot_intent(intent(status="requires_action", next_action=action), WHEN)
    assert (snapshot.id, snapshot.client_secret, snapshot.status) == (
        "pi_1",
        "pi_1_secret_x",
        "requires_action",
    )
    assert snapshot.next_action == action
    assert snapshot.event is None


def test_snapshot_of_something_else_is_refused() -> None:
    """JSON without an id, secret and status is not an intent."""
    with pytest.raises(ValueError, match="not a PaymentIntent"):
        snapshot_intent({"id": "pi_1"}, WHEN)


def signed(
    body: dict[str, Any], secret: str = SECRET, timestamp: int | None = None
) -> tuple[bytes, str]:
    payload = json.dumps(body).encode()
    header = stripe.WebhookSignature.generate_signature_header(
        payload.decode(), secret, timestamp=timestamp
    )
    return payload, header


def test_a_genuine_signed_event_is_parsed() -> None:
    """A body signed with the secret by Stripe's scheme is verified and translated."""
    payload, header = signed(event("payment_intent.succeeded", intent()))
    received = parse_signed_event(payload, header, SECRET)
    assert isinstance(received.payment_event, PaymentSucceeded)


def test_sign_payload_produces_a_header_stripe_verifies() -> None:
    """Our signing helper agrees with the SDK's verification."""
    payload = json.dumps(event("customer.created", {})).encode()
    header = sign_payload(payload, SECRET)
    assert stripe.WebhookSignature.verify_header(payload, header, SECRET, 300)


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda p, h: (p, None), id="missing header"),
        pytest.param(lambda p, h: (p, ""), id="empty header"),
        pytest.param(lambda p, h: (p, "t=1,v1=00"), id="garbage header"),
        pytest.param(lambda p, h: (p, "nonsense"), id="unparsable header"),
        pytest.param(lambda p, h: (p.replace(b"3500", b"9900"), h), id="altered body"),
        pytest.param(lambda p, h: (p, signed({}, "whsec_other")[1]), id="other secret"),
    ],
)
def test_forged_or_missing_signatures_are_invalid(tamper: Any) -> None:
    """Anything but the secret's signature over these exact bytes is refused."""
    payload, header = signed(event("payment_intent.succeeded", intent()))
    payload, header = tamper(payload, header)
    with pytest.raises(InvalidWebhook):
        parse_signed_event(payload, header, SECRET)


def test_a_stale_signature_is_invalid() -> None:
    """A signature older than the tolerance is a replay."""
    payload, header = signed(
        event("payment_intent.succeeded", intent()), timestamp=int(time.time()) - 301
    )
    with pytest.raises(InvalidWebhook):
        parse_signed_event(payload, header, SECRET, tolerance=300)


def test_a_signature_within_the_tolerance_is_accepted() -> None:
    """A delivery a few minutes old is still genuine."""
    payload, header = signed(event("customer.created", {}), timestamp=int(time.time()) - 240)
    assert parse_signed_event(payload, header, SECRET, tolerance=300).event_id == "evt_1"


@pytest.mark.parametrize("secret", [None, ""])
def test_without_a_secret_every_webhook_is_refused(secret: str | None) -> None:
    """No configured secret fails closed, even for a correctly signed body."""
    payload, header = signed(event("payment_intent.succeeded", intent()))
    with pytest.raises(InvalidWebhook, match="no webhook signing secret"):
        parse_signed_event(payload, header, secret)


@pytest.mark.parametrize("payload", [b"not json", b"\xff\xfe\x00", b"[1, 2]", b"{}"])
def test_signed_garbage_is_invalid(payload: bytes) -> None:
    """A correctly signed body that is not a Stripe event is still refused."""
    header = f"t={int(time.time())},v1=" + "0" * 64
    if payload != b"\xff\xfe\x00":
        header = stripe.WebhookSignature.generate_signature_header(payload.decode(), SECRET)
    with pytest.raises(InvalidWebhook):
        parse_signed_event(payload, header, SECRET)
