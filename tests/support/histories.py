"""Random Stripe histories of purchases: payments, refunds and dispute stories.

Each history is what Stripe would emit over a purchase's life, as event JSON;
tests deliver it in any order, any number of times. Dispute stories follow
Stripe's lifecycles: inquiries that close or escalate, chargebacks won, lost or
still open, funds withdrawn and reinstated, disputes settled by a refund.
"""

from __future__ import annotations

from hypothesis import strategies as st

from buytokens.domain.catalogue import DEFAULT_CATALOGUE, Catalogue
from tests.support import stripe_json
from tests.support.money_oracle import Package
from tests.support.stripe_json import StripeJson

CREATED = "charge.dispute.created"
WITHDRAWN = "charge.dispute.funds_withdrawn"
REINSTATED = "charge.dispute.funds_reinstated"
CLOSED = "charge.dispute.closed"
REFUND = "refund"  # a story step that is a refund of the disputed amount

_INQUIRY = (CREATED, "warning_needs_response")
_CHARGEBACK = ((CREATED, "needs_response"), (WITHDRAWN, "needs_response"))
_ESCALATED = (_INQUIRY, (WITHDRAWN, "needs_response"))

DISPUTE_STORIES: dict[str, tuple[tuple[str, str], ...]] = {
    "inquiry, open": (_INQUIRY, (CREATED, "warning_under_review")),
    "inquiry, closed": (_INQUIRY, (CLOSED, "warning_closed")),
    "inquiry escalated, open": _ESCALATED,
    "inquiry escalated, won": (*_ESCALATED, (REINSTATED, "won"), (CLOSED, "won")),
    "inquiry escalated, lost": (*_ESCALATED, (CLOSED, "lost")),
    "chargeback, open": _CHARGEBACK,
    "chargeback, funds back, open": (*_CHARGEBACK, (REINSTATED, "under_review")),
    "chargeback, won": (*_CHARGEBACK, (CLOSED, "won"), (REINSTATED, "won")),
    "chargeback, lost": (*_CHARGEBACK, (CLOSED, "lost")),
    "chargeback, partly won": (*_CHARGEBACK, (REINSTATED, "under_review"), (CLOSED, "lost")),
    "chargeback, only its withdrawal": ((WITHDRAWN, "needs_response"),),
    "prevented by a refund": (_INQUIRY, (REFUND, ""), (CLOSED, "prevented")),
    "settled by a refund": (_INQUIRY, (REFUND, ""), (CLOSED, "charge_refunded")),
}


def oracle_packages(catalogue: Catalogue = DEFAULT_CATALOGUE) -> dict[str, Package]:
    """The catalogue as the oracle needs it."""
    return {p.id: Package(p.tokens, p.price.amount, p.price.currency) for p in catalogue}


@st.composite
def purchase_history(
    draw: st.DrawFn,
    pi: str,
    user: str,
    *,
    tampered: bool | None = None,
    gift: bool = False,
) -> list[StripeJson]:
    """Every event Stripe emits over one purchase's life, in the order they happened."""
    package = draw(st.sampled_from(list(DEFAULT_CATALOGUE)))
    price, currency = package.price.amount, package.price.currency
    if tampered is None:
        tampered = draw(st.sampled_from([False] * 5 + [True]))
    events = [stripe_json.succeeded(pi, user, package.id, price + int(tampered), currency)]
    if gift:
        events[0]["data"]["object"]["metadata"]["gift"] = "true"
    refunded = 0

    def refund(amount: int) -> None:
        nonlocal refunded
        refunded = min(price, refunded + amount)
        events.append(stripe_json.refunded(pi, price, refunded, currency))

    def share() -> int:
        return max(1, price * draw(st.integers(1, 100)) // 100)

    for _ in range(draw(st.integers(0, 2))):
        refund(share())
    for number in range(draw(st.integers(0, 2))):
        story = draw(st.sampled_from(sorted(DISPUTE_STORIES)))
        amount = share()
        for event_type, status in DISPUTE_STORIES[story]:
            if event_type == REFUND:
                refund(amount)
            else:
                events.append(
                    stripe_json.dispute(
                        event_type, pi, f"dp_{pi}_{number}", amount, currency, status
                    )
                )
    return events


def deliveries(draw: st.DrawFn, events: list[StripeJson]) -> list[StripeJson]:
    """Each event delivered once or twice, in any order."""
    repeated = [event for event in events for _ in range(draw(st.integers(1, 2)))]
    return list(draw(st.permutations(repeated)))
