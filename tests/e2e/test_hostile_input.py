"""Hostile and absurd input over HTTP: always a clear 4xx in the error shape, never a 5xx."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest

from buytokens.adapters.stripe_events import sign_payload
from tests.e2e.conftest import WEBHOOK_SECRET, Stack, auth

CREATE = "/api/custom/stripe/create-payment-intent"
WEBHOOK = "/api/custom/stripe/webhook"
DEPTH = 100_000


def _nested(depth: int = DEPTH) -> str:
    return "[" * depth + "]" * depth


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert set(body["error"]) == {"code", "message"}
    return body["error"]  # type: ignore[no-any-return]


def _signed_post(stack: Stack, payload: bytes) -> httpx.Response:
    return stack.client.post(
        WEBHOOK,
        content=payload,
        headers={"Stripe-Signature": sign_payload(payload, WEBHOOK_SECRET)},
    )


def test_a_signed_deeply_nested_webhook_is_a_400_not_a_500(stack: Stack) -> None:
    """Stripe retries a 5xx for three days; a body nobody can parse is answered 400 at once."""
    payload = (
        '{"id": "evt_deep", "object": "event", "type": "payment_intent.succeeded", '
        f'"created": {int(time.time())}, "data": {_nested()}}}'
    ).encode()

    error = _error(_signed_post(stack, payload), 400)

    assert error["code"] == "invalid_webhook"
    assert "nested" in error["message"]


@pytest.mark.parametrize(
    "payload",
    [
        _nested(500).encode(),  # parsable, but not an event
        b'{"id": "evt_big", "object": "event", "created": ' + b"9" * 5_000 + b"}",
        b'{"id": "evt_inf", "object": "event", "type": "x", "created": 1e999}',
        b'{"id": 1, "object": "event", "type": "x", "created": ' + str(2**70).encode() + b"}",
        b'"\\ud800"',
    ],
)
def test_signed_webhooks_with_absurd_values_are_400(stack: Stack, payload: bytes) -> None:
    """Huge numbers, infinities, lone surrogates: a 400 invalid_webhook, never a 5xx."""
    assert _error(_signed_post(stack, payload), 400)["code"] == "invalid_webhook"


def test_a_deeply_nested_checkout_body_is_a_400_that_says_so(stack: Stack) -> None:
    """The JSON parser's recursion limit is the client's problem, not a server error."""
    response = stack.client.post(
        CREATE,
        content=f'{{"packageId": {_nested(5_000)}, "paymentMethod": "card"}}',  # 10 kB
        headers=auth("alice") | {"Content-Type": "application/json"},
    )
    assert _error(response, 400) == {
        "code": "invalid_json",
        "message": "the JSON body is nested too deeply",
    }


def _error_status(response: httpx.Response) -> int:
    _error(response, response.status_code)
    return response.status_code


def test_a_huge_checkout_body_is_refused_as_too_large(stack: Stack) -> None:
    """A body far beyond any checkout request is refused before it is parsed."""
    body = json.dumps({"packageId": "package_500k", "paymentMethod": "card", "x": "y" * 2_000_000})
    response = stack.client.post(
        CREATE, content=body, headers=auth("alice") | {"Content-Type": "application/json"}
    )
    assert _error(response, 413)["code"] == "payload_too_large"


def test_a_huge_chunked_body_is_refused_as_too_large(stack: Stack) -> None:
    """Without a Content-Length the body is counted as it arrives, with the same answer."""
    chunks = iter([b'{"packageId": "' + b"p" * 10_000, b"q" * 10_000, b'"}'])
    checkout = stack.client.post(
        CREATE, content=chunks, headers=auth("alice") | {"Content-Type": "application/json"}
    )
    assert _error(checkout, 413)["code"] == "payload_too_large"
    webhook = stack.client.post(
        WEBHOOK, content=iter([b"{" * 600_000, b"}" * 600_000]), headers={"Stripe-Signature": "x"}
    )
    assert _error(webhook, 413)["code"] == "payload_too_large"


def test_over_long_checkout_fields_are_clear_4xx(stack: Stack) -> None:
    """A 10 kB packageId or Idempotency-Key says which field is wrong."""
    long_package = stack.client.post(
        CREATE, json={"packageId": "p" * 10_000, "paymentMethod": "card"}, headers=auth("alice")
    )
    assert "packageId" in _error(long_package, 422)["message"]
    long_key = stack.client.post(
        CREATE,
        json={"packageId": "package_500k", "paymentMethod": "card"},
        headers=auth("alice") | {"Idempotency-Key": "k" * 10_000},
    )
    assert _error(long_key, 400)["code"] == "invalid_idempotency_key"
    long_intent = stack.client.get(
        "/api/custom/stripe/payment-intents/pi_" + "9" * 10_000, headers=auth("alice")
    )
    assert _error_status(long_intent) == 422


def test_a_token_with_a_deeply_nested_header_is_a_401(stack: Stack) -> None:
    """The JWT header is parsed before the signature is checked: nesting must not crash it."""
    header = base64.urlsafe_b64encode(_nested(5_000).encode()).rstrip(b"=").decode()
    response = stack.client.get(
        "/api/custom/balance", headers={"Authorization": f"Bearer {header}.e30.c2ln"}
    )
    assert _error(response, 401)["code"] == "unauthorized"


def test_nothing_was_credited_by_any_of_it(stack: Stack) -> None:
    """After hostile webhooks the balance is untouched and a genuine purchase still works."""
    _signed_post(stack, f'{{"data": {_nested()}}}'.encode())
    intent = stack.buy("alice")
    assert stack.deliver(stack.gateway.succeed(intent["paymentIntentId"])).status_code == 200
    assert stack.balance("alice") == 500_000
