"""Promo codes through the real app, on SQLite and on mongomock, with the Stripe twin."""

from __future__ import annotations

from typing import Any

from buytokens.services.promos import create_promo
from tests.e2e.conftest import Stack, auth

INTENT = "/api/custom/stripe/create-payment-intent"
PREVIEW = "/api/custom/stripe/promo-codes/{}"


def _create(stack: Stack, code: str, **definition: Any) -> None:
    create_promo(stack.container.promo_desk(), code, **definition)


def _checkout(stack: Stack, user: str, code: str, **extra: Any) -> Any:
    return stack.client.post(
        INTENT,
        json={"packageId": "package_500k", "paymentMethod": "card", "promoCode": code, **extra},
        headers=auth(user),
    )


def test_preview_then_pay_the_discounted_price_for_the_full_tokens(stack: Stack) -> None:
    _create(stack, "SPRING-20", percent_off=20, max_redemptions=5)
    preview = stack.client.get(
        PREVIEW.format("spring-20"), params={"packageId": "package_500k"}, headers=auth("alice")
    )
    assert preview.status_code == 200, preview.text
    assert preview.json() == {
        "success": True,
        "code": "SPRING-20",
        "packageId": "package_500k",
        "amount": 2_800,
        "originalAmount": 3_500,
        "discountAmount": 700,
        "currency": "cny",
    }
    created = _checkout(stack, "alice", "Spring-20")
    assert created.status_code == 200, created.text
    body = created.json()
    assert (body["amount"], body["discountAmount"]) == (2_800, 700)
    assert stack.gateway.intent_json(body["paymentIntentId"])["amount"] == 2_800
    assert stack.deliver(stack.gateway.succeed(body["paymentIntentId"])).status_code == 200
    assert stack.balance("alice") == 500_000


def test_a_checkout_without_a_code_has_no_discount_field(stack: Stack) -> None:
    assert "discountAmount" not in stack.buy("alice")


def test_refused_codes_are_400_invalid_promo_code_with_the_reason(stack: Stack) -> None:
    _create(stack, "ONCE", percent_off=50, max_redemptions=1)
    _create(stack, "SMALL", percent_off=10, package_ids=["package_100k"])
    assert _checkout(stack, "alice", "ONCE").status_code == 200
    for code, words in (
        ("ONCE", "used up"),
        ("NOPE", "no such promo code"),
        ("SMALL", "not for this package"),
    ):
        refused = _checkout(stack, "bob", code)
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert error["code"] == "invalid_promo_code"
        assert words in error["message"]
        previewed = stack.client.get(
            PREVIEW.format(code), params={"packageId": "package_500k"}, headers=auth("bob")
        )
        if code != "ONCE":  # the preview does not decide limits
            assert previewed.json()["error"]["code"] == "invalid_promo_code"
    assert stack.client.get(PREVIEW.format("ONCE"), headers=auth("bob")).status_code == 422
    unknown = stack.client.get(
        PREVIEW.format("ONCE"), params={"packageId": "nope"}, headers=auth("bob")
    )
    assert unknown.json()["error"]["code"] == "unknown_package"
    assert stack.client.get(PREVIEW.format("ONCE"), params={"packageId": "x"}).status_code == 401


def test_the_openapi_document_describes_promo_codes(stack: Stack) -> None:
    schema = stack.client.get("/openapi.json").json()
    assert "/api/custom/stripe/promo-codes/{code}" in schema["paths"]
    components = schema["components"]["schemas"]
    assert "promoCode" in components["CreateIntentRequest"]["properties"]
    assert "discountAmount" in components["CreateIntentResponse"]["properties"]
