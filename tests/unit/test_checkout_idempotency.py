"""Idempotency keys of checkout requests, with the in-memory fakes."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from buytokens.adapters.memory import (
    FixedClock,
    InMemoryBalanceRepository,
)
from buytokens.domain.checkout import IntentRequest, IntentSnapshot
from buytokens.entrypoints.composition import UseCaseDependencies
from buytokens.services.buying import (
    STALE_RESERVATION,
    CreatedIntent,
    RequestInProgress,
    create_payment_intent,
)
from buytokens.testing.stripe_twin import InMemoryPaymentGateway
from tests.support.use_cases import wire


class _HeldGateway(InMemoryPaymentGateway):
    """The in-memory Stripe, whose first intent creation waits until the test lets it finish."""

    def __init__(self, clock: FixedClock) -> None:
        super().__init__(clock=clock)
        self.creations = 0
        self.first_started = threading.Event()
        self.finish_first = threading.Event()

    def create_payment_intent(self, request: IntentRequest) -> IntentSnapshot:
        self.creations += 1
        if self.creations == 1:
            self.first_started.set()
            assert self.finish_first.wait(30)
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
