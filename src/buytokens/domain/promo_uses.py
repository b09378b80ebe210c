"""Promo code uses: held by unpaid checkouts, counted by paid ones, never over the limits.

A checkout that applies a code takes a *hold* before its payment intent exists.
The hold counts against the code's limits until the payment fails or is
canceled (``release``) or until ``held_until`` passes; a paid checkout's use
counts for good (a later refund does not give it back). A payment that arrives
after its hold was released or taken over is counted only if the limits still
allow it; otherwise its purchase goes to review (``PaymentOutcome.OVER_LIMIT``).

Limits are enforced with *tickets*, so that a store needs nothing stronger than
unique keys and single-record conditional writes (docs/CODES.md):

* every use that is not released holds a ``ticket`` in ``range(max_redemptions)``
  (None when the code has no total limit) and a ``user_ticket`` in
  ``range(per_user)``;
* the store keeps (code, ticket) and (code, user, user_ticket) unique among uses
  that are not released;
* an expired hold keeps its tickets until it is *retired* (released on the
  condition that it is still held and expired), which the decisions below ask
  for only when they need its ticket.

Any number of concurrent deciders then cannot over-issue: two that pick the same
ticket collide on the unique key, and the loser decides again.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import attrs

from buytokens.domain.promotions import PromoCode, PromoRejection, refuse

# Long enough for 3-D Secure, a bank redirect or a QR code scanned on a phone;
# short enough that an abandoned checkout blocks a single-use code only briefly.
DEFAULT_HOLD_TTL = timedelta(hours=1)


class UseState(enum.StrEnum):
    """Where one checkout's use of a code stands."""

    HELD = "held"  # an unpaid checkout holds it until ``held_until``
    PAID = "paid"  # counted for good
    RELEASED = "released"  # the payment failed or was canceled, or the hold was retired


@attrs.frozen
class PromoUse:
    """One checkout's use of one code; ``checkout_id`` is its identity."""

    code: str
    checkout_id: str
    user_id: str
    state: UseState
    held_until: datetime
    ticket: int | None
    user_ticket: int | None
    payment_intent_id: str | None = None
    # Retired for another checkout while its intent may still be paid: the sweeper
    # cancels the intent, then clears this (docs/CODES.md, "Sweeper").
    cancel_pending: bool = False

    def __attrs_post_init__(self) -> None:
        if self.cancel_pending and (
            self.state is not UseState.RELEASED or self.payment_intent_id is None
        ):
            raise ValueError("only a released use with an intent can wait for its cancel")
        if self.state is UseState.RELEASED:
            if self.ticket is not None or self.user_ticket is not None:
                raise ValueError("a released use holds no ticket")
        elif self.user_ticket is None:
            raise ValueError("a held or paid use holds a user ticket")

    def counts(self, now: datetime) -> bool:
        """Whether the use counts against the limits at ``now``."""
        return self.state is UseState.PAID or (
            self.state is UseState.HELD and now < self.held_until
        )

    def released(self, *, cancel_pending: bool = False) -> PromoUse:
        """The same use, giving its tickets back; ``cancel_pending``: its intent, if it
        has one, is still to be canceled."""
        return attrs.evolve(
            self,
            state=UseState.RELEASED,
            ticket=None,
            user_ticket=None,
            cancel_pending=cancel_pending and self.payment_intent_id is not None,
        )


@attrs.frozen
class HoldDecision:
    """Take ``use`` (``existing``: the checkout already holds it, write nothing).

    Write, all conditionally: first release each use in ``retire`` if it is still
    held and expired, then store ``use`` in place of ``previous`` (the checkout's
    stored use, unchanged; None: there must be none). A failed condition or a
    duplicate ticket means someone else was first: read again and decide again.
    """

    use: PromoUse
    previous: PromoUse | None = None
    retire: tuple[PromoUse, ...] = ()
    existing: bool = False


class PaymentOutcome(enum.StrEnum):
    """What a successful payment does to its code's uses."""

    COUNTED = "counted"  # store ``use`` (paid)
    ALREADY_COUNTED = "already_counted"  # a redelivery: nothing to write
    OVER_LIMIT = "over_limit"  # the limits are full: count nothing, flag the purchase


@attrs.frozen
class PaymentDecision:
    """The outcome of ``decide_payment``; writes as for HoldDecision when COUNTED."""

    outcome: PaymentOutcome
    use: PromoUse | None = None
    previous: PromoUse | None = None
    retire: tuple[PromoUse, ...] = ()
    reason: str = ""


def decide_hold(
    promo: PromoCode,
    uses: Iterable[PromoUse],
    user_id: str,
    checkout_id: str,
    package_id: str,
    now: datetime,
    ttl: timedelta = DEFAULT_HOLD_TTL,
) -> HoldDecision:
    """Whether ``checkout_id`` of ``user_id`` may hold a use of ``promo`` at ``now``.

    ``uses`` are the code's stored uses that are not released (more do no harm).
    Raises InvalidPromoCode: disabled, expired, not for this package, already
    used by this user, or used up.
    """
    promo.check(package_id, now)
    uses = tuple(uses)
    previous = _find(uses, checkout_id)
    if previous is not None and previous.counts(now):
        return HoldDecision(previous, previous, existing=True)
    if previous is not None and previous.user_id != user_id:
        raise ValueError(f"checkout {checkout_id} belongs to another user")
    tickets = _take_tickets(promo, uses, user_id, checkout_id, now)
    if isinstance(tickets, str):
        reason = PromoRejection.ALREADY_USED if tickets == "user" else PromoRejection.USED_UP
        raise refuse(reason, _full_message(promo, uses, user_id, checkout_id, now, tickets))
    ticket, user_ticket, retire = tickets
    use = PromoUse(promo.code, checkout_id, user_id, UseState.HELD, now + ttl, ticket, user_ticket)
    return HoldDecision(use, previous, retire)


def decide_payment(
    promo: PromoCode,
    uses: Iterable[PromoUse],
    user_id: str,
    checkout_id: str,
    payment_intent_id: str,
    now: datetime,
) -> PaymentDecision:
    """What the successful payment of ``checkout_id`` does to the code's uses.

    The checkout's price was fixed when it started, so neither expiry nor the
    disabled flag matter here; only the limits do, and only when the checkout's
    hold is gone (released, or retired for another checkout).
    """
    uses = tuple(uses)
    previous = _find(uses, checkout_id)
    if previous is not None and previous.state is UseState.PAID:
        return PaymentDecision(PaymentOutcome.ALREADY_COUNTED)
    if previous is not None and previous.state is UseState.HELD:
        # Not retired, so its tickets are still its own, expired or not.
        paid = attrs.evolve(previous, state=UseState.PAID, payment_intent_id=payment_intent_id)
        return PaymentDecision(PaymentOutcome.COUNTED, paid, previous)
    tickets = _take_tickets(promo, uses, user_id, checkout_id, now)
    if isinstance(tickets, str):
        limit = "per-user limit" if tickets == "user" else "limit"
        return PaymentDecision(
            PaymentOutcome.OVER_LIMIT,
            reason=f"paid with promo code {promo.code} after its hold lapsed, "
            f"when the code's {limit} was already reached",
        )
    ticket, user_ticket, retire = tickets
    use = PromoUse(
        promo.code,
        checkout_id,
        user_id,
        UseState.PAID,
        now,
        ticket,
        user_ticket,
        payment_intent_id,
    )
    return PaymentDecision(PaymentOutcome.COUNTED, use, previous, retire)


def release(use: PromoUse) -> PromoUse | None:
    """The use once its payment failed or was canceled; None when nothing changes.

    A failure never undoes a payment; store the result only if ``use`` is unchanged.
    """
    return use.released() if use.state is UseState.HELD else None


def expired_holds(uses: Iterable[PromoUse], now: datetime) -> tuple[PromoUse, ...]:
    """Holds past their time that still keep their tickets: a sweeper may retire them."""
    return tuple(u for u in uses if u.state is UseState.HELD and not u.counts(now))


@attrs.frozen
class PromoUsage:
    """What ``promo list`` shows about one code."""

    paid: int
    held: int


def usage(uses: Iterable[PromoUse], now: datetime) -> PromoUsage:
    """Paid uses and live holds among ``uses``."""
    counting = [u for u in uses if u.counts(now)]
    paid = sum(1 for u in counting if u.state is UseState.PAID)
    return PromoUsage(paid, len(counting) - paid)


def _find(uses: Sequence[PromoUse], checkout_id: str) -> PromoUse | None:
    for use in uses:
        if use.checkout_id == checkout_id:
            return use
    return None


def _take_tickets(
    promo: PromoCode, uses: Sequence[PromoUse], user_id: str, checkout_id: str, now: datetime
) -> tuple[int | None, int, tuple[PromoUse, ...]] | str:
    """Free tickets for a new use, and the expired holds to retire for them; or which
    limit is full ("user" or "total")."""
    others = [u for u in uses if u.checkout_id != checkout_id]
    counting = [u for u in others if u.counts(now)]
    mine = [u for u in counting if u.user_id == user_id]
    user_ticket = _smallest_free(promo.per_user, {u.user_ticket for u in mine})
    if user_ticket is None:
        return "user"
    ticket: int | None = None
    if promo.max_redemptions is not None:
        ticket = _smallest_free(promo.max_redemptions, {u.ticket for u in counting})
        if ticket is None:
            return "total"
    retire = tuple(
        u
        for u in expired_holds(others, now)
        if (ticket is not None and u.ticket == ticket)
        or (u.user_id == user_id and u.user_ticket == user_ticket)
    )
    return ticket, user_ticket, retire


def _smallest_free(limit: int, taken: set[int | None]) -> int | None:
    for candidate in range(limit):
        if candidate not in taken:
            return candidate
    return None


def _full_message(
    promo: PromoCode,
    uses: Sequence[PromoUse],
    user_id: str,
    checkout_id: str,
    now: datetime,
    which: str,
) -> str:
    counting = [u for u in uses if u.checkout_id != checkout_id and u.counts(now)]
    if which == "user":
        counting = [u for u in counting if u.user_id == user_id]
    holds = [u.held_until for u in counting if u.state is UseState.HELD]
    if which == "user":
        if not holds:
            times = "once" if promo.per_user == 1 else f"{promo.per_user} times"
            return f"you have already used promo code {promo.code} ({times} per person)"
        return (
            f"promo code {promo.code} is held by another of your checkouts until "
            f"{min(holds):%H:%M} UTC; finish or cancel that one first"
        )
    if not holds:
        return f"promo code {promo.code} has been used up"
    return (
        f"promo code {promo.code} is used up for now: its last uses are held by unfinished "
        f"checkouts, one of which lapses at {min(holds):%H:%M} UTC"
    )
