"""Every route of the HTTP contract, through the real app, on SQLite and on mongomock."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import attrs
import jwt
import pytest
from dependency_injector import providers
from fastapi.testclient import TestClient

from buytokens.adapters.stripe_events import sign_payload
from buytokens.domain.errors import StoreUnavailable
from buytokens.entrypoints.container import create_container
from buytokens.entrypoints.web.app import create_app
from buytokens.testing.stripe_twin import InMemoryPaymentGateway
from tests.e2e.conftest import JWT_SECRET, WEBHOOK_SECRET, Stack, auth, settings_for, token_for

CREATE = "/api/custom/stripe/create-payment-intent"
WEBHOOK = "/api/custom/stripe/webhook"


def _error(response: Any) -> str:
    body = response.json()
    assert body["success"] is False
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    return str(body["error"]["code"])


# -- catalogue and health ---------------------------------------------------------------------


def test_health_is_ok(stack: Stack) -> None:
    """The liveness probe answers 200."""
    assert stack.client.get("/healthz").status_code == 200


def test_packages_lists_the_catalogue_in_minor_units(stack: Stack) -> None:
    """The seed's four packages with prices in fen, discounts and the popular flag."""
    body = stack.client.get("/api/custom/stripe/packages").json()
    assert (body["success"], body["currency"]) == (True, "cny")
    assert body["packages"][1] == {
        "id": "package_500k",
        "label": "Popular",
        "tokens": 500_000,
        "amount": 3_500,
        "originalAmount": 5_000,
        "discountPercent": 30,
        "popular": True,
    }
    assert [p["id"] for p in body["packages"]] == [
        "package_100k",
        "package_500k",
        "package_1m",
        "package_10m",
    ]


def test_payment_methods_for_cny_exclude_crypto(stack: Stack) -> None:
    """Card, Alipay and WeChat Pay are offered; stablecoins are USD-only."""
    body = stack.client.get("/api/custom/stripe/payment-methods", headers=auth("alice")).json()
    assert body == {"success": True, "paymentMethods": ["card", "alipay", "wechat_pay"]}


# -- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer",
        "Basic dXNlcjpwYXNz",
        f"Bearer {token_for('alice', secret='not-the-secret')}",
        f"Bearer {token_for('alice', expires_in=-10)}",
        "Bearer not.a.jwt",
    ],
)
def test_a_missing_or_bad_token_is_401(stack: Stack, header: str | None) -> None:
    """Anything but a valid, unexpired HS256 token with the shared secret is refused."""
    headers = {} if header is None else {"Authorization": header}
    response = stack.client.get("/api/custom/balance", headers=headers)
    assert response.status_code == 401
    assert _error(response) == "unauthorized"


def test_a_token_without_exp_or_id_is_401(stack: Stack) -> None:
    """LibreChat's tokens always carry exp and id; tokens without them are refused."""
    no_exp = jwt.encode({"id": "alice"}, JWT_SECRET, algorithm="HS256")
    no_id = jwt.encode({"exp": int(time.time()) + 60}, JWT_SECRET, algorithm="HS256")
    other_alg = jwt.encode(
        {"id": "alice", "exp": int(time.time()) + 60}, JWT_SECRET, algorithm="HS512"
    )
    for token in (no_exp, no_id, other_alg):
        response = stack.client.get(
            "/api/custom/balance", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401


# -- creating payment intents -----------------------------------------------------------------


def test_create_payment_intent_prices_from_the_catalogue(stack: Stack) -> None:
    """The answer carries the client secret, the package's price, and a pending purchase."""
    body = stack.buy("alice", "package_1m")
    assert body["success"] is True
    assert (body["amount"], body["currency"]) == (5_500, "cny")
    assert body["clientSecret"].startswith(body["paymentIntentId"])
    intent = stack.gateway.intent_json(body["paymentIntentId"])
    assert intent["metadata"]["userId"] == "alice"
    assert intent["metadata"]["packageId"] == "package_1m"
    purchases = stack.client.get("/api/custom/stripe/purchases", headers=auth("alice")).json()[
        "purchases"
    ]
    assert [(p["paymentIntentId"], p["status"]) for p in purchases] == [
        (body["paymentIntentId"], "pending")
    ]


def test_the_email_claim_becomes_the_receipt_email(stack: Stack) -> None:
    """Stripe sends the receipt to the address LibreChat put in the token."""
    response = stack.client.post(
        CREATE,
        json={"packageId": "package_100k", "paymentMethod": "card"},
        headers=auth("alice", email="alice@example.com"),
    )
    intent = stack.gateway.intent_json(response.json()["paymentIntentId"])
    assert intent["receipt_email"] == "alice@example.com"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"packageId": "package_free", "paymentMethod": "card"}, 400, "unknown_package"),
        ({"packageId": "package_1m", "paymentMethod": "crypto"}, 400, "unsupported_payment_method"),
        (
            {"packageId": "package_1m", "paymentMethod": "bitcoin"},
            400,
            "unsupported_payment_method",
        ),
        ({"packageId": "package_1m", "paymentMethod": "card", "amount": 1}, 422, "invalid_request"),
        ({"packageId": "package_1m", "paymentMethod": "card", "price": 1}, 422, "invalid_request"),
        (
            {"packageId": "package_1m", "paymentMethod": "card", "tokens": 10**9},
            422,
            "invalid_request",
        ),
        (
            {"packageId": "package_1m", "paymentMethod": "card", "userId": "bob"},
            422,
            "invalid_request",
        ),
        ({"packageId": "package_1m"}, 422, "invalid_request"),
        ({"packageId": 5, "paymentMethod": "card"}, 422, "invalid_request"),
        ([], 422, "invalid_request"),
    ],
)
def test_create_payment_intent_refuses_bad_requests(
    stack: Stack, body: Any, status: int, code: str
) -> None:
    """Unknown packages, unsupported methods and client-supplied prices are refused clearly."""
    response = stack.client.post(CREATE, json=body, headers=auth("alice"))
    assert response.status_code == status
    assert _error(response) == code
    assert stack.gateway.recorded_events == ()


def test_a_body_that_is_not_json_is_422(stack: Stack) -> None:
    """Garbage bodies get the error shape, not a crash."""
    response = stack.client.post(
        CREATE, content=b"{nope", headers=auth("alice") | {"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert _error(response) == "invalid_request"


def test_the_same_idempotency_key_returns_the_same_intent(stack: Stack) -> None:
    """A double click with one key creates one intent."""
    first = stack.buy("alice", key="click-1")
    second = stack.buy("alice", key="click-1")
    assert first["paymentIntentId"] == second["paymentIntentId"]
    assert first["clientSecret"] == second["clientSecret"]
    assert (
        len(
            stack.client.get("/api/custom/stripe/purchases", headers=auth("alice")).json()[
                "purchases"
            ]
        )
        == 1
    )


def test_the_same_key_for_another_package_is_409(stack: Stack) -> None:
    """Reusing a key for a different request is a conflict, not a silent second purchase."""
    stack.buy("alice", "package_500k", key="k")
    response = stack.client.post(
        CREATE,
        json={"packageId": "package_1m", "paymentMethod": "card"},
        headers=auth("alice") | {"Idempotency-Key": "k"},
    )
    assert response.status_code == 409
    assert _error(response) == "idempotency_conflict"
    assert response.json()["error"]["message"] == (
        "this Idempotency-Key was already used for a different request (package_500k/card)"
    )


def test_a_malformed_idempotency_key_is_400_naming_the_header(stack: Stack) -> None:
    """The answer names the key as the client sent it: the Idempotency-Key header."""
    response = stack.client.post(
        CREATE,
        json={"packageId": "package_1m", "paymentMethod": "card"},
        headers=auth("alice") | {"Idempotency-Key": "k" * 256},
    )
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "invalid_idempotency_key",
        "message": "Idempotency-Key must be 1-255 printable characters",
    }


def test_idempotency_keys_are_per_user(stack: Stack) -> None:
    """Two users with the same key get their own intents."""
    assert (
        stack.buy("alice", key="same")["paymentIntentId"]
        != stack.buy("bob", key="same")["paymentIntentId"]
    )


def test_a_gateway_outage_is_503_and_the_key_can_be_retried(stack: Stack) -> None:
    """A transient Stripe failure asks the client to retry; the same key then succeeds."""
    stack.gateway.make_unavailable(calls=1)
    headers = auth("alice") | {"Idempotency-Key": "retry-me"}
    body = {"packageId": "package_100k", "paymentMethod": "card"}
    failed = stack.client.post(CREATE, json=body, headers=headers)
    assert failed.status_code == 503
    assert failed.headers["Retry-After"]
    assert stack.client.post(CREATE, json=body, headers=headers).status_code == 200


def test_card_testing_is_rate_limited_with_retry_after(tmp_path: Path) -> None:
    """Past the per-user limit the API answers 429 with Retry-After."""
    container = create_container(settings_for(tmp_path, rate_limit_per_user="3/minute"))
    container.gateway.override(
        providers.Object(InMemoryPaymentGateway(webhook_secret=WEBHOOK_SECRET))
    )
    client = TestClient(create_app(container))
    body = {"packageId": "package_100k", "paymentMethod": "card"}
    codes = [client.post(CREATE, json=body, headers=auth("mallory")).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = client.post(CREATE, json=body, headers=auth("mallory"))
    assert _error(limited) == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert client.post(CREATE, json=body, headers=auth("honest")).status_code == 200


def test_without_a_stripe_key_payments_are_503(tmp_path: Path) -> None:
    """A deployment without STRIPE_SECRET_KEY says so instead of failing obscurely."""
    client = TestClient(
        create_app(create_container(settings_for(tmp_path, stripe_secret_key=None)))
    )
    response = client.post(
        CREATE, json={"packageId": "package_100k", "paymentMethod": "card"}, headers=auth("a")
    )
    assert response.status_code == 503
    assert _error(response) == "payments_not_configured"
    assert "STRIPE_SECRET_KEY" in response.json()["error"]["message"]


# -- the webhook ------------------------------------------------------------------------------


def test_a_succeeded_webhook_credits_once(stack: Stack) -> None:
    """The first delivery credits; every redelivery answers 200 as a duplicate."""
    intent = stack.buy("alice")
    event = stack.gateway.succeed(intent["paymentIntentId"])
    outcomes = [stack.deliver(event) for _ in range(3)]
    assert [r.status_code for r in outcomes] == [200, 200, 200]
    assert [r.json()["outcome"] for r in outcomes] == ["applied", "duplicate", "duplicate"]
    assert stack.balance("alice") == 500_000
    assert stack.container.stores().journal.deliveries(event["id"]) == ("duplicate", 3)


def test_a_late_payment_failed_after_success_changes_nothing(stack: Stack) -> None:
    """A failure delivered after the success leaves the credit and the status alone."""
    intent = stack.buy("alice")
    failed = stack.gateway.fail(intent["paymentIntentId"])
    succeeded = stack.gateway.succeed(intent["paymentIntentId"])
    stack.deliver(succeeded)
    assert stack.deliver(failed).status_code == 200
    assert stack.balance("alice") == 500_000
    purchases = stack.client.get("/api/custom/stripe/purchases", headers=auth("alice")).json()[
        "purchases"
    ]
    assert purchases[0]["status"] == "succeeded"


def _tampered(stack: Stack, user: str, mutate: Any) -> dict[str, Any]:
    intent = stack.buy(user)
    event = json.loads(json.dumps(stack.gateway.succeed(intent["paymentIntentId"])))
    event["id"] = event["id"] + "_tampered"
    mutate(event["data"]["object"])
    return event


@pytest.mark.parametrize(
    "mutate",
    [
        lambda obj: obj.update(amount=1),
        lambda obj: obj.update(currency="usd"),
        lambda obj: obj["metadata"].update(packageId="package_nope"),
        lambda obj: obj.update(metadata={}),
    ],
    ids=["amount", "currency", "unknown_package", "no_metadata"],
)
def test_a_genuine_but_inconsistent_success_is_200_and_flagged(stack: Stack, mutate: Any) -> None:
    """Stripe must stop retrying, but nothing is credited and the purchase awaits review."""
    event = _tampered(stack, "eve", mutate)
    response = stack.deliver(event)
    assert response.status_code == 200
    assert response.json()["outcome"] == "needs_review"
    assert stack.balance("eve") == 0
    purchases = stack.client.get("/api/custom/stripe/purchases", headers=auth("eve")).json()[
        "purchases"
    ]
    assert purchases[0]["status"] == "needs_review"


def test_an_event_type_we_do_not_handle_is_ignored_with_200(stack: Stack) -> None:
    """customer.created and friends are acknowledged and ignored."""
    event = {
        "id": "evt_other",
        "object": "event",
        "type": "customer.created",
        "created": int(time.time()),
        "data": {"object": {"id": "cus_1", "object": "customer"}},
    }
    response = stack.deliver(event)
    assert (response.status_code, response.json()["outcome"]) == (200, "ignored")


@pytest.mark.parametrize("case", ["forged", "missing", "stale", "reserialised", "wrong_secret"])
def test_a_webhook_that_is_not_genuine_is_400(stack: Stack, case: str) -> None:
    """Signatures are checked over the raw bytes with a 300 s tolerance."""
    intent = stack.buy("alice")
    event = stack.gateway.succeed(intent["paymentIntentId"])
    payload, header = stack.gateway.signed_webhook(event)
    if case == "forged":
        header = header.rsplit("v1=", 1)[0] + "v1=" + "0" * 64
    elif case == "missing":
        header = ""
    elif case == "stale":
        payload, header = stack.gateway.signed_webhook(event, timestamp=int(time.time()) - 301)
    elif case == "reserialised":
        payload = json.dumps(json.loads(payload), separators=(",", ":")).encode()
    elif case == "wrong_secret":
        header = sign_payload(payload, "whsec_attacker")
    headers = {"Stripe-Signature": header} if header else {}
    response = stack.client.post(WEBHOOK, content=payload, headers=headers)
    assert response.status_code == 400
    assert _error(response) == "invalid_webhook"
    assert stack.balance("alice") == 0


def test_a_signed_body_that_is_not_json_is_400(stack: Stack) -> None:
    """Malformed JSON is refused even with a valid signature over it."""
    payload = b"{not json"
    response = stack.client.post(
        WEBHOOK,
        content=payload,
        headers={"Stripe-Signature": sign_payload(payload, WEBHOOK_SECRET)},
    )
    assert response.status_code == 400


def test_a_two_megabyte_webhook_is_413(stack: Stack) -> None:
    """Bodies over 1 MB are refused before they are parsed."""
    payload = b"{" + b" " * 2_000_000 + b"}"
    response = stack.client.post(
        WEBHOOK,
        content=payload,
        headers={"Stripe-Signature": sign_payload(payload, WEBHOOK_SECRET)},
    )
    assert response.status_code == 413
    assert _error(response) == "payload_too_large"


def test_without_a_webhook_secret_every_event_is_refused(tmp_path: Path) -> None:
    """Fail closed: no STRIPE_WEBHOOK_SECRET, no event is believed."""
    container = create_container(settings_for(tmp_path, stripe_webhook_secret=None))
    gateway = InMemoryPaymentGateway(webhook_secret="whsec_x")
    client = TestClient(create_app(container))
    event = {
        "id": "evt_1",
        "object": "event",
        "type": "customer.created",
        "created": int(time.time()),
        "data": {"object": {}},
    }
    payload, header = gateway.signed_webhook(event)
    assert (
        client.post(WEBHOOK, content=payload, headers={"Stripe-Signature": header}).status_code
        == 400
    )


def test_a_store_outage_is_503_so_stripe_retries(stack: Stack) -> None:
    """When the outcome cannot be stored, the webhook asks Stripe to retry."""

    class Down:
        def __getattr__(self, name: str) -> Any:
            def fail(*args: Any, **kwargs: Any) -> Any:
                raise StoreUnavailable("database is down")

            return fail

    intent = stack.buy("alice")
    event = stack.gateway.succeed(intent["paymentIntentId"])
    webhooks = stack.container.webhooks()
    events = attrs.evolve(webhooks.events, store=Down())
    stack.container.webhooks.override(providers.Object(attrs.evolve(webhooks, events=events)))
    try:
        response = stack.deliver(event)
    finally:
        stack.container.webhooks.reset_override()
    assert response.status_code == 503
    assert stack.deliver(event).json()["outcome"] == "applied"
    assert stack.balance("alice") == 500_000


# -- the return-page check, balance and purchases ---------------------------------------------


def test_the_return_page_check_credits_without_a_webhook(stack: Stack) -> None:
    """Fulfilment from the return page goes through the same idempotent path."""
    intent = stack.buy("alice")
    url = f"/api/custom/stripe/payment-intents/{intent['paymentIntentId']}"
    assert stack.client.get(url, headers=auth("alice")).json() == {
        "success": True,
        "status": "pending",
        "tokenCredits": 0,
    }
    event = stack.gateway.succeed(intent["paymentIntentId"])
    for _ in range(2):
        assert stack.client.get(url, headers=auth("alice")).json() == {
            "success": True,
            "status": "succeeded",
            "tokenCredits": 500_000,
        }
    assert stack.deliver(event).json()["outcome"] == "duplicate"
    assert stack.balance("alice") == 500_000


def test_another_users_intent_is_404(stack: Stack) -> None:
    """Users only ever see their own intents; others are told it does not exist."""
    intent = stack.buy("alice")
    stack.gateway.succeed(intent["paymentIntentId"])
    response = stack.client.get(
        f"/api/custom/stripe/payment-intents/{intent['paymentIntentId']}", headers=auth("bob")
    )
    assert response.status_code == 404
    assert _error(response) == "not_found"
    assert stack.balance("alice") == 0


def test_any_spelling_of_an_object_id_in_the_token_is_the_same_user(stack: Stack) -> None:
    """A token naming the buyer's ObjectId in upper case still owns the purchase."""
    user = "65a1b2c3d4e5f60718293a4b"
    intent = stack.buy(user.upper())
    stack.gateway.succeed(intent["paymentIntentId"])
    url = f"/api/custom/stripe/payment-intents/{intent['paymentIntentId']}"
    for spelling in (user, user.upper()):
        response = stack.client.get(url, headers=auth(spelling))
        assert response.status_code == 200, response.text
        assert response.json()["tokenCredits"] == 500_000
    assert stack.balance(user) == 500_000


def test_an_unknown_intent_is_404(stack: Stack) -> None:
    """An id Stripe does not know is 404."""
    response = stack.client.get(
        "/api/custom/stripe/payment-intents/pi_doesnotexist", headers=auth("alice")
    )
    assert response.status_code == 404


def test_purchases_are_own_and_newest_first(stack: Stack) -> None:
    """The list shows only the caller's purchases, the latest first, with the contract's fields."""
    first = stack.buy("alice", "package_100k")
    second = stack.buy("alice", "package_10m")
    stack.buy("bob")
    purchases = stack.client.get("/api/custom/stripe/purchases", headers=auth("alice")).json()[
        "purchases"
    ]
    assert [p["paymentIntentId"] for p in purchases] == [
        second["paymentIntentId"],
        first["paymentIntentId"],
    ]
    assert set(purchases[0]) == {
        "paymentIntentId",
        "packageId",
        "tokens",
        "amount",
        "currency",
        "exponent",
        "status",
        "createdAt",
    }
    assert (
        purchases[0]["tokens"],
        purchases[0]["amount"],
        purchases[0]["currency"],
        purchases[0]["exponent"],
    ) == (10_000_000, 28_000, "cny", 2)


def test_unknown_routes_use_the_error_shape(stack: Stack) -> None:
    """404s from the router carry the contract's error body."""
    response = stack.client.get("/api/custom/nothing-here")
    assert response.status_code == 404
    assert _error(response) == "not_found"


def test_every_response_carries_a_request_id(stack: Stack) -> None:
    """A caller's X-Request-ID is echoed; otherwise one is minted."""
    assert (
        stack.client.get("/healthz", headers={"X-Request-ID": "abc123"}).headers["X-Request-ID"]
        == "abc123"
    )
    assert len(stack.client.get("/healthz").headers["X-Request-ID"]) == 32


def test_openapi_documents_every_route_and_the_error_shape(stack: Stack) -> None:
    """/docs is backed by a schema that names every contract route and ErrorResponse."""
    schema = stack.client.get("/openapi.json").json()
    for path in (
        "/api/custom/stripe/packages",
        CREATE,
        WEBHOOK,
        "/api/custom/stripe/payment-intents/{payment_intent_id}",
        "/api/custom/stripe/payment-methods",
        "/api/custom/balance",
        "/api/custom/stripe/purchases",
        "/healthz",
    ):
        assert path in schema["paths"], path
    assert "ErrorResponse" in schema["components"]["schemas"]
    assert stack.client.get("/docs").status_code == 200


def test_a_full_purchase_logs_no_secret(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    """Client secrets, bearer tokens and signing secrets never reach any log record."""
    caplog.set_level("DEBUG")
    token = token_for("alice")
    headers = {"Authorization": f"Bearer {token}"}
    created = stack.client.post(
        CREATE, json={"packageId": "package_500k", "paymentMethod": "card"}, headers=headers
    ).json()
    event = stack.gateway.succeed(created["paymentIntentId"])
    payload, signature = stack.gateway.signed_webhook(event)
    stack.client.post(WEBHOOK, content=payload, headers={"Stripe-Signature": signature})
    stack.client.get(
        f"/api/custom/stripe/payment-intents/{created['paymentIntentId']}", headers=headers
    )
    stack.client.post(WEBHOOK, content=b"{}", headers={"Stripe-Signature": "t=1,v1=deadbeef"})
    text = caplog.text + "".join(repr(record.args) for record in caplog.records)
    assert "request" in text
    for secret in (created["clientSecret"], token, JWT_SECRET, WEBHOOK_SECRET, signature):
        assert secret not in text
