"""The pure gift rules: paid credits no one, redemption credits once, money back voids."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from buytokens.adapters.stripe_events import translate_event
from buytokens.domain.catalogue import DEFAULT_CATALOGUE
from buytokens.domain.codes import CodeRecord, CodeSecret, CodeState, RedemptionCode
from buytokens.domain.crediting import (
    Decision,
    Disposition,
    approve_review,
    credit_key,
    decide,
    redeem_gift,
)
from buytokens.domain.errors import GiftAlreadyRedeemed, GiftNotFound, GiftVoid
from buytokens.domain.events import (
    ChargeRefunded,
    DisputeChanged,
    DisputeState,
    PaymentEvent,
    PaymentSucceeded,
)
from buytokens.domain.ledger import EntryKind
from buytokens.domain.money import Money
from buytokens.domain.purchases import Purchase, PurchaseStatus
from tests.support import stripe_json

T0 = datetime(2026, 5, 1, tzinfo=UTC)
PRICE = Money(3_500, "cny")  # package_500k
TOKENS = 500_000


def _paid(amount: Money = PRICE, *, gift: bool = True) -> PaymentSucceeded:
    return PaymentSucceeded("evt_ok", "pi_1", amount, "buyer", "package_500k", T0, gift=gift)


def _dispute(state: DisputeState, dispute_id: str = "dp_1") -> DisputeChanged:
    return DisputeChanged(f"evt_{state}", "pi_1", dispute_id, PRICE, state, T0)


def _apply(current: Purchase | None, *events: PaymentEvent, taken: int = 0) -> Purchase | None:
    for event in events:
        decision = decide(current, event, DEFAULT_CATALOGUE, T0, taken_back=taken)
        if decision.transition is not None:
            current = decision.transition.purchase
    return current


def _redeemed(current: Purchase | None, user: str = "friend") -> Decision:
    return redeem_gift(current, user, T0, taken_back=0)


def test_a_paid_gift_credits_no_one() -> None:
    """Succeeded, nothing credited, no ledger change, redeemable."""
    decision = decide(None, _paid(), DEFAULT_CATALOGUE, T0, taken_back=0)
    assert decision.disposition is Disposition.APPLIED
    assert decision.transition is not None
    assert decision.transition.changes == ()
    purchase = decision.transition.purchase
    assert (purchase.gift, purchase.status, purchase.tokens_credited) == (
        True,
        PurchaseStatus.SUCCEEDED,
        0,
    )
    assert purchase.gift_redeemable


def test_redeeming_credits_the_redeemer_under_the_intents_one_credit_key() -> None:
    """One credit of the package's tokens, keyed like any purchase credit, to the redeemer."""
    paid = _apply(None, _paid())
    decision = _redeemed(paid)
    assert decision.transition is not None
    assert decision.transition.expected_version == 1
    (credit,) = decision.transition.changes
    assert (credit.key, credit.user_id, credit.kind, credit.tokens) == (
        credit_key("pi_1"),
        "friend",
        EntryKind.REDEMPTION,
        TOKENS,
    )
    redeemed = decision.transition.purchase
    assert (redeemed.redeemed_by, redeemed.redeemed_at, redeemed.tokens_credited) == (
        "friend",
        T0,
        TOKENS,
    )
    assert redeemed.beneficiary == "friend"
    for who in ("friend", "buyer"):
        with pytest.raises(GiftAlreadyRedeemed):
            _redeemed(redeemed, who)


@pytest.mark.parametrize(
    "withdrawal",
    [
        ChargeRefunded("evt_rf", "pi_1", Money(1, "cny"), T0),
        _dispute(DisputeState.OPEN),
        _dispute(DisputeState.LOST),
        _dispute(DisputeState.WON),  # a chargeback, whose withdrawal may arrive later
    ],
    ids=["refund", "chargeback", "lost", "won"],
)
def test_money_back_before_redemption_voids_the_gift_for_good(withdrawal: PaymentEvent) -> None:
    """Voided whichever comes first, paid or withdrawn, and a later win does not revive it."""
    for order in ((_paid(), withdrawal), (withdrawal, _paid())):
        purchase = _apply(None, *order)
        assert purchase is not None
        assert purchase.void_reason is not None
        later = _apply(purchase, _dispute(DisputeState.WON, "dp_late"))
        with pytest.raises(GiftVoid):
            _redeemed(later)


def test_an_inquiry_does_not_void_the_gift() -> None:
    """An inquiry moves no money; the gift redeems."""
    purchase = _apply(None, _paid(), _dispute(DisputeState.INQUIRY))
    assert purchase is not None
    assert purchase.void_reason is None
    assert _redeemed(purchase).transition is not None


def test_after_redemption_a_refund_takes_back_from_the_redeemer() -> None:
    """Half refunded: half the tokens come back from the redeemer's balance."""
    redeemed = _redeemed(_apply(None, _paid())).transition
    assert redeemed is not None
    decision = decide(
        redeemed.purchase,
        ChargeRefunded("evt_rf", "pi_1", Money(1_750, "cny"), T0),
        DEFAULT_CATALOGUE,
        T0,
        taken_back=0,
    )
    assert decision.transition is not None
    (refund,) = decision.transition.changes
    assert (refund.user_id, refund.kind, refund.tokens) == ("friend", EntryKind.REFUND, -250_000)
    assert decision.transition.purchase.void_reason is None


@pytest.mark.parametrize(
    "current",
    [
        None,
        Purchase.pending("pi_1", "buyer", "package_500k", TOKENS, PRICE, T0, gift=True),
        Purchase("pi_1", "buyer", "package_500k", TOKENS, PRICE, T0, T0, succeeded=True),
    ],
    ids=["unknown", "unpaid", "not-a-gift"],
)
def test_only_a_paid_gift_redeems(current: Purchase | None) -> None:
    """No purchase, an unpaid gift, or a plain purchase: not found, with one message for all."""
    with pytest.raises(GiftNotFound) as raised:
        _redeemed(current)
    assert raised.value.message == "no such code, or it has expired"


def test_a_gift_flagged_for_review_does_not_redeem_and_approval_credits_no_one() -> None:
    """A wrong amount flags it; approving clears the flag without crediting the buyer."""
    flagged = _apply(None, _paid(Money(1, "cny")))
    assert flagged is not None
    assert flagged.status is PurchaseStatus.NEEDS_REVIEW
    with pytest.raises(GiftNotFound) as raised:
        _redeemed(flagged)
    assert raised.value.message == "this gift's payment is being checked; try again later"
    approved = approve_review(flagged, "checked with the bank", T0, taken_back=0).transition
    assert approved is not None
    assert approved.changes == ()
    assert approved.purchase.tokens_credited == 0
    assert _redeemed(approved.purchase).transition is not None


def test_a_plain_purchase_still_credits_its_buyer() -> None:
    """Without the gift flag nothing changes: the buyer is credited at once."""
    decision = decide(None, _paid(gift=False), DEFAULT_CATALOGUE, T0, taken_back=0)
    assert decision.transition is not None
    (credit,) = decision.transition.changes
    assert (credit.user_id, credit.kind) == ("buyer", EntryKind.PURCHASE)


def test_the_signed_event_says_whether_it_is_a_gift() -> None:
    """Metadata ``gift: "true"`` makes the event a gift's; anything else does not."""
    event = stripe_json.succeeded("pi_1", "buyer", "package_500k", 3_500, "cny")
    plain = translate_event(event).payment_event
    assert isinstance(plain, PaymentSucceeded)
    assert not plain.gift
    for value, gift in (("true", True), ("yes", False), ("false", False)):
        event["data"]["object"]["metadata"]["gift"] = value
        translated = translate_event(event).payment_event
        assert isinstance(translated, PaymentSucceeded)
        assert translated.gift is gift


def test_a_purchase_redeemed_or_void_must_be_a_gift() -> None:
    """The record refuses a redeemer without a time, or on a purchase that is no gift."""
    with pytest.raises(ValueError, match="together"):
        Purchase("pi_1", "b", "p", 1, PRICE, T0, T0, gift=True, redeemed_by="x")
    with pytest.raises(ValueError, match="only a gift"):
        Purchase("pi_1", "b", "p", 1, PRICE, T0, T0, redeemed_by="x", redeemed_at=T0)


# -- a gift code's state is its purchase's ----------------------------------------------------

SECRET = CodeSecret.derived_from("a-secret-for-the-pure-gift-rules")


def _index(pi: str = "pi_1") -> CodeRecord:
    return CodeRecord.gift(RedemptionCode.for_gift(SECRET, pi), pi, "buyer", TOKENS, T0)


def _state(purchase: Purchase | None) -> CodeState:
    return _index().with_purchase(purchase).state(T0)


def test_a_gift_code_takes_its_state_from_its_purchase() -> None:
    """Unpaid and under review: pending; paid: unredeemed; redeemed beats a later refund;
    money back before redemption: void, with the purchase's reason."""
    assert _state(None) is CodeState.PENDING
    assert _state(_apply(None, _paid(Money(1, "cny")))) is CodeState.PENDING
    paid = _apply(None, _paid())
    assert _state(paid) is CodeState.UNREDEEMED
    transition = _redeemed(paid).transition
    assert transition is not None
    redeemed = transition.purchase
    seen = _index().with_purchase(redeemed)
    assert (seen.state(T0), seen.redeemed_by, seen.redeemed_at, seen.credited) == (
        CodeState.REDEEMED,
        "friend",
        T0,
        True,
    )
    refund = ChargeRefunded("evt_rf", "pi_1", PRICE, T0)
    assert _state(_apply(redeemed, refund)) is CodeState.REDEEMED
    voided = _index().with_purchase(_apply(paid, refund))
    assert (voided.state(T0), voided.void_reason) == (CodeState.VOID, "its payment was refunded")


def test_only_a_gift_reads_its_own_purchase() -> None:
    """An operator code has no purchase; a gift is never read with another intent's."""
    operator = CodeRecord.issued(RedemptionCode.for_gift(SECRET, "x"), 5, "launch", T0)
    with pytest.raises(ValueError, match="purchase"):
        operator.with_purchase(None)
    with pytest.raises(ValueError, match="not the gift's"):
        _index("pi_other").with_purchase(_apply(None, _paid()))


def test_redemption_is_stamped_with_its_time_and_named_on_the_ledger() -> None:
    """Redeemed two days after payment: the purchase says when, and the credit names the
    intent and the package, as the redeemer's history shows it."""
    later = datetime(2026, 5, 3, 17, 45, tzinfo=UTC)
    decision = redeem_gift(_apply(None, _paid()), "friend", later, taken_back=0)
    assert decision.disposition is Disposition.APPLIED
    assert decision.transition is not None
    redeemed = decision.transition.purchase
    assert (redeemed.redeemed_at, redeemed.updated_at, redeemed.version) == (later, later, 2)
    (credit,) = decision.transition.changes
    assert (credit.payment_intent_id, credit.reason) == ("pi_1", "redeemed a gift of package_500k")


def test_a_code_someone_else_redeemed_says_so_and_when() -> None:
    """Another user learns the code is spent and on which day, never by whom."""
    later = datetime(2026, 5, 3, 23, 59, tzinfo=UTC)
    redeemed = redeem_gift(_apply(None, _paid()), "friend", later, taken_back=0).transition
    assert redeemed is not None
    with pytest.raises(GiftAlreadyRedeemed) as raised:
        _redeemed(redeemed.purchase, "stranger")
    assert raised.value.message == "this code was already redeemed by someone else on 2026-05-03"


def test_its_redeemer_asking_again_is_told_it_was_them_and_gets_nothing() -> None:
    """A retry after a lost answer: still the contract's 409, and the message says who and when."""
    later = datetime(2026, 5, 3, 23, 59, tzinfo=UTC)
    redeemed = redeem_gift(_apply(None, _paid()), "friend", later, taken_back=0).transition
    assert redeemed is not None
    with pytest.raises(GiftAlreadyRedeemed) as raised:
        _redeemed(redeemed.purchase, "friend")
    assert raised.value.message == "this code was already redeemed by you on 2026-05-03"


@pytest.mark.parametrize(
    ("withdrawal", "why"),
    [
        (ChargeRefunded("evt_rf", "pi_1", Money(1, "cny"), T0), "its payment was refunded"),
        (_dispute(DisputeState.OPEN), "its payment was disputed"),
    ],
    ids=["refund", "chargeback"],
)
def test_a_void_gift_says_why_it_was_withdrawn(withdrawal: PaymentEvent, why: str) -> None:
    """The redeemer is told the gift was withdrawn, and whether by a refund or a dispute."""
    with pytest.raises(GiftVoid) as raised:
        _redeemed(_apply(None, _paid(), withdrawal))
    assert raised.value.message == f"this gift was withdrawn before it was redeemed ({why})"


def test_a_gift_paid_after_checkout_keeps_its_record_and_is_stamped_when_paid() -> None:
    """The pending gift's purchase, paid a day later: its creation stays, its update is the
    payment's processing time, and it moves one version on."""
    pending = Purchase.pending("pi_1", "buyer", "package_500k", TOKENS, PRICE, T0, gift=True)
    later = datetime(2026, 5, 2, 8, 0, tzinfo=UTC)
    decision = decide(pending, _paid(), DEFAULT_CATALOGUE, later, taken_back=0)
    assert decision.transition is not None
    paid = decision.transition.purchase
    assert (paid.created_at, paid.updated_at, paid.version) == (T0, later, pending.version + 1)
    assert (paid.user_id, paid.gift, paid.tokens_credited) == ("buyer", True, 0)
