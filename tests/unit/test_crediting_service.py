"""The crediting use cases' own duties: journalling, retrying a conflict, reading the ledger."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from buytokens.adapters.memory import FixedClock, InMemoryBalanceRepository
from buytokens.domain.catalogue import DEFAULT_CATALOGUE
from buytokens.domain.checkout import Delivery, ReceivedEvent
from buytokens.domain.crediting import Disposition, PurchaseTransition
from buytokens.domain.errors import ConcurrentUpdate
from buytokens.domain.events import DisputeChanged, DisputeState, PaymentSucceeded
from buytokens.domain.ledger import LedgerEntry
from buytokens.domain.money import Money
from buytokens.services.crediting import MAX_ATTEMPTS, CreditingDependencies, apply_payment_event

T0 = datetime(2026, 5, 1, tzinfo=UTC)
PRICE = Money(1_000, "cny")  # package_100k


class _WatchedStore(InMemoryBalanceRepository):
    """The in-memory store, recording commits and ledger reads, refusing the first commits."""

    def __init__(self, clock: FixedClock, conflicts: int = 0) -> None:
        super().__init__(clock)
        self.conflicts = conflicts
        self.commits: list[PurchaseTransition] = []
        self.deliveries: list[Delivery] = []
        self.ledger_reads = 0

    def commit(self, transition: PurchaseTransition) -> tuple[LedgerEntry, ...]:
        self.commits.append(transition)
        if self.conflicts:
            self.conflicts -= 1
            raise ConcurrentUpdate("someone else was first")
        return super().commit(transition)

    def record_delivery(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        super().record_delivery(delivery)

    def purchase_ledger(self, payment_intent_id: str) -> Sequence[LedgerEntry]:
        self.ledger_reads += 1
        return super().purchase_ledger(payment_intent_id)


def _paid(pi: str = "pi_1") -> PaymentSucceeded:
    return PaymentSucceeded(f"evt_{pi}", pi, PRICE, "alice", "package_100k", T0)


def _chargeback(state: DisputeState) -> DisputeChanged:
    return DisputeChanged(f"evt_{state}", "pi_1", "dp_1", PRICE, state, T0)


@pytest.fixture
def clock() -> FixedClock:
    """A stopped clock."""
    return FixedClock(T0)


def test_a_received_event_is_journalled_in_the_commit_of_its_change(clock: FixedClock) -> None:
    """The delivery rides with the transition: its id, type, intent, outcome and time."""
    store = _WatchedStore(clock)
    received = ReceivedEvent("evt_pi_1", "payment_intent.succeeded", T0, _paid())
    apply_payment_event(
        CreditingDependencies(store, DEFAULT_CATALOGUE, clock), _paid(), received=received
    )
    (transition,) = store.commits
    assert transition.delivery == Delivery(
        "evt_pi_1", "payment_intent.succeeded", "pi_1", "applied", clock.now()
    )
    assert store.deliveries == []
    assert store.journal.deliveries("evt_pi_1") == ("applied", 1)


def test_a_delivery_that_changes_nothing_is_journalled_alone(clock: FixedClock) -> None:
    """A duplicate commits nothing; its delivery is counted through the store on its own."""
    store = _WatchedStore(clock)
    received = ReceivedEvent("evt_pi_1", "payment_intent.succeeded", T0, _paid())
    apply_payment_event(
        CreditingDependencies(store, DEFAULT_CATALOGUE, clock), _paid(), received=received
    )
    again = apply_payment_event(
        CreditingDependencies(store, DEFAULT_CATALOGUE, clock), _paid(), received=received
    )
    assert (again.disposition, again.entries) == (Disposition.DUPLICATE, ())
    assert again.purchase == store.get_purchase("pi_1")
    assert len(store.commits) == 1
    assert store.deliveries == [
        Delivery("evt_pi_1", "payment_intent.succeeded", "pi_1", "duplicate", clock.now())
    ]
    assert store.journal.deliveries("evt_pi_1") == ("duplicate", 2)


def test_without_a_received_event_nothing_is_journalled(clock: FixedClock) -> None:
    """Applying a bare event (the return-page check) stores no delivery."""
    store = _WatchedStore(clock)
    applied = apply_payment_event(CreditingDependencies(store, DEFAULT_CATALOGUE, clock), _paid())
    apply_payment_event(CreditingDependencies(store, DEFAULT_CATALOGUE, clock), _paid())
    assert store.commits[0].delivery is None
    assert store.deliveries == []
    assert store.journal.deliveries("evt_pi_1") is None
    assert (applied.disposition, applied.reason) == (Disposition.APPLIED, "")
    assert applied.purchase == store.get_purchase("pi_1")
    assert applied.purchase is not None
    assert applied.purchase.version == 1
    assert [e.applied for e in applied.entries] == [100_000]


def test_a_conflicting_commit_is_decided_again_on_the_fresh_state(clock: FixedClock) -> None:
    """A concurrent writer's win costs a retry, not the event."""
    store = _WatchedStore(clock, conflicts=3)
    applied = apply_payment_event(CreditingDependencies(store, DEFAULT_CATALOGUE, clock), _paid())
    assert applied.disposition is Disposition.APPLIED
    assert len(store.commits) == 4
    assert store.balance("alice") == 100_000


def test_a_purchase_that_keeps_changing_gives_up_with_a_retryable_error(
    clock: FixedClock,
) -> None:
    """After MAX_ATTEMPTS conflicts the caller is told to retry later; nothing was applied."""
    store = _WatchedStore(clock, conflicts=MAX_ATTEMPTS)
    with pytest.raises(
        ConcurrentUpdate,
        match=f"^payment intent pi_1 kept changing under {MAX_ATTEMPTS} attempts; retry later$",
    ):
        apply_payment_event(CreditingDependencies(store, DEFAULT_CATALOGUE, clock), _paid())
    assert len(store.commits) == MAX_ATTEMPTS
    assert store.balance("alice") == 0


def test_the_ledger_is_read_only_when_a_take_back_could_be_given_back(clock: FixedClock) -> None:
    """A plain success costs no ledger read; a release reads what the hold took."""
    store = _WatchedStore(clock)
    apply_payment_event(CreditingDependencies(store, DEFAULT_CATALOGUE, clock), _paid())
    assert store.ledger_reads == 0
    apply_payment_event(
        CreditingDependencies(store, DEFAULT_CATALOGUE, clock), _chargeback(DisputeState.OPEN)
    )
    assert store.ledger_reads == 0
    apply_payment_event(
        CreditingDependencies(store, DEFAULT_CATALOGUE, clock), _chargeback(DisputeState.WON)
    )
    assert store.ledger_reads == 1
    assert store.balance("alice") == 100_000
