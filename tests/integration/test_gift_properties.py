"""Gifts in random histories, on every store, agree with the money oracle.

A gift's Stripe events (paid, refunds, inquiries, chargebacks won, lost or open,
duplicated and out of order) are interleaved with redemption attempts by
several users, the buyer included. ``tests.support.money_oracle`` says, from
the contract's words alone, what each attempt must answer and what every
balance must be.
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from buytokens.adapters.memory import FixedClock
from buytokens.adapters.stripe_events import translate_event
from buytokens.domain.codes import CodeSecret, RedemptionCode
from buytokens.domain.errors import GiftAlreadyRedeemed, GiftNotFound, GiftVoid
from buytokens.services.codes import CodeDesk, redeem_code
from buytokens.services.gifts import GiftCodes
from buytokens.services.webhooks import apply_received_event
from buytokens.testing.stripe_twin import InMemoryPaymentGateway
from tests.support.code_stores import CODE_STORES
from tests.support.histories import deliveries, oracle_packages, purchase_history
from tests.support.money_oracle import MoneyOracle
from tests.support.stripe_json import StripeJson
from tests.support.use_cases import wire

SECRET = CodeSecret.derived_from("the-secret-the-gift-codes-come-from")
BUYER = "507f1f77bcf86cd799439011"
USERS = (BUYER, "u1", "u2")
EXAMPLES = {"memory": 1.0, "mongo": 0.3, "sqlite": 0.1}

Step = tuple[str, StripeJson | str]  # ("event", json) or ("redeem", user)


@st.composite
def _histories(draw: st.DrawFn) -> list[Step]:
    """A gift and a plain purchase by the buyer, their deliveries, and redemption attempts."""
    events = draw(purchase_history("pi_gift", BUYER, gift=True))
    events += draw(purchase_history("pi_plain", BUYER))
    steps: list[Step] = [("event", event) for event in deliveries(draw, events)]
    steps += [("redeem", user) for user in draw(st.lists(st.sampled_from(USERS), max_size=4))]
    return list(draw(st.permutations(steps)))


def _outcome(desk: CodeDesk, user: str) -> str:
    code = RedemptionCode.for_gift(SECRET, "pi_gift").display()
    try:
        redeem_code(desk, user, code)
    except GiftNotFound:
        return "not_found"
    except GiftAlreadyRedeemed:
        return "already"
    except GiftVoid:
        return "void"
    return "redeemed"


def _check(kind: str) -> None:
    @settings(max_examples=max(10, int(settings().max_examples * EXAMPLES[kind])))
    @given(steps=_histories())
    def check(steps: list[Step]) -> None:
        oracle = MoneyOracle(oracle_packages())
        with ExitStack() as stack:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            clock = FixedClock()
            stores = stack.enter_context(CODE_STORES[kind](directory, clock))
            gifts = GiftCodes(SECRET, stores.codes)
            gateway = InMemoryPaymentGateway(clock=clock)
            use_cases = wire(gateway, clock, store=stores.balances, gifts=gifts)
            desk = CodeDesk(stores.codes, stores.balances, clock)
            for step, subject in steps:
                if step == "event":
                    assert isinstance(subject, dict)
                    oracle.receive([subject])
                    apply_received_event(use_cases.events, translate_event(subject))
                else:
                    assert isinstance(subject, str)
                    assert _outcome(desk, subject) == oracle.redeem("pi_gift", subject)
            for user in USERS:
                assert stores.balances.balance(user) == oracle.tokens_for(user), user
                ledger = stores.balances.ledger(user, limit=10_000)
                assert stores.balances.balance(user) == sum(e.applied for e in ledger)

    check()


def test_gift_histories_follow_the_contract_on_memory() -> None:
    """Any order of paid, refunded, disputed and redeemed: answers and balances as the oracle."""
    _check("memory")


def test_gift_histories_follow_the_contract_on_sqlite() -> None:
    """The same property on the SQLite store."""
    _check("sqlite")


def test_gift_histories_follow_the_contract_on_mongo() -> None:
    """The same property on the MongoDB store."""
    _check("mongo")
