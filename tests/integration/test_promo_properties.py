"""Promo codes on every store against a model written from the contract's sentence:

    A promo code is counted once per paid purchase, and its limits (``--max-redemptions``,
    ``--per-user``) are never exceeded, even by concurrent checkouts: an unpaid intent holds
    its use until it fails, is canceled, or its hold expires. [...] a succeeded payment of
    the discounted amount credits the package's full tokens.

Random steps: checkouts with a code (alone, or 2-4 released together from as many threads),
payments through the Stripe twin delivered through the webhook's own path (at once, later,
or again), failures, cancellations, the clock moving past the hold's hour, sweeps. After
every step: live holds and paid uses within both limits, the paid uses the store reports
equal to the purchases credited with the code, every credit the package's full tokens and
each balance the sum of its credits.
"""

from __future__ import annotations

import sys
import tempfile
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from buytokens.adapters.memory import FixedClock
from buytokens.adapters.stripe_events import translate_event
from buytokens.domain.catalogue import DEFAULT_CATALOGUE
from buytokens.domain.errors import InvalidPromoCode
from buytokens.domain.purchases import PurchaseStatus
from buytokens.entrypoints.composition import UseCaseDependencies
from buytokens.services.buying import create_payment_intent
from buytokens.services.promos import PromoDesk, create_promo, list_promos, sweep_holds
from buytokens.services.webhooks import apply_received_event
from buytokens.testing.stripe_twin import InMemoryPaymentGateway
from tests.support.concurrency import at_once
from tests.support.promo_stores import PROMO_CHECKOUT_STORES
from tests.support.stripe_json import StripeJson
from tests.support.use_cases import wire

USERS = ("0123456789abcdef01234567", "fedcba9876543210fedcba98", "507f1f77bcf86cd799439011")
PACKAGES = ("package_100k", "package_1m")
# The documented hold: one hour from the checkout (docs/CODES.md).
HOLD = timedelta(hours=1)
# The SQLite store fsyncs every commit; fewer of its examples keep the suite quick.
EXAMPLES = {"memory": 1.0, "mongo": 0.3, "sqlite": 0.1}


def _examples(kind: str) -> int:
    return max(10, int(settings().max_examples * EXAMPLES[kind]))


@attrs.define
class Code:
    """A code as the operator created it."""

    name: str
    max_redemptions: int
    per_user: int


@attrs.define
class Intent:
    """One checkout that got an intent, as the buyer and the bank see it."""

    id: str
    user: str
    code: str
    package: str
    held_until: datetime
    released: bool = False  # its payment failed, or it was canceled
    canceled: bool = False
    succeeded: StripeJson | None = None  # paid at Stripe (maybe not delivered yet)
    settled: bool = False  # its succeeded event was delivered
    credited: bool = False


class PromoModel(RuleBasedStateMachine):
    """The contract's promo rules, checked on one store (``kind``)."""

    kind = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.stack = ExitStack()
        directory = Path(self.stack.enter_context(tempfile.TemporaryDirectory()))
        self.clock = FixedClock()
        stores = self.stack.enter_context(PROMO_CHECKOUT_STORES[self.kind](directory, self.clock))
        self.twin = InMemoryPaymentGateway(clock=self.clock)
        self.use_cases: UseCaseDependencies = wire(
            self.twin, self.clock, store=stores.balances, promos=stores.promos
        )
        self.desk = PromoDesk(stores.promos, DEFAULT_CATALOGUE, self.clock)
        self.codes: list[Code] = []
        self.intents: list[Intent] = []
        self.delivered: list[StripeJson] = []

    def teardown(self) -> None:
        self.stack.close()

    # -- what the model counts ------------------------------------------------

    def _holding(self, intent: Intent) -> bool:
        """Unpaid (as far as we know), not failed nor canceled, within its hour."""
        return not intent.released and not intent.settled and self.clock.now() < intent.held_until

    def _taken(self, code: str, user: str | None = None, *, besides: str = "") -> int:
        return sum(
            1
            for i in self.intents
            if i.code == code
            and i.id != besides
            and (user is None or i.user == user)
            and (i.credited or self._holding(i))
        )

    def _room(self, code: Code, user: str, *, besides: str = "") -> bool:
        return (
            self._taken(code.name, besides=besides) < code.max_redemptions
            and self._taken(code.name, user, besides=besides) < code.per_user
        )

    def _checkout(self, user: str, code: Code, package: str) -> Intent | None:
        try:
            created = create_payment_intent(
                self.use_cases.buying, user, package, "card", promo_code=code.name.lower()
            )
        except InvalidPromoCode:
            return None
        return Intent(created.snapshot.id, user, code.name, package, self.clock.now() + HOLD)

    def _deliver(self, event: StripeJson) -> None:
        apply_received_event(self.use_cases.events, translate_event(event))

    @staticmethod
    def _pick(data: st.DataObject, items: list[Intent]) -> Intent | None:
        """One of ``items``, drawn the same way whatever the list holds: which checkouts of a
        concurrent step won varies from run to run, the data drawn must not."""
        index = data.draw(st.integers(0, 63), label="pick")
        return items[index % len(items)] if items else None

    def _open(self) -> list[Intent]:
        return [i for i in self.intents if not i.canceled and i.succeeded is None]

    # -- steps ----------------------------------------------------------------

    @initialize(
        limits=st.lists(
            st.tuples(st.integers(1, 3), st.integers(1, 2), st.integers(10, 40)),
            min_size=1,
            max_size=2,
        )
    )
    def create_codes(self, limits: list[tuple[int, int, int]]) -> None:
        for number, (most, per_user, percent) in enumerate(limits):
            name = f"PROMO-{number}"
            create_promo(
                self.desk, name, percent_off=percent, max_redemptions=most, per_user=per_user
            )
            self.codes.append(Code(name, most, per_user))

    @rule(data=st.data(), user=st.sampled_from(USERS), package=st.sampled_from(PACKAGES))
    def checkout(self, data: st.DataObject, user: str, package: str) -> None:
        """Alone, a checkout gets the code exactly when both limits have room."""
        code = data.draw(st.sampled_from(self.codes))
        room = self._room(code, user)
        intent = self._checkout(user, code, package)
        assert (intent is not None) == room, (user, code, room)
        if intent is not None:
            self.intents.append(intent)

    @rule(
        data=st.data(),
        users=st.lists(st.sampled_from(USERS), min_size=2, max_size=4),
        package=st.sampled_from(PACKAGES),
    )
    def concurrent_checkouts(self, data: st.DataObject, users: list[str], package: str) -> None:
        code = data.draw(st.sampled_from(self.codes))
        # Switching threads often makes them interleave inside the checkout, not between.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        try:
            got = at_once(lambda n: self._checkout(users[n], code, package), len(users))
        finally:
            sys.setswitchinterval(interval)
        self.intents += [intent for intent in got if intent is not None]

    @rule(data=st.data(), now=st.booleans())
    def pay(self, data: st.DataObject, now: bool) -> None:
        intent = self._pick(data, self._open())
        if intent is None:
            return
        intent.succeeded = self.twin.succeed(intent.id)
        if now:
            self._settle(intent)

    @rule(data=st.data())
    def deliver_late(self, data: st.DataObject) -> None:
        pending = [i for i in self.intents if i.succeeded and not i.settled]
        intent = self._pick(data, pending)
        if intent is not None:
            self._settle(intent)

    def _settle(self, intent: Intent) -> None:
        """Deliver the payment: the full tokens if the use still held, or if there is room
        for it now; otherwise nothing credited, and the purchase waits for review."""
        assert intent.succeeded is not None
        code = next(c for c in self.codes if c.name == intent.code)
        expected = self._holding(intent) or self._room(code, intent.user, besides=intent.id)
        before = self.use_cases.store.balance(intent.user)
        self._deliver(intent.succeeded)
        self.delivered.append(intent.succeeded)
        intent.settled = True
        gained = self.use_cases.store.balance(intent.user) - before
        purchase = self.use_cases.store.get_purchase(intent.id)
        assert purchase is not None
        if expected:
            assert gained == DEFAULT_CATALOGUE.get(intent.package).tokens, intent
            assert purchase.status is PurchaseStatus.SUCCEEDED, intent
        else:
            assert gained == 0, intent
            assert purchase.status is PurchaseStatus.NEEDS_REVIEW, intent
        intent.credited = expected

    @rule(data=st.data())
    def deliver_again(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, 63), label="pick")
        if self.delivered:
            self._deliver(self.delivered[index % len(self.delivered)])

    @rule(data=st.data(), cancel=st.booleans(), again=st.booleans())
    def fail_or_cancel(self, data: st.DataObject, cancel: bool, again: bool) -> None:
        intent = self._pick(data, self._open())
        if intent is None:
            return
        event = self.twin.cancel(intent.id) if cancel else self.twin.fail(intent.id)
        intent.released = True
        intent.canceled = cancel
        self._deliver(event)
        if again:
            self._deliver(event)

    @rule(minutes=st.integers(1, 150))
    def advance(self, minutes: int) -> None:
        self.clock.advance(timedelta(minutes=minutes))

    @rule()
    def sweep(self) -> None:
        """Only an intent whose hour is over may be canceled by the sweep."""
        sweep_holds(self.desk, self.twin)
        for intent in self._open():
            if self.twin.intent_json(intent.id)["status"] == "canceled":
                assert self.clock.now() >= intent.held_until, intent
                intent.canceled = intent.released = True

    # -- after every step -----------------------------------------------------

    @invariant()
    def limits_are_never_exceeded(self) -> None:
        now = self.clock.now()
        for code in self.codes:
            counting = [u for u in self.desk.promos.live_uses(code.name) if u.counts(now)]
            assert len(counting) <= code.max_redemptions, counting
            for user in USERS:
                assert sum(1 for u in counting if u.user_id == user) <= code.per_user
            assert self._taken(code.name) <= code.max_redemptions
            for user in USERS:
                assert self._taken(code.name, user) <= code.per_user

    @invariant()
    def paid_uses_are_the_credited_purchases(self) -> None:
        paid = {listing.promo.code: listing.usage.paid for listing in list_promos(self.desk)}
        for code in self.codes:
            credited = sum(1 for i in self.intents if i.code == code.name and i.credited)
            assert paid[code.name] == credited, (code, paid)

    @invariant()
    def balances_are_the_sum_of_full_credits(self) -> None:
        for user in USERS:
            owed = sum(
                DEFAULT_CATALOGUE.get(i.package).tokens
                for i in self.intents
                if i.user == user and i.credited
            )
            assert self.use_cases.store.balance(user) == owed, user


def _machine(kind: str) -> type[PromoModel]:
    machine = cast(
        "type[PromoModel]", type(f"PromoModelOn{kind.title()}", (PromoModel,), {"kind": kind})
    )
    steps = min(30, settings().stateful_step_count)
    machine.TestCase.settings = settings(max_examples=_examples(kind), stateful_step_count=steps)
    return machine


TestPromoLimitsOnMemory = _machine("memory").TestCase
TestPromoLimitsOnSqlite = _machine("sqlite").TestCase
TestPromoLimitsOnMongo = _machine("mongo").TestCase
