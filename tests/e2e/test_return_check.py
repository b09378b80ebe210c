"""The return-page check over HTTP: per-user limits, store answers, and a full lane."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from dependency_injector import providers
from fastapi.testclient import TestClient

from buytokens.entrypoints.container import Container, create_container
from buytokens.entrypoints.web.app import create_app
from buytokens.testing.stripe_twin import InMemoryPaymentGateway
from tests.e2e.conftest import WEBHOOK_SECRET, auth, settings_for
from tests.support.gateways import GatedGateway

CREATE = "/api/custom/stripe/create-payment-intent"


def _check(intent: str) -> str:
    return f"/api/custom/stripe/payment-intents/{intent}"


class Deployment:
    def __init__(self, client: TestClient, stripe: InMemoryPaymentGateway) -> None:
        self.client, self.stripe = client, stripe

    def buy(self, user: str) -> str:
        response = self.client.post(
            CREATE, json={"packageId": "package_100k", "paymentMethod": "card"}, headers=auth(user)
        )
        assert response.status_code == 200, response.text
        return str(response.json()["paymentIntentId"])

    def settle(self, intent: str) -> None:
        payload, header = self.stripe.signed_webhook(self.stripe.succeed(intent))
        response = self.client.post(
            "/api/custom/stripe/webhook", content=payload, headers={"Stripe-Signature": header}
        )
        assert response.status_code == 200


@contextmanager
def _client(container: Container, gateway: object) -> Iterator[TestClient]:
    container.gateway.override(providers.Object(gateway))
    with TestClient(create_app(container), raise_server_exceptions=False) as client:
        yield client
    container.gateway.reset_override()


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Deployment]:
    """Three checks per user and minute that reach Stripe."""
    stripe = InMemoryPaymentGateway(webhook_secret=WEBHOOK_SECRET)
    container = create_container(settings_for(tmp_path, rate_limit_checks_per_user="3/minute"))
    with _client(container, stripe) as client:
        yield Deployment(client, stripe)


def test_checks_that_reach_stripe_are_limited_per_user(limited: Deployment) -> None:
    """Past the per-user limit the check answers 429 with Retry-After; others are unaffected."""
    intent = limited.buy("mallory")
    codes = [
        limited.client.get(_check(intent), headers=auth("mallory")).status_code for _ in "1234"
    ]
    assert codes == [200, 200, 200, 429]
    refused = limited.client.get(_check(intent), headers=auth("mallory"))
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert limited.client.get(_check(limited.buy("honest")), headers=auth("honest")).is_success


def test_a_settled_purchase_answers_without_stripe_and_without_counting(
    limited: Deployment,
) -> None:
    """With Stripe down, a settled purchase still answers 200, as often as asked; others 404."""
    intent = limited.buy("alice")
    limited.settle(intent)
    limited.stripe.make_unavailable()
    for _ in range(10):
        answer = limited.client.get(_check(intent), headers=auth("alice"))
        assert answer.json() == {"success": True, "status": "succeeded", "tokenCredits": 100_000}
    assert limited.client.get(_check(intent), headers=auth("bob")).status_code == 404


def test_stripe_trouble_is_retryable_with_retry_after(limited: Deployment) -> None:
    """A pending purchase's check during an outage is 503 with Retry-After."""
    intent = limited.buy("alice")
    limited.stripe.make_unavailable()
    answer = limited.client.get(_check(intent), headers=auth("alice"))
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "gateway_unavailable"
    assert int(answer.headers["Retry-After"]) >= 1


def test_a_full_lane_is_refused_at_once_and_the_rest_keeps_answering(tmp_path: Path) -> None:
    """One slot held by a check Stripe has not answered: the next check is 503 gateway_busy,
    and webhooks, balances and purchase lists answer meanwhile."""
    stripe = InMemoryPaymentGateway(webhook_secret=WEBHOOK_SECRET)
    gated = GatedGateway(stripe)
    container = create_container(settings_for(tmp_path, stripe_concurrency=1, stripe_budget=20))
    with _client(container, gated) as client:
        deployment = Deployment(client, stripe)
        first, second = deployment.buy("alice"), deployment.buy("bob")
        held: list[int] = []
        waiting = threading.Thread(
            target=lambda: held.append(client.get(_check(first), headers=auth("alice")).status_code)
        )
        waiting.start()
        try:
            assert gated.wait_for_calls(1)
            busy = client.get(_check(second), headers=auth("bob"))
            assert busy.status_code == 503
            assert busy.json()["error"]["code"] == "gateway_busy"
            assert busy.headers["Retry-After"] == "2"
            deployment.settle(second)
            assert (
                client.get("/api/custom/balance", headers=auth("bob")).json()["tokenCredits"]
                == 100_000
            )
            assert client.get("/api/custom/stripe/purchases", headers=auth("bob")).is_success
            assert client.get(_check(second), headers=auth("bob")).status_code == 200
        finally:
            gated.release()
            waiting.join(timeout=30)
        assert held == [200]
        assert gated.calls == 1
