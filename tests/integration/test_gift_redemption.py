"""Gift purchases on every store: the code index, redemption once, voiding, take-backs.

The purchases are made through the webhook's own path (translation, then the
journalled apply), and through checkout with the Stripe twin.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from buytokens.adapters.memory import FixedClock
from buytokens.adapters.stripe_events import translate_event
from buytokens.domain.catalogue import DEFAULT_CATALOGUE
from buytokens.domain.codes import CodeKind, CodeRecord, CodeSecret, CodeState, RedemptionCode
from buytokens.domain.crediting import credit_key
from buytokens.domain.errors import (
    GiftAlreadyRedeemed,
    GiftNotFound,
    GiftVoid,
    StoreCorrupted,
)
from buytokens.domain.ledger import EntryKind
from buytokens.domain.purchases import PurchaseStatus
from buytokens.entrypoints.composition import UseCaseDependencies
from buytokens.services.buying import create_payment_intent
from buytokens.services.codes import CodeDesk, create_codes, list_codes, redeem_code
from buytokens.services.gifts import GiftCodes, gift_code_of
from buytokens.services.webhooks import apply_received_event
from buytokens.testing.stripe_twin import InMemoryPaymentGateway
from tests.support import stripe_json
from tests.support.code_stores import CODE_STORES, CodeStores
from tests.support.concurrency import at_once
from tests.support.use_cases import wire

SECRET = CodeSecret.derived_from("a-jwt-secret-of-some-length-for-tests")
BUYER = "0123456789abcdef01234567"
FRIEND = "fedcba9876543210fedcba98"
PACKAGE = DEFAULT_CATALOGUE.get("package_500k")
AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


@pytest.fixture(params=sorted(CODE_STORES))
def stores(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FixedClock
) -> Iterator[CodeStores]:
    """Each code store with its balances, empty."""
    with CODE_STORES[request.param](tmp_path, clock) as both:
        yield both


def _parts(stores: CodeStores, clock: FixedClock) -> tuple[UseCaseDependencies, CodeDesk]:
    gifts = GiftCodes(SECRET, stores.codes)
    use_cases = wire(InMemoryPaymentGateway(clock=clock), clock, store=stores.balances, gifts=gifts)
    return use_cases, CodeDesk(stores.codes, stores.balances, clock)


def _deliver(use_cases: UseCaseDependencies, *events: stripe_json.StripeJson) -> None:
    for event in events:
        apply_received_event(use_cases.events, translate_event(event))


def _paid_gift(pi: str = "pi_gift", amount: int | None = None) -> stripe_json.StripeJson:
    event = stripe_json.succeeded(
        pi, BUYER, PACKAGE.id, PACKAGE.price.amount if amount is None else amount, "cny"
    )
    event["data"]["object"]["metadata"]["gift"] = "true"
    return event


def _code(pi: str = "pi_gift") -> str:
    return RedemptionCode.for_gift(SECRET, pi).display()


# -- the port: the gift index -------------------------------------------------------------


def _gift_record(pi: str = "pi_gift") -> CodeRecord:
    return CodeRecord.gift(RedemptionCode.for_gift(SECRET, pi), pi, BUYER, PACKAGE.tokens, AT)


def test_indexing_a_gift_is_idempotent_and_never_claimable(stores: CodeStores) -> None:
    """The index record reads back; indexing it again is a no-op; it is no operator code."""
    record = _gift_record()
    stores.codes.index_gift(record)
    stores.codes.index_gift(record)
    assert stores.codes.find(record.digest) == record
    assert list(stores.codes.uncredited()) == []


def test_concurrent_indexing_of_one_gift_stores_it_once(stores: CodeStores) -> None:
    """Twenty writers of the same index record: all succeed, one record."""
    record = _gift_record()
    at_once(lambda _i: stores.codes.index_gift(record), 20)
    assert [r.digest for r in stores.codes.codes()] == [record.digest]


def test_a_digest_stored_for_something_else_is_refused(stores: CodeStores) -> None:
    """The same digest for another intent is corruption, never a silent overwrite."""
    record = _gift_record()
    stores.codes.index_gift(record)
    other = CodeRecord.gift(
        RedemptionCode.for_gift(SECRET, "pi_gift"), "pi_other", BUYER, PACKAGE.tokens, AT
    )
    with pytest.raises(StoreCorrupted):
        stores.codes.index_gift(other)
    assert stores.codes.find(record.digest) == record


# -- the use cases ---------------------------------------------------------------------------


def test_a_paid_gift_credits_no_one_and_its_code_credits_the_redeemer_once(
    stores: CodeStores, clock: FixedClock
) -> None:
    """Paid: the buyer's balance is unchanged; redeemed: the friend gets the tokens, once."""
    use_cases, desk = _parts(stores, clock)
    _deliver(use_cases, _paid_gift(), _paid_gift())
    purchase = stores.balances.get_purchase("pi_gift")
    assert purchase is not None
    assert (purchase.gift, purchase.status, purchase.tokens_credited) == (
        True,
        PurchaseStatus.SUCCEEDED,
        0,
    )
    assert stores.balances.balance(BUYER) == 0
    redeemed = redeem_code(desk, FRIEND, _code().lower())
    assert (redeemed.tokens, redeemed.token_credits) == (PACKAGE.tokens, PACKAGE.tokens)
    (entry,) = stores.balances.ledger(FRIEND)
    assert (entry.key, entry.kind, entry.applied) == (
        credit_key("pi_gift"),
        EntryKind.REDEMPTION,
        PACKAGE.tokens,
    )
    assert _code() not in entry.reason
    for who in (FRIEND, BUYER):
        with pytest.raises(GiftAlreadyRedeemed):
            redeem_code(desk, who, _code())
    assert stores.balances.balance(FRIEND) == PACKAGE.tokens
    assert stores.balances.balance(BUYER) == 0
    view = gift_code_of(GiftCodes(SECRET, stores.codes), stores.balances.get_purchase("pi_gift"))
    assert view is not None
    assert view.redeemed


def test_twenty_concurrent_redeemers_get_one_credit(stores: CodeStores, clock: FixedClock) -> None:
    """Of twenty users redeeming one gift code at once, exactly one is credited."""
    use_cases, desk = _parts(stores, clock)
    _deliver(use_cases, _paid_gift())
    users = [f"{n:024x}" for n in range(1, 21)]

    def attempt(index: int) -> str:
        try:
            redeem_code(desk, users[index], _code())
        except GiftAlreadyRedeemed:
            return "already"
        return "redeemed"

    outcomes = at_once(attempt, 20)
    assert sorted(outcomes) == ["already"] * 19 + ["redeemed"]
    balances = [stores.balances.balance(user) for user in users]
    assert sorted(balances) == [0] * 19 + [PACKAGE.tokens]
    purchase = stores.balances.get_purchase("pi_gift")
    assert purchase is not None
    assert purchase.redeemed_by == users[outcomes.index("redeemed")]


@pytest.mark.parametrize("redeemed_first", [False, True], ids=["fresh", "redeemed"])
def test_the_redeemer_retrying_while_others_try_credits_once(
    stores: CodeStores, clock: FixedClock, redeemed_first: bool
) -> None:
    """Ten attempts by the friend (retries after lost answers) and ten by others, at once:
    one credit, to one user; a code already redeemed answers 409 to all, its redeemer told so."""
    use_cases, desk = _parts(stores, clock)
    _deliver(use_cases, _paid_gift())
    if redeemed_first:
        redeem_code(desk, FRIEND, _code())
    others = [f"{n:024x}" for n in range(1, 11)]
    callers = [FRIEND] * 10 + others

    def attempt(index: int) -> tuple[str, str]:
        try:
            redeem_code(desk, callers[index], _code())
        except GiftAlreadyRedeemed as refused:
            return callers[index], "by you" if "by you" in refused.message else "409"
        return callers[index], "200"

    outcomes = at_once(attempt, 20)
    winners = [caller for caller, answer in outcomes if answer == "200"]
    assert len(winners) == (0 if redeemed_first else 1)
    owner = FRIEND if redeemed_first else winners[0]
    assert all(
        answer == "by you" for caller, answer in outcomes if caller == owner and answer != "200"
    )
    assert all(answer == "409" for caller, answer in outcomes if caller != owner)
    balances = {user: stores.balances.balance(user) for user in [FRIEND, *others]}
    assert balances == {user: PACKAGE.tokens if user == owner else 0 for user in balances}
    purchase = stores.balances.get_purchase("pi_gift")
    assert purchase is not None
    assert purchase.redeemed_by == owner
    credits = [e for e in stores.balances.ledger(owner) if e.kind is EntryKind.REDEMPTION]
    assert [e.applied for e in credits] == [PACKAGE.tokens]


@pytest.mark.parametrize(
    "withdrawal",
    [
        pytest.param(lambda: stripe_json.refunded("pi_gift", 3500, 1, "cny"), id="refund"),
        pytest.param(
            lambda: stripe_json.dispute(
                "charge.dispute.created", "pi_gift", "dp_1", 3500, "cny", "needs_response"
            ),
            id="chargeback",
        ),
    ],
)
def test_money_going_back_before_redemption_voids_the_gift(
    stores: CodeStores, clock: FixedClock, withdrawal: object
) -> None:
    """A refund or chargeback before redemption: 410 for everyone, no one credited."""
    use_cases, desk = _parts(stores, clock)
    assert callable(withdrawal)
    _deliver(use_cases, _paid_gift(), withdrawal())
    with pytest.raises(GiftVoid):
        redeem_code(desk, FRIEND, _code())
    assert stores.balances.balance(FRIEND) == stores.balances.balance(BUYER) == 0


def test_an_inquiry_does_not_void_the_gift(stores: CodeStores, clock: FixedClock) -> None:
    """An inquiry moves no money: the gift still redeems."""
    use_cases, desk = _parts(stores, clock)
    inquiry = stripe_json.dispute(
        "charge.dispute.created", "pi_gift", "dp_1", 3500, "cny", "warning_needs_response"
    )
    _deliver(use_cases, _paid_gift(), inquiry)
    assert redeem_code(desk, FRIEND, _code()).tokens == PACKAGE.tokens


def test_after_redemption_a_refund_takes_back_from_the_redeemer(
    stores: CodeStores, clock: FixedClock
) -> None:
    """A full refund after redemption takes the tokens back from the redeemer, not the buyer."""
    use_cases, desk = _parts(stores, clock)
    _deliver(use_cases, _paid_gift())
    redeem_code(desk, FRIEND, _code())
    _deliver(use_cases, stripe_json.refunded("pi_gift", 3500, 3500, "cny"))
    assert stores.balances.balance(FRIEND) == 0
    assert [e.kind for e in stores.balances.ledger(FRIEND)] == [
        EntryKind.REFUND,
        EntryKind.REDEMPTION,
    ]
    assert stores.balances.ledger(BUYER) == []


def test_an_unpaid_or_flagged_gift_cannot_be_redeemed(
    stores: CodeStores, clock: FixedClock
) -> None:
    """Before payment the code is unknown; a payment of the wrong amount is under review."""
    use_cases, desk = _parts(stores, clock)
    with pytest.raises(GiftNotFound):
        redeem_code(desk, FRIEND, _code())
    _deliver(use_cases, _paid_gift(amount=1))
    with pytest.raises(GiftNotFound):
        redeem_code(desk, FRIEND, _code())
    assert stores.balances.balance(FRIEND) == 0


def test_a_gift_bought_at_checkout_is_indexed_before_it_is_paid(
    stores: CodeStores, clock: FixedClock
) -> None:
    """Checkout asks for the gift metadata and indexes the code; the buyer sees it once paid."""
    gateway = InMemoryPaymentGateway(clock=clock)
    gifts = GiftCodes(SECRET, stores.codes)
    use_cases = wire(gateway, clock, store=stores.balances, gifts=gifts)
    created = create_payment_intent(use_cases.buying, BUYER, PACKAGE.id, "card", gift=True)
    pi = created.snapshot.id
    record = stores.codes.find(RedemptionCode.for_gift(SECRET, pi).digest)
    assert record is not None
    assert (record.kind, record.payment_intent_id, record.buyer_id) == (CodeKind.GIFT, pi, BUYER)
    pending = stores.balances.get_purchase(pi)
    assert pending is not None
    assert pending.gift
    assert gift_code_of(gifts, pending) is None  # not paid yet
    assert gateway.intent_json(pi)["metadata"]["gift"] == "true"
    _deliver(use_cases, gateway.succeed(pi))
    paid = stores.balances.get_purchase(pi)
    assert paid is not None
    view = gift_code_of(gifts, paid)
    assert view is not None
    assert view.code == RedemptionCode.for_gift(SECRET, pi)
    assert not view.redeemed
    assert stores.balances.balance(BUYER) == 0
    rotated = GiftCodes(CodeSecret.derived_from("another-secret-after-rotation"), stores.codes)
    rotated_view = gift_code_of(rotated, paid)
    assert rotated_view is not None
    assert rotated_view.code is None


# -- the listing: a gift's state is its purchase's ------------------------------------------


def test_the_code_list_shows_each_gift_as_its_purchase_has_it(
    stores: CodeStores, clock: FixedClock
) -> None:
    """Redeemed (by whom, when), void (why), pending (unpaid, under review) or unredeemed,
    as redemption would answer; ``--unredeemed`` keeps only what can be redeemed now."""
    use_cases, desk = _parts(stores, clock)
    (operator,) = create_codes(desk, 1_000, 1, "launch")
    _deliver(use_cases, _paid_gift("pi_redeemed"), _paid_gift("pi_void"), _paid_gift("pi_open"))
    _deliver(use_cases, _paid_gift("pi_review", amount=1))
    stores.codes.index_gift(_gift_record("pi_unpaid"))  # checkout indexed it; never paid
    redeem_code(desk, FRIEND, _code("pi_redeemed"))
    redeemed_at = clock.now()
    _deliver(use_cases, stripe_json.refunded("pi_void", 3500, 1, "cny"))
    clock.advance(timedelta(hours=1))

    listed = {r.payment_intent_id or "operator": r for r in list_codes(desk)}
    now = clock.now()
    assert {key: r.state(now) for key, r in listed.items()} == {
        "operator": CodeState.UNREDEEMED,
        "pi_redeemed": CodeState.REDEEMED,
        "pi_void": CodeState.VOID,
        "pi_open": CodeState.UNREDEEMED,
        "pi_review": CodeState.PENDING,
        "pi_unpaid": CodeState.PENDING,
    }
    redeemed = listed["pi_redeemed"]
    assert (redeemed.redeemed_by, redeemed.redeemed_at, redeemed.credited) == (
        FRIEND,
        redeemed_at,
        True,
    )
    assert listed["pi_void"].void_reason == "its payment was refunded"
    assert listed["pi_review"].pending_reason is not None
    assert "review" in listed["pi_review"].pending_reason
    assert listed["pi_unpaid"].pending_reason == "its payment has not succeeded"
    for key in ("pi_void", "pi_open", "pi_review", "pi_unpaid"):
        assert listed[key].redeemed_by is None
    assert listed["operator"].digest == operator.digest
    # What the list says is what redemption answers.
    with pytest.raises(GiftVoid):
        redeem_code(desk, BUYER, _code("pi_void"))
    for pending in ("pi_review", "pi_unpaid"):
        with pytest.raises(GiftNotFound):
            redeem_code(desk, BUYER, _code(pending))

    unredeemed = {r.payment_intent_id or "operator" for r in list_codes(desk, unredeemed_only=True)}
    assert unredeemed == {"operator", "pi_open"}
