"""Random delivery histories against every store, checked against the money oracle.

Stripe's world is modelled as a pool of events it has emitted (Stripe-shaped
JSON); any emitted event may be delivered at any time, any number of times,
through the webhook's journalled path. Operators approve flagged purchases and
grant or deduct tokens in between. What must be true comes from
``tests.support.money_oracle`` (written from the contract, not from the rules
under test) fed with the *set* of events delivered, so every order must agree.
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

from buytokens.adapters.memory import (
    FixedClock,
)
from buytokens.adapters.stripe_events import translate_event
from buytokens.domain.catalogue import DEFAULT_CATALOGUE
from buytokens.domain.crediting import credit_key
from buytokens.domain.errors import UserError
from buytokens.domain.ledger import EntryKind, LedgerChange, LedgerEntry
from buytokens.domain.purchases import Purchase, PurchaseStatus
from buytokens.services.admin import ApprovalDependencies, approve_purchase
from buytokens.services.webhooks import apply_received_event
from buytokens.testing.stripe_twin import InMemoryPaymentGateway
from tests.support import stripe_json
from tests.support.histories import DISPUTE_STORIES, REFUND, oracle_packages
from tests.support.money_oracle import MoneyOracle
from tests.support.stores import STORES
from tests.support.stripe_json import StripeJson
from tests.support.use_cases import wire

USERS = ("u1", "u2", "u3", "u4", "507f1f77bcf86cd799439011")
PACKAGES = list(DEFAULT_CATALOGUE)
T0 = datetime(2026, 3, 1, tzinfo=UTC)


class _Intent:
    """Stripe's side of one payment intent."""

    def __init__(self, pi: str, user: str, package_index: int, ours: bool, tampered: bool) -> None:
        self.pi, self.user, self.ours, self.tampered = pi, user, ours, tampered
        self.package = PACKAGES[package_index]
        self.refunded = 0  # Stripe's cumulative refund so far
        self.disputes = 0
        self.got_success = False
        self.approved = False
        self.got_attempt: tuple[int, str] | None = None  # (Stripe time, outcome)


class CreditingMachine(RuleBasedStateMachine):
    """Delivers random histories and operator actions, checking the ledger after every step."""

    store_kind = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="buytokens-prop-"))
        self.clock = FixedClock(T0)
        self.stack = ExitStack()
        self.store = self.stack.enter_context(STORES[self.store_kind](self.directory, self.clock))
        self.use_cases = wire(
            InMemoryPaymentGateway(clock=self.clock), self.clock, store=self.store
        )
        self.oracle = MoneyOracle(oracle_packages())
        self.intents: list[_Intent] = []
        self.emitted: list[tuple[_Intent, StripeJson]] = []
        self.seconds = 0
        self.spent: dict[str, int] = defaultdict(int)  # tokens actually deducted
        self.granted: dict[str, int] = defaultdict(int)  # tokens actually granted

    def teardown(self) -> None:
        self.stack.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _tick(self) -> int:
        self.seconds += 1
        return self.seconds

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
        price = intent.package.price
        if ours:
            self.store.add_purchase(
                Purchase.pending(
                    intent.pi, intent.user, intent.package.id, intent.package.tokens, price, T0
                )
            )
        paid = stripe_json.succeeded(
            intent.pi, intent.user, intent.package.id, price.amount + tampered, price.currency
        )
        paid["created"] += self._tick()
        self.emitted.append((intent, paid))

    @rule(data=st.data(), outcome=st.sampled_from(["processing", "payment_failed", "canceled"]))
    def emit_attempt(self, data: st.DataObject, outcome: str) -> None:
        intent = data.draw(st.sampled_from(self.intents))
        at = self._tick()
        subject = {"id": intent.pi, "object": "payment_intent", "status": outcome}
        if outcome == "payment_failed":
            subject["last_payment_error"] = {"message": "declined"}
        event = stripe_json.stripe_event(
            f"payment_intent.{outcome}", subject, event_id=f"evt_att_{at}", created=at
        )
        self.emitted.append((intent, event))

    @rule(data=st.data(), share=st.integers(1, 100))
    def emit_refund(self, data: st.DataObject, share: int) -> None:
        intent = data.draw(st.sampled_from(self.intents))
        self._refund(intent, share)

    def _refund(self, intent: _Intent, share: int) -> None:
        price = intent.package.price
        intent.refunded = min(price.amount, intent.refunded + max(1, price.amount * share // 100))
        event = stripe_json.refunded(intent.pi, price.amount, intent.refunded, price.currency)
        self.emitted.append((intent, event))

    @rule(data=st.data(), share=st.integers(1, 100), story=st.sampled_from(sorted(DISPUTE_STORIES)))
    def emit_dispute(self, data: st.DataObject, share: int, story: str) -> None:
        intent = data.draw(st.sampled_from(self.intents))
        price = intent.package.price
        amount = max(1, price.amount * share // 100)
        dispute_id = f"dp_{intent.pi}_{intent.disputes}"
        intent.disputes += 1
        for event_type, status in DISPUTE_STORIES[story]:
            if event_type == REFUND:
                self._refund(intent, share)
                continue
            event = stripe_json.dispute(
                event_type, intent.pi, dispute_id, amount, price.currency, status
            )
            self.emitted.append((intent, event))

    @precondition(lambda self: self.emitted)
    @rule(data=st.data(), times=st.integers(1, 3))
    def deliver(self, data: st.DataObject, times: int) -> None:
        intent, event = data.draw(st.sampled_from(self.emitted))
        for _ in range(times):
            self.clock.advance(timedelta(milliseconds=1))
            apply_received_event(self.use_cases.events, translate_event(event))
        self.oracle.receive([event])
        if event["type"] == "payment_intent.succeeded":
            intent.got_success = True
        elif event["type"].startswith("payment_intent.") and (intent.ours or intent.got_success):
            latest = intent.got_attempt
            if latest is None or event["created"] > latest[0]:
                intent.got_attempt = (event["created"], event["type"])

    @rule(data=st.data())
    def approve(self, data: st.DataObject) -> None:
        intent = data.draw(st.sampled_from(self.intents))
        flagged = intent.tampered and intent.got_success and not intent.approved
        try:
            approve_purchase(
                ApprovalDependencies(self.store, self.clock), intent.pi, "checked by hand"
            )
        except UserError:
            assert not flagged
            return
        assert flagged
        intent.approved = True
        self.oracle.approve(intent.pi)

    @rule(user=st.sampled_from(USERS), tokens=st.integers(-3_000_000, 3_000_000).filter(bool))
    def adjust(self, user: str, tokens: int) -> None:
        entry = self.store.record_adjustment(
            LedgerChange(f"admin:{self._tick()}", user, EntryKind.ADMIN, tokens, reason="test")
        )
        if tokens < 0:
            self.spent[user] -= entry.applied
        else:
            self.granted[user] += entry.applied

    # -- what must hold after every step ------------------------------------------------

    def _entries(self) -> dict[str, list[LedgerEntry]]:
        by_pi: dict[str, list[LedgerEntry]] = defaultdict(list)
        for user in USERS:
            for entry in self.store.ledger(user, limit=100_000):
                if entry.payment_intent_id is not None:
                    by_pi[entry.payment_intent_id].append(entry)
        return by_pi

    def _credited(self, intent: _Intent) -> int:
        pays = intent.got_success and (intent.approved or not intent.tampered)
        return intent.package.tokens if pays else 0

    @invariant()
    def balances_equal_their_ledgers_and_never_go_negative(self) -> None:
        for user in USERS:
            entries = self.store.ledger(user, limit=100_000)
            balance = self.store.balance(user)
            assert balance >= 0
            assert balance == sum(e.applied for e in entries)
            assert all(e.balance_after == 0 for e in entries if e.shortfall)

    @invariant()
    def each_intent_is_credited_once_and_takes_back_only_what_the_money_took(self) -> None:
        entries_by_pi = self._entries()
        for intent in self.intents:
            entries = entries_by_pi.get(intent.pi, [])
            credited = self._credited(intent)
            credits = [e for e in entries if e.key == credit_key(intent.pi)]
            assert sum(e.applied for e in entries if e.kind is EntryKind.PURCHASE) == credited
            assert len(credits) == (1 if credited else 0)
            takebacks = [e for e in entries if e.kind in (EntryKind.REFUND, EntryKind.DISPUTE)]
            taken = -sum(e.applied for e in takebacks)
            owed = credited - self.oracle.tokens_paid_for(intent.pi) if credited else 0
            assert 0 <= taken <= owed, (intent.pi, taken, owed)
            if not any(e.shortfall for e in takebacks):
                assert taken == owed, (intent.pi, taken, owed)

    @invariant()
    def balances_are_what_the_money_pays_for(self) -> None:
        for user in USERS:
            mine = [i for i in self.intents if i.user == user]
            paid_for = sum(self.oracle.tokens_paid_for(i.pi) for i in mine if self._credited(i))
            balance = self.store.balance(user)
            floor = paid_for + self.granted[user] - self.spent[user]
            if not self.spent[user]:
                assert balance == floor
            elif len(mine) <= 1 and not self.granted[user]:
                # One purchase: spent tokens stay spent; a shortfall is never paid out.
                assert balance == max(0, floor)
            else:
                assert balance >= max(0, floor)

    @invariant()
    def statuses_follow_the_delivered_facts(self) -> None:
        for intent in self.intents:
            purchase = self.store.get_purchase(intent.pi)
            if not intent.got_success:
                if intent.ours:
                    assert purchase is not None
                    assert purchase.status is self._attempt_status(intent)
                continue
            assert purchase is not None
            assert purchase.status is self._paid_status(intent), (intent.pi, purchase)

    def _attempt_status(self, intent: _Intent) -> PurchaseStatus:
        if intent.got_attempt is None:
            return PurchaseStatus.PENDING
        if intent.got_attempt[1] == "payment_intent.processing":
            return PurchaseStatus.PROCESSING
        return PurchaseStatus.FAILED

    def _paid_status(self, intent: _Intent) -> PurchaseStatus:
        if intent.tampered and not intent.approved:
            return PurchaseStatus.NEEDS_REVIEW
        if self.oracle.in_dispute(intent.pi):
            return PurchaseStatus.DISPUTED
        refunded = self.oracle.refunded(intent.pi)
        if refunded >= intent.package.price.amount:
            return PurchaseStatus.REFUNDED
        return PurchaseStatus.PARTIALLY_REFUNDED if refunded else PurchaseStatus.SUCCEEDED


def _machine_for(kind: str) -> type[CreditingMachine]:
    return type(f"CreditingMachine_{kind}", (CreditingMachine,), {"store_kind": kind})


for _kind in sorted(STORES):
    globals()[f"TestCrediting_{_kind}"] = _machine_for(_kind).TestCase
