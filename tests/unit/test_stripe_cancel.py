"""How the Stripe adapter reads Stripe's refusal to cancel an intent: from the refusal itself."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
import stripe

from buytokens.adapters.stripe_gateway import StripePaymentGateway
from buytokens.domain.checkout import CancelOutcome
from buytokens.domain.errors import GatewayRejected

INTENT = "pi_3StripeShaped0001"


class CannedStripe(stripe.HTTPClient):
    """Answers every request with one canned Stripe response, and keeps what was asked."""

    name: ClassVar[str] = "canned"  # type: ignore[misc]

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        super().__init__()
        self._answer = (json.dumps(body).encode(), status, {"Request-Id": "req_canned"})
        self.asked: list[tuple[str, str]] = []

    def request(
        self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        self.asked.append((method, url))
        return self._answer

    def close(self) -> None:
        pass


def refusal(status: str) -> dict[str, Any]:
    """Stripe's answer to canceling an intent in ``status`` (the intent rides along)."""
    return {
        "error": {
            "code": "payment_intent_unexpected_state",
            "type": "invalid_request_error",
            "message": f"You cannot cancel this PaymentIntent because it has a status of {status}.",
            "payment_intent": {"id": INTENT, "object": "payment_intent", "status": status},
        }
    }


def gateway(http: CannedStripe) -> StripePaymentGateway:
    return StripePaymentGateway(
        "sk_test_canned",
        None,
        api_base="https://api.stripe.com",
        http_client=http,
        max_network_retries=0,
    )


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("canceled", CancelOutcome.CANCELED),
        ("succeeded", CancelOutcome.TOO_LATE),
        ("processing", CancelOutcome.TOO_LATE),
    ],
)
def test_the_refusal_names_the_status_and_no_second_call_is_made(
    status: str, outcome: CancelOutcome
) -> None:
    http = CannedStripe(400, refusal(status))
    assert gateway(http).cancel_payment_intent(INTENT) is outcome
    assert http.asked == [("post", f"https://api.stripe.com/v1/payment_intents/{INTENT}/cancel")]


def test_a_refusal_for_another_reason_is_gateway_rejected() -> None:
    http = CannedStripe(400, refusal("requires_payment_method"))
    with pytest.raises(GatewayRejected, match="cancel a payment intent"):
        gateway(http).cancel_payment_intent(INTENT)
