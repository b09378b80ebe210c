"""Disputes give back only what their hold actually took, on every store.

Histories are Stripe-shaped events applied through the webhook's own path
(translation, the journalled apply); spending is a negative grant.
"""

from __future__ import annotations

import pytest

from buytokens.adapters.memory import (
    FixedClock,
    SequentialIdSource,
)
from buytokens.adapters.stripe_events import translate_event
from buytokens.domain.catalogue import DEFAULT_CATALOGUE
from buytokens.domain.ledger import EntryKind
from buytokens.ports.balances import BalanceRepository
from buytokens.services.admin import GrantDependencies, grant_tokens
from buytokens.services.webhooks import apply_received_event
from buytokens.testing.stripe_twin import InMemoryPaymentGateway
from tests.support import stripe_json
from tests.support.use_cases import wire

PI = "pi_disputed"
USER = "mallory"
PACKAGE = DEFAULT_CATALOGUE.get("package_100k")
TOKENS = PACKAGE.tokens  # 100 000
PRICE = PACKAGE.price.amount  # ¥10.00
CNY = PACKAGE.price.currency

CREATED = "charge.dispute.created"
WITHDRAWN = "charge.dispute.funds_withdrawn"
REINSTATED = "charge.dispute.funds_reinstated"
CLOSED = "charge.dispute.closed"


class _Buyer:
    """One buyer's purchase of package_100k, and the webhook deliveries about it."""

    def __init__(self, store: BalanceRepository, clock: FixedClock) -> None:
        self.store = store
        self.use_cases = wire(InMemoryPaymentGateway(clock=clock), clock, store=store)
        self.ids = SequentialIdSource("spend")

    def deliver(self, *events: stripe_json.StripeJson) -> list[str]:
        return [
            apply_received_event(self.use_cases.events, translate_event(event)).disposition.value
            for event in events
        ]

    def pay(self) -> None:
        self.deliver(stripe_json.succeeded(PI, USER, PACKAGE.id, PRICE, CNY))

    def spend(self, tokens: int) -> None:
        grant_tokens(GrantDependencies(self.store, self.ids), USER, -tokens, "chat usage")

    def refund(self, amount_refunded: int) -> list[str]:
        return self.deliver(stripe_json.refunded(PI, PRICE, amount_refunded, CNY))

    def dispute(self, event_type: str, status: str, amount: int = PRICE) -> list[str]:
        return self.deliver(stripe_json.dispute(event_type, PI, "dp_1", amount, CNY, status))

    @property
    def balance(self) -> int:
        return self.store.balance(USER)

    def dispute_entries(self) -> list[tuple[int, int, int]]:
        return [
            (e.requested, e.applied, e.shortfall)
            for e in reversed(self.store.ledger(USER))
            if e.kind is EntryKind.DISPUTE
        ]


@pytest.fixture
def buyer(store: BalanceRepository, clock: FixedClock) -> _Buyer:
    """A buyer on each store who has paid for package_100k."""
    paid = _Buyer(store, clock)
    paid.pay()
    assert paid.balance == TOKENS
    return paid


@pytest.mark.parametrize(
    ("opening", "closing"),
    [
        ("needs_response", "won"),
        ("warning_needs_response", "warning_closed"),
        ("needs_response", "prevented"),
        ("needs_response", "charge_refunded"),
    ],
)
def test_a_dispute_closed_for_the_merchant_after_everything_was_spent_gives_nothing_back(
    buyer: _Buyer, opening: str, closing: str
) -> None:
    """Spend it all, dispute, have it closed in the merchant's favour: the balance stays 0."""
    buyer.spend(TOKENS)
    buyer.dispute(CREATED, opening)
    buyer.dispute(CLOSED, closing)
    buyer.dispute(CLOSED, closing)  # redelivered
    assert buyer.balance == 0
    assert all(applied == 0 for _requested, applied, _shortfall in buyer.dispute_entries())


def test_a_won_chargeback_after_part_was_spent_gives_back_what_the_hold_took(
    buyer: _Buyer,
) -> None:
    """30 000 spent: the hold takes the 70 000 left, and winning gives back those 70 000."""
    buyer.spend(30_000)
    buyer.dispute(CREATED, "needs_response")
    buyer.dispute(WITHDRAWN, "needs_response")
    assert buyer.balance == 0
    buyer.dispute(CLOSED, "won")
    buyer.dispute(REINSTATED, "won")
    assert buyer.balance == 70_000
    assert buyer.dispute_entries() == [(-TOKENS, -70_000, 30_000), (70_000, 70_000, 0)]


def test_reinstated_funds_give_back_once_and_the_closing_win_adds_nothing(buyer: _Buyer) -> None:
    """funds_reinstated first: the release happens then; the later won closure is a no-op."""
    buyer.spend(40_000)
    buyer.dispute(CREATED, "needs_response")
    assert buyer.dispute(REINSTATED, "under_review") == ["applied"]
    assert buyer.balance == 60_000
    assert buyer.dispute(CLOSED, "won") == ["applied"]  # the closure is stored, nothing moves
    assert buyer.dispute(REINSTATED, "under_review") == ["duplicate"]
    assert buyer.balance == 60_000
    assert [requested for requested, _a, _s in buyer.dispute_entries()] == [-TOKENS, 60_000]


def test_a_refund_while_a_chargeback_holds_never_pays_out_the_shortfall(buyer: _Buyer) -> None:
    """30 000 spent, half refunded, the rest charged back, then won: 20 000, what money pays for."""
    buyer.spend(30_000)
    buyer.refund(PRICE // 2)
    assert buyer.balance == 20_000
    buyer.dispute(CREATED, "needs_response")
    assert buyer.balance == 0
    buyer.dispute(CLOSED, "won")
    # Half the money is with the merchant (50 000 tokens' worth); 30 000 were already used.
    assert buyer.balance == 20_000


def test_a_refund_arriving_during_a_short_hold_never_pays_out_the_shortfall(
    buyer: _Buyer,
) -> None:
    """The refund recomputation after a hold with a shortfall gives nothing back on its own."""
    buyer.spend(30_000)
    buyer.dispute(CREATED, "needs_response")  # takes 70 000, 30 000 short
    assert buyer.refund(PRICE // 2) == ["applied"]
    assert buyer.balance == 0
    buyer.dispute(CLOSED, "won")
    assert buyer.balance == 20_000


def test_an_inquiry_holds_nothing_until_it_escalates(buyer: _Buyer) -> None:
    """warning_needs_response moves no money; funds_withdrawn then holds; winning gives it back."""
    assert buyer.dispute(CREATED, "warning_needs_response") == ["applied"]
    assert buyer.balance == TOKENS
    buyer.dispute(CREATED, "warning_under_review")
    assert buyer.balance == TOKENS
    buyer.dispute(WITHDRAWN, "needs_response")
    assert buyer.balance == 0
    buyer.dispute(CLOSED, "won")
    assert buyer.balance == TOKENS


def test_a_closed_dispute_stays_closed_whatever_arrives_late(buyer: _Buyer) -> None:
    """Won first; the chargeback's late creation and withdrawal hold nothing again."""
    assert buyer.dispute(CLOSED, "won") == ["applied"]
    assert buyer.dispute(CREATED, "needs_response") == ["duplicate"]
    assert buyer.dispute(WITHDRAWN, "needs_response") == ["duplicate"]
    assert buyer.balance == TOKENS
    assert buyer.dispute_entries() == []


def test_a_lost_dispute_keeps_the_hold_even_after_funds_were_reinstated(buyer: _Buyer) -> None:
    """A partial win returns funds then closes as lost: the tokens end held."""
    buyer.dispute(CREATED, "needs_response")
    buyer.dispute(REINSTATED, "under_review")
    assert buyer.balance == TOKENS
    buyer.dispute(CLOSED, "lost")
    buyer.dispute(REINSTATED, "lost")
    assert buyer.balance == 0


def test_a_late_lost_after_reinstated_funds_were_spent_records_the_shortfall(
    buyer: _Buyer,
) -> None:
    """The give-back was spent before the loss: the new hold stops at zero with a shortfall."""
    buyer.dispute(CREATED, "needs_response")
    buyer.dispute(REINSTATED, "under_review")
    buyer.spend(TOKENS)
    buyer.dispute(CLOSED, "lost")
    assert buyer.balance == 0
    assert buyer.dispute_entries()[-1] == (-TOKENS, 0, TOKENS)
