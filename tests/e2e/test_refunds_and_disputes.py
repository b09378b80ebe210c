"""After the sale: refunds and disputes through the real webhook, on SQLite and on mongomock."""

from __future__ import annotations

from typing import Any

from buytokens.domain.catalogue import DEFAULT_CATALOGUE, PaymentMethod
from buytokens.domain.checkout import IntentRequest
from buytokens.domain.ledger import EntryKind, LedgerEntry
from buytokens.services.admin import GrantDependencies, grant_tokens
from tests.e2e.conftest import Stack, auth

PACKAGE = "package_500k"  # 500 000 tokens for ¥35.00
TOKENS = 500_000
PRICE = 3_500


def _paid(stack: Stack, user: str) -> str:
    """A purchase of PACKAGE whose success has been delivered; returns its intent id."""
    pi = str(stack.buy(user, PACKAGE)["paymentIntentId"])
    assert stack.deliver(stack.gateway.succeed(pi)).json()["outcome"] == "applied"
    return pi


def _outcomes(stack: Stack, *events: dict[str, Any]) -> list[str]:
    responses = [stack.deliver(event) for event in events]
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    return [str(r.json()["outcome"]) for r in responses]


def _status(stack: Stack, user: str, pi: str) -> str:
    purchases = stack.client.get("/api/custom/stripe/purchases", headers=auth(user)).json()
    return next(str(p["status"]) for p in purchases["purchases"] if p["paymentIntentId"] == pi)


def _entries(stack: Stack, user: str, kind: EntryKind) -> list[LedgerEntry]:
    return [e for e in stack.container.store().ledger(user, 1000) if e.kind is kind]


def _assert_balance_is_the_ledger_sum(stack: Stack, user: str) -> None:
    entries = stack.container.store().ledger(user, 1000)
    assert stack.balance(user) == sum(e.applied for e in entries)


def _share(refunded: int) -> int:
    return TOKENS * refunded // PRICE


# -- refunds ----------------------------------------------------------------------------------


def test_a_partial_then_a_full_refund_each_delivered_three_times_take_back_by_share(
    stack: Stack,
) -> None:
    """¥10 of ¥35 refunded takes back 10/35 of the tokens once; the full refund takes the rest."""
    pi = _paid(stack, "alice")
    partial = stack.gateway.refund(pi, 1_000)
    full = stack.gateway.refund(pi)

    assert _outcomes(stack, partial, partial, partial) == ["applied", "duplicate", "duplicate"]
    assert stack.balance("alice") == TOKENS - _share(1_000)
    assert _status(stack, "alice", pi) == "partially_refunded"

    assert _outcomes(stack, full, full, full) == ["applied", "duplicate", "duplicate"]
    assert stack.balance("alice") == 0
    assert _status(stack, "alice", pi) == "refunded"
    assert [e.applied for e in reversed(_entries(stack, "alice", EntryKind.REFUND))] == [
        -_share(1_000),
        -(TOKENS - _share(1_000)),
    ]
    _assert_balance_is_the_ledger_sum(stack, "alice")


def test_a_full_refund_delivered_before_the_partial_one_makes_the_partial_a_no_op(
    stack: Stack,
) -> None:
    """Cumulative amounts converge: the older, smaller refund arriving late changes nothing."""
    pi = _paid(stack, "alice")
    partial = stack.gateway.refund(pi, 1_000)
    full = stack.gateway.refund(pi)

    outcomes = _outcomes(stack, full, partial, full, partial, full, partial)

    assert outcomes == ["applied", *["duplicate"] * 5]
    assert stack.balance("alice") == 0
    assert _status(stack, "alice", pi) == "refunded"
    refunds = _entries(stack, "alice", EntryKind.REFUND)
    assert [(e.requested, e.applied, e.shortfall) for e in refunds] == [(-TOKENS, -TOKENS, 0)]
    _assert_balance_is_the_ledger_sum(stack, "alice")


def test_refunds_interleaved_with_redelivered_successes_never_credit_again(stack: Stack) -> None:
    """A success redelivered after a refund does not give the refunded tokens back."""
    pi = str(stack.buy("alice", PACKAGE)["paymentIntentId"])
    success = stack.gateway.succeed(pi)
    partial = stack.gateway.refund(pi, 700)

    outcomes = _outcomes(stack, success, partial, success, partial, success)

    assert outcomes == ["applied", "applied", "duplicate", "duplicate", "duplicate"]
    assert stack.balance("alice") == TOKENS - _share(700)
    assert len(_entries(stack, "alice", EntryKind.PURCHASE)) == 1


def test_a_refund_after_the_tokens_were_spent_stops_at_zero_and_records_the_shortfall(
    stack: Stack,
) -> None:
    """What the balance cannot give back is written on the refund's ledger entry, not lost."""
    pi = _paid(stack, "alice")
    store = stack.container.store()
    grant_tokens(
        GrantDependencies(store, stack.container.ids()), "alice", -400_000, "spent in chat"
    )
    assert stack.balance("alice") == 100_000

    assert _outcomes(stack, stack.gateway.refund(pi)) == ["applied"]

    assert stack.balance("alice") == 0
    [refund] = _entries(stack, "alice", EntryKind.REFUND)
    assert (refund.requested, refund.applied, refund.shortfall) == (-TOKENS, -100_000, 400_000)
    assert refund.payment_intent_id == pi
    assert _status(stack, "alice", pi) == "refunded"
    _assert_balance_is_the_ledger_sum(stack, "alice")


def test_a_refund_delivered_before_the_success_credits_only_what_was_kept(stack: Stack) -> None:
    """The success that arrives second credits and takes back the refunded share together."""
    pi = str(stack.buy("alice", PACKAGE)["paymentIntentId"])
    success = stack.gateway.succeed(pi)
    partial = stack.gateway.refund(pi, 1_000)

    assert _outcomes(stack, partial) == ["applied"]
    assert stack.balance("alice") == 0
    assert _outcomes(stack, success, partial, success) == ["applied", "duplicate", "duplicate"]

    assert stack.balance("alice") == TOKENS - _share(1_000)
    assert _status(stack, "alice", pi) == "partially_refunded"
    refund = _entries(stack, "alice", EntryKind.REFUND)
    assert [(e.applied, e.shortfall) for e in refund] == [(-_share(1_000), 0)]
    _assert_balance_is_the_ledger_sum(stack, "alice")


def test_a_full_refund_before_the_success_of_an_intent_this_store_never_saw_nets_zero(
    stack: Stack,
) -> None:
    """An intent created elsewhere, refunded before its success arrives, leaves nothing behind."""
    snapshot = stack.gateway.create_payment_intent(
        IntentRequest("elsewhere-1", "carol", DEFAULT_CATALOGUE.get(PACKAGE), PaymentMethod.CARD)
    )
    success = stack.gateway.succeed(snapshot.id)
    full = stack.gateway.refund(snapshot.id)

    assert _outcomes(stack, full, success, full, success) == [
        "applied",
        "applied",
        "duplicate",
        "duplicate",
    ]

    assert stack.balance("carol") == 0
    assert _status(stack, "carol", snapshot.id) == "refunded"
    assert sorted(e.applied for e in stack.container.store().ledger("carol")) == [-TOKENS, TOKENS]


# -- disputes ---------------------------------------------------------------------------------


def test_a_dispute_opened_twice_and_won_twice_holds_once_and_releases_once(stack: Stack) -> None:
    """Tokens are held while the dispute is open and come back, exactly once, when it is won."""
    pi = _paid(stack, "alice")
    opened = stack.gateway.open_dispute(pi)
    won = stack.gateway.close_dispute(opened, "won")

    assert _outcomes(stack, opened, opened) == ["applied", "duplicate"]
    assert stack.balance("alice") == 0
    assert _status(stack, "alice", pi) == "disputed"

    assert _outcomes(stack, won, won) == ["applied", "duplicate"]
    assert stack.balance("alice") == TOKENS
    assert _status(stack, "alice", pi) == "succeeded"
    disputes = _entries(stack, "alice", EntryKind.DISPUTE)
    assert sorted(e.applied for e in disputes) == [-TOKENS, TOKENS]
    _assert_balance_is_the_ledger_sum(stack, "alice")


def test_a_won_dispute_delivered_before_its_opening_changes_nothing(stack: Stack) -> None:
    """Closed-as-won arriving first means the late opening has nothing left to hold."""
    pi = _paid(stack, "alice")
    opened = stack.gateway.open_dispute(pi)
    won = stack.gateway.close_dispute(opened, "won")

    assert _outcomes(stack, won, opened, won) == ["applied", "duplicate", "duplicate"]

    assert stack.balance("alice") == TOKENS
    assert _entries(stack, "alice", EntryKind.DISPUTE) == []
    assert _status(stack, "alice", pi) == "succeeded"


def test_a_lost_dispute_keeps_the_tokens_taken_back(stack: Stack) -> None:
    """A lost dispute leaves the hold in place for good and the purchase disputed."""
    pi = _paid(stack, "alice")
    opened = stack.gateway.open_dispute(pi)
    lost = stack.gateway.close_dispute(opened, "lost")

    assert _outcomes(stack, opened, lost, opened, lost) == [
        "applied",
        "applied",
        "duplicate",
        "duplicate",
    ]

    assert stack.balance("alice") == 0
    assert _status(stack, "alice", pi) == "disputed"
    assert [e.applied for e in _entries(stack, "alice", EntryKind.DISPUTE)] == [-TOKENS]
    _assert_balance_is_the_ledger_sum(stack, "alice")


def test_a_dispute_over_a_partly_refunded_purchase_holds_only_what_is_left(stack: Stack) -> None:
    """Refund and dispute together never take back more than the purchase credited."""
    pi = _paid(stack, "alice")
    assert _outcomes(stack, stack.gateway.refund(pi, 1_000)) == ["applied"]

    assert _outcomes(stack, stack.gateway.open_dispute(pi)) == ["applied"]

    assert stack.balance("alice") == 0
    [hold] = _entries(stack, "alice", EntryKind.DISPUTE)
    assert hold.applied == -(TOKENS - _share(1_000))
    _assert_balance_is_the_ledger_sum(stack, "alice")


def test_an_inquiry_holds_nothing_and_its_escalation_is_given_back_once_when_won(
    stack: Stack,
) -> None:
    """Inquiry, funds withdrawn, reinstated, won, through the webhook: spent tokens stay spent."""
    pi = _paid(stack, "alice")
    inquiry = stack.gateway.open_dispute(pi, inquiry=True)
    assert _outcomes(stack, inquiry) == ["applied"]
    assert stack.balance("alice") == TOKENS
    assert _status(stack, "alice", pi) == "disputed"

    grant_tokens(
        GrantDependencies(stack.container.store(), stack.container.ids()),
        "alice",
        -100_000,
        "chat usage",
    )
    withdrawn = stack.gateway.withdraw_funds(inquiry)
    reinstated = stack.gateway.reinstate_funds(inquiry)
    won = stack.gateway.close_dispute(inquiry, "won")
    assert _outcomes(stack, withdrawn, withdrawn) == ["applied", "duplicate"]
    assert stack.balance("alice") == 0
    assert _outcomes(stack, reinstated, won, withdrawn, reinstated) == [
        "applied",
        "applied",
        "duplicate",
        "duplicate",
    ]
    assert stack.balance("alice") == TOKENS - 100_000
    assert _status(stack, "alice", pi) == "succeeded"
    _assert_balance_is_the_ledger_sum(stack, "alice")
