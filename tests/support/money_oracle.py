"""A second model of the money, written from CONTRACT.md's crediting rules alone.

It shares nothing with ``buytokens.domain.crediting``: it reads the Stripe events
a merchant has received (plain JSON) and answers, for each payment, how many of
its package's tokens the money still with the merchant pays for.

The rules it encodes, in the contract's words:

* A payment credits its package's tokens only if amount and currency equal the
  package's (or an operator approved it after review).
* Tokens follow the money. The money that left is the cumulative
  ``amount_refunded`` plus every dispute that took the money and kept it, never
  more than was paid. A dispute takes the money when it is a chargeback
  (``charge.dispute.created`` with a status that is not ``warning_*``, or
  ``charge.dispute.funds_withdrawn``); an inquiry moves none. The money comes
  back with ``charge.dispute.funds_reinstated`` or a ``won`` closure; ``lost``
  keeps it. A closed dispute stays closed, so its closing status decides.
  ``warning_closed`` ends an inquiry; ``prevented`` and ``charge_refunded`` end
  a dispute settled by a refund, whose ``charge.refunded`` carries the money.
* The buyer keeps what the money still with the merchant pays for, rounded in
  the buyer's favour (a take-back never takes a fraction of a token too many).
* A gift purchase (metadata ``gift: "true"``) credits no one when paid; its code
  credits the redeemer once. Refunding or disputing a gift before redemption
  voids the code; after redemption the take-back falls on the redeemer, under
  the same rules. A dispute disputes the payment once it took the money: a
  chargeback, money reinstated, or a ``won`` or ``lost`` closure (only a
  chargeback ends so); an inquiry, or one settled by a refund (whose refund voids
  the gift anyway), does not.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

_INQUIRY = ("warning_needs_response", "warning_under_review")
_FINAL = ("won", "lost", "warning_closed", "prevented", "charge_refunded")
_MONEY_BACK = ("won", "warning_closed", "prevented", "charge_refunded")


@dataclass
class _Dispute:
    amount: int = 0
    taken: bool = False  # a chargeback withdrew the money
    reinstated: bool = False
    final: str | None = None  # the closing status, once known

    def took_money(self) -> bool:
        return self.taken or self.reinstated or self.final in ("won", "lost")

    def keeps_money(self) -> bool:
        if self.final is not None:
            return self.final not in _MONEY_BACK
        return self.taken and not self.reinstated


@dataclass
class _Payment:
    user: str | None = None
    package: str | None = None
    paid: tuple[int, str] | None = None
    approved: bool = False
    refunded: int = 0
    disputes: dict[str, _Dispute] = field(default_factory=dict)
    gift: bool = False
    redeemer: str | None = None

    @property
    def beneficiary(self) -> str | None:
        return self.redeemer if self.gift else self.user


@dataclass(frozen=True)
class Package:
    """What the catalogue sells: tokens for a price."""

    tokens: int
    amount: int
    currency: str


class MoneyOracle:
    """What each payment's money pays for, from the events received so far (any order)."""

    def __init__(self, packages: Mapping[str, Package]) -> None:
        self._packages = dict(packages)
        self._payments: dict[str, _Payment] = {}

    def receive(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Take note of delivered Stripe events (duplicates and any order are fine)."""
        for event in events:
            self._receive(event)

    def approve(self, payment_intent_id: str) -> None:
        """An operator approved the payment after review: it pays for its package."""
        self._payments.setdefault(payment_intent_id, _Payment()).approved = True

    def redeem(self, payment_intent_id: str, user: str) -> str:
        """Someone redeems the gift's code now: ``redeemed``, or why not (``not_found``
        for a payment that is no paid gift, ``already``, ``void``)."""
        payment = self._payments.get(payment_intent_id)
        if payment is None or not payment.gift or not self._pays_for_package(payment):
            return "not_found"
        if payment.redeemer is not None:
            return "already"
        if payment.refunded > 0 or any(d.took_money() for d in payment.disputes.values()):
            return "void"
        payment.redeemer = user
        return "redeemed"

    def _pays_for_package(self, payment: _Payment) -> bool:
        if payment.paid is None or payment.package not in self._packages:
            return False
        package = self._packages[payment.package]
        return payment.approved or payment.paid == (package.amount, package.currency)

    def tokens_paid_for(self, payment_intent_id: str) -> int:
        """The tokens that the money still with the merchant pays for."""
        payment = self._payments.get(payment_intent_id)
        if payment is None or not self._pays_for_package(payment):
            return 0
        assert payment.package is not None
        package = self._packages[payment.package]
        price = package.amount
        kept_by_disputes = sum(d.amount for d in payment.disputes.values() if d.keeps_money())
        left = min(price, payment.refunded + kept_by_disputes)
        return math.ceil(Fraction(package.tokens * (price - left), price))

    def in_dispute(self, payment_intent_id: str) -> bool:
        """Whether a dispute over the payment is open, or was lost."""
        payment = self._payments.get(payment_intent_id)
        return payment is not None and any(
            d.final is None or d.final not in _MONEY_BACK for d in payment.disputes.values()
        )

    def refunded(self, payment_intent_id: str) -> int:
        """The cumulative refund received."""
        payment = self._payments.get(payment_intent_id)
        return 0 if payment is None else payment.refunded

    def user_of(self, payment_intent_id: str) -> str | None:
        """Whom the payment's metadata names, once its success is known."""
        payment = self._payments.get(payment_intent_id)
        return None if payment is None else payment.user

    def tokens_for(self, user: str) -> int:
        """What all the payments crediting ``user`` (bought, or gifts redeemed) pay for."""
        return sum(
            self.tokens_paid_for(pi)
            for pi, p in self._payments.items()
            if p.beneficiary == user and (not p.gift or p.redeemer is not None)
        )

    def _receive(self, event: Mapping[str, Any]) -> None:
        kind = event["type"]
        subject = event["data"]["object"]
        if kind == "payment_intent.succeeded":
            payment = self._payments.setdefault(subject["id"], _Payment())
            payment.user = subject["metadata"]["userId"]
            payment.package = subject["metadata"]["packageId"]
            payment.paid = (subject["amount"], subject["currency"])
            payment.gift = subject["metadata"].get("gift") == "true"
        elif kind == "charge.refunded":
            payment = self._payments.setdefault(subject["payment_intent"], _Payment())
            payment.refunded = max(payment.refunded, subject["amount_refunded"])
        elif kind.startswith("charge.dispute."):
            payment = self._payments.setdefault(subject["payment_intent"], _Payment())
            dispute = payment.disputes.setdefault(subject["id"], _Dispute())
            dispute.amount = subject["amount"]
            status = subject["status"]
            if status in _FINAL:
                dispute.final = status
            if kind == "charge.dispute.funds_withdrawn" or (
                kind == "charge.dispute.created" and status not in _INQUIRY
            ):
                dispute.taken = True
            if kind == "charge.dispute.funds_reinstated":
                dispute.reinstated = True
