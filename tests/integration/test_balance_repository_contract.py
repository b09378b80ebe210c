"""The BalanceRepository contract, run against every adapter, concurrency included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
import pytest

from buytokens.adapters.memory import FixedClock
from buytokens.domain.catalogue import DEFAULT_CATALOGUE
from buytokens.domain.crediting import Disposition, PurchaseTransition, credit_key
from buytokens.domain.errors import ConcurrentUpdate
from buytokens.domain.events import AttemptOutcome, DisputeState, PaymentSucceeded
from buytokens.domain.ledger import EntryKind, LedgerChange
from buytokens.domain.money import Money
from buytokens.domain.purchases import DisputeRecord, Purchase
from buytokens.ports.balances import BalanceRepository
from buytokens.services.crediting import CreditingDependencies, apply_payment_event
from tests.support.concurrency import at_once

PAID_AT = datetime(2026, 1, 1, tzinfo=UTC)


def _purchase(
    clock: FixedClock, pi: str = "pi_1", user: str = "alice", **changes: object
) -> Purchase:
    base = Purchase.pending(pi, user, "package_100k", 100_000, Money(1_000, "cny"), clock.now())
    return attrs.evolve(base, **changes)


def _credit(pi: str, user: str = "alice", tokens: int = 100_000) -> LedgerChange:
    return LedgerChange(credit_key(pi), user, EntryKind.PURCHASE, tokens, pi, "bought")


def _commit_credit(
    store: BalanceRepository, clock: FixedClock, pi: str = "pi_1", user: str = "alice"
) -> Purchase:
    purchase = _purchase(clock, pi, user, version=1, succeeded=True, tokens_credited=100_000)
    store.commit(PurchaseTransition(None, purchase, (_credit(pi, user),)))
    return purchase


def test_unknown_purchase_is_none(store: BalanceRepository) -> None:
    """An intent never stored reads back as None."""
    assert store.get_purchase("pi_missing") is None


def test_unknown_user_has_zero_balance_and_no_history(store: BalanceRepository) -> None:
    """A user never seen has nothing."""
    assert store.balance("nobody") == 0
    assert list(store.purchases("nobody")) == []
    assert list(store.ledger("nobody")) == []


def test_add_purchase_round_trips(store: BalanceRepository, clock: FixedClock) -> None:
    """A pending purchase reads back equal to what was stored."""
    purchase = _purchase(clock)
    assert store.add_purchase(purchase) == purchase
    assert store.get_purchase("pi_1") == purchase


def test_add_purchase_keeps_the_first(store: BalanceRepository, clock: FixedClock) -> None:
    """Adding a purchase for an intent already stored returns the stored one unchanged."""
    first = _purchase(clock)
    store.add_purchase(first)
    second = _purchase(clock, package_id="package_1m")
    assert store.add_purchase(second) == first
    assert store.get_purchase("pi_1") == first


def test_every_field_of_a_purchase_round_trips(store: BalanceRepository, clock: FixedClock) -> None:
    """Facts, disputes, attempts and review reasons survive storage exactly."""
    purchase = _purchase(
        clock,
        version=1,
        succeeded=True,
        attempt=AttemptOutcome.FAILED,
        attempt_at=clock.now() + timedelta(seconds=3),
        amount_refunded=250,
        disputes=tuple(
            DisputeRecord(f"dp_{i}", 500 + i, state) for i, state in enumerate(DisputeState)
        ),
        review_reason="paid 1 cny but the package costs 1000 cny",
        tokens_credited=100_000,
        tokens_refunded=25_000,
        tokens_held=50_000,
    )
    store.commit(PurchaseTransition(None, purchase, ()))
    assert store.get_purchase("pi_1") == purchase


def test_a_placeholder_purchase_without_user_round_trips(
    store: BalanceRepository, clock: FixedClock
) -> None:
    """An intent known only from a refund, with no user or price yet, is storable."""
    placeholder = Purchase(
        "pi_9", None, None, 0, None, clock.now(), clock.now(), version=1, amount_refunded=10
    )
    store.commit(PurchaseTransition(None, placeholder, ()))
    assert store.get_purchase("pi_9") == placeholder


def test_commit_applies_changes_and_returns_entries(
    store: BalanceRepository, clock: FixedClock
) -> None:
    """A committed credit raises the balance and is on the ledger with its applied delta."""
    _commit_credit(store, clock)
    assert store.balance("alice") == 100_000
    (entry,) = store.ledger("alice")
    assert (entry.key, entry.kind, entry.requested, entry.applied, entry.shortfall) == (
        "purchase:pi_1",
        EntryKind.PURCHASE,
        100_000,
        100_000,
        0,
    )
    assert entry.balance_after == 100_000
    assert entry.payment_intent_id == "pi_1"


def test_commit_of_a_new_purchase_fails_when_one_exists(
    store: BalanceRepository, clock: FixedClock
) -> None:
    """Expecting no purchase while one is stored writes nothing and raises ConcurrentUpdate."""
    store.add_purchase(_purchase(clock))
    with pytest.raises(ConcurrentUpdate):
        store.commit(
            PurchaseTransition(
                None, _purchase(clock, version=1, succeeded=True), (_credit("pi_1"),)
            )
        )
    assert store.balance("alice") == 0
    assert store.get_purchase("pi_1") == _purchase(clock)


def test_commit_at_a_stale_version_writes_nothing(
    store: BalanceRepository, clock: FixedClock
) -> None:
    """A transition from a version no longer stored is refused whole."""
    first = _commit_credit(store, clock)
    stale = PurchaseTransition(
        0,
        attrs.evolve(first, version=2, amount_refunded=1_000, tokens_refunded=100_000),
        (LedgerChange("refund:pi_1:2", "alice", EntryKind.REFUND, -100_000, "pi_1"),),
    )
    with pytest.raises(ConcurrentUpdate):
        store.commit(stale)
    assert store.balance("alice") == 100_000
    assert store.get_purchase("pi_1") == first
    assert len(store.ledger("alice")) == 1


def test_a_key_already_on_the_ledger_is_never_applied_again(
    store: BalanceRepository, clock: FixedClock
) -> None:
    """Even at the right version, a change whose key is stored aborts the whole transition."""
    first = _commit_credit(store, clock)
    again = PurchaseTransition(1, attrs.evolve(first, version=2), (_credit("pi_1"),))
    with pytest.raises(ConcurrentUpdate):
        store.commit(again)
    assert store.balance("alice") == 100_000
    assert store.get_purchase("pi_1") == first


def test_a_takeback_never_drives_a_balance_below_zero(
    store: BalanceRepository, clock: FixedClock
) -> None:
    """Taking back more than the balance holds takes what is there and records the shortfall."""
    first = _commit_credit(store, clock)
    store.record_adjustment(
        LedgerChange("admin:spent", "alice", EntryKind.ADMIN, -90_000, reason="spent")
    )
    refunded = attrs.evolve(first, version=2, amount_refunded=1_000, tokens_refunded=100_000)
    (entry,) = store.commit(
        PurchaseTransition(
            1,
            refunded,
            (LedgerChange("refund:pi_1:2", "alice", EntryKind.REFUND, -100_000, "pi_1"),),
        )
    )
    assert (entry.requested, entry.applied, entry.shortfall, entry.balance_after) == (
        -100_000,
        -10_000,
        90_000,
        0,
    )
    assert store.balance("alice") == 0


def test_a_purchase_ledger_lists_its_own_applied_entries_oldest_first(
    store: BalanceRepository, clock: FixedClock
) -> None:
    """Only the purchase's entries, with what was applied and the shortfall, in order."""
    first = _commit_credit(store, clock)
    _commit_credit(store, clock, "pi_2")
    store.record_adjustment(
        LedgerChange("admin:spent", "alice", EntryKind.ADMIN, -150_000, reason="spent")
    )
    held = attrs.evolve(first, version=2, tokens_held=100_000)
    store.commit(
        PurchaseTransition(
            1, held, (LedgerChange("dispute:pi_1:2", "alice", EntryKind.DISPUTE, -100_000, "pi_1"),)
        )
    )
    entries = store.purchase_ledger("pi_1")
    assert [(e.key, e.requested, e.applied, e.shortfall) for e in entries] == [
        (credit_key("pi_1"), 100_000, 100_000, 0),
        ("dispute:pi_1:2", -100_000, -50_000, 50_000),
    ]
    assert [e.key for e in store.purchase_ledger("pi_2")] == [credit_key("pi_2")]
    assert list(store.purchase_ledger("pi_none")) == []


def test_adjustments_apply_once_per_key(store: BalanceRepository) -> None:
    """The same adjustment key twice changes the balance once and returns the first entry."""
    change = LedgerChange("admin:k1", "bob", EntryKind.ADMIN, 500, reason="welcome")
    first = store.record_adjustment(change)
    second = store.record_adjustment(attrs.evolve(change, tokens=9_999))
    assert first == second
    assert store.balance("bob") == 500


def test_purchases_are_newest_first_limited_and_private(
    store: BalanceRepository, clock: FixedClock
) -> None:
    """A user's purchases come newest first, at most ``limit``, and never another user's."""
    for n in range(5):
        store.add_purchase(_purchase(clock, f"pi_{n}"))
        clock.advance(timedelta(seconds=1))
    store.add_purchase(_purchase(clock, "pi_bob", "bob"))
    assert [p.payment_intent_id for p in store.purchases("alice", limit=3)] == [
        "pi_4",
        "pi_3",
        "pi_2",
    ]
    assert [p.payment_intent_id for p in store.purchases("bob")] == ["pi_bob"]


def test_ledger_is_newest_first_and_limited(store: BalanceRepository) -> None:
    """A user's ledger entries come newest first, at most ``limit``."""
    for n in range(4):
        store.record_adjustment(
            LedgerChange(f"admin:{n}", "carol", EntryKind.ADMIN, n + 1, reason=f"r{n}")
        )
    assert [e.key for e in store.ledger("carol", limit=2)] == ["admin:3", "admin:2"]
    assert store.balance("carol") == 10


def test_balance_equals_the_sum_of_applied_deltas(
    store: BalanceRepository, clock: FixedClock
) -> None:
    """Credits, clamped take-backs and adjustments add up to the balance."""
    _commit_credit(store, clock, "pi_a")
    _commit_credit(store, clock, "pi_b")
    store.record_adjustment(
        LedgerChange("admin:x", "alice", EntryKind.ADMIN, -250_000, reason="spent")
    )
    store.record_adjustment(LedgerChange("admin:y", "alice", EntryKind.ADMIN, 7, reason="gift"))
    entries = store.ledger("alice")
    assert store.balance("alice") == sum(e.applied for e in entries) == 7
    assert sum(e.shortfall for e in entries) == 50_000


def test_flagged_purchases_are_listed_longest_waiting_first(
    store: BalanceRepository, clock: FixedClock
) -> None:
    """Only purchases awaiting review are listed, oldest first, at most ``limit``."""
    for n, reason in enumerate(["wrong amount", None, "unknown package", "wrong owner"]):
        clock.advance(timedelta(seconds=1))
        purchase = _purchase(clock, f"pi_{n}", version=1, succeeded=True, review_reason=reason)
        store.commit(PurchaseTransition(None, attrs.evolve(purchase, updated_at=clock.now())))
    flagged = store.flagged_purchases(limit=2)
    assert [(p.payment_intent_id, p.review_reason) for p in flagged] == [
        ("pi_0", "wrong amount"),
        ("pi_2", "unknown package"),
    ]
    assert [p.payment_intent_id for p in store.flagged_purchases()] == ["pi_0", "pi_2", "pi_3"]


def test_any_spelling_of_an_object_id_names_one_user(
    store: BalanceRepository, clock: FixedClock
) -> None:
    """Upper- and lower-case spellings of one ObjectId share a balance, a ledger and purchases."""
    lower = "0123456789abcdef01234567"
    _commit_credit(store, clock, "pi_1", lower.upper())
    store.record_adjustment(LedgerChange("admin:k1", lower, EntryKind.ADMIN, 500, reason="r"))
    for spelling in (lower, lower.upper()):
        assert store.balance(spelling) == 100_500
        assert {entry.user_id for entry in store.ledger(spelling)} == {lower}
        assert [p.user_id for p in store.purchases(spelling)] == [lower]
    assert store.balance("alice") == 0  # other ids are kept as they are


def _paid(pi: str, user: str = "alice") -> PaymentSucceeded:
    return PaymentSucceeded(f"evt_{pi}", pi, Money(1_000, "cny"), user, "package_100k", PAID_AT)


def test_twenty_concurrent_deliveries_of_one_payment_credit_once(
    store: BalanceRepository, clock: FixedClock
) -> None:
    """Twenty threads delivering the same success at once: one applies it, the others see it."""
    outcomes = at_once(
        lambda _: (
            apply_payment_event(
                CreditingDependencies(store, DEFAULT_CATALOGUE, clock), _paid("pi_1")
            ).disposition
        ),
        20,
    )
    assert sorted(outcomes) == sorted([Disposition.APPLIED] + [Disposition.DUPLICATE] * 19)
    assert store.balance("alice") == 100_000
    assert len(store.ledger("alice")) == 1


def test_ten_concurrent_payments_of_a_new_user_are_all_credited(
    store: BalanceRepository, clock: FixedClock
) -> None:
    """Ten different payments racing to create one balance never lose an update."""
    outcomes = at_once(
        lambda n: (
            apply_payment_event(
                CreditingDependencies(store, DEFAULT_CATALOGUE, clock), _paid(f"pi_{n}", "newbie")
            ).disposition
        ),
        10,
    )
    assert outcomes == [Disposition.APPLIED] * 10
    entries = store.ledger("newbie")
    assert store.balance("newbie") == sum(e.applied for e in entries) == 10 * 100_000
    assert sorted(e.balance_after for e in entries) == [100_000 * n for n in range(1, 11)]
