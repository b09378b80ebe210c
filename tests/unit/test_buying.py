"""Creating a payment intent: priced from the catalogue only, one intent per idempotency key.

On the in-memory store and keys and the Stripe twin; no mocks.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from buytokens.adapters.memory import (
    FixedClock,
    InMemoryBalanceRepository,
)
from buytokens.domain.catalogue import DEFAULT_CATALOGUE
from buytokens.domain.checkout import IntentRequest, IntentSnapshot
from buytokens.domain.errors import (
    GatewayUnavailable,
    IdempotencyConflict,
    UnknownPackage,
    UnsupportedPaymentMethod,
)
from buytokens.domain.money import Money
from buytokens.domain.purchases import PurchaseStatus
from buytokens.entrypoints.composition import UseCaseDependencies
from buytokens.services.buying import (
    MAX_IDEMPOTENCY_KEY,
    STALE_RESERVATION,
    CreatedIntent,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
    RequestInProgress,
    create_payment_intent,
)
from buytokens.testing.stripe_twin import InMemoryPaymentGateway
from tests.support.use_cases import wire


class _CountingGateway(InMemoryPaymentGateway):
    """The in-memory Stripe, counting the intents it is asked to create."""

    def __init__(self, clock: FixedClock) -> None:
        super().__init__(clock=clock)
        self.creations = 0

    def create_payment_intent(self, request: IntentRequest) -> IntentSnapshot:
        self.creations += 1
        return super().create_payment_intent(request)


class _HeldGateway(_CountingGateway):
    """The counting Stripe, whose first intent creation waits until the test lets it finish."""

    def __init__(self, clock: FixedClock) -> None:
        super().__init__(clock)
        self.first_started = threading.Event()
        self.finish_first = threading.Event()

    def create_payment_intent(self, request: IntentRequest) -> IntentSnapshot:
        if self.creations == 0:
            self.first_started.set()
            self.creations += 1
            assert self.finish_first.wait(30)
            return InMemoryPaymentGateway.create_payment_intent(self, request)
        return super().create_payment_intent(request)


@pytest.fixture
def clock() -> FixedClock:
    """A stopped clock."""
    return FixedClock()


@pytest.fixture
def gateway(clock: FixedClock) -> _HeldGateway:
    """Stripe, holding the first creation."""
    return _HeldGateway(clock)


@pytest.fixture
def use_cases(gateway: _HeldGateway, clock: FixedClock) -> UseCaseDependencies:
    """The buying use cases on in-memory fakes."""
    return wire(gateway, clock, store=InMemoryBalanceRepository(clock))


def _first_request_held(
    use_cases: UseCaseDependencies, gateway: _HeldGateway
) -> tuple[threading.Thread, list[object]]:
    results: list[object] = []

    def first() -> None:
        results.append(
            create_payment_intent(
                use_cases.buying, "alice", "package_100k", "card", idempotency_key="k1"
            )
        )

    thread = threading.Thread(target=first)
    thread.start()
    assert gateway.first_started.wait(30)
    return thread, results


def test_a_second_request_with_a_key_still_in_flight_is_refused_without_calling_stripe(
    use_cases: UseCaseDependencies, gateway: _HeldGateway
) -> None:
    """While the first request with a key runs, the same key answers RequestInProgress."""
    thread, results = _first_request_held(use_cases, gateway)
    try:
        with pytest.raises(RequestInProgress):
            create_payment_intent(
                use_cases.buying, "alice", "package_100k", "card", idempotency_key="k1"
            )
        assert gateway.creations == 1
    finally:
        gateway.finish_first.set()
        thread.join(30)
    (first,) = results
    assert isinstance(first, CreatedIntent)
    again = create_payment_intent(
        use_cases.buying, "alice", "package_100k", "card", idempotency_key="k1"
    )
    assert again.snapshot.id == first.snapshot.id
    assert gateway.creations == 1


def test_a_reservation_older_than_the_stale_limit_is_taken_over(
    use_cases: UseCaseDependencies, gateway: _HeldGateway, clock: FixedClock
) -> None:
    """A first request that never finished (its process died) does not block the key for ever."""
    thread, results = _first_request_held(use_cases, gateway)
    try:
        clock.advance(STALE_RESERVATION + timedelta(seconds=1))
        taken_over = create_payment_intent(
            use_cases.buying, "alice", "package_100k", "card", idempotency_key="k1"
        )
        assert gateway.creations == 2
    finally:
        gateway.finish_first.set()
        thread.join(30)
    (first,) = results
    assert isinstance(first, CreatedIntent)
    assert taken_over.snapshot.id == first.snapshot.id  # the same purchase id, one intent


# -- without a key, and what every request is checked against ---------------------------------


@pytest.fixture
def stripe(clock: FixedClock) -> _CountingGateway:
    """Stripe, answering at once."""
    return _CountingGateway(clock)


@pytest.fixture
def ready(stripe: _CountingGateway, clock: FixedClock) -> UseCaseDependencies:
    """The buying use cases on the answering Stripe."""
    return wire(stripe, clock)


def test_an_intent_is_priced_from_the_catalogue_and_its_purchase_recorded_pending(
    ready: UseCaseDependencies, stripe: _CountingGateway, clock: FixedClock
) -> None:
    """The package's price and tokens come from the catalogue; the intent carries who and what."""
    package = DEFAULT_CATALOGUE.get("package_1m")
    created = create_payment_intent(ready.buying, "alice", "package_1m", "alipay")
    assert created.amount == package.price == Money(5_500, "cny")
    intent = stripe.intent_json(created.snapshot.id)
    assert (intent["amount"], intent["currency"]) == (5_500, "cny")
    assert intent["metadata"]["userId"] == "alice"
    assert intent["metadata"]["packageId"] == "package_1m"
    purchase = ready.store.get_purchase(created.snapshot.id)
    assert purchase is not None
    assert (purchase.user_id, purchase.package_id, purchase.tokens, purchase.price) == (
        "alice",
        "package_1m",
        package.tokens,
        package.price,
    )
    assert (purchase.status, purchase.created_at) == (PurchaseStatus.PENDING, clock.now())
    assert ready.store.balance("alice") == 0


def test_without_a_key_every_request_is_a_new_intent(
    ready: UseCaseDependencies, stripe: _CountingGateway
) -> None:
    """No key, no promise: two requests are two intents."""
    first = create_payment_intent(ready.buying, "alice", "package_100k", "card")
    second = create_payment_intent(ready.buying, "alice", "package_100k", "card")
    assert first.snapshot.id != second.snapshot.id
    assert stripe.creations == 2


@pytest.mark.parametrize(
    ("package", "method", "refusal"),
    [
        ("package_none", "card", UnknownPackage),
        ("package_100k", "crypto", UnsupportedPaymentMethod),  # USD only; the catalogue is CNY
        ("package_100k", "paypal", UnsupportedPaymentMethod),
    ],
)
def test_a_request_the_catalogue_cannot_serve_is_refused_before_stripe(
    ready: UseCaseDependencies,
    stripe: _CountingGateway,
    package: str,
    method: str,
    refusal: type[Exception],
) -> None:
    """Unknown packages and methods not offered for the currency never reach Stripe or a key."""
    with pytest.raises(refusal):
        create_payment_intent(ready.buying, "alice", package, method, idempotency_key="k")
    assert stripe.creations == 0
    # The key was never reserved: a good request with it goes through.
    create_payment_intent(ready.buying, "alice", "package_100k", "card", idempotency_key="k")
    assert stripe.creations == 1


# -- idempotency keys, one request at a time ---------------------------------------------------


def test_the_same_key_comes_back_to_the_same_intent(
    ready: UseCaseDependencies, stripe: _CountingGateway
) -> None:
    """A retry with the key gets the first intent, asked of Stripe, not a second purchase."""
    first = create_payment_intent(
        ready.buying, "alice", "package_500k", "card", idempotency_key="click-1"
    )
    again = create_payment_intent(
        ready.buying, "alice", "package_500k", "card", idempotency_key="click-1"
    )
    assert again == first
    assert stripe.creations == 1
    assert len(ready.store.purchases("alice")) == 1


def test_keys_belong_to_their_user(ready: UseCaseDependencies) -> None:
    """Two users sending the same key get an intent each."""
    alice = create_payment_intent(
        ready.buying, "alice", "package_100k", "card", idempotency_key="k"
    )
    bob = create_payment_intent(ready.buying, "bob", "package_100k", "card", idempotency_key="k")
    assert alice.snapshot.id != bob.snapshot.id


@pytest.mark.parametrize(
    ("package", "method"), [("package_1m", "card"), ("package_500k", "alipay")]
)
def test_the_same_key_for_another_package_or_method_is_a_conflict(
    ready: UseCaseDependencies, stripe: _CountingGateway, package: str, method: str
) -> None:
    """A reused key never buys something else; the error says what the key was first used for."""
    create_payment_intent(ready.buying, "alice", "package_500k", "card", idempotency_key="k")
    with pytest.raises(IdempotencyConflict) as conflict:
        create_payment_intent(ready.buying, "alice", package, method, idempotency_key="k")
    assert isinstance(conflict.value, IdempotencyKeyReused)
    assert conflict.value.first_request == "package_500k/card"
    assert str(conflict.value) == (
        "this idempotency key was already used for a different request (package_500k/card)"
    )
    assert stripe.creations == 1


@pytest.mark.parametrize("key", ["", "k" * (MAX_IDEMPOTENCY_KEY + 1), "tab\there"])
def test_a_malformed_key_is_refused_before_stripe(
    ready: UseCaseDependencies, stripe: _CountingGateway, key: str
) -> None:
    """Empty, over-long or unprintable keys are the client's mistake, said without HTTP words."""
    with pytest.raises(InvalidIdempotencyKey) as refused:
        create_payment_intent(ready.buying, "alice", "package_100k", "card", idempotency_key=key)
    assert refused.value.code == "invalid_idempotency_key"
    assert str(refused.value) == "idempotency key must be 1-255 printable characters"
    assert str(refused.value.naming("Idempotency-Key")).startswith("Idempotency-Key must be")
    assert stripe.creations == 0


def test_a_gateway_failure_releases_the_key_for_a_retry(
    ready: UseCaseDependencies, stripe: _CountingGateway
) -> None:
    """Stripe down for the first request: the same key then creates the intent, once."""
    stripe.make_unavailable(calls=1)
    with pytest.raises(GatewayUnavailable):
        create_payment_intent(ready.buying, "alice", "package_100k", "card", idempotency_key="k")
    assert ready.store.purchases("alice") == []
    retried = create_payment_intent(
        ready.buying, "alice", "package_100k", "card", idempotency_key="k"
    )
    again = create_payment_intent(
        ready.buying, "alice", "package_100k", "card", idempotency_key="k"
    )
    assert again.snapshot.id == retried.snapshot.id
    assert [p.payment_intent_id for p in ready.store.purchases("alice")] == [retried.snapshot.id]
