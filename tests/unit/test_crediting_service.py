"""The crediting use cases' own duties: journalling, retrying a conflict, reading the ledger,
and the awaited path an event loop takes on a store that transacts awaitably."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

import pytest

from buytokens.adapters.memory import FixedClock, InMemoryBalanceRepository
from buytokens.adapters.memory_codes import InMemoryRedemptionCodes
from buytokens.adapters.memory_promos import InMemoryPromoCodes
from buytokens.domain.catalogue import DEFAULT_CATALOGUE
from buytokens.domain.checkout import Delivery, ReceivedEvent
from buytokens.domain.codes import CodeKind, CodeSecret, RedemptionCode
from buytokens.domain.crediting import Disposition, PurchaseTransition
from buytokens.domain.errors import ConcurrentUpdate
from buytokens.domain.events import (
    AttemptOutcome,
    DisputeChanged,
    DisputeState,
    PaymentAttempted,
    PaymentEvent,
    PaymentSucceeded,
)
from buytokens.domain.ledger import LedgerEntry
from buytokens.domain.money import Money
from buytokens.ports.balances import AwaitableTransactions, BalanceRepository
from buytokens.services.crediting import (
    MAX_ATTEMPTS,
    Applied,
    CreditingDependencies,
    apply_payment_event,
    apply_payment_event_awaiting,
)
from buytokens.services.gifts import GiftCodes
from buytokens.services.promos import PromoDesk, create_promo, list_promos

T0 = datetime(2026, 5, 1, tzinfo=UTC)
PRICE = Money(1_000, "cny")  # package_100k
SECRET = CodeSecret.derived_from("a-jwt-secret-of-some-length-for-tests")
T = TypeVar("T")


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


class _AwaitableStore(_WatchedStore):
    """The watched in-memory store seen as one that transacts awaitably, as SQLite's does:
    ``work`` runs off the loop on the store; its one commit is all or nothing."""

    def __init__(self, clock: FixedClock, conflicts: int = 0) -> None:
        super().__init__(clock, conflicts)
        self.transactions = 0

    async def atomically(self, work: Callable[[BalanceRepository], T]) -> T:
        self.transactions += 1
        return await asyncio.to_thread(work, self)


def _apply_awaiting(
    deps: CreditingDependencies,
    store: _AwaitableStore,
    event: PaymentEvent,
    received: ReceivedEvent | None = None,
) -> Applied:
    return asyncio.run(apply_payment_event_awaiting(deps, store, event, received=received))


def test_the_awaited_path_reads_decides_and_writes_in_one_transaction(
    clock: FixedClock,
) -> None:
    """A payment credits once in one awaited transaction, journalled in it; its redelivery
    is one more transaction that changes nothing but the journal."""
    store = _AwaitableStore(clock)
    assert isinstance(store, AwaitableTransactions)
    deps = CreditingDependencies(store, DEFAULT_CATALOGUE, clock)
    received = ReceivedEvent("evt_pi_1", "payment_intent.succeeded", T0, _paid())
    applied = _apply_awaiting(deps, store, _paid(), received)
    assert (store.transactions, len(store.commits)) == (1, 1)
    assert (applied.disposition, applied.purchase) == (
        Disposition.APPLIED,
        store.get_purchase("pi_1"),
    )
    assert [(e.key, e.applied) for e in applied.entries] == [("purchase:pi_1", 100_000)]
    assert store.commits[0].delivery == Delivery(
        "evt_pi_1", "payment_intent.succeeded", "pi_1", "applied", clock.now()
    )
    again = _apply_awaiting(deps, store, _paid(), received)
    assert (again.disposition, store.transactions, len(store.commits)) == (
        Disposition.DUPLICATE,
        2,
        1,
    )
    assert store.journal.deliveries("evt_pi_1") == ("duplicate", 2)
    assert store.balance("alice") == 100_000


def test_a_conflict_on_the_awaited_path_is_decided_again_in_a_new_transaction(
    clock: FixedClock,
) -> None:
    """Another process's write costs a retry: the whole transaction is taken again."""
    store = _AwaitableStore(clock, conflicts=3)
    applied = _apply_awaiting(
        CreditingDependencies(store, DEFAULT_CATALOGUE, clock), store, _paid()
    )
    assert applied.disposition is Disposition.APPLIED
    assert (store.transactions, len(store.commits)) == (4, 4)
    assert store.balance("alice") == 100_000


def test_an_awaited_purchase_that_keeps_changing_gives_up_with_a_retryable_error(
    clock: FixedClock,
) -> None:
    """After MAX_ATTEMPTS conflicting transactions the caller is told to retry later."""
    store = _AwaitableStore(clock, conflicts=MAX_ATTEMPTS)
    with pytest.raises(
        ConcurrentUpdate,
        match=f"^payment intent pi_1 kept changing under {MAX_ATTEMPTS} attempts; retry later$",
    ):
        _apply_awaiting(CreditingDependencies(store, DEFAULT_CATALOGUE, clock), store, _paid())
    assert store.transactions == MAX_ATTEMPTS
    assert store.balance("alice") == 0


def _gift(pi: str = "pi_1") -> PaymentSucceeded:
    return PaymentSucceeded(f"evt_{pi}", pi, PRICE, "alice", "package_100k", T0, gift=True)


def _with_promo(pi: str = "pi_1") -> PaymentSucceeded:
    return PaymentSucceeded(
        f"evt_{pi}",
        pi,
        Money(800, "cny"),
        "alice",
        "package_100k",
        T0,
        purchase_id=f"k_{pi}",
        promo_code="SPRING",
        discount_amount=200,
    )


def test_a_gift_is_indexed_before_its_purchase_off_the_loop(clock: FixedClock) -> None:
    """A gift's code index is a write of its own: the awaited path hands the whole payment
    to the thread path, which indexes the code and journals the delivery."""
    store = _AwaitableStore(clock)
    codes = InMemoryRedemptionCodes()
    deps = CreditingDependencies(store, DEFAULT_CATALOGUE, clock, GiftCodes(SECRET, codes))
    received = ReceivedEvent("evt_pi_1", "payment_intent.succeeded", T0, _gift())
    applied = _apply_awaiting(deps, store, _gift(), received)
    assert (applied.disposition, store.transactions, len(store.commits)) == (
        Disposition.APPLIED,
        0,
        1,
    )
    record = codes.find(RedemptionCode.for_gift(SECRET, "pi_1").digest)
    assert record is not None
    assert (record.kind, record.payment_intent_id, record.buyer_id, record.created_at) == (
        CodeKind.GIFT,
        "pi_1",
        "alice",
        clock.now(),
    )
    assert store.journal.deliveries("evt_pi_1") == ("applied", 1)
    assert store.balance("alice") == 0


def test_a_promo_use_is_counted_before_its_purchase_off_the_loop(clock: FixedClock) -> None:
    """A promo code's use is a write of its own: the payment takes the thread path, which
    counts the use and journals the delivery; the buyer gets the package's full tokens."""
    store = _AwaitableStore(clock)
    promos = InMemoryPromoCodes()
    create_promo(PromoDesk(promos, DEFAULT_CATALOGUE, clock), "SPRING", amount_off=200)
    deps = CreditingDependencies(store, DEFAULT_CATALOGUE, clock, promos=promos)
    received = ReceivedEvent("evt_pi_1", "payment_intent.succeeded", T0, _with_promo())
    applied = _apply_awaiting(deps, store, _with_promo(), received)
    assert (applied.disposition, store.transactions) == (Disposition.APPLIED, 0)
    (listing,) = list_promos(PromoDesk(promos, DEFAULT_CATALOGUE, clock))
    assert (listing.usage.paid, listing.usage.held) == (1, 0)
    assert store.journal.deliveries("evt_pi_1") == ("applied", 1)
    assert store.balance("alice") == 100_000


@pytest.mark.parametrize(
    ("event", "with_gifts", "with_promos"),
    [
        (_paid(), True, True),  # nothing to prepare for a plain payment
        (_gift(), False, False),  # no gift index kept: nothing to index
        (_with_promo(), False, False),  # no promo codes kept: nothing to count
        (PaymentAttempted("evt_f", "pi_1", AttemptOutcome.FAILED, T0), False, True),
    ],
    ids=["plain", "gift-without-index", "promo-without-codes", "failure-without-code"],
)
def test_what_needs_no_write_of_its_own_stays_in_one_awaited_transaction(
    clock: FixedClock, event: PaymentEvent, with_gifts: bool, with_promos: bool
) -> None:
    """Only a gift with an index to write and a payment with a code to count leave the loop."""
    store = _AwaitableStore(clock)
    promos = InMemoryPromoCodes()
    create_promo(PromoDesk(promos, DEFAULT_CATALOGUE, clock), "SPRING", amount_off=200)
    deps = CreditingDependencies(
        store,
        DEFAULT_CATALOGUE,
        clock,
        GiftCodes(SECRET, InMemoryRedemptionCodes()) if with_gifts else None,
        promos if with_promos else None,
    )
    _apply_awaiting(deps, store, event)
    assert store.transactions == 1


def test_a_gift_paid_where_no_gift_codes_are_kept_is_stored_crediting_no_one(
    clock: FixedClock,
) -> None:
    """Without a gift index there is no code to write: the paid gift is stored, uncredited."""
    store = _WatchedStore(clock)
    applied = apply_payment_event(CreditingDependencies(store, DEFAULT_CATALOGUE, clock), _gift())
    assert applied.disposition is Disposition.APPLIED
    assert applied.purchase is not None
    assert (applied.purchase.gift, applied.purchase.succeeded) == (True, True)
    assert store.balance("alice") == 0


def test_a_gift_of_an_unknown_package_is_flagged_and_indexes_no_code(clock: FixedClock) -> None:
    """Nothing says what such a code would be worth: no index record, and review."""
    store = _WatchedStore(clock)
    codes = InMemoryRedemptionCodes()
    deps = CreditingDependencies(store, DEFAULT_CATALOGUE, clock, GiftCodes(SECRET, codes))
    event = PaymentSucceeded("evt_1", "pi_1", PRICE, "alice", "package_gone", T0, gift=True)
    applied = apply_payment_event(deps, event)
    assert (applied.disposition, applied.reason) == (
        Disposition.NEEDS_REVIEW,
        "unknown package 'package_gone'",
    )
    assert list(codes.codes()) == []
