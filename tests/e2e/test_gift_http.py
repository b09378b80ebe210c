"""Gift purchases through the real app, on SQLite and on mongomock, with the Stripe twin."""

from __future__ import annotations

from typing import Any

import pytest

from buytokens.domain.codes import CodeSecret, RedemptionCode
from tests.e2e.conftest import JWT_SECRET, Stack, auth, settings_for

INTENT = "/api/custom/stripe/create-payment-intent"
PURCHASES = "/api/custom/stripe/purchases"
REDEEM = "/api/custom/gifts/redeem"


def _buy_gift(stack: Stack, user: str = "alice", **extra: Any) -> dict[str, Any]:
    response = stack.client.post(
        INTENT,
        json={"packageId": "package_500k", "paymentMethod": "card", "gift": True, **extra},
        headers=auth(user),
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _purchases(stack: Stack, user: str) -> list[dict[str, Any]]:
    response = stack.client.get(PURCHASES, headers=auth(user))
    assert response.status_code == 200
    return response.json()["purchases"]  # type: ignore[no-any-return]


def _pay(stack: Stack, pi: str) -> None:
    assert stack.deliver(stack.gateway.succeed(pi)).status_code == 200


def test_a_paid_gift_shows_its_code_to_the_buyer_and_credits_the_redeemer(stack: Stack) -> None:
    """Bought and paid: the buyer's balance stays, the list shows the code; bob redeems it."""
    pi = _buy_gift(stack)["paymentIntentId"]
    (pending,) = _purchases(stack, "alice")
    assert "giftCode" not in pending
    _pay(stack, pi)
    assert stack.balance("alice") == 0
    (paid,) = _purchases(stack, "alice")
    code = RedemptionCode.for_gift(CodeSecret.derived_from(JWT_SECRET), pi).display()
    assert (paid["status"], paid["giftCode"], paid["giftRedeemed"]) == ("succeeded", code, False)
    assert _purchases(stack, "bob") == []
    redeemed = stack.client.post(REDEEM, json={"code": code.lower()}, headers=auth("bob"))
    assert redeemed.status_code == 200, redeemed.text
    assert redeemed.json() == {"success": True, "tokens": 500_000, "tokenCredits": 500_000}
    assert (stack.balance("alice"), stack.balance("bob")) == (0, 500_000)
    assert _purchases(stack, "alice")[0]["giftRedeemed"] is True
    for user in ("alice", "bob"):
        again = stack.client.post(REDEEM, json={"code": code}, headers=auth(user))
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "gift_already_redeemed"


def test_a_plain_purchase_lists_no_gift_fields(stack: Stack) -> None:
    """Without ``gift`` the purchase credits its buyer and its row is as before."""
    pi = stack.buy("alice")["paymentIntentId"]
    _pay(stack, pi)
    (row,) = _purchases(stack, "alice")
    assert "giftCode" not in row
    assert "giftRedeemed" not in row
    assert stack.balance("alice") == 500_000


def test_a_gift_refunded_before_redemption_is_410(stack: Stack) -> None:
    """Refunded before anyone redeemed it: gift_void, and no one is credited."""
    pi = _buy_gift(stack)["paymentIntentId"]
    _pay(stack, pi)
    code = _purchases(stack, "alice")[0]["giftCode"]
    assert stack.deliver(stack.gateway.refund(pi)).status_code == 200
    response = stack.client.post(REDEEM, json={"code": code}, headers=auth("bob"))
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "gift_void"
    assert (stack.balance("alice"), stack.balance("bob")) == (0, 0)


@pytest.mark.parametrize("value", ["true", 1, None, {}, "yes"])
def test_gift_must_be_a_boolean(stack: Stack, value: object) -> None:
    """Anything but true or false for ``gift`` is a 422; no intent is created."""
    response = stack.client.post(
        INTENT,
        json={"packageId": "package_500k", "paymentMethod": "card", "gift": value},
        headers=auth("alice"),
    )
    assert response.status_code == 422
    assert _purchases(stack, "alice") == []


def test_the_code_secret_setting_changes_the_codes(tmp_path: Any) -> None:
    """BUYTOKENS_CODE_SECRET, when set, is what gift codes are derived from."""
    from buytokens.entrypoints.composition import build_code_secret  # noqa: PLC0415

    default = build_code_secret(settings_for(tmp_path))
    own = build_code_secret(settings_for(tmp_path, code_secret="an-operator-chosen-secret"))
    assert default is not None
    assert own is not None
    assert RedemptionCode.for_gift(default, "pi_1") == RedemptionCode.for_gift(
        CodeSecret.derived_from(JWT_SECRET), "pi_1"
    )
    assert RedemptionCode.for_gift(own, "pi_1") != RedemptionCode.for_gift(default, "pi_1")


def test_the_openapi_schema_documents_the_gift_fields(stack: Stack) -> None:
    """The request's ``gift`` and the purchase row's ``giftCode`` / ``giftRedeemed``."""
    schemas = stack.client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["CreateIntentRequest"]["properties"]["gift"]["type"] == "boolean"
    assert {"giftCode", "giftRedeemed"} <= set(schemas["PurchaseOut"]["properties"])
