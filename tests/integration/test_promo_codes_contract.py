"""The PromoCodes contract, run against every adapter."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest

from buytokens.domain.errors import InvalidPromoCode
from buytokens.domain.money import Money
from buytokens.domain.promo_uses import (
    PromoUse,
    UseState,
    decide_hold,
    decide_payment,
)
from buytokens.domain.promotions import PromoCode
from buytokens.ports.promos import PromoCodes
from tests.support.concurrency import at_once
from tests.support.promo_stores import PROMO_STORES

AT = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
PACKAGE = "package_500k"


@pytest.fixture(params=sorted(PROMO_STORES))
def promos(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PromoCodes]:
    """Each PromoCodes adapter in turn, empty."""
    with PROMO_STORES[request.param](tmp_path) as store:
        yield store


def _hold(store: PromoCodes, promo: PromoCode, user: str, checkout: str, now: datetime) -> bool:
    """One checkout's hold as the service takes it: decide, write, retry on conflict;
    False when the code refuses it."""
    for _attempt in range(50):
        uses = list(store.live_uses(promo.code))
        own = store.find_use(checkout)
        if own is not None and own not in uses:
            uses.append(own)
        try:
            decision = decide_hold(promo, uses, user, checkout, PACKAGE, now)
        except InvalidPromoCode:
            return False
        if decision.existing:
            return True
        if all(store.retire(stale, now) for stale in decision.retire) and store.write_use(
            decision.use, decision.previous
        ):
            return True
    raise AssertionError("a hold kept colliding")


def test_codes_round_trip_and_list_newest_first(promos: PromoCodes) -> None:
    """Every field of a definition survives storage; a second create changes nothing."""
    first = PromoCode.define(
        "SPRING-20",
        AT,
        percent_off=20,
        package_ids=["package_500k", "package_1m"],
        max_redemptions=100,
        per_user=2,
        expires_at=AT + timedelta(days=30, microseconds=7),
    )
    second = PromoCode.define("FIVE_OFF", AT + timedelta(seconds=1), amount_off=Money(500, "cny"))
    assert promos.create(first) is True
    assert promos.create(second) is True
    assert promos.create(attrs.evolve(first, per_user=9)) is False
    assert promos.get("SPRING-20") == first
    assert promos.get("FIVE_OFF") == second
    assert promos.get("NOPE") is None
    assert list(promos.codes()) == [second, first]


def test_disable_keeps_the_code_and_refuses_unknown_ones(promos: PromoCodes) -> None:
    promo = PromoCode.define("LAUNCH", AT, percent_off=10)
    promos.create(promo)
    assert promos.disable("LAUNCH") is True
    assert promos.get("LAUNCH") == promo.disable()
    assert promos.disable("MISSING") is False


def _use(checkout: str, user: str, ticket: int | None, user_ticket: int = 0) -> PromoUse:
    return PromoUse(
        "ONCE", checkout, user, UseState.HELD, AT + timedelta(hours=1), ticket, user_ticket
    )


def test_a_use_is_written_only_over_what_it_replaces(promos: PromoCodes) -> None:
    """``write_use`` is a compare-and-set on the checkout's stored use."""
    held = _use("c1", "alice", 0)
    assert promos.write_use(held, None) is True
    assert promos.write_use(held, None) is False  # the checkout already has one
    assert promos.find_use("c1") == held
    paid = attrs.evolve(held, state=UseState.PAID, payment_intent_id="pi_1")
    assert promos.write_use(paid, attrs.evolve(held, held_until=AT)) is False
    assert promos.write_use(paid, held) is True
    assert promos.find_use("c1") == paid
    assert promos.live_uses("ONCE") == [paid]
    assert promos.live_uses("OTHER") == []


def test_tickets_are_unique_among_live_uses_only(promos: PromoCodes) -> None:
    """Two live uses never share (code, ticket) or (code, user, user ticket); released ones
    give theirs back."""
    assert promos.write_use(_use("c1", "alice", 0), None)
    assert not promos.write_use(_use("c2", "bob", 0), None)  # the same total ticket
    assert not promos.write_use(_use("c3", "alice", 1, user_ticket=0), None)  # same user ticket
    assert promos.write_use(_use("c3", "alice", 1, user_ticket=1), None)
    assert promos.write_use(_use("c4", "bob", None), None)  # no total ticket: only the user one
    assert promos.write_use(_use("c5", "carol", None), None)
    other_code = attrs.evolve(_use("c6", "alice", 0), code="OTHER")
    assert promos.write_use(other_code, None)
    released = promos.release("c1")
    assert released is not None
    assert released.state is UseState.RELEASED
    assert released.ticket is None
    assert promos.find_use("c1") == released
    assert promos.write_use(_use("c2", "bob", 0, user_ticket=1), None)
    assert {u.checkout_id for u in promos.live_uses("ONCE")} == {"c2", "c3", "c4", "c5"}


def test_a_use_retired_for_another_checkout_waits_for_its_intent_to_be_canceled(
    promos: PromoCodes,
) -> None:
    """``retire`` sets ``cancel_pending`` in the same write, unless the caller canceled
    the intent already or there is none; clearing it is an ordinary conditional write."""
    promos.write_use(_use("c1", "alice", 0), None)
    promos.attach_intent("c1", "pi_1")
    promos.write_use(_use("c2", "bob", 1), None)
    promos.attach_intent("c2", "pi_2")
    promos.write_use(_use("c3", "carol", 2), None)  # no intent yet
    late = _use("c1", "alice", 0).held_until
    assert promos.pending_cancels() == []
    for checkout in ("c1", "c3"):
        stale = promos.find_use(checkout)
        assert stale is not None
        assert promos.retire(stale, late) is True
    swept = promos.find_use("c2")
    assert swept is not None
    assert promos.retire(swept, late, intent_canceled=True) is True
    pending = promos.find_use("c1")
    assert pending is not None
    assert (pending.state, pending.cancel_pending, pending.payment_intent_id) == (
        UseState.RELEASED,
        True,
        "pi_1",
    )
    assert list(promos.pending_cancels()) == [pending]
    assert promos.live_uses("ONCE") == []
    cleared = attrs.evolve(pending, cancel_pending=False)
    assert promos.write_use(cleared, pending) is True
    assert promos.write_use(cleared, pending) is False  # no longer as it was read
    assert promos.find_use("c1") == cleared
    assert promos.pending_cancels() == []


def test_release_and_retire_touch_only_held_uses(promos: PromoCodes) -> None:
    held = _use("c1", "alice", 0)
    promos.write_use(held, None)
    assert promos.retire(held, AT) is False  # not expired yet
    promos.attach_intent("c1", "pi_1")
    attached = attrs.evolve(held, payment_intent_id="pi_1")
    assert promos.find_use("c1") == attached
    late = held.held_until
    assert promos.retire(held, late) is False  # no longer as it was read
    assert promos.retire(attached, late) is True
    assert promos.find_use("c1") == attached.released(cancel_pending=True)
    assert promos.retire(attached, late) is False
    assert promos.release("c1") is None
    paid = attrs.evolve(_use("c2", "bob", 0), state=UseState.PAID)
    promos.write_use(paid, None)
    assert promos.release("c2") is None
    promos.attach_intent("c2", "pi_2")
    assert promos.find_use("c2") == paid
    assert promos.release("missing") is None


def test_a_released_checkout_can_hold_again(promos: PromoCodes) -> None:
    promo = PromoCode.define("ONCE", AT, percent_off=50, max_redemptions=1)
    assert _hold(promos, promo, "alice", "c1", AT)
    promos.release("c1")
    assert _hold(promos, promo, "alice", "c1", AT)
    assert [u.checkout_id for u in promos.live_uses("ONCE")] == ["c1"]


@pytest.mark.parametrize(("limit", "per_user"), [(3, 1), (2, 5), (None, 2)])
def test_concurrent_holds_never_exceed_the_limits(
    promos: PromoCodes, limit: int | None, per_user: int
) -> None:
    """Twelve checkouts of four users at once: exactly as many hold as the limits allow."""
    promo = PromoCode.define("RUSH", AT, percent_off=50, max_redemptions=limit, per_user=per_user)
    promos.create(promo)
    users = ["u0", "u1", "u2", "u3"]
    won = at_once(lambda i: _hold(promos, promo, users[i % 4], f"c{i}", AT), 12)
    live = promos.live_uses("RUSH")
    expected = min(limit if limit is not None else 12, per_user * 4, 12)
    assert sum(won) == len(live) == expected
    for user in users:
        assert sum(1 for u in live if u.user_id == user) <= per_user


def test_concurrent_payments_after_expiry_count_within_the_limit(promos: PromoCodes) -> None:
    """Payments whose holds were released race for the last ticket: one is counted."""
    promo = PromoCode.define("LAST", AT, percent_off=50, max_redemptions=1, per_user=1)
    promos.create(promo)

    def pay(index: int) -> bool:
        checkout = f"late{index}"
        for _attempt in range(50):
            decision = decide_payment(
                promo, promos.live_uses("LAST"), f"user{index}", checkout, f"pi_{index}", AT
            )
            if decision.use is None:
                return False
            if promos.write_use(decision.use, decision.previous):
                return True
        raise AssertionError("a payment kept colliding")

    assert sum(at_once(pay, 6)) == 1
    (paid,) = promos.live_uses("LAST")
    assert paid.state is UseState.PAID
