"""While the app serves, the background pass cancels the intents of expired promo code holds."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dependency_injector import providers
from fastapi.testclient import TestClient

from buytokens.adapters.memory import FixedClock
from buytokens.domain.promo_uses import DEFAULT_HOLD_TTL, UseState
from buytokens.entrypoints.container import Container, create_container
from buytokens.entrypoints.web.app import create_app
from buytokens.services.promos import create_promo
from buytokens.testing.stripe_twin import InMemoryPaymentGateway
from tests.e2e.conftest import WEBHOOK_SECRET, auth, settings_for

INTENT = "/api/custom/stripe/create-payment-intent"


Parts = tuple[Container, InMemoryPaymentGateway, FixedClock]


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Callable[[float], Parts]]:
    """Builds a container passing every ``interval`` seconds, with the twin, a clock
    that moves when told, and a code HALF."""
    built: list[Container] = []

    def build(interval: float) -> Parts:
        container = create_container(settings_for(tmp_path, recovery_interval=interval))
        gateway = InMemoryPaymentGateway(webhook_secret=WEBHOOK_SECRET)
        clock = FixedClock(datetime.now(UTC))
        container.gateway.override(providers.Object(gateway))
        container.clock.override(providers.Object(clock))
        create_promo(container.promo_desk(), "HALF", percent_off=50)
        built.append(container)
        return container, gateway, clock

    yield build
    for container in built:
        container.gateway.reset_override()
        container.clock.reset_override()


def checkout(client: TestClient, user: str) -> str:
    created = client.post(
        INTENT,
        json={"packageId": "package_500k", "paymentMethod": "card", "promoCode": "HALF"},
        headers=auth(user),
    )
    assert created.status_code == 200, created.text
    return str(created.json()["paymentIntentId"])


def wait_for(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + 30  # the pass runs every 0.1 s; the margin is for load
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(condition())


def test_the_periodic_pass_cancels_an_expired_holds_intent(
    parts: Callable[[float], Parts],
) -> None:
    container, gateway, clock = parts(0.1)
    with TestClient(create_app(container)) as client:
        intent = checkout(client, "alice")
        time.sleep(0.5)  # several passes: a live hold is left alone
        assert gateway.intent_json(intent)["status"] == "requires_payment_method"
        clock.advance(DEFAULT_HOLD_TTL)
        fresh = checkout(client, "bob")
        assert wait_for(lambda: gateway.intent_json(intent)["status"] == "canceled")
        assert gateway.intent_json(fresh)["status"] == "requires_payment_method"
        use = container.promo_desk().promos.find_use(intent_purchase(gateway, intent))
        assert use is not None
        assert use.state is UseState.RELEASED


def test_start_up_sweeps_before_the_first_pass(parts: Callable[[float], Parts]) -> None:
    container, gateway, clock = parts(3600)
    with TestClient(create_app(container)) as client:
        intent = checkout(client, "alice")
    clock.advance(DEFAULT_HOLD_TTL)
    assert gateway.intent_json(intent)["status"] == "requires_payment_method"
    with TestClient(create_app(container)):
        # The next pass is an hour away: only the start-up sweep can have canceled it.
        assert gateway.intent_json(intent)["status"] == "canceled"


def intent_purchase(gateway: InMemoryPaymentGateway, intent: str) -> str:
    return str(gateway.intent_json(intent)["metadata"]["purchaseId"])
