"""The return-page check: owner only, credited as the webhook would, settled ones from the store."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from buytokens.adapters.memory import (
    FixedClock,
    InMemoryBalanceRepository,
)
from buytokens.adapters.single_flight import SingleFlightPaymentGateway
from buytokens.domain.catalogue import DEFAULT_CATALOGUE, PaymentMethod
from buytokens.domain.checkout import IntentRequest
from buytokens.domain.errors import GatewayUnavailable, NotFound
from buytokens.domain.purchases import PurchaseStatus
from buytokens.entrypoints.composition import UseCaseDependencies
from buytokens.ports.payments import PaymentGateway
from buytokens.services.buying import (
    IntentCheck,
    check_payment_intent,
    create_payment_intent,
    recorded_check,
)
from buytokens.services.webhooks import receive_webhook
from buytokens.testing.stripe_twin import InMemoryPaymentGateway
from tests.support.gateways import GatedGateway
from tests.support.use_cases import wire

PACKAGE = DEFAULT_CATALOGUE.get("package_500k")
TOKENS = PACKAGE.tokens
SETTLING: dict[str, Callable[[InMemoryPaymentGateway, str], list[dict[str, object]]]] = {
    "succeeded": lambda stripe, intent: [stripe.succeed(intent)],
    "refunded": lambda stripe, intent: [stripe.succeed(intent), stripe.refund(intent)],
    "canceled": lambda stripe, intent: [stripe.cancel(intent)],
}


def _use_cases(gateway: PaymentGateway, clock: FixedClock) -> UseCaseDependencies:
    return wire(gateway, clock, store=InMemoryBalanceRepository(clock))


@pytest.fixture
def stripe(clock: FixedClock) -> InMemoryPaymentGateway:
    return InMemoryPaymentGateway(clock=clock)


def _buy(use_cases: UseCaseDependencies, user: str = "alice") -> str:
    return create_payment_intent(use_cases.buying, user, "package_500k", "card").snapshot.id


def _in_threads(
    call: Callable[[], IntentCheck], count: int
) -> tuple[list[object], Callable[[], None]]:
    """Start ``count`` threads running ``call``; return their outcomes and a joiner."""
    outcomes: list[object] = []
    lock = threading.Lock()

    def run() -> None:
        try:
            outcome: object = call()
        except Exception as exc:  # collected for the test to inspect
            outcome = exc
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()

    def join() -> None:
        for thread in threads:
            thread.join(timeout=30)

    return outcomes, join


# -- the settled-purchase shortcut ------------------------------------------------------------


@pytest.mark.parametrize(
    ("settle", "status"),
    [
        ("succeeded", PurchaseStatus.SUCCEEDED),
        ("refunded", PurchaseStatus.REFUNDED),
        ("canceled", PurchaseStatus.FAILED),
    ],
)
def test_a_settled_purchase_is_answered_without_stripe(
    stripe: InMemoryPaymentGateway, clock: FixedClock, settle: str, status: PurchaseStatus
) -> None:
    """Once the purchase has settled, the check answers from the store even with Stripe down."""
    use_cases = _use_cases(stripe, clock)
    intent = _buy(use_cases)
    for event in SETTLING[settle](stripe, intent):
        receive_webhook(use_cases.webhooks, *stripe.signed_webhook(event))
    stripe.make_unavailable()
    expected = IntentCheck(status, use_cases.store.balance("alice"))
    assert check_payment_intent(use_cases.checking, "alice", intent) == expected
    assert recorded_check(use_cases.store, "alice", intent) == expected
    with pytest.raises(NotFound):
        recorded_check(use_cases.store, "mallory", intent)
    with pytest.raises(NotFound):
        check_payment_intent(use_cases.checking, "mallory", intent)


def test_a_pending_or_failed_purchase_still_asks_stripe(
    stripe: InMemoryPaymentGateway, clock: FixedClock
) -> None:
    """Only the provider can tell about a purchase that may still be paid."""
    use_cases = _use_cases(stripe, clock)
    pending, failed = _buy(use_cases), _buy(use_cases)
    receive_webhook(use_cases.webhooks, *stripe.signed_webhook(stripe.fail(failed)))
    assert recorded_check(use_cases.store, "alice", pending) is None
    assert recorded_check(use_cases.store, "alice", failed) is None
    assert recorded_check(use_cases.store, "alice", "pi_never_stored") is None
    stripe.make_unavailable()
    for intent in (pending, failed):
        with pytest.raises(GatewayUnavailable):
            check_payment_intent(use_cases.checking, "alice", intent)
    stripe.make_available()
    stripe.succeed(failed)  # the customer paid the same intent with another card
    assert (
        check_payment_intent(use_cases.checking, "alice", failed).status is PurchaseStatus.SUCCEEDED
    )


# -- single flight ----------------------------------------------------------------------------


def test_concurrent_checks_of_one_intent_share_one_stripe_call(
    stripe: InMemoryPaymentGateway, clock: FixedClock
) -> None:
    """Ten checks at once of one intent reach Stripe once, and all see its answer."""
    gated = GatedGateway(stripe)
    use_cases = _use_cases(SingleFlightPaymentGateway(gated), clock)
    intent = _buy(use_cases)
    stripe.succeed(intent)
    outcomes, join = _in_threads(
        lambda: check_payment_intent(use_cases.checking, "alice", intent), 10
    )
    assert gated.wait_for_calls(1)
    time.sleep(0.5)  # the other nine join the call in flight meanwhile
    gated.release()
    join()
    assert gated.calls == 1
    assert outcomes == [IntentCheck(PurchaseStatus.SUCCEEDED, TOKENS)] * 10
    assert use_cases.store.balance("alice") == TOKENS


def test_a_failure_reaches_every_check_that_shared_the_call(
    stripe: InMemoryPaymentGateway, clock: FixedClock
) -> None:
    """The shared call's error is every waiter's error; the next check asks afresh."""
    gated = GatedGateway(stripe)
    use_cases = _use_cases(SingleFlightPaymentGateway(gated), clock)
    intent = _buy(use_cases)
    stripe.make_unavailable(calls=1)
    outcomes, join = _in_threads(
        lambda: check_payment_intent(use_cases.checking, "alice", intent), 5
    )
    assert gated.wait_for_calls(1)
    time.sleep(0.5)
    gated.release()
    join()
    assert gated.calls == 1
    assert [type(o) for o in outcomes] == [GatewayUnavailable] * 5
    assert (
        check_payment_intent(use_cases.checking, "alice", intent).status is PurchaseStatus.PENDING
    )
    assert gated.calls == 2


def test_checks_of_different_intents_do_not_wait_for_each_other(
    stripe: InMemoryPaymentGateway, clock: FixedClock
) -> None:
    """Each intent has its own call in flight."""
    gated = GatedGateway(stripe)
    use_cases = _use_cases(SingleFlightPaymentGateway(gated), clock)
    first, second = _buy(use_cases), _buy(use_cases, "bob")
    alice, join_alice = _in_threads(
        lambda: check_payment_intent(use_cases.checking, "alice", first), 1
    )
    bob, join_bob = _in_threads(lambda: check_payment_intent(use_cases.checking, "bob", second), 1)
    assert gated.wait_for_calls(2)
    gated.release()
    join_alice()
    join_bob()
    assert alice == bob == [IntentCheck(PurchaseStatus.PENDING, 0)]


def test_a_shared_call_never_shares_the_owners_answer(
    stripe: InMemoryPaymentGateway, clock: FixedClock
) -> None:
    """For an intent only Stripe knows, a stranger sharing the call is still told 404."""
    gated = GatedGateway(stripe)
    use_cases = _use_cases(SingleFlightPaymentGateway(gated), clock)
    intent = stripe.create_payment_intent(
        IntentRequest("elsewhere-1", "alice", PACKAGE, PaymentMethod.CARD)
    ).id
    stripe.succeed(intent)
    alice, join_alice = _in_threads(
        lambda: check_payment_intent(use_cases.checking, "alice", intent), 1
    )
    mallory, join_mallory = _in_threads(
        lambda: check_payment_intent(use_cases.checking, "mallory", intent), 1
    )
    assert gated.wait_for_calls(1)
    time.sleep(0.5)
    gated.release()
    join_alice()
    join_mallory()
    assert gated.calls == 1
    assert alice == [IntentCheck(PurchaseStatus.SUCCEEDED, TOKENS)]
    assert [type(o) for o in mallory] == [NotFound]
    assert use_cases.store.balance("mallory") == 0


# -- the check itself: owner only, credited as the webhook would -------------------------------


def test_a_paid_intent_is_credited_by_the_check_once(
    stripe: InMemoryPaymentGateway, clock: FixedClock
) -> None:
    """No webhook came: the check applies the success, and checking again credits nothing more."""
    use_cases = _use_cases(stripe, clock)
    intent = _buy(use_cases)
    assert check_payment_intent(use_cases.checking, "alice", intent) == IntentCheck(
        PurchaseStatus.PENDING, 0
    )
    stripe.succeed(intent)
    paid = IntentCheck(PurchaseStatus.SUCCEEDED, TOKENS)
    assert check_payment_intent(use_cases.checking, "alice", intent) == paid
    assert check_payment_intent(use_cases.checking, "alice", intent) == paid
    assert len(use_cases.store.ledger("alice")) == 1


def test_another_users_recorded_purchase_is_not_found_without_asking_stripe(
    stripe: InMemoryPaymentGateway, clock: FixedClock
) -> None:
    """A stranger learns nothing about a pending purchase, not even whether Stripe is up."""
    use_cases = _use_cases(stripe, clock)
    intent = _buy(use_cases)
    stripe.make_unavailable()
    with pytest.raises(NotFound):
        recorded_check(use_cases.store, "mallory", intent)
    with pytest.raises(NotFound):
        check_payment_intent(use_cases.checking, "mallory", intent)
    assert use_cases.store.balance("mallory") == 0


def test_an_intent_only_stripe_knows_is_credited_to_its_owner_from_its_metadata(
    stripe: InMemoryPaymentGateway, clock: FixedClock
) -> None:
    """Created by another instance and paid: the owner's check credits it, a stranger's is 404."""
    use_cases = _use_cases(stripe, clock)
    intent = stripe.create_payment_intent(
        IntentRequest("elsewhere-2", "alice", PACKAGE, PaymentMethod.CARD)
    ).id
    with pytest.raises(NotFound):  # not paid yet: nothing says whose it is
        check_payment_intent(use_cases.checking, "alice", intent)
    stripe.succeed(intent)
    with pytest.raises(NotFound):
        check_payment_intent(use_cases.checking, "mallory", intent)
    assert use_cases.store.get_purchase(intent) is None
    assert check_payment_intent(use_cases.checking, "alice", intent) == IntentCheck(
        PurchaseStatus.SUCCEEDED, TOKENS
    )
    with pytest.raises(NotFound):  # now recorded: still alice's alone
        recorded_check(use_cases.store, "mallory", intent)
