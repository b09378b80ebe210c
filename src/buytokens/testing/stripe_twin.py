"""An in-memory payment gateway that behaves like Stripe, for unit and end-to-end tests.

Intents and events are kept as Stripe-shaped JSON, and webhooks are signed and
verified exactly as the Stripe adapter verifies them, through the shared
``stripe_events`` module, so a test that passes here exercises the same
translation and signature check as production.
"""

from __future__ import annotations

import enum
import itertools
import json
import secrets
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final, Literal

from buytokens.adapters.stripe_events import (
    CHARGE_REFUNDED,
    DISPUTE_CLOSED,
    DISPUTE_CREATED,
    DISPUTE_FUNDS_REINSTATED,
    DISPUTE_FUNDS_WITHDRAWN,
    PAYMENT_INTENT_CANCELED,
    PAYMENT_INTENT_FAILED,
    PAYMENT_INTENT_PROCESSING,
    PAYMENT_INTENT_SUCCEEDED,
    SIGNATURE_TOLERANCE_SECONDS,
    parse_signed_event,
    sign_payload,
    snapshot_intent,
    translate_event,
)
from buytokens.adapters.stripe_methods import DEFAULT_PAYMENT_METHODS, offered_payment_methods
from buytokens.domain.catalogue import PaymentMethod, require_payment_method
from buytokens.domain.checkout import CancelOutcome, IntentRequest, IntentSnapshot, ReceivedEvent
from buytokens.domain.errors import (
    GatewayRejected,
    GatewayUnavailable,
    NotFound,
    PaymentDeclined,
)
from buytokens.ports.clock import Clock

SUCCEEDING_CARD = "4242424242424242"
"""The test card that pays."""

DECLINED_CARDS: Mapping[str, str] = {
    "4000000000000002": "Your card was declined.",
    "4000000000000341": "Your card was declined.",
    "4000000000009995": "Your card has insufficient funds.",
    "4000000000000069": "Your card has expired.",
}
"""Stripe's test cards that decline, with the message Stripe gives for each."""


class _Default(enum.Enum):
    SECRET = enum.auto()


GENERATED_SECRET: Final = _Default.SECRET
"""Default ``webhook_secret``: a fresh random secret per gateway."""

StripeJson = dict[str, Any]

_FINAL_OR_SETTLING = frozenset({"succeeded", "processing"})
"""Statuses in which Stripe refuses to cancel an intent."""


class InMemoryPaymentGateway:
    """``PaymentGateway`` held in memory; thread-safe, with controls for tests.

    Like Stripe, it creates one intent per ``purchase_id`` (a retry returns the
    first intent; the same id for a different request is refused), emits events
    as intents change, and refuses webhooks when ``webhook_secret`` is None.
    """

    @property
    def webhook_secret(self) -> str | None:
        """The secret webhooks must be signed with (None: every webhook is refused)."""
        return self._webhook_secret

    def __init__(
        self,
        *,
        webhook_secret: str | Literal[_Default.SECRET] | None = GENERATED_SECRET,
        payment_methods: Iterable[PaymentMethod] = DEFAULT_PAYMENT_METHODS,
        clock: Clock | None = None,
        signature_tolerance: int = SIGNATURE_TOLERANCE_SECONDS,
    ) -> None:
        if webhook_secret is GENERATED_SECRET:
            webhook_secret = f"whsec_{secrets.token_hex(16)}"
        self._webhook_secret = webhook_secret
        self._payment_methods = tuple(payment_methods)
        self._clock = clock
        self._tolerance = signature_tolerance
        self._lock = threading.RLock()
        self._intents: dict[str, StripeJson] = {}
        self._by_purchase: dict[str, tuple[tuple[object, ...], str]] = {}
        self._events: list[StripeJson] = []
        self._disputes: dict[str, StripeJson] = {}
        self._declined_cards = dict(DECLINED_CARDS)
        self._unavailable_calls: int | None = 0
        self._sequence = itertools.count(1)

    # -- the port -------------------------------------------------------------

    def create_payment_intent(self, request: IntentRequest) -> IntentSnapshot:
        """Create (or, for a known ``purchase_id``, return) the intent for the request's amount."""
        price = request.amount
        offered = offered_payment_methods(price.currency, self._payment_methods)
        method = require_payment_method(request.method.value, price.currency, offered)
        with self._lock:
            self._check_available()
            fingerprint = (
                request.user_id,
                request.package,
                method,
                request.receipt_email,
                request.promo_code,
                request.discount,
            )
            known = self._by_purchase.get(request.purchase_id)
            if known is not None:
                if known[0] != fingerprint:
                    # Stripe answers a reused idempotency key with different
                    # parameters with an idempotency error.
                    raise GatewayRejected(
                        "Stripe refused to create a payment intent: the idempotency key "
                        "was used with different parameters"
                    )
                return self._snapshot(self._intents[known[1]])
            intent_id = self._new_id("pi")
            intent: StripeJson = {
                "id": intent_id,
                "object": "payment_intent",
                "amount": price.amount,
                "currency": price.currency,
                "client_secret": f"{intent_id}_secret_{secrets.token_hex(8)}",
                "created": self._timestamp(),
                "status": "requires_payment_method",
                "payment_method_types": [method.value],
                "metadata": {
                    "userId": request.user_id,
                    "packageId": request.package.id,
                    "tokens": str(request.package.tokens),
                    "purchaseId": request.purchase_id,
                    **({"gift": "true"} if request.gift else {}),
                    **(
                        {"promoCode": request.promo_code, "discountAmount": str(request.discount)}
                        if request.promo_code is not None
                        else {}
                    ),
                },
                "receipt_email": request.receipt_email,
                "last_payment_error": None,
                "latest_charge": None,
                "next_action": None,
            }
            self._intents[intent_id] = intent
            self._by_purchase[request.purchase_id] = (fingerprint, intent_id)
            return self._snapshot(intent)

    def retrieve_payment_intent(self, payment_intent_id: str) -> IntentSnapshot:
        """The intent as it is now; ``NotFound`` for an id this gateway never issued."""
        with self._lock:
            self._check_available()
            return self._snapshot(self._intent(payment_intent_id))

    def cancel_payment_intent(self, payment_intent_id: str) -> CancelOutcome:
        """Cancel the intent unless it succeeded or is processing (``TOO_LATE``), like Stripe;
        canceling it again is ``CANCELED`` again."""
        with self._lock:
            self._check_available()
            intent = self._intent(payment_intent_id)
            if intent["status"] in _FINAL_OR_SETTLING:
                return CancelOutcome.TOO_LATE
            if intent["status"] != "canceled":
                self.cancel(payment_intent_id)
            return CancelOutcome.CANCELED

    def parse_webhook(self, payload: bytes, signature_header: str | None) -> ReceivedEvent:
        """Verify and translate exactly as the Stripe adapter does."""
        return parse_signed_event(
            payload, signature_header, self._webhook_secret, tolerance=self._tolerance
        )

    def events_since(self, since: datetime) -> Iterator[ReceivedEvent]:
        """The recorded events created at or after ``since`` (whole seconds), oldest first."""
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        floor = int(since.timestamp())
        with self._lock:
            self._check_available()
            recorded = [event for event in self._events if event["created"] >= floor]
        return iter([translate_event(event) for event in recorded])

    # -- what the customer and the bank do ------------------------------------

    def succeed(self, payment_intent_id: str) -> StripeJson:
        """The payment completes; returns the ``payment_intent.succeeded`` event.

        A canceled intent cannot be paid: ``GatewayRejected``, as Stripe refuses it.
        """
        with self._lock:
            intent = self._payable(payment_intent_id)
            charge_id = self._new_id("ch")
            intent.update(
                status="succeeded",
                last_payment_error=None,
                latest_charge=charge_id,
                amount_received=intent["amount"],
            )
            return self._record(PAYMENT_INTENT_SUCCEEDED, intent)

    def fail(self, payment_intent_id: str, message: str = "Your card was declined.") -> StripeJson:
        """The payment attempt fails; returns the ``payment_intent.payment_failed`` event."""
        with self._lock:
            intent = self._payable(payment_intent_id)
            intent.update(
                status="requires_payment_method",
                last_payment_error={"code": "card_declined", "message": message},
            )
            return self._record(PAYMENT_INTENT_FAILED, intent)

    def start_processing(self, payment_intent_id: str) -> StripeJson:
        """The payment is submitted but not settled; returns ``payment_intent.processing``."""
        with self._lock:
            intent = self._payable(payment_intent_id)
            intent.update(status="processing", last_payment_error=None)
            return self._record(PAYMENT_INTENT_PROCESSING, intent)

    def cancel(self, payment_intent_id: str) -> StripeJson:
        """The intent is canceled; returns ``payment_intent.canceled``."""
        with self._lock:
            intent = self._intent(payment_intent_id)
            intent.update(status="canceled")
            return self._record(PAYMENT_INTENT_CANCELED, intent)

    def confirm_with_card(self, payment_intent_id: str, card_number: str) -> StripeJson:
        """Pay with a Stripe test card number, as a server-side confirmation would.

        A declining card records ``payment_intent.payment_failed`` and raises
        ``PaymentDeclined`` with the bank's message, like Stripe's card error.
        """
        with self._lock:
            self._check_available()
            message = self._declined_cards.get(card_number)
            if message is None:
                return self.succeed(payment_intent_id)
            self.fail(payment_intent_id, message)
        raise PaymentDeclined(message)

    def decline_card(self, card_number: str, message: str = "Your card was declined.") -> None:
        """Make ``confirm_with_card`` decline ``card_number`` from now on."""
        with self._lock:
            self._declined_cards[card_number] = message

    def refund(self, payment_intent_id: str, amount: int | None = None) -> StripeJson:
        """Refund ``amount`` more (all that is left by default); returns ``charge.refunded``."""
        with self._lock:
            intent = self._intent(payment_intent_id)
            charge = self._charge(intent)
            left = charge["amount"] - charge["amount_refunded"]
            charge["amount_refunded"] += left if amount is None else min(amount, left)
            charge["refunded"] = charge["amount_refunded"] == charge["amount"]
            return self._record(CHARGE_REFUNDED, charge)

    def open_dispute(
        self, payment_intent_id: str, amount: int | None = None, *, inquiry: bool = False
    ) -> StripeJson:
        """The customer disputes the charge; returns ``charge.dispute.created``.

        A chargeback (status ``needs_response``) by default; with ``inquiry`` a
        pre-dispute inquiry (``warning_needs_response``) that moves no money.
        Stripe also sends ``charge.dispute.funds_withdrawn`` for a chargeback:
        ``withdraw_funds`` records it.
        """
        with self._lock:
            intent = self._intent(payment_intent_id)
            charge = self._charge(intent)
            dispute = {
                "id": self._new_id("dp"),
                "object": "dispute",
                "amount": charge["amount"] if amount is None else amount,
                "currency": charge["currency"],
                "charge": charge["id"],
                "payment_intent": payment_intent_id,
                "status": "warning_needs_response" if inquiry else "needs_response",
            }
            self._disputes[dispute["id"]] = dispute
            return self._record(DISPUTE_CREATED, dispute)

    def withdraw_funds(self, dispute_event: Mapping[str, Any]) -> StripeJson:
        """The disputed amount leaves the balance (an inquiry escalates to a chargeback);
        returns ``charge.dispute.funds_withdrawn``."""
        with self._lock:
            dispute = self._dispute(dispute_event)
            if dispute["status"].startswith("warning_"):
                dispute["status"] = "needs_response"
            return self._record(DISPUTE_FUNDS_WITHDRAWN, dispute)

    def reinstate_funds(self, dispute_event: Mapping[str, Any]) -> StripeJson:
        """The disputed amount comes back; returns ``charge.dispute.funds_reinstated``."""
        with self._lock:
            return self._record(DISPUTE_FUNDS_REINSTATED, self._dispute(dispute_event))

    def close_dispute(self, dispute_event: Mapping[str, Any], status: str) -> StripeJson:
        """Close the dispute of ``dispute_event`` with Stripe's ``status`` (``won``, ``lost``,
        ``warning_closed``, ``prevented``...); returns ``charge.dispute.closed``."""
        with self._lock:
            dispute = self._dispute(dispute_event)
            dispute["status"] = status
            return self._record(DISPUTE_CLOSED, dispute)

    # -- webhooks -------------------------------------------------------------

    def signed_webhook(
        self,
        event: Mapping[str, Any],
        *,
        secret: str | None = None,
        timestamp: int | None = None,
    ) -> tuple[bytes, str]:
        """``event``'s body and ``Stripe-Signature`` header as Stripe would deliver them.

        ``secret`` defaults to this gateway's webhook secret; pass another to forge
        a signature, or an old ``timestamp`` to replay a stale one.
        """
        signing_secret = secret if secret is not None else self._webhook_secret
        if signing_secret is None:
            raise ValueError("this gateway has no webhook secret; pass one to sign with")
        payload = json.dumps(event, indent=2, sort_keys=True).encode("utf-8")
        return payload, sign_payload(payload, signing_secret, timestamp=timestamp)

    def intent_json(self, payment_intent_id: str) -> StripeJson:
        """The intent as Stripe would return it (amount, currency, metadata, status...)."""
        with self._lock:
            return _public(self._intent(payment_intent_id))

    @property
    def recorded_events(self) -> tuple[StripeJson, ...]:
        """Every event so far, oldest first, as Stripe-shaped JSON."""
        with self._lock:
            return tuple(_public(event) for event in self._events)

    # -- failure injection ----------------------------------------------------

    def make_unavailable(self, calls: int | None = None) -> None:
        """Fail the next ``calls`` calls (all, if None) with ``GatewayUnavailable``."""
        with self._lock:
            self._unavailable_calls = calls

    def make_available(self) -> None:
        """Answer normally again."""
        with self._lock:
            self._unavailable_calls = 0

    # -- internals ------------------------------------------------------------

    def _check_available(self) -> None:
        if self._unavailable_calls == 0:
            return
        if self._unavailable_calls is not None:
            self._unavailable_calls -= 1
        raise GatewayUnavailable("Stripe could not be reached (simulated outage)")

    def _intent(self, payment_intent_id: str) -> StripeJson:
        intent = self._intents.get(payment_intent_id)
        if intent is None:
            raise NotFound(f"no payment intent {payment_intent_id!r}")
        return intent

    def _payable(self, payment_intent_id: str) -> StripeJson:
        intent = self._intent(payment_intent_id)
        if intent["status"] == "canceled":
            # Stripe: payment_intent_unexpected_state, which the adapter calls a refusal.
            raise GatewayRejected(
                f"Stripe refused to confirm a payment intent: {payment_intent_id} "
                "has a status of canceled"
            )
        return intent

    def _dispute(self, dispute_event: Mapping[str, Any]) -> StripeJson:
        dispute_id = dispute_event["data"]["object"]["id"]
        dispute = self._disputes.get(dispute_id)
        if dispute is None:
            raise NotFound(f"no dispute {dispute_id!r}")
        return dispute

    def _charge(self, intent: StripeJson) -> StripeJson:
        if intent["status"] != "succeeded":
            raise ValueError(f"{intent['id']} has not been paid")
        charges: dict[str, StripeJson] = intent.setdefault("_charges", {})
        charge_id = intent["latest_charge"]
        if charge_id not in charges:
            charges[charge_id] = {
                "id": charge_id,
                "object": "charge",
                "amount": intent["amount"],
                "currency": intent["currency"],
                "amount_refunded": 0,
                "refunded": False,
                "payment_intent": intent["id"],
            }
        return charges[charge_id]

    def _record(self, event_type: str, subject: Mapping[str, Any]) -> StripeJson:
        event: StripeJson = {
            "id": self._new_id("evt"),
            "object": "event",
            "type": event_type,
            "created": self._timestamp(),
            "livemode": False,
            # A snapshot, like Stripe's: later changes must not rewrite history.
            "data": {"object": _public(subject)},
        }
        self._events.append(event)
        return _public(event)

    def _snapshot(self, intent: StripeJson) -> IntentSnapshot:
        return snapshot_intent(_public(intent), self._now())

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_mem{next(self._sequence):06d}{secrets.token_hex(4)}"

    def _timestamp(self) -> int:
        return int(self._now().timestamp())

    def _now(self) -> datetime:
        return self._clock.now() if self._clock is not None else datetime.now(UTC)


def _public(obj: Mapping[str, Any]) -> StripeJson:
    """A deep copy without the fake's private bookkeeping."""
    copied: StripeJson = json.loads(json.dumps({k: v for k, v in obj.items() if k[0] != "_"}))
    return copied
