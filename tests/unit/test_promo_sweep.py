"""The sweeper cancels an expired promo hold's payment intent, then retires the hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from buytokens.adapters.memory import FixedClock
from buytokens.adapters.memory_promos import InMemoryPromoCodes
from buytokens.domain.catalogue import DEFAULT_CATALOGUE, PaymentMethod
from buytokens.domain.checkout import IntentRequest
from buytokens.domain.errors import GatewayRejected
from buytokens.domain.promo_uses import DEFAULT_HOLD_TTL, UseState
from buytokens.services.promos import (
    PromoDesk,
    SweepReport,
    create_promo,
    hold_promo,
    sweep_holds,
)
from buytokens.testing.stripe_twin import InMemoryPaymentGateway

T0 = datetime(2026, 5, 1, 8, tzinfo=UTC)
PAYING_CARD = "4242424242424242"


@pytest.fixture
def desk() -> PromoDesk:
    promos = PromoDesk(InMemoryPromoCodes(), DEFAULT_CATALOGUE, FixedClock(T0))
    create_promo(promos, "HALF", percent_off=50)
    return promos


@pytest.fixture
def stripe() -> InMemoryPaymentGateway:
    return InMemoryPaymentGateway()


def checkout(
    desk: PromoDesk, stripe: InMemoryPaymentGateway, checkout_id: str, code: str = "HALF"
) -> str:
    """A checkout holding ``code``, with its discounted intent: the intent's id."""
    quote, _use = hold_promo(desk, code, f"user-{checkout_id}", checkout_id, "package_500k")
    intent = stripe.create_payment_intent(
        IntentRequest(
            purchase_id=checkout_id,
            user_id=f"user-{checkout_id}",
            package=DEFAULT_CATALOGUE.get("package_500k"),
            method=PaymentMethod.CARD,
            promo_code=code,
            discount=quote.discount.amount,
        )
    )
    desk.promos.attach_intent(checkout_id, intent.id)
    return intent.id


def expire(desk: PromoDesk) -> None:
    assert isinstance(desk.clock, FixedClock)
    desk.clock.advance(DEFAULT_HOLD_TTL + timedelta(seconds=1))


def state(desk: PromoDesk, checkout_id: str) -> UseState:
    use = desk.promos.find_use(checkout_id)
    assert use is not None
    return use.state


def test_an_expired_hold_has_its_intent_canceled_and_it_can_no_longer_be_paid(
    desk: PromoDesk, stripe: InMemoryPaymentGateway
) -> None:
    intent = checkout(desk, stripe, "c1")
    expire(desk)
    report = sweep_holds(desk, stripe)
    assert [u.checkout_id for u in report.retired] == ["c1"]
    assert state(desk, "c1") is UseState.RELEASED
    assert stripe.retrieve_payment_intent(intent).status == "canceled"
    with pytest.raises(GatewayRejected, match="canceled"):
        stripe.confirm_with_card(intent, PAYING_CARD)
    assert stripe.retrieve_payment_intent(intent).status == "canceled"
    # The next pass finds nothing left to do.
    assert sweep_holds(desk, stripe).retired == ()


def test_a_hold_that_has_not_expired_is_untouched(
    desk: PromoDesk, stripe: InMemoryPaymentGateway
) -> None:
    intent = checkout(desk, stripe, "c1")
    assert isinstance(desk.clock, FixedClock)
    desk.clock.advance(DEFAULT_HOLD_TTL - timedelta(seconds=1))
    assert sweep_holds(desk, stripe).retired == ()
    assert state(desk, "c1") is UseState.HELD
    assert stripe.retrieve_payment_intent(intent).status == "requires_payment_method"
    stripe.confirm_with_card(intent, PAYING_CARD)


def test_an_intent_that_already_succeeded_is_left_alone_with_its_hold(
    desk: PromoDesk, stripe: InMemoryPaymentGateway
) -> None:
    paid = checkout(desk, stripe, "c1")
    processing = checkout(desk, stripe, "c2")
    stripe.confirm_with_card(paid, PAYING_CARD)
    stripe.start_processing(processing)
    expire(desk)
    report = sweep_holds(desk, stripe)
    assert report.retired == ()
    assert {u.checkout_id for u in report.paying} == {"c1", "c2"}
    assert (state(desk, "c1"), state(desk, "c2")) == (UseState.HELD, UseState.HELD)
    assert stripe.retrieve_payment_intent(paid).status == "succeeded"
    assert stripe.retrieve_payment_intent(processing).status == "processing"


def test_an_outage_leaves_the_holds_for_the_next_pass_which_cancels_them(
    desk: PromoDesk, stripe: InMemoryPaymentGateway
) -> None:
    first = checkout(desk, stripe, "c1")
    second = checkout(desk, stripe, "c2")
    expire(desk)
    stripe.make_unavailable(calls=1)
    report = sweep_holds(desk, stripe)
    # One failed call and the pass asks Stripe nothing more.
    assert report.retired == ()
    assert {u.checkout_id for u in report.unreachable} == {"c1", "c2"}
    assert (state(desk, "c1"), state(desk, "c2")) == (UseState.HELD, UseState.HELD)
    again = sweep_holds(desk, stripe)
    assert {u.checkout_id for u in again.retired} == {"c1", "c2"}
    assert again.unreachable == ()
    assert stripe.retrieve_payment_intent(first).status == "canceled"
    assert stripe.retrieve_payment_intent(second).status == "canceled"


def test_holds_without_an_intent_are_retired_even_while_stripe_is_down(
    desk: PromoDesk, stripe: InMemoryPaymentGateway
) -> None:
    checkout(desk, stripe, "c1")
    hold_promo(desk, "HALF", "user-c2", "c2", "package_500k")  # the intent was never created
    expire(desk)
    stripe.make_unavailable()
    report = sweep_holds(desk, stripe)
    assert [u.checkout_id for u in report.retired] == ["c2"]
    assert [u.checkout_id for u in report.unreachable] == ["c1"]


def test_an_intent_canceled_already_or_unknown_to_stripe_lets_the_hold_retire(
    desk: PromoDesk, stripe: InMemoryPaymentGateway
) -> None:
    canceled = checkout(desk, stripe, "c1")
    stripe.cancel(canceled)
    hold_promo(desk, "HALF", "user-c2", "c2", "package_500k")
    desk.promos.attach_intent("c2", "pi_unknown")
    expire(desk)
    report = sweep_holds(desk, stripe)
    assert {u.checkout_id for u in report.retired} == {"c1", "c2"}


def take_over(desk: PromoDesk, stripe: InMemoryPaymentGateway) -> str:
    """c1 holds the single use of ONCE and lets it lapse; c2 then takes its ticket,
    retiring c1's hold. c1's intent."""
    create_promo(desk, "ONCE", percent_off=50, max_redemptions=1)
    old = checkout(desk, stripe, "c1", "ONCE")
    expire(desk)
    checkout(desk, stripe, "c2", "ONCE")
    assert state(desk, "c1") is UseState.RELEASED
    return old


def test_a_hold_retired_by_a_checkout_has_its_intent_canceled_by_the_next_sweep(
    desk: PromoDesk, stripe: InMemoryPaymentGateway
) -> None:
    old = take_over(desk, stripe)
    report = sweep_holds(desk, stripe)
    assert stripe.retrieve_payment_intent(old).status == "canceled"
    with pytest.raises(GatewayRejected, match="canceled"):
        stripe.confirm_with_card(old, PAYING_CARD)
    assert [u.checkout_id for u in report.canceled] == ["c1"]
    assert desk.promos.pending_cancels() == []
    assert state(desk, "c2") is UseState.HELD
    assert sweep_holds(desk, stripe) == SweepReport()


def test_an_outage_keeps_the_pending_cancel_for_the_next_pass(
    desk: PromoDesk, stripe: InMemoryPaymentGateway
) -> None:
    old = take_over(desk, stripe)
    stripe.make_unavailable(calls=1)
    report = sweep_holds(desk, stripe)
    assert [u.checkout_id for u in report.unreachable] == ["c1"]
    assert [u.checkout_id for u in desk.promos.pending_cancels()] == ["c1"]
    assert stripe.retrieve_payment_intent(old).status == "requires_payment_method"
    again = sweep_holds(desk, stripe)
    assert [u.checkout_id for u in again.canceled] == ["c1"]
    assert stripe.retrieve_payment_intent(old).status == "canceled"
    assert desk.promos.pending_cancels() == []


def test_a_retired_hold_whose_intent_was_paid_meanwhile_is_left_to_the_payment_rules(
    desk: PromoDesk, stripe: InMemoryPaymentGateway
) -> None:
    old = take_over(desk, stripe)
    stripe.confirm_with_card(old, PAYING_CARD)
    report = sweep_holds(desk, stripe)
    assert [u.checkout_id for u in report.paying] == ["c1"]
    assert report.canceled == ()
    assert stripe.retrieve_payment_intent(old).status == "succeeded"
    assert desk.promos.pending_cancels() == []
