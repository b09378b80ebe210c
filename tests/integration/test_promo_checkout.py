"""Checkout with a promo code on every store: the discounted intent, the hold on one use,
crediting the package's full tokens for the discounted price, releases and the limits.

Payments go through the Stripe twin and the webhook's own path (translation, then the
journalled apply).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from buytokens.adapters.memory import FixedClock
from buytokens.adapters.stripe_events import translate_event
from buytokens.domain.catalogue import DEFAULT_CATALOGUE
from buytokens.domain.errors import GatewayUnavailable, InvalidPromoCode
from buytokens.domain.money import Money
from buytokens.domain.purchases import PurchaseStatus
from buytokens.entrypoints.composition import UseCaseDependencies
from buytokens.services.buying import create_payment_intent
from buytokens.services.promos import PromoDesk, create_promo, list_promos
from buytokens.services.webhooks import apply_received_event
from buytokens.testing.stripe_twin import InMemoryPaymentGateway
from tests.support import stripe_json
from tests.support.concurrency import at_once
from tests.support.promo_stores import PROMO_CHECKOUT_STORES, PromoCheckoutStores
from tests.support.use_cases import wire

ALICE = "0123456789abcdef01234567"
BOB = "fedcba9876543210fedcba98"
PACKAGE = DEFAULT_CATALOGUE.get("package_1m")  # ¥55.00, 1,000,000 tokens


@pytest.fixture(params=sorted(PROMO_CHECKOUT_STORES))
def stores(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FixedClock
) -> Iterator[PromoCheckoutStores]:
    with PROMO_CHECKOUT_STORES[request.param](tmp_path, clock) as both:
        yield both


@pytest.fixture
def twin(clock: FixedClock) -> InMemoryPaymentGateway:
    return InMemoryPaymentGateway(clock=clock)


@pytest.fixture
def use_cases(
    stores: PromoCheckoutStores, twin: InMemoryPaymentGateway, clock: FixedClock
) -> UseCaseDependencies:
    return wire(twin, clock, store=stores.balances, promos=stores.promos)


@pytest.fixture
def desk(stores: PromoCheckoutStores, clock: FixedClock) -> PromoDesk:
    return PromoDesk(stores.promos, DEFAULT_CATALOGUE, clock)


def _deliver(use_cases: UseCaseDependencies, event: stripe_json.StripeJson) -> None:
    apply_received_event(use_cases.events, translate_event(event))


def _buy(use_cases: UseCaseDependencies, user: str, code: str | None, **kwargs: str) -> str:
    created = create_payment_intent(
        use_cases.buying, user, PACKAGE.id, "card", promo_code=code, **kwargs
    )
    return created.snapshot.id


def _usage(desk: PromoDesk) -> tuple[int, int]:
    (listing,) = list_promos(desk)
    return listing.usage.paid, listing.usage.held


def test_a_discounted_payment_credits_the_full_tokens_once(
    use_cases: UseCaseDependencies, twin: InMemoryPaymentGateway, desk: PromoDesk
) -> None:
    create_promo(desk, "SPRING-20", percent_off=20, max_redemptions=10)
    created = create_payment_intent(
        use_cases.buying, ALICE, PACKAGE.id, "card", promo_code="spring-20"
    )
    assert created.amount == Money(4_400, "cny")
    assert created.discount == Money(1_100, "cny")
    intent = twin.intent_json(created.snapshot.id)
    assert intent["amount"] == 4_400
    assert intent["metadata"]["promoCode"] == "SPRING-20"
    assert intent["metadata"]["discountAmount"] == "1100"
    purchase = use_cases.store.get_purchase(created.snapshot.id)
    assert purchase is not None
    assert purchase.price == Money(4_400, "cny")
    assert _usage(desk) == (0, 1)
    paid = twin.succeed(created.snapshot.id)
    _deliver(use_cases, paid)
    _deliver(use_cases, paid)
    assert use_cases.store.balance(ALICE) == PACKAGE.tokens
    settled = use_cases.store.get_purchase(created.snapshot.id)
    assert settled is not None
    assert settled.status is PurchaseStatus.SUCCEEDED
    assert _usage(desk) == (1, 0)


def test_refusals_create_no_intent(
    use_cases: UseCaseDependencies, twin: InMemoryPaymentGateway, desk: PromoDesk
) -> None:
    create_promo(desk, "ONCE", percent_off=50, max_redemptions=1)
    create_promo(desk, "SMALL", percent_off=10, package_ids=["package_100k"])
    _buy(use_cases, ALICE, "ONCE")
    for code, reason in (
        ("ONCE", "used_up"),
        ("NOPE", "unknown"),
        ("SMALL", "not_for_package"),
        ("no such!", "unknown"),
    ):
        with pytest.raises(InvalidPromoCode) as caught:
            _buy(use_cases, BOB, code)
        assert caught.value.reason == reason
    assert len(use_cases.store.purchases(BOB, 10)) == 0
    with pytest.raises(InvalidPromoCode) as again:
        _buy(use_cases, ALICE, "ONCE")  # a second checkout of the same buyer
    assert again.value.reason in {"used_up", "already_used"}


def test_a_hold_is_released_when_the_intent_cannot_be_created(
    use_cases: UseCaseDependencies, twin: InMemoryPaymentGateway, desk: PromoDesk
) -> None:
    create_promo(desk, "ONCE", percent_off=50, max_redemptions=1)
    twin.make_unavailable(calls=1)
    with pytest.raises(GatewayUnavailable):
        _buy(use_cases, ALICE, "ONCE")
    assert _usage(desk) == (0, 0)
    _buy(use_cases, BOB, "ONCE")
    assert _usage(desk) == (0, 1)


@pytest.mark.parametrize("ending", ["cancel", "fail"])
def test_a_canceled_or_failed_payment_gives_the_use_back(
    use_cases: UseCaseDependencies, twin: InMemoryPaymentGateway, desk: PromoDesk, ending: str
) -> None:
    create_promo(desk, "ONCE", percent_off=50, max_redemptions=1)
    first = _buy(use_cases, ALICE, "ONCE")
    _deliver(use_cases, twin.cancel(first) if ending == "cancel" else twin.fail(first))
    assert _usage(desk) == (0, 0)
    second = _buy(use_cases, BOB, "ONCE")
    _deliver(use_cases, twin.succeed(second))
    assert use_cases.store.balance(BOB) == PACKAGE.tokens
    assert _usage(desk) == (1, 0)


def test_a_late_payment_over_the_limit_goes_to_review(
    use_cases: UseCaseDependencies,
    twin: InMemoryPaymentGateway,
    desk: PromoDesk,
    clock: FixedClock,
) -> None:
    """Alice's hold lapses, Bob takes and pays the last use; Alice's payment then credits
    nothing and waits for an operator, with the reason."""
    create_promo(desk, "ONCE", percent_off=50, max_redemptions=1)
    late = _buy(use_cases, ALICE, "ONCE")
    clock.advance(timedelta(hours=2))
    on_time = _buy(use_cases, BOB, "ONCE")
    _deliver(use_cases, twin.succeed(on_time))
    _deliver(use_cases, twin.succeed(late))
    assert use_cases.store.balance(ALICE) == 0
    flagged = use_cases.store.get_purchase(late)
    assert flagged is not None
    assert flagged.status is PurchaseStatus.NEEDS_REVIEW
    assert "promo code ONCE" in (flagged.review_reason or "")
    assert _usage(desk) == (1, 0)


def test_a_lapsed_hold_nobody_took_is_still_paid(
    use_cases: UseCaseDependencies,
    twin: InMemoryPaymentGateway,
    desk: PromoDesk,
    clock: FixedClock,
) -> None:
    create_promo(desk, "ONCE", percent_off=50, max_redemptions=1)
    pi = _buy(use_cases, ALICE, "ONCE")
    clock.advance(timedelta(hours=5))
    _deliver(use_cases, twin.succeed(pi))
    assert use_cases.store.balance(ALICE) == PACKAGE.tokens
    assert _usage(desk) == (1, 0)


def _never_seen(amount: int, **metadata: str) -> stripe_json.StripeJson:
    event = stripe_json.succeeded("pi_elsewhere", ALICE, PACKAGE.id, amount, "cny")
    event["data"]["object"]["metadata"].update(metadata)
    return event


def test_an_intent_never_seen_is_priced_with_its_signed_discount(
    use_cases: UseCaseDependencies, desk: PromoDesk
) -> None:
    create_promo(desk, "SPRING-20", percent_off=20)
    _deliver(
        use_cases,
        _never_seen(4_400, promoCode="SPRING-20", discountAmount="1100", purchaseId="k1"),
    )
    assert use_cases.store.balance(ALICE) == PACKAGE.tokens
    assert _usage(desk) == (1, 0)


@pytest.mark.parametrize(
    "metadata",
    [
        {"discountAmount": "1100"},  # no promoCode: the discount is not ours
        {"promoCode": "SPRING-20", "discountAmount": "1000"},  # not what was paid
        {"promoCode": "SPRING-20", "discountAmount": "5500"},  # the whole price
        {"promoCode": "SPRING-20", "discountAmount": "-1"},
        {"promoCode": "SPRING-20"},
    ],
)
def test_a_discount_that_does_not_add_up_goes_to_review(
    use_cases: UseCaseDependencies, desk: PromoDesk, metadata: dict[str, str]
) -> None:
    create_promo(desk, "SPRING-20", percent_off=20)
    _deliver(use_cases, _never_seen(4_400, **metadata))
    assert use_cases.store.balance(ALICE) == 0
    flagged = use_cases.store.get_purchase("pi_elsewhere")
    assert flagged is not None
    assert flagged.status is PurchaseStatus.NEEDS_REVIEW


def test_the_same_idempotency_key_keeps_the_price_and_the_hold(
    use_cases: UseCaseDependencies, desk: PromoDesk
) -> None:
    create_promo(desk, "ONCE", percent_off=50, max_redemptions=1)
    first = create_payment_intent(
        use_cases.buying, ALICE, PACKAGE.id, "card", promo_code="ONCE", idempotency_key="k"
    )
    again = create_payment_intent(
        use_cases.buying, ALICE, PACKAGE.id, "card", promo_code="once", idempotency_key="k"
    )
    assert again.snapshot.id == first.snapshot.id
    assert (again.amount, again.discount) == (first.amount, first.discount)
    assert _usage(desk) == (0, 1)


def test_concurrent_checkouts_never_exceed_the_limit(
    use_cases: UseCaseDependencies, twin: InMemoryPaymentGateway, desk: PromoDesk
) -> None:
    create_promo(desk, "RUSH", percent_off=30, max_redemptions=2)

    def checkout(index: int) -> str | None:
        try:
            return _buy(use_cases, f"{index:024x}", "RUSH")
        except InvalidPromoCode:
            return None

    intents = [pi for pi in at_once(checkout, 8) if pi is not None]
    assert len(intents) == 2
    for pi in intents:
        _deliver(use_cases, twin.succeed(pi))
    assert _usage(desk) == (2, 0)


def test_a_refund_of_a_discounted_payment_takes_back_by_the_price_paid(
    use_cases: UseCaseDependencies, twin: InMemoryPaymentGateway, desk: PromoDesk
) -> None:
    """Tokens follow the money actually paid: half of ¥44.00 back takes half the tokens."""
    create_promo(desk, "SPRING-20", percent_off=20)
    pi = _buy(use_cases, ALICE, "SPRING-20")
    _deliver(use_cases, twin.succeed(pi))
    _deliver(use_cases, twin.refund(pi, 2_200))
    assert use_cases.store.balance(ALICE) == PACKAGE.tokens // 2
    assert _usage(desk) == (1, 0)


def _paid_elsewhere(pi: str, user: str, checkout: str) -> stripe_json.StripeJson:
    event = stripe_json.succeeded(pi, user, PACKAGE.id, 4_400, "cny")
    event["data"]["object"]["metadata"].update(
        promoCode="SPRING-20", discountAmount="1100", purchaseId=checkout
    )
    return event


def test_uses_counted_without_a_hold_are_each_the_payers_own(
    use_cases: UseCaseDependencies, stores: PromoCheckoutStores, desk: PromoDesk
) -> None:
    """Paid for intents this store never saw, a once-per-user code counts Alice's and Bob's
    uses, each for its payer and intent; Alice's second payment goes to review."""
    create_promo(desk, "SPRING-20", percent_off=20)
    _deliver(use_cases, _paid_elsewhere("pi_a", ALICE, "k1"))
    _deliver(use_cases, _paid_elsewhere("pi_b", BOB, "k2"))
    _deliver(use_cases, _paid_elsewhere("pi_c", ALICE, "k3"))
    assert (use_cases.store.balance(ALICE), use_cases.store.balance(BOB)) == (
        PACKAGE.tokens,
        PACKAGE.tokens,
    )
    uses = [stores.promos.find_use(k) for k in ("k1", "k2")]
    assert [(u.user_id, u.payment_intent_id) for u in uses if u is not None] == [
        (ALICE, "pi_a"),
        (BOB, "pi_b"),
    ]
    flagged = use_cases.store.get_purchase("pi_c")
    assert flagged is not None
    assert flagged.review_reason == (
        "paid with promo code SPRING-20 after its hold lapsed, "
        "when the code's per-user limit was already reached"
    )
    assert _usage(desk) == (2, 0)


def test_a_use_without_a_hold_is_counted_beside_another_checkouts_live_hold(
    use_cases: UseCaseDependencies, desk: PromoDesk
) -> None:
    """Bob's checkout holds one of two uses; Alice's payment from elsewhere takes the other."""
    create_promo(desk, "SPRING-20", percent_off=20, max_redemptions=2)
    _buy(use_cases, BOB, "SPRING-20")
    _deliver(use_cases, _paid_elsewhere("pi_a", ALICE, "k1"))
    assert use_cases.store.balance(ALICE) == PACKAGE.tokens
    assert _usage(desk) == (1, 1)


def test_redelivering_a_payment_sent_to_review_takes_no_use_freed_since(
    use_cases: UseCaseDependencies,
    twin: InMemoryPaymentGateway,
    desk: PromoDesk,
    clock: FixedClock,
) -> None:
    """Alice's late payment found the code full and went to review; Bob's payment then fails
    and frees the use. A redelivery of Alice's payment changes nothing."""
    create_promo(desk, "ONCE", percent_off=50, max_redemptions=1)
    late = _buy(use_cases, ALICE, "ONCE")
    clock.advance(timedelta(hours=2))
    bobs = _buy(use_cases, BOB, "ONCE")
    paid_late = twin.succeed(late)
    _deliver(use_cases, paid_late)
    _deliver(use_cases, twin.fail(bobs))
    assert _usage(desk) == (0, 0)
    _deliver(use_cases, paid_late)
    assert _usage(desk) == (0, 0)
    flagged = use_cases.store.get_purchase(late)
    assert flagged is not None
    assert flagged.status is PurchaseStatus.NEEDS_REVIEW
    assert use_cases.store.balance(ALICE) == 0
