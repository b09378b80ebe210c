"""Balances on every store agree with an independent model of the money.

``tests.support.money_oracle`` is written from the contract's words, not from
the production rules. Random Stripe histories (payments, partial and full
refunds, inquiries, chargebacks won, lost or open, funds withdrawn and
reinstated, duplicated and out of order) go through the webhook's own path
(translation, then the journalled apply).
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from buytokens.adapters.memory import (
    FixedClock,
    SequentialIdSource,
)
from buytokens.adapters.stripe_events import translate_event
from buytokens.domain.ledger import EntryKind
from buytokens.entrypoints.composition import UseCaseDependencies
from buytokens.ports.balances import BalanceRepository
from buytokens.services.admin import GrantDependencies, grant_tokens
from buytokens.services.webhooks import apply_received_event
from buytokens.testing.stripe_twin import InMemoryPaymentGateway
from tests.support.concurrency import at_once
from tests.support.histories import deliveries, oracle_packages, purchase_history
from tests.support.money_oracle import MoneyOracle
from tests.support.stores import STORES
from tests.support.stripe_json import StripeJson
from tests.support.use_cases import wire

USERS = ("u1", "u2", "507f1f77bcf86cd799439011")
THREADS = 3
# The SQLite store fsyncs every commit; fewer of its examples keep the suite quick.
EXAMPLES = {"memory": 1.0, "mongo": 0.3, "sqlite": 0.1}


def _examples(kind: str) -> int:
    return max(10, int(settings().max_examples * EXAMPLES[kind]))


def _use_cases(store: BalanceRepository, clock: FixedClock) -> UseCaseDependencies:
    return wire(InMemoryPaymentGateway(clock=clock), clock, store=store)


@st.composite
def _histories(draw: st.DrawFn) -> tuple[list[StripeJson], list[StripeJson]]:
    """The events of 1-4 purchases by the users, and their deliveries."""
    events: list[StripeJson] = []
    for number in range(draw(st.integers(1, 4))):
        user = draw(st.sampled_from(USERS))
        events += draw(purchase_history(f"pi_{number}", user))
    return events, deliveries(draw, events)


def _ledger_sums(store: BalanceRepository, user: str) -> int:
    return sum(entry.applied for entry in store.ledger(user, limit=10_000))


def _delivered_concurrently(kind: str) -> None:
    @settings(max_examples=_examples(kind))
    @given(history=_histories())
    def check(history: tuple[list[StripeJson], list[StripeJson]]) -> None:
        events, delivered = history
        oracle = MoneyOracle(oracle_packages())
        oracle.receive(events)
        with ExitStack() as stack:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            clock = FixedClock()
            store = stack.enter_context(STORES[kind](directory, clock))
            use_cases = _use_cases(store, clock)

            def deliver_share(thread: int) -> None:
                for event in delivered[thread::THREADS]:
                    apply_received_event(use_cases.events, translate_event(event))

            at_once(deliver_share, THREADS)
            for user in USERS:
                assert store.balance(user) == oracle.tokens_for(user), user
                assert store.balance(user) == _ledger_sums(store, user)

    check()


def test_concurrent_histories_leave_what_the_money_pays_for_on_memory() -> None:
    """Delivered from several threads, any order, duplicated: balances match the oracle."""
    _delivered_concurrently("memory")


def test_concurrent_histories_leave_what_the_money_pays_for_on_sqlite() -> None:
    """The same property on the SQLite store."""
    _delivered_concurrently("sqlite")


def test_concurrent_histories_leave_what_the_money_pays_for_on_mongo() -> None:
    """The same property on the MongoDB store."""
    _delivered_concurrently("mongo")


@st.composite
def _spending_histories(draw: st.DrawFn) -> list[tuple[str, StripeJson | int]]:
    """One purchase per user; its deliveries interleaved with the user spending tokens."""
    steps: list[tuple[str, StripeJson | int]] = []
    for number, user in enumerate(
        draw(st.lists(st.sampled_from(USERS), min_size=1, max_size=3, unique=True))
    ):
        events = draw(purchase_history(f"pi_{number}", user))
        steps += [(user, event) for event in deliveries(draw, events)]
        spends = draw(st.lists(st.integers(1, 1_200_000), max_size=4))
        steps += [(user, tokens) for tokens in spends]
    return list(draw(st.permutations(steps)))


def _spent_step_by_step(kind: str) -> None:
    @settings(max_examples=_examples(kind))
    @given(steps=_spending_histories())
    def check(steps: list[tuple[str, StripeJson | int]]) -> None:
        oracle = MoneyOracle(oracle_packages())
        spent = dict.fromkeys(USERS, 0)
        with ExitStack() as stack:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            clock = FixedClock()
            store = stack.enter_context(STORES[kind](directory, clock))
            use_cases = _use_cases(store, clock)
            ids = SequentialIdSource("spend")
            for user, step in steps:
                before = store.balance(user)
                if isinstance(step, int):
                    entry = grant_tokens(GrantDependencies(store, ids), user, -step, "chat usage")
                    assert entry.applied == -min(step, before)
                    spent[user] += -entry.applied
                else:
                    oracle.receive([step])
                    applied = apply_received_event(use_cases.events, translate_event(step))
                    balance = before
                    for entry in applied.entries:
                        # A take-back stops at zero and records the rest; a credit or a
                        # give-back is applied whole.
                        assert entry.applied == max(entry.requested, -balance)
                        assert entry.shortfall == entry.applied - entry.requested
                        balance += entry.applied
                # Never more than the money pays for beyond what was used, never a
                # shortfall paid out, and nothing taken that the money did not take.
                assert store.balance(user) == max(0, oracle.tokens_for(user) - spent[user])
            for user in USERS:
                taken = [
                    e.applied
                    for e in store.ledger(user, limit=10_000)
                    if e.kind in (EntryKind.REFUND, EntryKind.DISPUTE)
                ]
                assert sum(taken) <= 0  # give-backs never exceed what take-backs took

    check()


def test_spending_between_deliveries_never_pays_out_a_shortfall_on_memory() -> None:
    """Step by step: the balance is what the money pays for less what was spent, or 0."""
    _spent_step_by_step("memory")


def test_spending_between_deliveries_never_pays_out_a_shortfall_on_sqlite() -> None:
    """The same property on the SQLite store."""
    _spent_step_by_step("sqlite")


def test_spending_between_deliveries_never_pays_out_a_shortfall_on_mongo() -> None:
    """The same property on the MongoDB store."""
    _spent_step_by_step("mongo")
