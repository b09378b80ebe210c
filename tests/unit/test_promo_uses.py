"""Promo code uses: holds, payments, cancellations and expiries never exceed the limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from buytokens.domain.errors import InvalidPromoCode
from buytokens.domain.promo_uses import (
    DEFAULT_HOLD_TTL,
    HoldDecision,
    PaymentDecision,
    PaymentOutcome,
    PromoUse,
    UseState,
    decide_hold,
    decide_payment,
    expired_holds,
    release,
    usage,
)
from buytokens.domain.promotions import PromoCode, PromoRejection

T0 = datetime(2026, 5, 1, tzinfo=UTC)
PACKAGE = "package_500k"


class TicketStore:
    """A store that does what docs/CODES.md asks of every adapter, and nothing more.

    Each write is conditional on one record, and (code, ticket) and (code, user,
    user_ticket) are unique among uses that are not released; a write that breaks
    either is refused, as a unique index or a filtered update would refuse it.
    """

    def __init__(self) -> None:
        self.uses: dict[str, PromoUse] = {}

    def view(self) -> list[PromoUse]:
        return list(self.uses.values())

    def retire(self, stale: PromoUse, now: datetime) -> bool:
        """Release an expired hold, if it is still that hold and still expired."""
        stored = self.uses.get(stale.checkout_id)
        if stored != stale or stored.state is not UseState.HELD or now < stored.held_until:
            return False
        self.uses[stale.checkout_id] = stored.released()
        return True

    def apply(self, decision: HoldDecision | PaymentDecision, now: datetime) -> bool:
        """Write a decision; False when a condition failed (someone else was first)."""
        if not all(self.retire(stale, now) for stale in decision.retire):
            return False
        use = decision.use
        if use is None or (isinstance(decision, HoldDecision) and decision.existing):
            return True
        if self.uses.get(use.checkout_id) != decision.previous:
            return False
        for other in self.uses.values():
            if other.checkout_id == use.checkout_id or other.state is UseState.RELEASED:
                continue
            if use.ticket is not None and other.ticket == use.ticket:
                return False
            if other.user_id == use.user_id and other.user_ticket == use.user_ticket:
                return False
        self.uses[use.checkout_id] = use
        return True

    def release(self, checkout_id: str) -> None:
        stored = self.uses.get(checkout_id)
        released = None if stored is None else release(stored)
        if released is not None:
            self.uses[checkout_id] = released


def _hold(
    store: TicketStore, promo: PromoCode, user: str, checkout: str, now: datetime
) -> PromoUse:
    decision = decide_hold(promo, store.view(), user, checkout, PACKAGE, now)
    assert store.apply(decision, now)
    return decision.use


def _pay(
    store: TicketStore, promo: PromoCode, user: str, checkout: str, now: datetime
) -> PaymentOutcome:
    decision = decide_payment(promo, store.view(), user, checkout, f"pi_{checkout}", now)
    assert store.apply(decision, now)
    return decision.outcome


def _refusal(promo: PromoCode, store: TicketStore, user: str, checkout: str, now: datetime) -> str:
    with pytest.raises(InvalidPromoCode) as caught:
        decide_hold(promo, store.view(), user, checkout, PACKAGE, now)
    assert caught.value.code == "invalid_promo_code"
    return caught.value.reason


SINGLE = PromoCode.define("ONCE", T0, percent_off=50, max_redemptions=1)


def test_a_held_use_is_not_given_to_anyone_else() -> None:
    """While alice's checkout holds the only use, bob is told it is used up for now."""
    store = TicketStore()
    _hold(store, SINGLE, "alice", "c1", T0)
    assert _refusal(SINGLE, store, "bob", "c2", T0) == PromoRejection.USED_UP
    with pytest.raises(InvalidPromoCode, match="held by unfinished checkouts"):
        decide_hold(SINGLE, store.view(), "bob", "c2", PACKAGE, T0)


def test_a_canceled_checkout_gives_its_use_back() -> None:
    """A failed or canceled payment releases the hold at once."""
    store = TicketStore()
    _hold(store, SINGLE, "alice", "c1", T0)
    store.release("c1")
    assert _hold(store, SINGLE, "bob", "c2", T0).state is UseState.HELD


def test_an_expired_hold_is_retired_for_the_next_checkout() -> None:
    """After the hold's time, the next checkout takes the use and retires the old hold."""
    store = TicketStore()
    first = _hold(store, SINGLE, "alice", "c1", T0)
    assert first.held_until == T0 + DEFAULT_HOLD_TTL
    later = T0 + DEFAULT_HOLD_TTL
    decision = decide_hold(SINGLE, store.view(), "bob", "c2", PACKAGE, later)
    assert decision.retire == (first,)
    assert store.apply(decision, later)
    assert store.uses["c1"].state is UseState.RELEASED


def test_a_late_payment_whose_hold_was_taken_over_is_not_counted() -> None:
    """Paid after its hold went to someone else, with the code full: flagged, not counted."""
    store = TicketStore()
    _hold(store, SINGLE, "alice", "c1", T0)
    later = T0 + DEFAULT_HOLD_TTL + timedelta(minutes=1)
    _hold(store, SINGLE, "bob", "c2", later)
    decision = decide_payment(SINGLE, store.view(), "alice", "c1", "pi_c1", later)
    assert decision.outcome is PaymentOutcome.OVER_LIMIT
    assert decision.use is None
    assert "after its hold lapsed" in decision.reason


def test_a_late_payment_keeps_a_hold_nobody_took() -> None:
    """An expired hold still owns its ticket until retired, so paying it counts."""
    store = TicketStore()
    _hold(store, SINGLE, "alice", "c1", T0)
    assert _pay(store, SINGLE, "alice", "c1", T0 + timedelta(days=2)) is PaymentOutcome.COUNTED
    assert store.uses["c1"].state is UseState.PAID
    assert store.uses["c1"].payment_intent_id == "pi_c1"
    assert _refusal(SINGLE, store, "bob", "c2", T0 + timedelta(days=2)) == PromoRejection.USED_UP


def test_a_payment_after_a_release_counts_when_there_is_room() -> None:
    """A retried card on an intent whose first attempt failed still gets its discount counted."""
    store = TicketStore()
    promo = PromoCode.define("TWICE", T0, percent_off=10, max_redemptions=2)
    _hold(store, promo, "alice", "c1", T0)
    store.release("c1")
    assert _pay(store, promo, "alice", "c1", T0) is PaymentOutcome.COUNTED
    assert usage(store.view(), T0).paid == 1


def test_a_redelivered_payment_is_counted_once() -> None:
    """The use of a paid checkout is counted once, whatever arrives how often."""
    store = TicketStore()
    promo = PromoCode.define("MANY", T0, percent_off=10)
    _hold(store, promo, "alice", "c1", T0)
    assert _pay(store, promo, "alice", "c1", T0) is PaymentOutcome.COUNTED
    assert _pay(store, promo, "alice", "c1", T0) is PaymentOutcome.ALREADY_COUNTED
    assert usage(store.view(), T0).paid == 1


def test_a_failure_after_payment_changes_nothing() -> None:
    """A late failure never undoes a payment."""
    store = TicketStore()
    _hold(store, SINGLE, "alice", "c1", T0)
    _pay(store, SINGLE, "alice", "c1", T0)
    assert release(store.uses["c1"]) is None


def test_per_user_limit_tells_holding_from_having_used() -> None:
    """A second checkout of the same user is told to finish the first, or that it was used."""
    store = TicketStore()
    promo = PromoCode.define("ONE-EACH", T0, percent_off=10)
    _hold(store, promo, "alice", "c1", T0)
    with pytest.raises(InvalidPromoCode, match="held by another of your checkouts"):
        decide_hold(promo, store.view(), "alice", "c2", PACKAGE, T0)
    _pay(store, promo, "alice", "c1", T0)
    with pytest.raises(InvalidPromoCode, match="already used promo code ONE-EACH") as caught:
        decide_hold(promo, store.view(), "alice", "c2", PACKAGE, T0)
    assert caught.value.reason == PromoRejection.ALREADY_USED
    assert _hold(store, promo, "bob", "c3", T0).user_ticket == 0


def test_the_same_checkout_asking_again_keeps_its_hold() -> None:
    """A retried request with the same checkout id gets the hold it already has."""
    store = TicketStore()
    first = _hold(store, SINGLE, "alice", "c1", T0)
    again = decide_hold(SINGLE, store.view(), "alice", "c1", PACKAGE, T0 + timedelta(minutes=5))
    assert again.existing
    assert again.use == first


def test_validity_is_checked_before_limits() -> None:
    """A disabled or expired code is refused as such, whatever its uses."""
    store = TicketStore()
    assert _refusal(SINGLE.disable(), store, "alice", "c1", T0) == PromoRejection.DISABLED
    dated = attrs.evolve(SINGLE, expires_at=T0 + timedelta(hours=1))
    assert _refusal(dated, store, "alice", "c1", T0 + timedelta(hours=1)) == PromoRejection.EXPIRED


def test_a_hold_taken_before_the_code_was_disabled_is_still_paid_for() -> None:
    """Purchases already made keep their price: their payment counts as usual."""
    store = TicketStore()
    _hold(store, SINGLE, "alice", "c1", T0)
    assert _pay(store, SINGLE.disable(), "alice", "c1", T0) is PaymentOutcome.COUNTED


def test_usage_and_sweeping() -> None:
    """`promo list` counts paid uses and live holds; a sweeper finds holds past their time."""
    store = TicketStore()
    promo = PromoCode.define("LIST", T0, percent_off=10, max_redemptions=5)
    _hold(store, promo, "alice", "c1", T0)
    _hold(store, promo, "bob", "c2", T0)
    _pay(store, promo, "bob", "c2", T0)
    assert usage(store.view(), T0) == usage(store.view(), T0 + timedelta(minutes=59))
    assert (usage(store.view(), T0).paid, usage(store.view(), T0).held) == (1, 1)
    later = T0 + DEFAULT_HOLD_TTL
    assert usage(store.view(), later).held == 0
    assert [u.checkout_id for u in expired_holds(store.view(), later)] == ["c1"]


def test_uses_keep_their_invariants() -> None:
    """Released uses hold no ticket; live ones hold a user ticket."""
    with pytest.raises(ValueError, match="released"):
        PromoUse("X", "c", "u", UseState.RELEASED, T0, 0, None)
    with pytest.raises(ValueError, match="user ticket"):
        PromoUse("X", "c", "u", UseState.HELD, T0, 0, None)


USERS = ("alice", "bob", "carol")
CHECKOUTS = tuple(f"c{n}" for n in range(7))


def _owner(checkout: str) -> str:
    return USERS[int(checkout[1:]) % len(USERS)]


class UsesAgainstTheContract(RuleBasedStateMachine):
    """Any interleaving of checkouts, payments, cancellations, races and time.

    The model is the contract's sentence: an unpaid checkout holds its use until it
    fails, is canceled or its hold expires; a paid one counts once; paid uses and
    live holds never exceed ``max_redemptions`` in all nor ``per_user`` per buyer.
    """

    def __init__(self) -> None:
        super().__init__()
        self.store = TicketStore()
        self.now = T0
        self.promo = SINGLE
        # checkout -> (state, held_until), in the contract's words
        self.model: dict[str, tuple[str, datetime]] = {}
        self.paid_ever: set[str] = set()

    @initialize(
        limit=st.one_of(st.none(), st.integers(1, 4)),
        per_user=st.integers(1, 3),
    )
    def define_code(self, limit: int | None, per_user: int) -> None:
        self.promo = PromoCode.define(
            "PROP", T0, percent_off=20, max_redemptions=limit, per_user=per_user
        )

    def _counting(self, checkout: str, state: tuple[str, datetime]) -> bool:
        status, until = state
        return status == "paid" or (status == "held" and self.now < until)

    def _room_for(self, checkout: str) -> bool:
        others = {c: s for c, s in self.model.items() if c != checkout and self._counting(c, s)}
        mine = [c for c in others if _owner(c) == _owner(checkout)]
        total_ok = self.promo.max_redemptions is None or len(others) < self.promo.max_redemptions
        return total_ok and len(mine) < self.promo.per_user

    def _hold_in_model(self, checkout: str) -> bool:
        current = self.model.get(checkout)
        if current is not None and self._counting(checkout, current):
            return True  # already holds (or paid): the same answer again
        if not self._room_for(checkout):
            return False
        self.model[checkout] = ("held", self.now + DEFAULT_HOLD_TTL)
        return True

    def _try_hold(self, checkout: str, snapshot: list[PromoUse] | None = None) -> bool | None:
        """True: held; False: refused; None: lost a race at the store."""
        view = self.store.view() if snapshot is None else snapshot
        try:
            decision = decide_hold(self.promo, view, _owner(checkout), checkout, PACKAGE, self.now)
        except InvalidPromoCode as refused:
            reason = refused.reason
        else:
            return True if self.store.apply(decision, self.now) else None
        assert reason in (PromoRejection.USED_UP, PromoRejection.ALREADY_USED)
        return False

    @rule(checkout=st.sampled_from(CHECKOUTS))
    def start_checkout(self, checkout: str) -> None:
        held = self._try_hold(checkout)
        assert held is not None, "a decision on a fresh view must not conflict"
        assert held == self._hold_in_model(checkout)

    @rule(first=st.sampled_from(CHECKOUTS), second=st.sampled_from(CHECKOUTS))
    def race_two_checkouts(self, first: str, second: str) -> None:
        """Both decide on the same read; the store's conditions settle who wins."""
        snapshot = self.store.view()
        first_held = self._try_hold(first, snapshot)
        assert first_held == self._hold_in_model(first)
        second_held = self._try_hold(second, snapshot)
        if second_held is None:  # lost the race: decide again on a fresh read
            second_held = self._try_hold(second)
            assert second_held is not None
        # A refusal on the stale read is what asking a moment earlier would have said,
        # and changes nothing; a hold the store accepted must be one the contract allows.
        if second_held:
            assert self._hold_in_model(second), "the store let a stale decision over-issue"

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def payment_succeeds(self, data: st.DataObject) -> None:
        checkout = data.draw(st.sampled_from(sorted(self.model)))
        decision = decide_payment(
            self.promo, self.store.view(), _owner(checkout), checkout, f"pi_{checkout}", self.now
        )
        assert self.store.apply(decision, self.now)
        state, _ = self.model[checkout]
        if state == "paid":
            assert decision.outcome is PaymentOutcome.ALREADY_COUNTED
        elif self._room_for(checkout):
            assert decision.outcome is PaymentOutcome.COUNTED
            self.model[checkout] = ("paid", self.now)
            self.paid_ever.add(checkout)
        else:
            assert decision.outcome is PaymentOutcome.OVER_LIMIT

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def payment_fails_or_is_canceled(self, data: st.DataObject) -> None:
        checkout = data.draw(st.sampled_from(sorted(self.model)))
        self.store.release(checkout)
        state, until = self.model[checkout]
        if state == "held":
            self.model[checkout] = ("released", until)

    @rule(minutes=st.integers(1, 90))
    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @rule()
    def sweeper_retires_expired_holds(self) -> None:
        for stale in expired_holds(self.store.view(), self.now):
            assert self.store.retire(stale, self.now)

    @invariant()
    def limits_are_never_exceeded(self) -> None:
        counting = [u for u in self.store.view() if u.counts(self.now)]
        if self.promo.max_redemptions is not None:
            assert len(counting) <= self.promo.max_redemptions
        for user in USERS:
            assert sum(1 for u in counting if u.user_id == user) <= self.promo.per_user

    @invariant()
    def store_agrees_with_the_model(self) -> None:
        stored = {u.checkout_id: u for u in self.store.view()}
        for checkout, state in self.model.items():
            use = stored.get(checkout)
            counts_in_store = use is not None and use.counts(self.now)
            assert counts_in_store == self._counting(checkout, state), checkout
        paid = {c for c, u in stored.items() if u.state is UseState.PAID}
        assert paid == self.paid_ever  # each paid checkout counted, once, for good

    @invariant()
    def tickets_are_unique_among_live_uses(self) -> None:
        live = [u for u in self.store.view() if u.state is not UseState.RELEASED]
        tickets = [u.ticket for u in live if u.ticket is not None]
        assert len(tickets) == len(set(tickets))
        user_tickets = [(u.user_id, u.user_ticket) for u in live]
        assert len(user_tickets) == len(set(user_tickets))


TestUsesAgainstTheContract = UsesAgainstTheContract.TestCase
