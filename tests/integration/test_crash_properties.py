"""Crashes at random points of random delivery histories, then redelivery: the same end state.

A history of events is applied twice: once without faults on the in-memory store
(the reference), and once on SQLite where the writer is killed at a random
statement of any delivery, restarted on the same file, and the event redelivered.
Both must end with the same balances, ledger and purchase states.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from buytokens.adapters.memory import FixedClock, InMemoryBalanceRepository
from buytokens.adapters.sqlite.store import SqliteBalanceRepository
from buytokens.domain.catalogue import DEFAULT_CATALOGUE
from buytokens.domain.events import (
    ChargeRefunded,
    DisputeChanged,
    DisputeState,
    PaymentEvent,
    PaymentSucceeded,
)
from buytokens.domain.money import Money
from buytokens.ports.balances import BalanceRepository
from buytokens.services.crediting import CreditingDependencies, apply_payment_event
from tests.support.crashes import CrashAt, SimulatedCrash, crashing_connection

T0 = datetime(2026, 6, 1, tzinfo=UTC)
PACKAGE = DEFAULT_CATALOGUE.get("package_500k")
USERS = ("ann", "ben")


CRASH = CrashAt()
DyingConnection = crashing_connection(CRASH)


def _events_for(intent: int) -> list[PaymentEvent]:
    pi = f"pi_{intent}"
    user = USERS[intent % len(USERS)]
    price = PACKAGE.price
    return [
        PaymentSucceeded(f"evt_ok_{pi}", pi, price, user, PACKAGE.id, T0),
        ChargeRefunded(f"evt_rf1_{pi}", pi, Money(700, price.currency), T0),
        ChargeRefunded(f"evt_rf2_{pi}", pi, Money(2_100, price.currency), T0),
        DisputeChanged(
            f"evt_dpo_{pi}", pi, "dp_" + pi, Money(1_400, price.currency), DisputeState.OPEN, T0
        ),
        DisputeChanged(
            f"evt_dpw_{pi}", pi, "dp_" + pi, Money(1_400, price.currency), DisputeState.WON, T0
        ),
    ]


POOL = [event for intent in range(3) for event in _events_for(intent)]

deliveries = st.lists(
    st.tuples(st.sampled_from(POOL), st.one_of(st.none(), st.integers(1, 14))),
    min_size=1,
    max_size=12,
)


def _state(store: BalanceRepository) -> tuple[object, ...]:
    balances = tuple(store.balance(user) for user in USERS)
    ledgers = tuple(
        sorted(
            (e.key, e.requested, e.applied, e.shortfall) for e in store.ledger(user, limit=1_000)
        )
        for user in USERS
    )
    purchases = tuple(
        (p.status, p.tokens_credited, p.tokens_refunded, p.tokens_held)
        for p in (store.get_purchase(f"pi_{i}") for i in range(3))
        if p is not None
    )
    return balances, ledgers, purchases


@given(history=deliveries)
def test_killing_the_writer_anywhere_then_redelivering_matches_a_clean_run(
    history: list[tuple[PaymentEvent, int | None]],
) -> None:
    """Exactly-once survives a crash at any statement of any delivery."""
    clock = FixedClock(T0)
    reference = InMemoryBalanceRepository(clock)
    for event, _ in history:
        apply_payment_event(CreditingDependencies(reference, DEFAULT_CATALOGUE, clock), event)

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "crash.sqlite3"
        store = SqliteBalanceRepository(path, clock, connection_factory=DyingConnection)
        try:
            for event, crash_at in history:
                clock.advance(timedelta(milliseconds=1))
                CRASH.arm(crash_at)
                try:
                    apply_payment_event(
                        CreditingDependencies(store, DEFAULT_CATALOGUE, clock), event
                    )
                except SimulatedCrash:
                    CRASH.arm(None)
                    store.close()  # the dead process's open transaction is discarded
                    store = SqliteBalanceRepository(path, clock, connection_factory=DyingConnection)
                    apply_payment_event(
                        CreditingDependencies(store, DEFAULT_CATALOGUE, clock), event
                    )
                finally:
                    CRASH.arm(None)
            assert _state(store) == _state(reference)
            for user in USERS:
                assert store.balance(user) == store.ledger_sum(user)
        finally:
            CRASH.arm(None)
            store.close()
