"""The Stripe adapter against localstripe: what only a real Stripe-speaking server shows."""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import stripe

from buytokens.adapters.stripe_gateway import (
    StripePaymentGateway,
    idempotency_key,
    translated_stripe_errors,
)
from buytokens.domain.catalogue import DEFAULT_CATALOGUE, PaymentMethod
from buytokens.domain.checkout import IntentRequest
from buytokens.domain.errors import (
    BuyTokensError,
    GatewayRejected,
    GatewayUnavailable,
    InvalidWebhook,
    PaymentDeclined,
)
from buytokens.domain.events import AttemptOutcome, PaymentAttempted, PaymentSucceeded
from buytokens.domain.money import Money
from buytokens.testing.localstripe import LocalStripe
from tests.support.fake_stripe import fake_stripe

SECRET_KEY = "sk_test_buytokens_localstripe"
WEBHOOK_SECRET = "whsec_buytokens_localstripe"


@pytest.fixture(scope="module")
def localstripe() -> Iterator[LocalStripe]:
    """One localstripe server for the whole module."""
    with LocalStripe.start() as server:
        yield server


@pytest.fixture
def client(localstripe: LocalStripe) -> stripe.StripeClient:
    """A plain SDK client on localstripe, for what the customer's browser would do."""
    return stripe.StripeClient(
        SECRET_KEY, base_addresses={"api": localstripe.api_base}, stripe_version="2017-08-15"
    )


@pytest.fixture
def gateway(localstripe: LocalStripe) -> StripePaymentGateway:
    """The adapter under test, pointed at localstripe."""
    return StripePaymentGateway(
        SECRET_KEY,
        WEBHOOK_SECRET,
        api_base=localstripe.api_base,
        api_version=localstripe.api_version,
        max_network_retries=0,
        budget=10,
    )


class RecordingClient(stripe.RequestsClient):
    """The SDK's own HTTP client, remembering every request it sends."""

    def __init__(self) -> None:
        super().__init__(timeout=10)
        self.sent: list[tuple[str, str, dict[str, str], dict[str, list[str]]]] = []

    def request(
        self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        body = urllib.parse.parse_qs(post_data or "", keep_blank_values=True)
        self.sent.append((method, url, dict(headers or {}), body))
        return super().request(method, url, headers, post_data)


def intent_request(method: PaymentMethod = PaymentMethod.CARD, **fields: Any) -> IntentRequest:
    return IntentRequest(
        purchase_id=fields.pop("purchase_id", f"purchase-{time.time_ns()}"),
        user_id=fields.pop("user_id", "user-9"),
        package=DEFAULT_CATALOGUE.get("package_1m"),
        method=method,
        **fields,
    )


def pay(client: stripe.StripeClient, payment_intent_id: str, card_number: str) -> None:
    # localstripe answers confirm(payment_method=...) with a 500: attach, then confirm.
    method = client.v1.payment_methods.create(
        {
            "type": "card",
            "card": {"number": card_number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    )
    client.v1.payment_intents.update(payment_intent_id, {"payment_method": method.id})
    client.v1.payment_intents.confirm(payment_intent_id)


def recording_gateway(localstripe: LocalStripe, recorder: RecordingClient) -> StripePaymentGateway:
    """The adapter on localstripe, with every request it sends kept by ``recorder``."""
    return StripePaymentGateway(
        SECRET_KEY,
        WEBHOOK_SECRET,
        api_base=localstripe.api_base,
        api_version=localstripe.api_version,
        http_client=recorder,
    )


# -- what the adapter sends --------------------------------------------------------


def test_create_sends_an_idempotency_key_derived_from_the_purchase(
    localstripe: LocalStripe,
) -> None:
    """Every create for a purchase carries the same Idempotency-Key, so Stripe dedupes retries."""
    recorder = RecordingClient()
    gateway = recording_gateway(localstripe, recorder)
    request = intent_request(purchase_id="purchase-abc")
    gateway.create_payment_intent(request)
    gateway.create_payment_intent(request)
    keys = [headers.get("Idempotency-Key") for _, _, headers, _ in recorder.sent]
    assert keys == ["buytokens-pi-purchase-abc", "buytokens-pi-purchase-abc"]
    assert idempotency_key("purchase-abc") == "buytokens-pi-purchase-abc"


def test_create_sends_price_method_and_metadata(localstripe: LocalStripe) -> None:
    """The request names the package price, the one method, and who bought what."""
    recorder = RecordingClient()
    gateway = recording_gateway(localstripe, recorder)
    gateway.create_payment_intent(intent_request(PaymentMethod.WECHAT_PAY, purchase_id="p-1"))
    method, url, _, body = recorder.sent[-1]
    assert (method, url) == ("post", f"{localstripe.api_base}/v1/payment_intents")
    assert body == {
        "amount": ["5500"],
        "currency": ["cny"],
        "payment_method_types[0]": ["wechat_pay"],
        "payment_method_options[wechat_pay][client]": ["web"],
        "metadata[userId]": ["user-9"],
        "metadata[packageId]": ["package_1m"],
        "metadata[tokens]": ["1000000"],
        "metadata[purchaseId]": ["p-1"],
    }


def test_current_api_versions_restrict_the_method_with_allowed_payment_method_types(
    localstripe: LocalStripe,
) -> None:
    """On the SDK's own API version the method goes in allowed_payment_method_types."""
    recorder = RecordingClient()
    # Told it is not localstripe, the gateway speaks to it as to Stripe itself.
    gateway = StripePaymentGateway(
        SECRET_KEY, None, api_base=localstripe.api_base, http_client=recorder, localstripe=False
    )
    # localstripe predates the parameter and refuses it, as a bad request.
    with pytest.raises(GatewayRejected):
        gateway.create_payment_intent(intent_request())
    _, _, headers, body = recorder.sent[-1]
    assert headers["Stripe-Version"] == stripe.api_version
    assert body["allowed_payment_method_types[0]"] == ["card"]
    assert "payment_method_types[0]" not in body


def test_receipt_email_is_sent_when_known(localstripe: LocalStripe) -> None:
    """A known e-mail asks Stripe for a receipt (localstripe refuses it: GatewayRejected)."""
    recorder = RecordingClient()
    gateway = StripePaymentGateway(
        SECRET_KEY,
        None,
        api_base=localstripe.api_base,
        api_version=localstripe.api_version,
        http_client=recorder,
        localstripe=False,
    )
    with pytest.raises(GatewayRejected, match="receipt_email"):
        gateway.create_payment_intent(intent_request(receipt_email="buyer@example.com"))
    assert recorder.sent[-1][3]["receipt_email"] == ["buyer@example.com"]


def test_localstripe_needs_no_pinned_version_and_drops_the_receipt_email(
    localstripe: LocalStripe,
) -> None:
    """Pointed at localstripe with nothing pinned, the gateway recognises it and creates
    intents in its 2017 API, without the receipt_email it refuses."""
    recorder = RecordingClient()
    gateway = StripePaymentGateway(
        SECRET_KEY, None, api_base=localstripe.api_base, http_client=recorder
    )
    created = gateway.create_payment_intent(intent_request(receipt_email="buyer@example.com"))
    assert created.id.startswith("pi_")
    _, _, _, body = recorder.sent[-1]
    assert body["payment_method_types[0]"] == ["card"]
    assert "allowed_payment_method_types[0]" not in body
    assert "receipt_email" not in body


def test_a_server_that_is_not_localstripe_is_spoken_to_as_stripe() -> None:
    """Another host behind STRIPE_API_BASE (a proxy, a mock) gets Stripe's current parameters."""
    recorder = RecordingClient()
    with fake_stripe(SECRET_KEY) as server:
        gateway = StripePaymentGateway(
            SECRET_KEY, None, api_base=server.api_base, http_client=recorder, max_network_retries=0
        )
        with pytest.raises(GatewayRejected):  # the fake has no payment intents to create
            gateway.create_payment_intent(intent_request(receipt_email="buyer@example.com"))
    _, _, _, body = recorder.sent[-1]
    assert body["allowed_payment_method_types[0]"] == ["card"]
    assert body["receipt_email"] == ["buyer@example.com"]


def test_wrong_secret_key_is_rejected_without_echoing_it(localstripe: LocalStripe) -> None:
    """A refused API key is an operator problem, and the key stays out of the message."""
    gateway = StripePaymentGateway(
        "not-a-key-at-all", None, api_base=localstripe.api_base, max_network_retries=0
    )
    with pytest.raises(GatewayRejected) as caught:
        gateway.retrieve_payment_intent("pi_anything00000")
    assert "not-a-key-at-all" not in str(caught.value)
    assert isinstance(caught.value.__cause__, stripe.AuthenticationError)


# -- paying ------------------------------------------------------------------------


def test_paying_with_the_visa_test_card_succeeds(
    gateway: StripePaymentGateway, client: stripe.StripeClient
) -> None:
    """4242 4242 4242 4242 pays, and retrieve reports the success for the right user."""
    created = gateway.create_payment_intent(intent_request())
    pay(client, created.id, "4242424242424242")
    retrieved = gateway.retrieve_payment_intent(created.id)
    assert retrieved.status == "succeeded"
    assert isinstance(retrieved.event, PaymentSucceeded)
    assert retrieved.event.amount == Money(5500, "cny")
    assert retrieved.event.user_id == "user-9"


def test_card_declined_at_charge_is_payment_declined(
    gateway: StripePaymentGateway, client: stripe.StripeClient
) -> None:
    """4000 0000 0000 0341 is declined with the bank's message as PaymentDeclined."""
    created = gateway.create_payment_intent(intent_request())
    with (
        pytest.raises(PaymentDeclined, match=r"^Your card was declined\.$") as caught,
        translated_stripe_errors("confirm a payment intent"),
    ):
        pay(client, created.id, "4000000000000341")
    assert isinstance(caught.value.__cause__, stripe.CardError)
    retrieved = gateway.retrieve_payment_intent(created.id)
    assert isinstance(retrieved.event, PaymentAttempted)
    assert retrieved.event.outcome is AttemptOutcome.FAILED


def test_canceled_intent_reads_as_canceled(
    gateway: StripePaymentGateway, client: stripe.StripeClient
) -> None:
    """An intent canceled at Stripe reports a CANCELED attempt."""
    created = gateway.create_payment_intent(intent_request())
    client.v1.payment_intents.cancel(created.id)
    retrieved = gateway.retrieve_payment_intent(created.id)
    assert retrieved.status == "canceled"
    assert isinstance(retrieved.event, PaymentAttempted)
    assert retrieved.event.outcome is AttemptOutcome.CANCELED


# -- webhooks delivered by the server --------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    deliveries: queue.Queue[tuple[bytes, str | None]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.deliveries.put((body, self.headers.get("Stripe-Signature")))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook_receiver(localstripe: LocalStripe) -> Iterator[queue.Queue[tuple[bytes, str | None]]]:
    """A tiny HTTP endpoint on loopback that localstripe delivers its webhooks to."""
    deliveries: queue.Queue[tuple[bytes, str | None]] = queue.Queue()
    handler = type("Receiver", (_Receiver,), {"deliveries": deliveries})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    localstripe.register_webhook(
        f"http://127.0.0.1:{server.server_address[1]}/webhook",
        WEBHOOK_SECRET,
        webhook_id="test-receiver",
    )
    try:
        yield deliveries
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def wait_for_delivery(
    deliveries: queue.Queue[tuple[bytes, str | None]], event_type: str, payment_intent_id: str
) -> tuple[bytes, str | None]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            payload, header = deliveries.get(timeout=deadline - time.monotonic())
        except queue.Empty:
            break
        event = json.loads(payload)
        if event["type"] == event_type and event["data"]["object"]["id"] == payment_intent_id:
            return payload, header
    raise AssertionError(f"localstripe delivered no {event_type} for {payment_intent_id}")


def test_webhook_delivered_by_localstripe_is_verified_and_credits_the_buyer(
    gateway: StripePaymentGateway,
    client: stripe.StripeClient,
    webhook_receiver: queue.Queue[tuple[bytes, str | None]],
) -> None:
    """The signed payment_intent.succeeded the server sends parses into the buyer's success."""
    since = datetime.now(UTC) - timedelta(seconds=1)
    created = gateway.create_payment_intent(intent_request(user_id="user-webhook"))
    pay(client, created.id, "4242424242424242")
    payload, header = wait_for_delivery(webhook_receiver, "payment_intent.succeeded", created.id)

    received = gateway.parse_webhook(payload, header)

    assert isinstance(received.payment_event, PaymentSucceeded)
    assert received.payment_event.payment_intent_id == created.id
    assert received.payment_event.user_id == "user-webhook"
    assert received.payment_event.package_id == "package_1m"
    assert received.payment_event.amount == Money(5500, "cny")
    listed = [e for e in gateway.events_since(since) if e.event_id == received.event_id]
    assert listed == [received]


def test_webhook_delivered_by_localstripe_is_refused_with_another_secret(
    localstripe: LocalStripe,
    client: stripe.StripeClient,
    gateway: StripePaymentGateway,
    webhook_receiver: queue.Queue[tuple[bytes, str | None]],
) -> None:
    """The same genuine delivery fails verification under a different secret."""
    created = gateway.create_payment_intent(intent_request())
    with pytest.raises(stripe.CardError):
        pay(client, created.id, "4000000000000341")
    payload, header = wait_for_delivery(
        webhook_receiver, "payment_intent.payment_failed", created.id
    )
    assert isinstance(gateway.parse_webhook(payload, header).payment_event, PaymentAttempted)
    other = StripePaymentGateway(SECRET_KEY, "whsec_not_the_one", api_base=localstripe.api_base)
    with pytest.raises(InvalidWebhook):
        other.parse_webhook(payload, header)


# -- the server process -------------------------------------------------------------


def test_localstripe_runs_on_loopback_with_private_state_and_stops_cleanly() -> None:
    """The child listens on 127.0.0.1, keeps state in its own directory, and cleans up."""
    with LocalStripe.start() as server:
        assert server.api_base.startswith("http://127.0.0.1:")
        state_dir = Path(server._state_dir)  # the private directory the child writes to
        gateway = StripePaymentGateway(
            SECRET_KEY, None, api_base=server.api_base, api_version=server.api_version
        )
        gateway.create_payment_intent(intent_request())
        assert (state_dir / "localstripe.pickle").is_file()
        with urllib.request.urlopen(server.js_url, timeout=5) as response:
            assert b"Stripe" in response.read()
    assert not server.running
    assert not state_dir.exists()
    with pytest.raises(GatewayUnavailable):
        gateway.retrieve_payment_intent("pi_anything00000")


def test_localstripe_never_touches_the_shared_state_file() -> None:
    """Writes go to the private state file, never to /tmp/localstripe.pickle."""
    shared = Path("/tmp/localstripe.pickle")
    before = shared.stat().st_mtime_ns if shared.exists() else None
    with LocalStripe.start() as server:
        StripePaymentGateway(
            SECRET_KEY, None, api_base=server.api_base, api_version=server.api_version
        ).create_payment_intent(intent_request())
    after = shared.stat().st_mtime_ns if shared.exists() else None
    assert after == before


def test_localstripe_listens_only_on_the_port_and_address_asked_for() -> None:
    """A given port is used as is, and other loopback addresses are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        wanted = probe.getsockname()[1]
    with LocalStripe.start(port=wanted) as server:
        assert server.port == wanted
        assert server.api_base == f"http://127.0.0.1:{wanted}"
        with (
            pytest.raises(ConnectionRefusedError),
            socket.create_connection(("127.0.0.2", wanted), timeout=2),
        ):
            pass


# -- translating the SDK's errors --------------------------------------------------


def _error(cls: type[stripe.StripeError], *args: Any, **kwargs: Any) -> stripe.StripeError:
    return cls(*args, **kwargs)


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (
            _error(stripe.CardError, "Your card has insufficient funds.", None, "card_declined"),
            PaymentDeclined,
        ),
        (_error(stripe.RateLimitError, "Too many requests", http_status=429), GatewayUnavailable),
        (_error(stripe.APIConnectionError, "Connection refused"), GatewayUnavailable),
        (_error(stripe.APIError, "Internal error", http_status=500), GatewayUnavailable),
        (_error(stripe.APIError, "Odd", http_status=None), GatewayUnavailable),
        (_error(stripe.APIError, "Conflict", http_status=409), GatewayRejected),
        (
            _error(
                stripe.AuthenticationError,
                "Invalid API Key provided: sk_test_****abcd",
                http_status=401,
            ),
            GatewayRejected,
        ),
        (_error(stripe.PermissionError, "Not allowed", http_status=403), GatewayRejected),
        (
            _error(
                stripe.InvalidRequestError,
                "No such thing",
                "id",
                "resource_missing",
                http_status=404,
            ),
            GatewayRejected,
        ),
        (_error(stripe.IdempotencyError, "Keys reused", http_status=400), GatewayRejected),
        (_error(stripe.SignatureVerificationError, "bad", "t=1,v1=x"), InvalidWebhook),
    ],
)
def test_every_stripe_error_becomes_one_of_ours(
    raised: stripe.StripeError, expected: type[BuyTokensError]
) -> None:
    """No stripe exception crosses the port, and the original stays attached as the cause."""
    with pytest.raises(expected) as caught, translated_stripe_errors("do a thing"):
        raise raised
    assert caught.value.__cause__ is raised
    assert "sk_test_" not in str(caught.value)


def test_declines_carry_the_banks_message() -> None:
    """PaymentDeclined's message is the one Stripe wrote for the customer."""
    with pytest.raises(PaymentDeclined) as caught, translated_stripe_errors("confirm"):
        raise stripe.CardError("Your card has insufficient funds.", None, "card_declined")
    assert caught.value.message == "Your card has insufficient funds."
