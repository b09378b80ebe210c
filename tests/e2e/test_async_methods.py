"""Alipay and WeChat Pay settle later: processing first, then succeeded, credited once."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Stack, auth

PACKAGE = "package_1m"
TOKENS = 1_000_000

pytestmark = pytest.mark.parametrize("method", ["alipay", "wechat_pay"])


def _buy(stack: Stack, user: str, method: str) -> str:
    response = stack.client.post(
        "/api/custom/stripe/create-payment-intent",
        json={"packageId": PACKAGE, "paymentMethod": method},
        headers=auth(user),
    )
    assert response.status_code == 200, response.text
    pi = str(response.json()["paymentIntentId"])
    assert stack.gateway.intent_json(pi)["payment_method_types"] == [method]
    return pi


def _status(stack: Stack, user: str) -> str:
    purchases = stack.client.get("/api/custom/stripe/purchases", headers=auth(user)).json()
    return str(purchases["purchases"][0]["status"])


def test_processing_then_succeeded_webhooks_credit_once(stack: Stack, method: str) -> None:
    """payment_intent.processing shows as processing; the success credits exactly once."""
    pi = _buy(stack, "alice", method)
    processing = stack.gateway.start_processing(pi)

    assert stack.deliver(processing).json()["outcome"] == "applied"
    assert (_status(stack, "alice"), stack.balance("alice")) == ("processing", 0)

    succeeded = stack.gateway.succeed(pi)
    outcomes = [stack.deliver(e).json()["outcome"] for e in (succeeded, succeeded, processing)]

    assert outcomes == ["applied", "duplicate", "duplicate"]
    assert (_status(stack, "alice"), stack.balance("alice")) == ("succeeded", TOKENS)


def test_a_success_delivered_before_its_processing_event_stays_a_success(
    stack: Stack, method: str
) -> None:
    """Out of order, the late processing event never turns a paid purchase back."""
    pi = _buy(stack, "alice", method)
    processing = stack.gateway.start_processing(pi)
    succeeded = stack.gateway.succeed(pi)

    outcomes = [stack.deliver(e).json()["outcome"] for e in (succeeded, processing, succeeded)]

    assert outcomes == ["applied", "duplicate", "duplicate"]
    assert (_status(stack, "alice"), stack.balance("alice")) == ("succeeded", TOKENS)


def test_the_return_page_sees_processing_then_succeeded_and_credits_once(
    stack: Stack, method: str
) -> None:
    """Polling the intent from the return page follows it to success without any webhook."""
    pi = _buy(stack, "alice", method)
    url = f"/api/custom/stripe/payment-intents/{pi}"
    stack.gateway.start_processing(pi)

    for _ in range(2):
        assert stack.client.get(url, headers=auth("alice")).json() == {
            "success": True,
            "status": "processing",
            "tokenCredits": 0,
        }

    succeeded = stack.gateway.succeed(pi)
    for _ in range(2):
        assert stack.client.get(url, headers=auth("alice")).json() == {
            "success": True,
            "status": "succeeded",
            "tokenCredits": TOKENS,
        }
    assert stack.deliver(succeeded).json()["outcome"] == "duplicate"
    assert stack.balance("alice") == TOKENS


def test_a_processing_payment_that_fails_credits_nothing(stack: Stack, method: str) -> None:
    """A wallet payment that fails after processing ends as failed, with no tokens."""
    pi = _buy(stack, "alice", method)
    processing = stack.gateway.start_processing(pi)
    failed = stack.gateway.fail(pi, "The customer did not approve the payment.")

    outcomes = [stack.deliver(e).json()["outcome"] for e in (processing, failed, processing)]

    assert outcomes == ["applied", "applied", "duplicate"]
    assert (_status(stack, "alice"), stack.balance("alice")) == ("failed", 0)
