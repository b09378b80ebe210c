"""The Stripe adapter against a Stripe that never answers: one call costs its budget, no more."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from bench.silent_stripe import SilentServer

from buytokens.adapters.stripe_gateway import StripePaymentGateway, attempt_timeout
from buytokens.domain.catalogue import DEFAULT_CATALOGUE, PaymentMethod
from buytokens.domain.checkout import IntentRequest
from buytokens.domain.errors import ConfigurationError, GatewayTimeout


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    with SilentServer() as server:
        yield server


def test_attempts_and_backoff_fit_in_the_budget() -> None:
    """Each attempt gets its share of what the SDK's back-off sleeps leave."""
    assert attempt_timeout(8, 0) == 8
    assert attempt_timeout(8, 1) == pytest.approx((8 - 0.5) / 2)
    assert attempt_timeout(8, 2) == pytest.approx((8 - 0.5 - 1.0) / 3)
    with pytest.raises(ConfigurationError, match="per attempt"):
        attempt_timeout(1, 5)


@pytest.mark.parametrize("retries", [0, 1, 2])
@pytest.mark.parametrize("call", ["retrieve", "create"])
def test_a_silent_stripe_costs_the_budget_and_one_connection_per_attempt(
    silent: SilentServer, retries: int, call: str
) -> None:
    """No answer: a timeout error after about the budget, having tried 1 + retries times."""
    budget = 2.5
    gateway = StripePaymentGateway(
        "sk_test_silent",
        None,
        api_base=silent.url,
        budget=budget,
        max_network_retries=retries,
        localstripe=False,
    )
    request = IntentRequest(
        "purchase-1", "alice", DEFAULT_CATALOGUE.get("package_100k"), PaymentMethod.CARD
    )
    calls: dict[str, Callable[[], object]] = {
        "retrieve": lambda: gateway.retrieve_payment_intent("pi_silent"),
        "create": lambda: gateway.create_payment_intent(request),
    }
    started = time.monotonic()
    with pytest.raises(GatewayTimeout, match="did not answer"):
        calls[call]()
    took = time.monotonic() - started
    assert budget * 0.5 < took < budget + 1.0
    assert silent.connections == 1 + retries


def test_probing_a_silent_base_for_localstripe_spends_a_quarter_of_the_budget(
    silent: SilentServer,
) -> None:
    """The first intent on a base that is not Stripe's asks whether it is localstripe, within
    a quarter of the budget, then the call itself keeps to its budget."""
    budget = 2.0
    gateway = StripePaymentGateway(
        "sk_test_silent", None, api_base=silent.url, budget=budget, max_network_retries=0
    )
    request = IntentRequest(
        "purchase-1", "alice", DEFAULT_CATALOGUE.get("package_100k"), PaymentMethod.CARD
    )
    started = time.monotonic()
    with pytest.raises(GatewayTimeout):
        gateway.create_payment_intent(request)
    took = time.monotonic() - started
    assert took < budget * 1.25 + 1.0
    assert silent.connections == 2  # the probe, then the one attempt
