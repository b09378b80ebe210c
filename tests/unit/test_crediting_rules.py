"""The crediting rules, driven through the use case with the in-memory store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from buytokens.adapters.memory import FixedClock, InMemoryBalanceRepository, SequentialIdSource
from buytokens.domain.catalogue import DEFAULT_CATALOGUE
from buytokens.domain.crediting import Disposition, credit_key, taken_back
from buytokens.domain.errors import NotFound, UserError
from buytokens.domain.events import (
    AttemptOutcome,
    ChargeRefunded,
    DisputeChanged,
    DisputeState,
    PaymentAttempted,
    PaymentEvent,
    PaymentSucceeded,
)
from buytokens.domain.ledger import EntryKind, LedgerEntry
from buytokens.domain.money import Money
from buytokens.domain.purchases import Purchase, PurchaseStatus
from buytokens.services.admin import (
    ApprovalDependencies,
    GrantDependencies,
    approve_purchase,
    grant_tokens,
    purchases_to_review,
)
from buytokens.services.crediting import Applied, CreditingDependencies, apply_payment_event

T0 = datetime(2026, 5, 1, tzinfo=UTC)
PRICE = Money(3_500, "cny")  # package_500k
TOKENS = 500_000


@pytest.fixture
def clock() -> FixedClock:
    """A stopped clock."""
    return FixedClock(T0)


@pytest.fixture
def store(clock: FixedClock) -> InMemoryBalanceRepository:
    """An empty in-memory store."""
    return InMemoryBalanceRepository(clock)


def _succeeded(
    pi: str = "pi_1",
    amount: Money = PRICE,
    user: str | None = "alice",
    package: str | None = "package_500k",
) -> PaymentSucceeded:
    return PaymentSucceeded(f"evt_{pi}_ok", pi, amount, user, package, T0)


def _refund(total: int, pi: str = "pi_1") -> ChargeRefunded:
    return ChargeRefunded(f"evt_rf_{total}", pi, Money(total, "cny"), T0)


def _dispute(
    state: DisputeState, amount: int = 3_500, dispute: str = "dp_1", pi: str = "pi_1"
) -> DisputeChanged:
    return DisputeChanged(f"evt_{dispute}_{state}", pi, dispute, Money(amount, "cny"), state, T0)


def _attempt(outcome: AttemptOutcome, seconds: int) -> PaymentAttempted:
    return PaymentAttempted(
        f"evt_{outcome}_{seconds}", "pi_1", outcome, T0 + timedelta(seconds=seconds)
    )


class _Harness:
    def __init__(self, store: InMemoryBalanceRepository, clock: FixedClock) -> None:
        self.store, self.clock = store, clock

    def apply(self, event: PaymentEvent) -> Applied:
        return apply_payment_event(
            CreditingDependencies(self.store, DEFAULT_CATALOGUE, self.clock), event
        )

    def status(self, pi: str = "pi_1") -> PurchaseStatus:
        purchase = self.store.get_purchase(pi)
        assert purchase is not None
        return purchase.status


@pytest.fixture
def shop(store: InMemoryBalanceRepository, clock: FixedClock) -> _Harness:
    """The use case bound to the store, with alice's pending purchase of package_500k."""
    store.add_purchase(Purchase.pending("pi_1", "alice", "package_500k", TOKENS, PRICE, T0))
    return _Harness(store, clock)


def test_success_credits_the_package_tokens(shop: _Harness) -> None:
    """A genuine success credits the package's tokens and marks the purchase succeeded."""
    applied = shop.apply(_succeeded())
    assert applied.disposition is Disposition.APPLIED
    assert [(e.kind, e.applied) for e in applied.entries] == [(EntryKind.PURCHASE, TOKENS)]
    assert shop.store.balance("alice") == TOKENS
    assert shop.status() is PurchaseStatus.SUCCEEDED


def test_duplicate_webhook_credits_once(shop: _Harness) -> None:
    """The same success delivered again decides nothing."""
    shop.apply(_succeeded())
    again = shop.apply(_succeeded())
    assert again.disposition is Disposition.DUPLICATE
    assert again.entries == ()
    assert shop.store.balance("alice") == TOKENS


def test_an_intent_never_seen_is_credited_from_its_metadata(
    store: InMemoryBalanceRepository, clock: FixedClock
) -> None:
    """A success for an intent another instance created credits from metadata and the catalogue."""
    applied = _Harness(store, clock).apply(_succeeded("pi_other", user="bob"))
    assert applied.disposition is Disposition.APPLIED
    assert store.balance("bob") == TOKENS
    purchase = store.get_purchase("pi_other")
    assert purchase is not None
    assert (purchase.user_id, purchase.package_id, purchase.price) == ("bob", "package_500k", PRICE)
    assert (purchase.tokens, purchase.created_at, purchase.updated_at) == (TOKENS, T0, T0)


@pytest.mark.parametrize(
    ("event", "why"),
    [
        (_succeeded(amount=Money(1, "cny")), "paid 1 cny but the package costs 3500 cny"),
        (_succeeded(amount=Money(3_500, "usd")), "paid 3500 usd but the package costs 3500 cny"),
        (_succeeded(user=None), "the payment carries no userId/packageId metadata"),
        (_succeeded(package=None), "the payment carries no userId/packageId metadata"),
        (
            _succeeded(user="mallory"),
            "metadata userId 'mallory' differs from the purchaser 'alice'",
        ),
        (
            _succeeded(package="package_10m"),
            "metadata packageId 'package_10m' differs from 'package_500k'",
        ),
    ],
)
def test_an_inconsistent_success_is_flagged_and_credits_nothing(
    shop: _Harness, event: PaymentSucceeded, why: str
) -> None:
    """Amount, currency, owner or package that disagree leave the purchase in review, uncredited."""
    applied = shop.apply(event)
    assert applied.disposition is Disposition.NEEDS_REVIEW
    assert applied.reason == why
    assert shop.store.get_purchase("pi_1").review_reason == why  # type: ignore[union-attr]
    assert shop.status() is PurchaseStatus.NEEDS_REVIEW
    assert shop.store.balance("alice") == 0
    assert shop.store.balance("mallory") == 0
    assert shop.apply(event).disposition is Disposition.DUPLICATE


def _discounted(discount: int | None, paid: int) -> PaymentSucceeded:
    return PaymentSucceeded(
        "evt_d",
        "pi_d",
        Money(paid, "cny"),
        "bob",
        "package_500k",
        T0,
        promo_code="SPRING",
        discount_amount=discount,
    )


@pytest.mark.parametrize(("discount", "paid"), [(1, 3_499), (3_499, 1)])
def test_a_signed_discount_that_leaves_something_to_pay_prices_an_intent_never_seen(
    store: InMemoryBalanceRepository, clock: FixedClock, discount: int, paid: int
) -> None:
    """From one minor unit off to all but one: the package's tokens for the price paid."""
    applied = _Harness(store, clock).apply(_discounted(discount, paid))
    assert applied.disposition is Disposition.APPLIED
    assert store.balance("bob") == TOKENS
    assert applied.purchase is not None
    assert applied.purchase.price == Money(paid, "cny")


@pytest.mark.parametrize("discount", [0, None, -1, 3_500])
def test_a_signed_discount_that_takes_nothing_or_everything_is_flagged(
    store: InMemoryBalanceRepository, clock: FixedClock, discount: int | None
) -> None:
    """No checkout signs a discount of nothing or of the whole price: the full price paid
    with such metadata goes to review, uncredited, naming the metadata."""
    applied = _Harness(store, clock).apply(_discounted(discount, 3_500))
    assert (applied.disposition, applied.reason) == (
        Disposition.NEEDS_REVIEW,
        f"the promo code's discountAmount metadata {discount!r} does not fit",
    )
    assert store.balance("bob") == 0


def test_an_unknown_package_is_flagged(store: InMemoryBalanceRepository, clock: FixedClock) -> None:
    """Metadata naming a package we do not sell credits nothing."""
    applied = _Harness(store, clock).apply(_succeeded("pi_x", package="package_free"))
    assert applied.disposition is Disposition.NEEDS_REVIEW
    assert applied.reason == "unknown package 'package_free'"
    assert store.balance("alice") == 0
    flagged = store.get_purchase("pi_x")
    assert flagged is not None
    # Nothing is known of what it would credit: no tokens, no price, for an operator to see.
    assert (flagged.user_id, flagged.package_id, flagged.tokens, flagged.price) == (
        "alice",
        "package_free",
        0,
        None,
    )


def test_a_late_failure_never_undoes_a_success(shop: _Harness) -> None:
    """payment_failed or processing after success change nothing."""
    shop.apply(_succeeded())
    for outcome in AttemptOutcome:
        late = shop.apply(_attempt(outcome, 99))
        assert late.disposition is Disposition.DUPLICATE
        assert late.reason == "a late attempt never undoes a success"
    assert shop.status() is PurchaseStatus.SUCCEEDED
    assert shop.store.balance("alice") == TOKENS


def test_attempts_resolve_by_their_own_time_not_arrival(shop: _Harness) -> None:
    """A failure that happened before a later retry's processing does not override it."""
    shop.apply(_attempt(AttemptOutcome.PROCESSING, 20))
    assert shop.apply(_attempt(AttemptOutcome.FAILED, 10)).disposition is Disposition.DUPLICATE
    assert shop.status() is PurchaseStatus.PROCESSING
    shop.apply(_attempt(AttemptOutcome.FAILED, 30))
    assert shop.status() is PurchaseStatus.FAILED


def test_an_attempt_keeps_what_the_purchase_was_bought_with(shop: _Harness) -> None:
    """A failed attempt changes the attempt and the version, nothing the buyer chose."""
    before = shop.store.get_purchase("pi_1")
    assert before is not None
    shop.clock.advance(timedelta(minutes=5))
    shop.apply(_attempt(AttemptOutcome.FAILED, 30))
    after = shop.store.get_purchase("pi_1")
    assert after is not None
    assert (after.user_id, after.package_id, after.tokens, after.price, after.created_at) == (
        "alice",
        "package_500k",
        TOKENS,
        PRICE,
        before.created_at,
    )
    assert (after.attempt, after.attempt_at) == (AttemptOutcome.FAILED, T0 + timedelta(seconds=30))
    assert (after.version, after.updated_at) == (before.version + 1, T0 + timedelta(minutes=5))


def test_an_attempt_on_an_unknown_intent_is_ignored(
    store: InMemoryBalanceRepository, clock: FixedClock
) -> None:
    """Nothing is stored for a failure of an intent we never saw."""
    applied = _Harness(store, clock).apply(_attempt(AttemptOutcome.FAILED, 1))
    assert applied.disposition is Disposition.IGNORED
    assert applied.reason == "attempt on an intent this store never saw"
    assert store.get_purchase("pi_1") is None


def test_refunds_take_back_the_cumulative_share_once(shop: _Harness) -> None:
    """Partial then full refunds, duplicated and reordered, take back exactly the package."""
    shop.apply(_succeeded())
    shop.apply(_refund(700))
    assert shop.store.balance("alice") == TOKENS - 100_000
    assert shop.status() is PurchaseStatus.PARTIALLY_REFUNDED
    assert shop.apply(_refund(700)).disposition is Disposition.DUPLICATE
    shop.apply(_refund(3_500))
    assert shop.apply(_refund(700)).disposition is Disposition.DUPLICATE
    assert shop.store.balance("alice") == 0
    assert shop.status() is PurchaseStatus.REFUNDED
    refunds = [e for e in shop.store.ledger("alice") if e.kind is EntryKind.REFUND]
    assert sorted(e.requested for e in refunds) == [-400_000, -100_000]


def test_a_refund_before_the_success_is_settled_when_the_success_arrives(shop: _Harness) -> None:
    """Out of order: refund first, then success, nets to the unrefunded share."""
    assert shop.apply(_refund(1_750)).entries == ()
    shop.apply(_succeeded())
    assert shop.store.balance("alice") == TOKENS // 2
    assert shop.status() is PurchaseStatus.PARTIALLY_REFUNDED


def test_a_refund_for_an_unknown_intent_is_remembered(
    store: InMemoryBalanceRepository, clock: FixedClock
) -> None:
    """A refund that outruns the success of a foreign intent is applied once the success arrives."""
    shop = _Harness(store, clock)
    shop.apply(_refund(3_500, pi="pi_foreign"))
    known = store.get_purchase("pi_foreign")
    assert known is not None
    assert (known.user_id, known.tokens, known.price, known.amount_refunded) == (
        None,
        0,
        None,
        3_500,
    )
    assert (known.created_at, known.updated_at) == (T0, T0)
    for pi, event in [
        ("pi_d", _dispute(DisputeState.OPEN, pi="pi_d")),
        ("pi_ok", _succeeded("pi_ok", user="carol")),
    ]:
        clock.advance(timedelta(seconds=1))
        shop.apply(event)
        first = store.get_purchase(pi)
        assert first is not None
        assert (first.created_at, first.updated_at) == (clock.now(), clock.now())
    shop.apply(_succeeded("pi_foreign", user="bob"))
    assert store.balance("bob") == 0
    assert shop.status("pi_foreign") is PurchaseStatus.REFUNDED


def test_a_refund_after_the_tokens_were_spent_records_a_shortfall(shop: _Harness) -> None:
    """The balance stops at zero and the uncollectable rest is on the ledger entry."""
    shop.apply(_succeeded())
    grant_tokens(
        GrantDependencies(shop.store, SequentialIdSource()), "alice", -400_000, "spent on chats"
    )
    applied = shop.apply(_refund(3_500))
    (entry,) = applied.entries
    assert (entry.requested, entry.applied, entry.shortfall) == (-TOKENS, -100_000, 400_000)
    assert shop.store.balance("alice") == 0


def test_a_dispute_holds_and_a_won_dispute_releases_once(shop: _Harness) -> None:
    """Opened twice then won twice: held once, released once."""
    shop.apply(_succeeded())
    shop.apply(_dispute(DisputeState.OPEN))
    shop.apply(_dispute(DisputeState.OPEN))
    assert shop.store.balance("alice") == 0
    assert shop.status() is PurchaseStatus.DISPUTED
    shop.apply(_dispute(DisputeState.WON))
    shop.apply(_dispute(DisputeState.WON))
    assert shop.store.balance("alice") == TOKENS
    assert shop.status() is PurchaseStatus.SUCCEEDED
    assert [e.requested for e in shop.store.ledger("alice") if e.kind is EntryKind.DISPUTE] == [
        TOKENS,
        -TOKENS,
    ]


def test_a_lost_dispute_keeps_the_tokens_back(shop: _Harness) -> None:
    """A closed-lost dispute arriving before its opening still holds exactly once."""
    shop.apply(_succeeded())
    shop.apply(_dispute(DisputeState.LOST, amount=1_750))
    assert (
        shop.apply(_dispute(DisputeState.OPEN, amount=1_750)).disposition is Disposition.DUPLICATE
    )
    assert shop.store.balance("alice") == TOKENS // 2
    assert shop.status() is PurchaseStatus.DISPUTED


def test_a_refund_of_money_a_chargeback_already_took_moves_no_tokens(shop: _Harness) -> None:
    """The hold becomes the refund's share: no release and take-back, and winning gives nothing."""
    shop.apply(_succeeded())
    shop.apply(_dispute(DisputeState.OPEN))
    assert shop.store.balance("alice") == 0
    applied = shop.apply(_refund(3_500))
    assert applied.disposition is Disposition.APPLIED
    assert applied.entries == ()
    purchase = shop.store.get_purchase("pi_1")
    assert purchase is not None
    assert (purchase.tokens_refunded, purchase.tokens_held) == (TOKENS, 0)
    assert shop.apply(_dispute(DisputeState.WON)).entries == ()
    assert shop.store.balance("alice") == 0


def test_takebacks_never_exceed_the_credit(shop: _Harness) -> None:
    """A full refund plus a full dispute takes back the package once, not twice."""
    shop.apply(_succeeded())
    shop.apply(_refund(3_500))
    shop.apply(_dispute(DisputeState.LOST))
    purchase = shop.store.get_purchase("pi_1")
    assert purchase is not None
    assert purchase.tokens_taken_back == TOKENS
    assert shop.store.balance("alice") == 0


def test_grant_deducts_and_records_the_reason(store: InMemoryBalanceRepository) -> None:
    """Admin grants and deductions land on the ledger with their reason."""
    ids = SequentialIdSource()
    grant_tokens(GrantDependencies(store, ids), "carol", 1_000, "welcome bonus")
    entry = grant_tokens(GrantDependencies(store, ids), "carol", -1_500, "chargeback fee")
    assert (entry.applied, entry.shortfall, entry.reason) == (-1_000, 500, "chargeback fee")
    assert store.balance("carol") == 0


def test_grant_with_the_same_key_applies_once(store: InMemoryBalanceRepository) -> None:
    """A retried admin command with its key does not double the grant."""
    ids = SequentialIdSource()
    grant_tokens(GrantDependencies(store, ids), "dave", 10, "promo", key="promo-1")
    grant_tokens(GrantDependencies(store, ids), "dave", 10, "promo", key="promo-1")
    assert store.balance("dave") == 10


@pytest.mark.parametrize(
    ("user", "tokens", "reason"), [("", 5, "x"), ("u", 0, "x"), ("u", 5, "  ")]
)
def test_grant_refuses_meaningless_input(
    store: InMemoryBalanceRepository, user: str, tokens: int, reason: str
) -> None:
    """Empty user, zero tokens or no reason is a user error."""
    with pytest.raises(UserError):
        grant_tokens(GrantDependencies(store, SequentialIdSource()), user, tokens, reason)


def test_an_approved_review_credits_once_and_refunds_then_take_back(shop: _Harness) -> None:
    """Approval credits the package through the one credit key; later refunds work as usual."""
    shop.apply(_succeeded(amount=Money(3_499, "cny")))
    applied = approve_purchase(
        ApprovalDependencies(shop.store, shop.clock), "pi_1", "customer paid by bank transfer"
    )
    assert [(e.kind, e.applied) for e in applied.entries] == [(EntryKind.PURCHASE, TOKENS)]
    assert "customer paid by bank transfer" in applied.entries[0].reason
    assert shop.status() is PurchaseStatus.SUCCEEDED
    with pytest.raises(UserError, match="not awaiting review"):
        approve_purchase(ApprovalDependencies(shop.store, shop.clock), "pi_1", "again")
    shop.apply(_refund(3_500))
    assert shop.store.balance("alice") == 0
    assert shop.status() is PurchaseStatus.REFUNDED


def test_approval_needs_a_flagged_purchase_with_a_known_package(
    store: InMemoryBalanceRepository, clock: FixedClock
) -> None:
    """Unknown intents, unflagged purchases and unknown packages cannot be approved."""
    shop = _Harness(store, clock)
    with pytest.raises(NotFound):
        approve_purchase(ApprovalDependencies(store, clock), "pi_none", "x")
    shop.apply(_succeeded("pi_ok", user="bob"))
    with pytest.raises(UserError, match="not awaiting review"):
        approve_purchase(ApprovalDependencies(store, clock), "pi_ok", "x")
    shop.apply(_succeeded("pi_odd", user="bob", package="package_free"))
    with pytest.raises(UserError, match="cannot be credited from its own record") as refused:
        approve_purchase(ApprovalDependencies(store, clock), "pi_odd", "x")
    assert refused.value.code == "not_approvable"
    assert store.balance("bob") == TOKENS


def test_ledger_entries_carry_their_documented_keys_and_reasons(
    shop: _Harness, clock: FixedClock
) -> None:
    """purchase:<intent>, refund:<intent>:<version>, dispute:<intent>:<version>, with reasons."""
    shop.apply(_succeeded())
    clock.advance(timedelta(seconds=1))
    shop.apply(_refund(700))
    shop.apply(_dispute(DisputeState.OPEN, amount=1_750))
    shop.apply(_dispute(DisputeState.WON, amount=1_750))
    entries = [(e.key, e.kind, e.requested, e.reason) for e in reversed(shop.store.ledger("alice"))]
    assert entries == [
        ("purchase:pi_1", EntryKind.PURCHASE, TOKENS, "bought package_500k"),
        ("refund:pi_1:2", EntryKind.REFUND, -100_000, "refund of 700 minor units"),
        ("dispute:pi_1:3", EntryKind.DISPUTE, -250_000, "dispute hold"),
        ("dispute:pi_1:4", EntryKind.DISPUTE, 250_000, "dispute released"),
    ]
    assert all(e.payment_intent_id == "pi_1" for e in shop.store.ledger("alice"))
    assert all(e.user_id == "alice" for e in shop.store.ledger("alice"))


def test_every_transition_is_stamped_with_the_time_it_was_decided(
    shop: _Harness, clock: FixedClock
) -> None:
    """updated_at follows the clock through success, refund, dispute and approval."""
    for seconds, event in enumerate([_succeeded(amount=Money(1, "cny")), _refund(700)], 1):
        clock.advance(timedelta(seconds=seconds))
        shop.apply(event)
        assert shop.store.get_purchase("pi_1").updated_at == clock.now()  # type: ignore[union-attr]
    clock.advance(timedelta(seconds=5))
    approve_purchase(ApprovalDependencies(shop.store, clock), "pi_1", "paid by bank transfer")
    approved = shop.store.get_purchase("pi_1")
    assert approved is not None
    assert (approved.updated_at, approved.review_reason, approved.version) == (clock.now(), None, 3)
    clock.advance(timedelta(seconds=5))
    shop.apply(_dispute(DisputeState.OPEN))
    assert shop.store.get_purchase("pi_1").updated_at == clock.now()  # type: ignore[union-attr]


def test_an_approval_settles_known_refunds_and_chargebacks_with_the_credit(
    shop: _Harness, clock: FixedClock
) -> None:
    """Approving after a refund and a chargeback credits, then takes both shares back at once."""
    shop.apply(_succeeded(amount=Money(3_499, "cny")))
    shop.apply(_refund(700))
    shop.apply(_dispute(DisputeState.OPEN, amount=1_750))
    applied = approve_purchase(ApprovalDependencies(shop.store, clock), "pi_1", "ok")
    assert [(e.kind, e.applied) for e in applied.entries] == [
        (EntryKind.PURCHASE, TOKENS),
        (EntryKind.REFUND, -100_000),
        (EntryKind.DISPUTE, -250_000),
    ]
    assert applied.entries[0].reason == "approved after review: ok"
    assert all(e.payment_intent_id == "pi_1" for e in applied.entries)
    assert shop.store.balance("alice") == 150_000
    shop.apply(_dispute(DisputeState.WON, amount=1_750))
    assert shop.store.balance("alice") == 400_000


def test_a_purchase_flagged_after_its_credit_is_cleared_by_approval_without_a_second_credit(
    shop: _Harness, clock: FixedClock
) -> None:
    """A refund in another currency flags a credited purchase; approving credits nothing again."""
    shop.apply(_succeeded())
    clock.advance(timedelta(seconds=1))
    applied = shop.apply(ChargeRefunded("evt_usd", "pi_1", Money(100, "usd"), T0))
    assert applied.disposition is Disposition.NEEDS_REVIEW
    assert applied.reason == "refund in usd for a cny payment"
    flagged = shop.store.get_purchase("pi_1")
    assert flagged is not None
    assert (flagged.review_reason, flagged.updated_at) == (applied.reason, clock.now())
    assert shop.apply(ChargeRefunded("evt_usd2", "pi_1", Money(200, "usd"), T0)).disposition is (
        Disposition.DUPLICATE
    )
    cleared = approve_purchase(
        ApprovalDependencies(shop.store, clock), "pi_1", "refund was in cny after all"
    )
    assert cleared.entries == ()
    assert shop.status() is PurchaseStatus.SUCCEEDED
    assert shop.store.balance("alice") == TOKENS


def test_refusals_say_what_is_wrong(
    shop: _Harness, store: InMemoryBalanceRepository, clock: FixedClock
) -> None:
    """Each refusal has its own message and code."""
    ids = SequentialIdSource()
    for user, tokens, reason, message in [
        (" ", 5, "x", "user id must not be empty"),
        ("u", 0, "x", "tokens must be a non-zero whole number"),
        ("u", 5, " ", "a reason is required for the audit trail"),
    ]:
        with pytest.raises(UserError, match=f"^{message}$"):
            grant_tokens(GrantDependencies(store, ids), user, tokens, reason)
    with pytest.raises(NotFound, match=r"^no purchase with that payment intent id$"):
        approve_purchase(ApprovalDependencies(store, clock), "pi_none", "x")
    shop.apply(_succeeded())
    with pytest.raises(UserError) as not_flagged:
        approve_purchase(ApprovalDependencies(store, clock), "pi_1", "x")
    assert not_flagged.value.code == "not_in_review"
    assert str(not_flagged.value) == "purchase pi_1 is not awaiting review (it is succeeded)"
    shop.apply(_succeeded("pi_2", amount=Money(1, "cny")))
    with pytest.raises(UserError, match=r"^a reason is required for the audit trail$"):
        approve_purchase(ApprovalDependencies(store, clock), "pi_2", "  ")
    shop.apply(_succeeded("pi_3", package="package_free"))
    with pytest.raises(UserError) as unknown:
        approve_purchase(ApprovalDependencies(store, clock), "pi_3", "x")
    assert unknown.value.code == "not_approvable"
    assert str(unknown.value).startswith(
        "purchase pi_3 cannot be credited from its own record (unknown package 'package_free')"
    )


def test_a_grant_is_an_admin_entry_with_its_key_and_trimmed_reason(
    store: InMemoryBalanceRepository,
) -> None:
    """The entry says admin, carries the operator's key and the reason without padding."""
    entry = grant_tokens(
        GrantDependencies(store, SequentialIdSource("g")), "erin", 7, "  promo  ", key="k-1"
    )
    assert (entry.key, entry.kind, entry.reason, entry.requested) == (
        "admin:k-1",
        EntryKind.ADMIN,
        "promo",
        7,
    )
    assert (
        grant_tokens(GrantDependencies(store, SequentialIdSource("g")), "erin", 1, "r").key
        == "admin:g-1"
    )


def test_the_credit_key_is_one_per_payment_intent() -> None:
    """The ledger key of a purchase credit is purchase:<intent id>."""
    assert credit_key("pi_42") == "purchase:pi_42"


@pytest.mark.parametrize(
    ("entries", "taken"),
    [
        ([], 0),
        ([(EntryKind.PURCHASE, 500), (EntryKind.ADMIN, -40)], 0),
        ([(EntryKind.REFUND, -100), (EntryKind.DISPUTE, -70)], 170),
        ([(EntryKind.DISPUTE, -70), (EntryKind.DISPUTE, 70)], 0),
    ],
)
def test_taken_back_counts_what_refund_and_dispute_entries_applied(
    entries: list[tuple[EntryKind, int]], taken: int
) -> None:
    """Applied amounts of take-backs and give-backs count; credits and grants do not."""
    ledger = [
        LedgerEntry(f"k{i}", "u", kind, applied - 5, applied, 5, 0, T0)
        for i, (kind, applied) in enumerate(entries)
    ]
    assert taken_back(ledger) == taken


@pytest.mark.parametrize(
    ("first", "second", "kept", "second_applies"),
    [
        (AttemptOutcome.PROCESSING, AttemptOutcome.FAILED, AttemptOutcome.FAILED, True),
        (AttemptOutcome.FAILED, AttemptOutcome.PROCESSING, AttemptOutcome.FAILED, False),
        (AttemptOutcome.FAILED, AttemptOutcome.CANCELED, AttemptOutcome.CANCELED, True),
        (AttemptOutcome.CANCELED, AttemptOutcome.FAILED, AttemptOutcome.CANCELED, False),
        (AttemptOutcome.CANCELED, AttemptOutcome.PROCESSING, AttemptOutcome.CANCELED, False),
    ],
)
def test_attempts_in_the_same_second_resolve_towards_the_more_final_outcome(
    shop: _Harness,
    clock: FixedClock,
    first: AttemptOutcome,
    second: AttemptOutcome,
    kept: AttemptOutcome,
    second_applies: bool,
) -> None:
    """processing < failed < canceled when Stripe stamps two attempts with one time."""
    assert shop.apply(_attempt(first, 5)).disposition is Disposition.APPLIED
    clock.advance(timedelta(seconds=1))
    applied = shop.apply(_attempt(second, 5))
    expected = Disposition.APPLIED if second_applies else Disposition.DUPLICATE
    assert applied.disposition is expected
    purchase = shop.store.get_purchase("pi_1")
    assert purchase is not None
    assert purchase.attempt is kept
    assert purchase.updated_at == (clock.now() if second_applies else T0)


def test_a_flagged_purchase_that_never_succeeded_cannot_be_approved(shop: _Harness) -> None:
    """A refund in another currency flags a pending purchase; there is no payment to credit."""
    shop.apply(ChargeRefunded("evt_usd", "pi_1", Money(100, "usd"), T0))
    with pytest.raises(UserError) as refused:
        approve_purchase(ApprovalDependencies(shop.store, shop.clock), "pi_1", "x")
    assert refused.value.code == "not_approvable"
    assert str(refused.value) == (
        "purchase pi_1 cannot be credited from its own record (refund in usd for a cny payment)"
    )
    assert shop.store.balance("alice") == 0


def test_approvals_are_applied_transitions_with_versioned_keys(
    shop: _Harness, clock: FixedClock
) -> None:
    """An approval's take-backs carry its own version; clearing a credited flag is applied too."""
    shop.apply(_refund(700))
    shop.apply(_succeeded(amount=Money(3_499, "cny")))
    clock.advance(timedelta(seconds=1))
    applied = approve_purchase(ApprovalDependencies(shop.store, clock), "pi_1", "ok")
    assert applied.disposition is Disposition.APPLIED
    assert [e.key for e in applied.entries] == ["purchase:pi_1", "refund:pi_1:3"]
    shop.apply(ChargeRefunded("evt_usd", "pi_1", Money(100, "usd"), T0))
    clock.advance(timedelta(seconds=1))
    cleared = approve_purchase(ApprovalDependencies(shop.store, clock), "pi_1", "ok")
    assert cleared.disposition is Disposition.APPLIED
    purchase = shop.store.get_purchase("pi_1")
    assert purchase is not None
    assert (purchase.review_reason, purchase.updated_at, purchase.version) == (None, clock.now(), 5)


def test_a_refund_known_before_the_success_is_keyed_by_the_crediting_version(
    shop: _Harness,
) -> None:
    """The success that credits also takes the refund back, under its own version's key."""
    shop.apply(_refund(700))
    applied = shop.apply(_succeeded())
    assert [e.key for e in applied.entries] == ["purchase:pi_1", "refund:pi_1:2"]


def test_the_review_list_shows_the_longest_waiting_hundred_unless_asked_for_fewer(
    store: InMemoryBalanceRepository, clock: FixedClock
) -> None:
    """Of 101 flagged purchases the list shows the first hundred flagged, oldest first."""
    shop = _Harness(store, clock)
    for n in range(101):
        shop.apply(_succeeded(f"pi_{n:03}", amount=Money(1, "cny")))
        clock.advance(timedelta(seconds=1))
    listed = [p.payment_intent_id for p in purchases_to_review(store)]
    assert listed == [f"pi_{n:03}" for n in range(100)]
    assert [p.payment_intent_id for p in purchases_to_review(store, 2)] == ["pi_000", "pi_001"]
