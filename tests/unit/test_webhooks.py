"""Receiving webhooks: verified, applied exactly once, and anything not from Stripe refused."""

from __future__ import annotations

import pytest

from buytokens.adapters.memory import FixedClock
from buytokens.domain.catalogue import DEFAULT_CATALOGUE
from buytokens.domain.crediting import Disposition
from buytokens.domain.errors import InvalidWebhook
from buytokens.entrypoints.composition import UseCaseDependencies
from buytokens.services.buying import create_payment_intent
from buytokens.services.webhooks import receive_webhook
from buytokens.testing.stripe_twin import InMemoryPaymentGateway
from tests.support.use_cases import wire

TOKENS = DEFAULT_CATALOGUE.get("package_100k").tokens


@pytest.fixture
def stripe(clock: FixedClock) -> InMemoryPaymentGateway:
    """The Stripe twin, signing with its own secret."""
    return InMemoryPaymentGateway(clock=clock)


@pytest.fixture
def use_cases(stripe: InMemoryPaymentGateway, clock: FixedClock) -> UseCaseDependencies:
    """The use cases on the twin and in-memory stores."""
    return wire(stripe, clock)


def _bought(use_cases: UseCaseDependencies) -> str:
    return create_payment_intent(use_cases.buying, "alice", "package_100k", "card").snapshot.id


def test_a_signed_success_credits_once_however_often_it_arrives(
    use_cases: UseCaseDependencies, stripe: InMemoryPaymentGateway
) -> None:
    """The first delivery applies; redeliveries are duplicates that credit nothing."""
    delivery = stripe.signed_webhook(stripe.succeed(_bought(use_cases)))
    outcomes = [receive_webhook(use_cases.webhooks, *delivery).disposition for _ in range(3)]
    assert outcomes == [Disposition.APPLIED, Disposition.DUPLICATE, Disposition.DUPLICATE]
    assert use_cases.store.balance("alice") == TOKENS


def test_a_forged_or_missing_signature_is_refused_and_applies_nothing(
    use_cases: UseCaseDependencies, stripe: InMemoryPaymentGateway
) -> None:
    """Only Stripe's signature over the raw body lets an event through."""
    event = stripe.succeed(_bought(use_cases))
    body, _ = stripe.signed_webhook(event)
    _, forged = stripe.signed_webhook(event, secret="whsec_not_stripes")
    for signature in (forged, None):
        with pytest.raises(InvalidWebhook):
            receive_webhook(use_cases.webhooks, body, signature)
    with pytest.raises(InvalidWebhook):
        receive_webhook(use_cases.webhooks, body + b" ", stripe.signed_webhook(event)[1])
    assert use_cases.store.balance("alice") == 0


def test_a_genuine_event_of_a_type_not_acted_on_is_ignored(
    use_cases: UseCaseDependencies, stripe: InMemoryPaymentGateway
) -> None:
    """Stripe sends more than we act on; those events change nothing and say why."""
    event = {"id": "evt_other", "object": "event", "type": "customer.created", "created": 1}
    event["data"] = {"object": {"id": "cus_1", "object": "customer"}}
    applied = receive_webhook(use_cases.webhooks, *stripe.signed_webhook(event))
    assert applied.disposition is Disposition.IGNORED
    assert applied.reason == "customer.created is not acted on"
