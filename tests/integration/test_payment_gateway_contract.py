"""The PaymentGateway contract, run against every adapter: in memory, and Stripe over HTTP.

The Stripe adapter talks to a real localstripe server in a child process, through
the official SDK, exactly as it would talk to api.stripe.com.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import stripe

from buytokens.adapters.stripe_gateway import StripePaymentGateway, translated_stripe_errors
from buytokens.domain.catalogue import DEFAULT_CATALOGUE, PaymentMethod
from buytokens.domain.checkout import CancelOutcome, IntentRequest
from buytokens.domain.errors import (
    GatewayRejected,
    GatewayUnavailable,
    InvalidWebhook,
    NotFound,
    PaymentDeclined,
    UnsupportedPaymentMethod,
)
from buytokens.domain.events import AttemptOutcome, PaymentAttempted, PaymentSucceeded
from buytokens.domain.money import Money
from buytokens.ports.payments import PaymentGateway
from buytokens.testing.localstripe import LocalStripe
from buytokens.testing.stripe_twin import InMemoryPaymentGateway

SECRET_KEY = "sk_test_buytokens_contract"
WEBHOOK_SECRET = "whsec_buytokens_contract"
PAYING_CARD = "4242424242424242"
DECLINING_CARD = "4000000000000341"
POPULAR = DEFAULT_CATALOGUE.get("package_500k")


@dataclass
class Harness:
    """One adapter, plus the provider-side actions a contract test needs."""

    gateway: PaymentGateway
    build: Callable[..., PaymentGateway]  # same backend, other settings
    pay: Callable[[str, str], None]  # the customer confirms with a test card
    intent_json: Callable[[str], dict[str, Any]]  # the intent as the provider stores it
    unreachable: Callable[[], PaymentGateway]  # a gateway whose provider cannot be reached


@pytest.fixture(scope="module")
def localstripe() -> Iterator[LocalStripe]:
    """One localstripe server for the whole module."""
    with LocalStripe.start() as server:
        yield server


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections (bound, never listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def memory_harness() -> Harness:
    gateway = InMemoryPaymentGateway(webhook_secret=WEBHOOK_SECRET)

    def unreachable() -> PaymentGateway:
        broken = InMemoryPaymentGateway(webhook_secret=WEBHOOK_SECRET)
        broken.make_unavailable()
        return broken

    return Harness(
        gateway=gateway,
        build=InMemoryPaymentGateway,
        pay=gateway.confirm_with_card,
        intent_json=gateway.intent_json,
        unreachable=unreachable,
    )


def stripe_harness(server: LocalStripe, closed_port: int) -> Harness:
    def build(**settings: Any) -> StripePaymentGateway:
        return StripePaymentGateway(
            SECRET_KEY,
            settings.pop("webhook_secret", WEBHOOK_SECRET),
            api_base=server.api_base,
            api_version=server.api_version,
            max_network_retries=0,
            budget=10,
            **settings,
        )

    client = stripe.StripeClient(
        SECRET_KEY, base_addresses={"api": server.api_base}, stripe_version=server.api_version
    )

    def pay(payment_intent_id: str, card_number: str) -> None:
        # localstripe answers confirm(payment_method=...) with a 500, so the
        # method is attached first and the confirmation carries no parameters.
        method = client.v1.payment_methods.create(
            {
                "type": "card",
                "card": {"number": card_number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
            }
        )
        client.v1.payment_intents.update(payment_intent_id, {"payment_method": method.id})
        with translated_stripe_errors("confirm a payment intent"):
            client.v1.payment_intents.confirm(payment_intent_id)

    def intent_json(payment_intent_id: str) -> dict[str, Any]:
        return client.v1.payment_intents.retrieve(payment_intent_id).to_dict()

    def unreachable() -> PaymentGateway:
        return StripePaymentGateway(
            SECRET_KEY,
            WEBHOOK_SECRET,
            api_base=f"http://127.0.0.1:{closed_port}",
            max_network_retries=0,
            budget=2,
        )

    return Harness(
        gateway=build(),
        build=build,
        pay=pay,
        intent_json=intent_json,
        unreachable=unreachable,
    )


@pytest.fixture(params=["memory", "stripe"])
def harness(request: pytest.FixtureRequest, closed_port: int) -> Harness:
    """Each PaymentGateway adapter in turn."""
    if request.param == "memory":
        return memory_harness()
    return stripe_harness(request.getfixturevalue("localstripe"), closed_port)


_purchases = iter(range(1, 1_000_000))


def intent_request(
    method: PaymentMethod = PaymentMethod.CARD,
    *,
    purchase_id: str | None = None,
    user_id: str = "user-7",
    package_id: str = "package_500k",
) -> IntentRequest:
    return IntentRequest(
        purchase_id=purchase_id or f"purchase-{time.time_ns()}-{next(_purchases)}",
        user_id=user_id,
        package=DEFAULT_CATALOGUE.get(package_id),
        method=method,
    )


def signed(
    body: dict[str, Any], *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None
) -> tuple[bytes, str]:
    payload = json.dumps(body, indent=2).encode()
    header = stripe.WebhookSignature.generate_signature_header(
        payload.decode(), secret, timestamp=timestamp
    )
    return payload, header


def succeeded_event(payment_intent_id: str = "pi_contract") -> dict[str, Any]:
    return {
        "id": "evt_contract",
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": int(time.time()),
        "data": {
            "object": {
                "id": payment_intent_id,
                "object": "payment_intent",
                "amount": 3500,
                "currency": "cny",
                "status": "succeeded",
                "metadata": {"userId": "user-7", "packageId": "package_500k"},
            }
        },
    }


# -- creating and reading intents ---------------------------------------------


def test_new_intent_charges_the_package_price_and_carries_the_metadata(harness: Harness) -> None:
    """The intent asks for the package's price and names the user, package and purchase."""
    request = intent_request()
    snapshot = harness.gateway.create_payment_intent(request)
    assert snapshot.id.startswith("pi_")
    assert snapshot.client_secret.startswith(snapshot.id)
    assert snapshot.status == "requires_payment_method"
    assert snapshot.event is None
    stored = harness.intent_json(snapshot.id)
    assert (stored["amount"], stored["currency"]) == (3500, "cny")
    assert stored["metadata"] == {
        "userId": "user-7",
        "packageId": "package_500k",
        "tokens": "500000",
        "purchaseId": request.purchase_id,
    }


def test_retrieve_returns_the_intent_as_created(harness: Harness) -> None:
    """Reading an intent back gives the same id, secret and status."""
    created = harness.gateway.create_payment_intent(intent_request())
    retrieved = harness.gateway.retrieve_payment_intent(created.id)
    assert (retrieved.id, retrieved.client_secret, retrieved.status) == (
        created.id,
        created.client_secret,
        created.status,
    )
    assert retrieved.event is None


@pytest.mark.parametrize(
    "method", [PaymentMethod.CARD, PaymentMethod.ALIPAY, PaymentMethod.WECHAT_PAY]
)
def test_every_method_offered_in_cny_creates_an_intent(
    harness: Harness, method: PaymentMethod
) -> None:
    """Card, Alipay and WeChat Pay all create a CNY intent awaiting payment."""
    snapshot = harness.gateway.create_payment_intent(intent_request(method))
    assert snapshot.status == "requires_payment_method"


def test_paid_intent_reads_as_a_success_for_its_user_and_package(harness: Harness) -> None:
    """After the customer pays, retrieve reports the success with amount and metadata."""
    created = harness.gateway.create_payment_intent(intent_request(user_id="user-paid"))
    harness.pay(created.id, PAYING_CARD)
    retrieved = harness.gateway.retrieve_payment_intent(created.id)
    assert retrieved.status == "succeeded"
    assert isinstance(retrieved.event, PaymentSucceeded)
    assert retrieved.event.event_id == f"{created.id}:retrieved"
    assert retrieved.event.payment_intent_id == created.id
    assert retrieved.event.amount == Money(3500, "cny")
    assert (retrieved.event.user_id, retrieved.event.package_id) == ("user-paid", "package_500k")
    assert retrieved.event.occurred_at.tzinfo is not None


def test_declined_card_surfaces_as_payment_declined_then_a_failed_attempt(harness: Harness) -> None:
    """A decline carries the bank's message, and the intent then reads as a failed attempt."""
    created = harness.gateway.create_payment_intent(intent_request())
    with pytest.raises(PaymentDeclined, match="declined"):
        harness.pay(created.id, DECLINING_CARD)
    retrieved = harness.gateway.retrieve_payment_intent(created.id)
    assert retrieved.status == "requires_payment_method"
    assert isinstance(retrieved.event, PaymentAttempted)
    assert retrieved.event.outcome is AttemptOutcome.FAILED
    assert retrieved.event.failure_message == "Your card was declined."


@pytest.mark.parametrize(
    "payment_intent_id",
    ["pi_doesnotexist0000000", "", "../customers", "pi_1/../../charges", "cus_123"],
)
def test_unknown_intent_is_not_found(harness: Harness, payment_intent_id: str) -> None:
    """An id the provider never issued, or no intent id at all, is NotFound."""
    with pytest.raises(NotFound):
        harness.gateway.retrieve_payment_intent(payment_intent_id)


def test_method_that_cannot_pay_the_currency_is_unsupported(harness: Harness) -> None:
    """Crypto settles in USD only, so a CNY package cannot be paid with it."""
    with pytest.raises(UnsupportedPaymentMethod):
        harness.gateway.create_payment_intent(intent_request(PaymentMethod.CRYPTO))


def test_method_that_is_not_enabled_is_unsupported(harness: Harness) -> None:
    """A gateway offering only cards refuses an Alipay intent."""
    cards_only = harness.build(payment_methods=[PaymentMethod.CARD])
    with pytest.raises(UnsupportedPaymentMethod):
        cards_only.create_payment_intent(intent_request(PaymentMethod.ALIPAY))
    assert cards_only.create_payment_intent(intent_request(PaymentMethod.CARD)).id


def test_unreachable_provider_is_gateway_unavailable(harness: Harness) -> None:
    """When the provider cannot be reached every call says so as a retryable error."""
    gateway = harness.unreachable()
    with pytest.raises(GatewayUnavailable):
        gateway.create_payment_intent(intent_request())
    with pytest.raises(GatewayUnavailable):
        gateway.retrieve_payment_intent("pi_doesnotexist0000000")
    with pytest.raises(GatewayUnavailable):
        list(gateway.events_since(datetime.now(UTC)))


# -- canceling intents ---------------------------------------------------------


def test_a_canceled_intent_stays_canceled_and_cannot_be_paid(harness: Harness) -> None:
    """Cancel is idempotent, and the customer can no longer pay the intent."""
    created = harness.gateway.create_payment_intent(intent_request())
    assert harness.gateway.cancel_payment_intent(created.id) is CancelOutcome.CANCELED
    assert harness.gateway.cancel_payment_intent(created.id) is CancelOutcome.CANCELED
    assert harness.gateway.retrieve_payment_intent(created.id).status == "canceled"
    with pytest.raises(GatewayRejected):
        harness.pay(created.id, PAYING_CARD)
    assert harness.gateway.retrieve_payment_intent(created.id).status == "canceled"


def test_a_paid_intent_cannot_be_canceled_and_stays_paid(harness: Harness) -> None:
    """Too late is an answer, not an error: the payment stands."""
    created = harness.gateway.create_payment_intent(intent_request())
    harness.pay(created.id, PAYING_CARD)
    assert harness.gateway.cancel_payment_intent(created.id) is CancelOutcome.TOO_LATE
    assert harness.gateway.retrieve_payment_intent(created.id).status == "succeeded"


def test_canceling_an_unknown_intent_is_not_found(harness: Harness) -> None:
    with pytest.raises(NotFound):
        harness.gateway.cancel_payment_intent("pi_doesnotexist0000000")
    with pytest.raises(NotFound):
        harness.gateway.cancel_payment_intent("../customers")


def test_canceling_at_an_unreachable_provider_is_gateway_unavailable(harness: Harness) -> None:
    with pytest.raises(GatewayUnavailable):
        harness.unreachable().cancel_payment_intent("pi_doesnotexist0000000")


@pytest.mark.parametrize("harness", ["memory"], indirect=True)
def test_same_purchase_id_returns_the_same_intent(harness: Harness) -> None:
    """A retried request for one purchase never creates a second intent."""
    request = intent_request()
    first = harness.gateway.create_payment_intent(request)
    again = harness.gateway.create_payment_intent(request)
    assert (again.id, again.client_secret) == (first.id, first.client_secret)
    other = harness.gateway.create_payment_intent(intent_request())
    assert other.id != first.id


# -- webhooks ------------------------------------------------------------------


def test_genuine_signed_webhook_is_accepted(harness: Harness) -> None:
    """A delivery signed with the webhook secret is verified and translated."""
    payload, header = signed(succeeded_event("pi_signed"))
    received = harness.gateway.parse_webhook(payload, header)
    assert received.event_id == "evt_contract"
    assert isinstance(received.payment_event, PaymentSucceeded)
    assert received.payment_event.payment_intent_id == "pi_signed"
    assert received.payment_event.user_id == "user-7"


def test_genuine_event_of_another_type_has_no_payment_event(harness: Harness) -> None:
    """A verified event we do not act on comes back with payment_event None."""
    body = {**succeeded_event(), "type": "customer.created", "data": {"object": {"id": "cus_1"}}}
    received = harness.gateway.parse_webhook(*signed(body))
    assert received.type == "customer.created"
    assert received.payment_event is None


def forged(payload: bytes, header: str) -> tuple[bytes, str | None]:
    return payload, signed(json.loads(payload), secret="whsec_someone_else")[1]


def stale(payload: bytes, header: str) -> tuple[bytes, str | None]:
    return payload, signed(json.loads(payload), timestamp=int(time.time()) - 301)[1]


def tampered(payload: bytes, header: str) -> tuple[bytes, str | None]:
    return payload.replace(b"3500", b"350000"), header


def missing(payload: bytes, header: str) -> tuple[bytes, str | None]:
    return payload, None


def empty(payload: bytes, header: str) -> tuple[bytes, str | None]:
    return payload, ""


def unsigned_scheme(payload: bytes, header: str) -> tuple[bytes, str | None]:
    return payload, header.replace("v1=", "v0=")


@pytest.mark.parametrize("tamper", [forged, stale, tampered, missing, empty, unsigned_scheme])
def test_forged_stale_or_missing_signature_is_invalid(
    harness: Harness, tamper: Callable[[bytes, str], tuple[bytes, str | None]]
) -> None:
    """Only the secret's fresh signature over these exact bytes is accepted."""
    payload, header = tamper(*signed(succeeded_event()))
    with pytest.raises(InvalidWebhook):
        harness.gateway.parse_webhook(payload, header)


@pytest.mark.parametrize(
    "payload",
    [b"", b"not json at all", b"[]", b'"evt_1"', b'{"id": "evt_1"}', b'{"object": "charge"}'],
)
def test_signed_body_that_is_not_an_event_is_invalid(harness: Harness, payload: bytes) -> None:
    """A correctly signed body that is not a Stripe event is refused, never half-parsed."""
    header = stripe.WebhookSignature.generate_signature_header(payload.decode(), WEBHOOK_SECRET)
    with pytest.raises(InvalidWebhook):
        harness.gateway.parse_webhook(payload, header)


def test_without_a_webhook_secret_every_delivery_is_refused(harness: Harness) -> None:
    """No configured secret fails closed, however the delivery is signed."""
    gateway = harness.build(webhook_secret=None)
    payload, header = signed(succeeded_event())
    with pytest.raises(InvalidWebhook):
        gateway.parse_webhook(payload, header)


# -- reconciliation --------------------------------------------------------------


def test_events_since_lists_payments_oldest_first(harness: Harness) -> None:
    """Both payments' success events come back, in creation order, and none from before."""
    since = datetime.now(UTC) - timedelta(seconds=1)
    first = harness.gateway.create_payment_intent(intent_request())
    second = harness.gateway.create_payment_intent(intent_request())
    harness.pay(first.id, PAYING_CARD)
    # Event times have whole-second resolution; pay the second one a second later.
    time.sleep(1.01 - time.time() % 1)
    harness.pay(second.id, PAYING_CARD)
    events = list(harness.gateway.events_since(since))
    successes = {
        e.payment_event.payment_intent_id: e
        for e in events
        if isinstance(e.payment_event, PaymentSucceeded)
    }
    assert {first.id, second.id} <= successes.keys()
    assert successes[first.id].type == "payment_intent.succeeded"
    assert successes[first.id].payment_event.amount == Money(3500, "cny")  # type: ignore[union-attr]
    times = [e.created_at for e in events]
    assert times == sorted(times)
    positions = [e.event_id for e in events]
    assert positions.index(successes[first.id].event_id) < positions.index(
        successes[second.id].event_id
    )
    assert all(t >= since.replace(microsecond=0) for t in times)
    assert list(harness.gateway.events_since(datetime.now(UTC) + timedelta(hours=1))) == []
