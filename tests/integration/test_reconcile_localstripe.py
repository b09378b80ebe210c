"""Reconciling: payments no webhook delivered, credited from the provider's list of events.

Against localstripe for real card payments made while no webhook endpoint was
registered; against the in-memory twin for refunds and disputes, which
localstripe never emits.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import stripe

from buytokens.adapters.memory import (
    FixedClock,
    InMemoryBalanceRepository,
)
from buytokens.adapters.sqlite.checkout_keys import SqliteCheckoutKeys
from buytokens.adapters.sqlite.engine import SqliteDatabase
from buytokens.adapters.sqlite.journal import SqliteEventJournal
from buytokens.adapters.sqlite.store import SqliteBalanceRepository
from buytokens.adapters.stripe_gateway import STRIPE_EVENT_HISTORY, StripePaymentGateway
from buytokens.adapters.system import SystemClock, UuidIdSource
from buytokens.domain.catalogue import DEFAULT_CATALOGUE, PaymentMethod, TokenPackage
from buytokens.domain.checkout import Delivery, IntentRequest
from buytokens.domain.crediting import PurchaseTransition
from buytokens.domain.errors import GatewayUnavailable, StoreUnavailable, UserError
from buytokens.domain.ledger import EntryKind, LedgerChange, LedgerEntry
from buytokens.domain.money import Money
from buytokens.domain.purchases import Purchase
from buytokens.entrypoints.composition import UseCaseDependencies
from buytokens.ports.balances import BalanceRepository
from buytokens.services.buying import check_payment_intent, create_payment_intent
from buytokens.services.reconciliation import (
    ReconcileOutcome,
    ReconcileReport,
    ReconcileWindowTooLong,
    reconcile,
)
from buytokens.testing.localstripe import LocalStripe
from buytokens.testing.stripe_twin import InMemoryPaymentGateway
from tests.support.use_cases import wire

SECRET_KEY = "sk_test_buytokens_reconcile"
PACKAGE = DEFAULT_CATALOGUE.get("package_1m")  # 1 000 000 tokens for ¥55.00


@pytest.fixture(scope="module")
def localstripe() -> Iterator[LocalStripe]:
    """One localstripe for the module, with no webhook endpoint ever registered."""
    with LocalStripe.start() as server:
        yield server


@pytest.fixture
def database(tmp_path: Path) -> Iterator[SqliteDatabase]:
    """A fresh SQLite file."""
    db = SqliteDatabase(tmp_path / "reconcile.sqlite3")
    yield db
    db.close()


def _stripe_use_cases(localstripe: LocalStripe, database: SqliteDatabase) -> UseCaseDependencies:
    clock = SystemClock()
    gateway = StripePaymentGateway(
        SECRET_KEY,
        None,
        api_base=localstripe.api_base,
        api_version=localstripe.api_version,
        max_network_retries=0,
        budget=10,
    )
    return wire(
        gateway,
        clock,
        store=SqliteBalanceRepository(database, clock),
        keys=SqliteCheckoutKeys(database),
        ids=UuidIdSource(),
    )


@pytest.fixture
def use_cases(localstripe: LocalStripe, database: SqliteDatabase) -> UseCaseDependencies:
    """The use cases on localstripe and the SQLite file."""
    return _stripe_use_cases(localstripe, database)


@pytest.fixture
def customer(localstripe: LocalStripe) -> stripe.StripeClient:
    """What the customer's browser does, through the plain SDK."""
    return stripe.StripeClient(
        SECRET_KEY,
        base_addresses={"api": localstripe.api_base},
        stripe_version=localstripe.api_version,
        max_network_retries=0,
    )


def _pay(customer: stripe.StripeClient, payment_intent_id: str, card: str) -> None:
    # localstripe answers confirm(payment_method=...) with a 500: attach, then confirm.
    method = customer.v1.payment_methods.create(
        {"type": "card", "card": {"number": card, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
    )
    customer.v1.payment_intents.update(payment_intent_id, {"payment_method": method.id})
    customer.v1.payment_intents.confirm(payment_intent_id)


def _bought(use_cases: UseCaseDependencies, customer: stripe.StripeClient, user: str) -> str:
    created = create_payment_intent(use_cases.buying, user, PACKAGE.id, "card")
    _pay(customer, created.snapshot.id, "4242424242424242")
    return created.snapshot.id


def _user(name: str) -> str:
    # localstripe keeps every test's events; a fresh name keeps earlier payments
    # (credited from their metadata even by a fresh store) out of this test's balances.
    return f"{name}-{uuid.uuid4().hex[:8]}"


def _window_start() -> datetime:
    # Stripe filters on whole seconds; the module's earlier events are filtered by intent.
    return datetime.now(UTC) - timedelta(seconds=1)


def _outcomes(report: ReconcileReport, *intents: str) -> list[tuple[str, str, ReconcileOutcome]]:
    return [
        (e.type, e.payment_intent_id or "", e.outcome)
        for e in report.events
        if e.payment_intent_id in intents
    ]


# -- localstripe: payments no webhook delivered --------------------------------------------------


def test_payments_confirmed_while_no_webhook_was_registered_are_credited_by_reconcile(
    use_cases: UseCaseDependencies, customer: stripe.StripeClient, database: SqliteDatabase
) -> None:
    """Each succeeded intent is credited from the event list and journalled like a delivery."""
    since = _window_start()
    alice, bob = _user("alice"), _user("bob")
    alices, bobs = _bought(use_cases, customer, alice), _bought(use_cases, customer, bob)
    assert (use_cases.store.balance(alice), use_cases.store.balance(bob)) == (0, 0)

    report = reconcile(use_cases.reconciling, since)

    # Both were paid within the same second; only the set matters, not the order.
    assert sorted(_outcomes(report, alices, bobs)) == sorted(
        [
            ("payment_intent.succeeded", alices, ReconcileOutcome.APPLIED),
            ("payment_intent.succeeded", bobs, ReconcileOutcome.APPLIED),
        ]
    )
    assert (use_cases.store.balance(alice), use_cases.store.balance(bob)) == (PACKAGE.tokens,) * 2
    assert [p.status.value for p in use_cases.store.purchases(alice)] == ["succeeded"]
    journal = SqliteEventJournal(database)
    for event in report.events:
        if event.payment_intent_id in (alices, bobs):
            assert journal.deliveries(event.event_id) == ("applied", 1)


def test_reconciling_twice_credits_once(
    use_cases: UseCaseDependencies, customer: stripe.StripeClient
) -> None:
    """The second run over the same window finds the same events and applies none of them."""
    since, alice = _window_start(), _user("alice")
    pi = _bought(use_cases, customer, alice)

    first = reconcile(use_cases.reconciling, since)
    second = reconcile(use_cases.reconciling, since)

    assert _outcomes(first, pi) == [("payment_intent.succeeded", pi, ReconcileOutcome.APPLIED)]
    assert _outcomes(second, pi) == [("payment_intent.succeeded", pi, ReconcileOutcome.DUPLICATE)]
    assert second.applied == 0
    assert use_cases.store.balance(alice) == PACKAGE.tokens
    purchases = [e for e in use_cases.store.ledger(alice) if e.kind is EntryKind.PURCHASE]
    assert len(purchases) == 1


def test_concurrent_reconciles_from_two_processes_credit_once(
    localstripe: LocalStripe, customer: stripe.StripeClient, tmp_path: Path
) -> None:
    """Two runs at once, each with its own connection to the same file, credit one time."""
    databases = [SqliteDatabase(tmp_path / "shared.sqlite3") for _ in range(2)]
    use_cases_list = [_stripe_use_cases(localstripe, db) for db in databases]
    since, alice = _window_start(), _user("alice")
    pi = _bought(use_cases_list[0], customer, alice)
    reports: list[ReconcileReport] = []
    start = threading.Barrier(2)

    def run(use_cases: UseCaseDependencies) -> None:
        start.wait()
        reports.append(reconcile(use_cases.reconciling, since))

    threads = [threading.Thread(target=run, args=(s,)) for s in use_cases_list]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    outcomes = sorted(o for r in reports for _, _, o in _outcomes(r, pi))
    assert outcomes == [ReconcileOutcome.APPLIED, ReconcileOutcome.DUPLICATE]
    assert use_cases_list[1].store.balance(alice) == PACKAGE.tokens
    for db in databases:
        db.close()


def test_a_payment_the_return_page_already_credited_is_a_duplicate(
    use_cases: UseCaseDependencies, customer: stripe.StripeClient
) -> None:
    """Reconcile and the return-page check share one idempotent path."""
    since, alice = _window_start(), _user("alice")
    pi = _bought(use_cases, customer, alice)
    assert check_payment_intent(use_cases.checking, alice, pi).token_credits == PACKAGE.tokens

    report = reconcile(use_cases.reconciling, since)

    assert _outcomes(report, pi) == [("payment_intent.succeeded", pi, ReconcileOutcome.DUPLICATE)]
    assert use_cases.store.balance(alice) == PACKAGE.tokens


def test_a_declined_payment_is_reconciled_as_failed_and_credits_nothing(
    use_cases: UseCaseDependencies, customer: stripe.StripeClient
) -> None:
    """The payment_failed event marks the purchase failed; nothing is credited."""
    since, alice = _window_start(), _user("alice")
    created = create_payment_intent(use_cases.buying, alice, PACKAGE.id, "card")
    with pytest.raises(stripe.CardError):
        _pay(customer, created.snapshot.id, "4000000000000341")

    report = reconcile(use_cases.reconciling, since)

    assert _outcomes(report, created.snapshot.id) == [
        ("payment_intent.payment_failed", created.snapshot.id, ReconcileOutcome.APPLIED)
    ]
    assert [p.status.value for p in use_cases.store.purchases(alice)] == ["failed"]
    assert use_cases.store.balance(alice) == 0


# -- the in-memory twin: refunds, disputes and the edges of a run --------------------------------


@pytest.fixture
def clock() -> FixedClock:
    """One clock for the use_cases and the twin, so events fall where the test puts them."""
    return FixedClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def twin(clock: FixedClock) -> InMemoryPaymentGateway:
    """The Stripe twin, with no webhook delivered to anyone."""
    return InMemoryPaymentGateway(clock=clock)


def _memory_use_cases(
    twin: InMemoryPaymentGateway, clock: FixedClock, store: BalanceRepository | None = None
) -> UseCaseDependencies:
    return wire(twin, clock, store=store or InMemoryBalanceRepository(clock), ids=UuidIdSource())


@pytest.fixture
def memory_use_cases(twin: InMemoryPaymentGateway, clock: FixedClock) -> UseCaseDependencies:
    """The use cases on the twin and an in-memory store."""
    return _memory_use_cases(twin, clock)


def _paid(use_cases: UseCaseDependencies, twin: InMemoryPaymentGateway, user: str) -> str:
    pi = create_payment_intent(use_cases.buying, user, PACKAGE.id, "card").snapshot.id
    twin.succeed(pi)
    return pi


def test_refunds_and_disputes_no_webhook_delivered_are_applied_by_reconcile(
    memory_use_cases: UseCaseDependencies, twin: InMemoryPaymentGateway, clock: FixedClock
) -> None:
    """Success, a partial refund, a won and a lost dispute: all caught up, in order, once."""
    refunded = _paid(memory_use_cases, twin, "alice")
    twin.refund(refunded, 1_100)  # a fifth of ¥55.00
    disputed = _paid(memory_use_cases, twin, "bob")
    won = twin.open_dispute(disputed)
    twin.close_dispute(won, "won")
    twin.close_dispute(twin.open_dispute(disputed, 2_750), "lost")  # half, for good

    report = reconcile(memory_use_cases.reconciling, clock.now() - timedelta(hours=1))

    assert report.found == 7
    assert report.applied == 7
    assert report.complete
    assert memory_use_cases.store.balance("alice") == PACKAGE.tokens * 4 // 5
    assert memory_use_cases.store.balance("bob") == PACKAGE.tokens // 2
    assert [p.status.value for p in memory_use_cases.store.purchases("alice")] == [
        "partially_refunded"
    ]
    assert [p.status.value for p in memory_use_cases.store.purchases("bob")] == ["disputed"]

    rerun = reconcile(memory_use_cases.reconciling, clock.now() - timedelta(hours=1))

    assert (rerun.found, rerun.duplicates, rerun.applied) == (7, 7, 0)
    assert memory_use_cases.store.balance("alice") == PACKAGE.tokens * 4 // 5
    assert memory_use_cases.store.balance("bob") == PACKAGE.tokens // 2


def test_a_refund_of_tokens_already_spent_is_applied_with_its_shortfall(
    memory_use_cases: UseCaseDependencies, twin: InMemoryPaymentGateway, clock: FixedClock
) -> None:
    """Reconcile takes back what the balance holds and records the rest as a shortfall."""
    pi = _paid(memory_use_cases, twin, "alice")
    since = clock.now()
    assert reconcile(memory_use_cases.reconciling, since).applied == 1
    memory_use_cases.store.record_adjustment(
        LedgerChange("admin:spent", "alice", EntryKind.ADMIN, -900_000, reason="spent in chat")
    )
    twin.refund(pi)

    report = reconcile(memory_use_cases.reconciling, since)

    assert [e.outcome for e in report.events] == [
        ReconcileOutcome.DUPLICATE,
        ReconcileOutcome.APPLIED,
    ]
    [refund] = [e for e in memory_use_cases.store.ledger("alice") if e.kind is EntryKind.REFUND]
    assert (refund.applied, refund.shortfall) == (-100_000, 900_000)
    assert memory_use_cases.store.balance("alice") == 0


def test_events_before_the_window_are_left_alone(
    memory_use_cases: UseCaseDependencies, twin: InMemoryPaymentGateway, clock: FixedClock
) -> None:
    """Only events created at or after ``since`` are listed and applied."""
    _paid(memory_use_cases, twin, "early")
    clock.advance(timedelta(hours=2))
    later = _paid(memory_use_cases, twin, "late")

    report = reconcile(memory_use_cases.reconciling, clock.now() - timedelta(hours=1))

    assert [e.payment_intent_id for e in report.events] == [later]
    assert (memory_use_cases.store.balance("early"), memory_use_cases.store.balance("late")) == (
        0,
        PACKAGE.tokens,
    )


def test_an_inconsistent_payment_is_reported_for_review_once(
    memory_use_cases: UseCaseDependencies, twin: InMemoryPaymentGateway, clock: FixedClock
) -> None:
    """A success for the wrong amount is flagged with its reason; the rerun sees a duplicate."""
    cheap = TokenPackage(PACKAGE.id, PACKAGE.label, PACKAGE.tokens, Money(1, "cny"))
    snapshot = twin.create_payment_intent(
        IntentRequest("elsewhere-1", "mallory", cheap, PaymentMethod.CARD)
    )
    twin.succeed(snapshot.id)
    since = clock.now()

    report = reconcile(memory_use_cases.reconciling, since)

    [flagged] = report.needs_review
    assert flagged.payment_intent_id == snapshot.id
    assert flagged.reason == "paid 1 cny but the package costs 5500 cny"
    assert not report.complete
    assert memory_use_cases.store.balance("mallory") == 0
    rerun = reconcile(memory_use_cases.reconciling, since)
    assert [e.outcome for e in rerun.events] == [ReconcileOutcome.DUPLICATE]
    assert rerun.complete


class _StoreThatFailsFor:
    """A store that cannot commit one intent's changes until told to recover."""

    def __init__(self, inner: BalanceRepository, payment_intent_id: str) -> None:
        self.inner, self.failing = inner, payment_intent_id
        self.down = True

    def get_purchase(self, payment_intent_id: str) -> Purchase | None:
        return self.inner.get_purchase(payment_intent_id)

    def add_purchase(self, purchase: Purchase) -> Purchase:
        return self.inner.add_purchase(purchase)

    def commit(self, transition: PurchaseTransition) -> tuple[LedgerEntry, ...]:
        if self.down and transition.purchase.payment_intent_id == self.failing:
            raise StoreUnavailable("the database did not confirm the write")
        return self.inner.commit(transition)

    def record_delivery(self, delivery: Delivery) -> None:
        self.inner.record_delivery(delivery)

    def record_adjustment(self, change: LedgerChange) -> LedgerEntry:
        return self.inner.record_adjustment(change)

    def balance(self, user_id: str) -> int:
        return self.inner.balance(user_id)

    def purchases(self, user_id: str, limit: int = 100) -> Sequence[Purchase]:
        return self.inner.purchases(user_id, limit)

    def ledger(self, user_id: str, limit: int = 100) -> Sequence[LedgerEntry]:
        return self.inner.ledger(user_id, limit)

    def purchase_ledger(self, payment_intent_id: str) -> Sequence[LedgerEntry]:
        return self.inner.purchase_ledger(payment_intent_id)


def test_an_event_that_cannot_be_stored_fails_alone_and_the_next_run_applies_it(
    twin: InMemoryPaymentGateway, clock: FixedClock
) -> None:
    """One failure is reported with its reason, the other events still apply, a rerun heals."""
    store = _StoreThatFailsFor(InMemoryBalanceRepository(clock), "")
    use_cases = _memory_use_cases(twin, clock, store)
    first = _paid(use_cases, twin, "alice")
    store.failing = _paid(use_cases, twin, "bob")
    third = _paid(use_cases, twin, "carol")
    since = clock.now()

    report = reconcile(use_cases.reconciling, since)

    assert [(e.payment_intent_id, e.outcome) for e in report.events] == [
        (first, ReconcileOutcome.APPLIED),
        (store.failing, ReconcileOutcome.FAILED),
        (third, ReconcileOutcome.APPLIED),
    ]
    assert report.failed[0].reason == "the database did not confirm the write"
    assert not report.complete
    balances = [store.balance(user) for user in ("alice", "bob", "carol")]
    assert balances == [PACKAGE.tokens, 0, PACKAGE.tokens]

    store.down = False
    rerun = reconcile(use_cases.reconciling, since)

    assert [e.outcome for e in rerun.events] == [
        ReconcileOutcome.DUPLICATE,
        ReconcileOutcome.APPLIED,
        ReconcileOutcome.DUPLICATE,
    ]
    assert rerun.complete
    assert store.balance("bob") == PACKAGE.tokens


def test_an_unreachable_provider_stops_the_run_before_anything_is_applied(
    memory_use_cases: UseCaseDependencies, twin: InMemoryPaymentGateway, clock: FixedClock
) -> None:
    """When the events cannot be listed, reconcile raises and changes nothing."""
    _paid(memory_use_cases, twin, "alice")
    twin.make_unavailable()

    with pytest.raises(GatewayUnavailable):
        reconcile(memory_use_cases.reconciling, clock.now())

    assert memory_use_cases.store.balance("alice") == 0


def test_a_window_beyond_stripes_thirty_days_is_refused(
    memory_use_cases: UseCaseDependencies, twin: InMemoryPaymentGateway, clock: FixedClock
) -> None:
    """Older than 30 days cannot be complete, so it is refused before Stripe is asked."""
    twin.make_unavailable()  # proves the refusal comes first: listing would raise instead

    with pytest.raises(ReconcileWindowTooLong, match="30 days"):
        reconcile(
            memory_use_cases.reconciling,
            clock.now() - STRIPE_EVENT_HISTORY.window - timedelta(hours=1),
        )


def test_a_window_of_exactly_thirty_days_is_accepted(
    memory_use_cases: UseCaseDependencies, twin: InMemoryPaymentGateway, clock: FixedClock
) -> None:
    """The longest window Stripe can answer completely is allowed."""
    _paid(memory_use_cases, twin, "alice")

    assert (
        reconcile(memory_use_cases.reconciling, clock.now() - STRIPE_EVENT_HISTORY.window).applied
        == 1
    )


def test_a_window_starting_in_the_future_is_refused(
    memory_use_cases: UseCaseDependencies, clock: FixedClock
) -> None:
    """A ``since`` after now is a mistake, not an empty window."""
    with pytest.raises(UserError, match="in the future"):
        reconcile(memory_use_cases.reconciling, clock.now() + timedelta(minutes=5))
