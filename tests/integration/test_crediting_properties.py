"""Random delivery histories against every store, checked against a plain-dict model.

Stripe's world is modelled as a pool of events it has emitted; any emitted event
may be delivered at any time, any number of times. The model derives what must
be true from the *set* of events delivered, so every order must agree with it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import defaultdict
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from buytokens.adapters.memory import FixedClock
from buytokens.domain.catalogue import DEFAULT_CATALOGUE
from buytokens.domain.crediting import credit_key
from buytokens.domain.events import (
    AttemptOutcome,
    ChargeRefunded,
    DisputeChanged,
    DisputeState,
    PaymentAttempted,
    PaymentEvent,
    PaymentSucceeded,
)
from buytokens.domain.ledger import EntryKind, LedgerChange
from buytokens.domain.money import Money
from buytokens.domain.purchases import Purchase, PurchaseStatus
from buytokens.services.crediting import apply_payment_event
from tests.support.stores import STORES

USERS = ("u1", "u2", "u3", "u4", "507f1f77bcf86cd799439011")
PACKAGES = list(DEFAULT_CATALOGUE)
T0 = datetime(2026, 3, 1, tzinfo=UTC)


class _Intent:
    """Stripe's side of one payment intent, and what of it has been delivered."""

    def __init__(self, pi: str, user: str, package_index: int, ours: bool, tampered: bool) -> None:
        package = PACKAGES[package_index]
        self.pi, self.user, self.package, self.ours, self.tampered = (
            pi,
            user,
            package,
            ours,
            tampered,
        )
        self.paid = Money(package.price.amount + (1 if tampered else 0), package.price.currency)
        self.refunded = 0  # Stripe's cumulative refund so far
        self.disputes: dict[str, int] = {}  # dispute id -> amount
        # delivered facts
        self.got_success = False
        self.got_refund = 0
        self.got_disputes: dict[str, DisputeState] = {}
        self.got_attempt: tuple[datetime, AttemptOutcome] | None = None

    @property
    def credited(self) -> int:
        return self.package.tokens if self.got_success and not self.tampered else 0

    def targets(self) -> tuple[int, int]:
        credited, paid = self.credited, self.package.price.amount
        if credited == 0:
            return 0, 0
        refund = credited * min(self.got_refund, paid) // paid
        disputed = sum(
            self.disputes[d] for d, s in self.got_disputes.items() if s is not DisputeState.WON
        )
        return refund, min(credited - refund, credited * min(disputed, paid) // paid)

    def expected_status(self) -> PurchaseStatus | None:
        if self.got_success:
            if self.tampered:
                return PurchaseStatus.NEEDS_REVIEW
            if any(s is not DisputeState.WON for s in self.got_disputes.values()):
                return PurchaseStatus.DISPUTED
            if self.got_refund >= self.package.price.amount:
                return PurchaseStatus.REFUNDED
            return (
                PurchaseStatus.PARTIALLY_REFUNDED if self.got_refund else PurchaseStatus.SUCCEEDED
            )
        if not self.ours:
            return None  # attempts on intents we never stored are ignored until success
        if self.got_attempt is None:
            return PurchaseStatus.PENDING
        outcome = self.got_attempt[1]
        return (
            PurchaseStatus.PROCESSING
            if outcome is AttemptOutcome.PROCESSING
            else PurchaseStatus.FAILED
        )


class CreditingMachine(RuleBasedStateMachine):
    """Delivers random histories of payment events and checks the ledger after every step."""

    store_kind = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="buytokens-prop-"))
        self.clock = FixedClock(T0)
        self.stack = ExitStack()
        self.store = self.stack.enter_context(STORES[self.store_kind](self.directory, self.clock))
        self.intents: list[_Intent] = []
        self.emitted: list[tuple[_Intent, PaymentEvent]] = []
        self.stripe_time = T0
        self.spent: dict[str, bool] = defaultdict(bool)
        self.granted: dict[str, int] = defaultdict(int)

    def teardown(self) -> None:
        self.stack.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _tick(self) -> datetime:
        self.stripe_time += timedelta(seconds=1)
        return self.stripe_time

    def _emit(self, intent: _Intent, event: PaymentEvent) -> None:
        self.emitted.append((intent, event))

    @initialize(users=st.lists(st.integers(0, len(USERS) - 1), min_size=1, max_size=3))
    def start(self, users: list[int]) -> None:
        for user in users:
            self.open_intent(user, 0, True, False)

    @rule(
        user=st.integers(0, len(USERS) - 1),
        package=st.integers(0, len(PACKAGES) - 1),
        ours=st.booleans(),
        tampered=st.sampled_from([False, False, False, True]),
    )
    def open_intent(self, user: int, package: int, ours: bool, tampered: bool) -> None:
        intent = _Intent(f"pi_{len(self.intents)}", USERS[user], package, ours, tampered)
        self.intents.append(intent)
        if ours:
            self.store.add_purchase(
                Purchase.pending(
                    intent.pi,
                    intent.user,
                    intent.package.id,
                    intent.package.tokens,
                    intent.package.price,
                    self.clock.now(),
                )
            )
        self._emit(
            intent,
            PaymentSucceeded(
                f"evt_ok_{intent.pi}",
                intent.pi,
                intent.paid,
                intent.user,
                intent.package.id,
                self._tick(),
            ),
        )

    @rule(data=st.data(), outcome=st.sampled_from(AttemptOutcome))
    def emit_attempt(self, data: st.DataObject, outcome: AttemptOutcome) -> None:
        intent = data.draw(st.sampled_from(self.intents))
        at = self._tick()
        self._emit(intent, PaymentAttempted(f"evt_att_{at.timestamp()}", intent.pi, outcome, at))

    @rule(data=st.data(), share=st.integers(1, 100))
    def emit_refund(self, data: st.DataObject, share: int) -> None:
        intent = data.draw(st.sampled_from(self.intents))
        price = intent.package.price.amount
        intent.refunded = min(price, intent.refunded + max(1, price * share // 100))
        self._emit(
            intent,
            ChargeRefunded(
                f"evt_rf_{intent.pi}_{intent.refunded}",
                intent.pi,
                Money(intent.refunded, intent.paid.currency),
                self._tick(),
            ),
        )

    @rule(data=st.data(), share=st.integers(1, 100), outcome=st.sampled_from(DisputeState))
    def emit_dispute(self, data: st.DataObject, share: int, outcome: DisputeState) -> None:
        intent = data.draw(st.sampled_from(self.intents))
        dispute_id = f"dp_{intent.pi}_{len(intent.disputes)}"
        amount = max(1, intent.package.price.amount * share // 100)
        intent.disputes[dispute_id] = amount
        money = Money(amount, intent.paid.currency)
        self._emit(
            intent,
            DisputeChanged(
                f"evt_{dispute_id}_open",
                intent.pi,
                dispute_id,
                money,
                DisputeState.OPEN,
                self._tick(),
            ),
        )
        if outcome is not DisputeState.OPEN:
            self._emit(
                intent,
                DisputeChanged(
                    f"evt_{dispute_id}_close", intent.pi, dispute_id, money, outcome, self._tick()
                ),
            )

    @precondition(lambda self: self.emitted)
    @rule(data=st.data(), times=st.integers(1, 3))
    def deliver(self, data: st.DataObject, times: int) -> None:
        intent, event = data.draw(st.sampled_from(self.emitted))
        for _ in range(times):
            self.clock.advance(timedelta(milliseconds=1))
            apply_payment_event(event, self.store, DEFAULT_CATALOGUE, self.clock)
        self._learn(intent, event)

    def _learn(self, intent: _Intent, event: PaymentEvent) -> None:
        if isinstance(event, PaymentSucceeded):
            intent.got_success = True
        elif isinstance(event, ChargeRefunded):
            intent.got_refund = max(intent.got_refund, event.amount_refunded.amount)
        elif isinstance(event, DisputeChanged):
            known = intent.got_disputes.get(event.dispute_id)
            if known is None or known is DisputeState.OPEN:
                intent.got_disputes[event.dispute_id] = event.state
        elif intent.ours or intent.got_success:
            latest = intent.got_attempt
            if latest is None or event.occurred_at > latest[0]:
                intent.got_attempt = (event.occurred_at, event.outcome)

    @rule(user=st.sampled_from(USERS), tokens=st.integers(-3_000_000, 3_000_000).filter(bool))
    def adjust(self, user: str, tokens: int) -> None:
        self.store.record_adjustment(
            LedgerChange(
                f"admin:{self._tick().timestamp()}", user, EntryKind.ADMIN, tokens, reason="test"
            )
        )
        if tokens < 0:
            self.spent[user] = True
        self.granted[user] += tokens

    @invariant()
    def balances_equal_their_ledgers_and_never_go_negative(self) -> None:
        for user in USERS:
            entries = self.store.ledger(user, limit=100_000)
            balance = self.store.balance(user)
            assert balance >= 0
            assert balance == sum(e.applied for e in entries)
            assert all(e.balance_after == 0 for e in entries if e.shortfall)

    @invariant()
    def each_intent_is_credited_once_and_taken_back_by_its_share(self) -> None:
        entries_by_pi: dict[str, list[object]] = defaultdict(list)
        for user in USERS:
            for entry in self.store.ledger(user, limit=100_000):
                if entry.payment_intent_id is not None:
                    entries_by_pi[entry.payment_intent_id].append(entry)
        for intent in self.intents:
            entries = entries_by_pi.get(intent.pi, [])
            by_kind: dict[EntryKind, int] = defaultdict(int)
            credits = 0
            for entry in entries:
                by_kind[entry.kind] += entry.requested  # type: ignore[attr-defined]
                credits += entry.key == credit_key(intent.pi)  # type: ignore[attr-defined]
            refund, held = intent.targets()
            assert credits == (1 if intent.credited else 0)
            assert by_kind[EntryKind.PURCHASE] == intent.credited
            assert -by_kind[EntryKind.REFUND] == refund
            assert -by_kind[EntryKind.DISPUTE] == held
            assert refund + held <= intent.credited

    @invariant()
    def statuses_follow_the_delivered_facts(self) -> None:
        for intent in self.intents:
            expected = intent.expected_status()
            if expected is None:
                continue
            purchase = self.store.get_purchase(intent.pi)
            assert purchase is not None
            assert purchase.status is expected, (intent.pi, purchase)

    @invariant()
    def balances_match_the_model_when_nothing_was_spent(self) -> None:
        for user in USERS:
            if self.spent[user]:
                continue
            expected = self.granted[user] + sum(
                i.credited - sum(i.targets()) for i in self.intents if i.user == user
            )
            assert self.store.balance(user) == expected


def _machine_for(kind: str) -> type[CreditingMachine]:
    return type(f"CreditingMachine_{kind}", (CreditingMachine,), {"store_kind": kind})


for _kind in sorted(STORES):
    globals()[f"TestCrediting_{_kind}"] = _machine_for(_kind).TestCase
