"""The ledger: every change to a balance, with what was asked for and what was applied."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs


class EntryKind(enum.StrEnum):
    """Why a balance changed."""

    PURCHASE = "purchase"  # tokens credited for a successful payment
    REFUND = "refund"  # tokens taken back for a refunded share
    DISPUTE = "dispute"  # tokens held back for a dispute (negative) or released (positive)
    ADMIN = "admin"  # an operator's adjustment


def _nonempty(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{attribute.name} must be a non-empty string")


def _whole(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int:
        raise ValueError(f"{attribute.name} must be an integer, got {value!r}")


@attrs.frozen
class LedgerChange:
    """A change the rules want made to one user's balance.

    ``key`` identifies the change for ever: a store applies a given key at most once.
    """

    key: str = attrs.field(validator=_nonempty)
    user_id: str = attrs.field(validator=_nonempty)
    kind: EntryKind
    tokens: int = attrs.field(validator=_whole)
    payment_intent_id: str | None = None
    reason: str = ""


@attrs.frozen
class Settlement:
    """How much of a requested change a balance could absorb."""

    applied: int
    shortfall: int
    balance_after: int


def settle(balance: int, requested: int) -> Settlement:
    """Apply ``requested`` to ``balance`` (never negative) without ever going below zero.

    A deduction larger than the balance takes what is there and records the rest as
    a shortfall, as LibreChat itself clamps balances at zero; a credit applies whole.
    """
    applied = max(requested, -balance)
    return Settlement(
        applied=applied, shortfall=applied - requested, balance_after=balance + applied
    )


@attrs.frozen
class LedgerEntry:
    """A change as stored: the request, the applied delta, and any uncollectable shortfall."""

    key: str
    user_id: str
    kind: EntryKind
    requested: int
    applied: int
    shortfall: int
    balance_after: int
    created_at: datetime
    payment_intent_id: str | None = None
    reason: str = ""

    @classmethod
    def from_change(cls, change: LedgerChange, balance: int, at: datetime) -> LedgerEntry:
        """Settle ``change`` against ``balance`` at time ``at``."""
        settlement = settle(balance, change.tokens)
        return cls(
            key=change.key,
            user_id=change.user_id,
            kind=change.kind,
            requested=change.tokens,
            applied=settlement.applied,
            shortfall=settlement.shortfall,
            balance_after=settlement.balance_after,
            created_at=at,
            payment_intent_id=change.payment_intent_id,
            reason=change.reason,
        )
