"""The ledger: every change to a balance, with what was asked for and what was applied."""

from __future__ import annotations

import enum
import math
from datetime import datetime

import attrs

from buytokens.domain.errors import InvalidAdjustment, InvalidUserId
from buytokens.domain.users import canonical_user_id

MAX_TOKENS = 10**12
"""The most tokens one change may move (a trillion, 100 000 times the largest default package).

LibreChat keeps ``tokenCredits`` as a JavaScript number, exact up to ``MAX_BALANCE``; thousands
of changes this size still fit, and SQLite's and BSON's 64-bit integers are 9 000 times larger.
"""

MAX_BALANCE = 2**53 - 1
"""The largest balance an operator may grant up to: the largest integer a JavaScript number
(LibreChat's ``tokenCredits``) holds exactly."""

MAX_USER_ID_LENGTH = 255
"""User ids longer than this are refused (LibreChat's are 24 hexadecimal digits)."""

MAX_REASON_LENGTH = 500
"""An operator's reason on the ledger: a sentence, not a document."""

MAX_KEY_LENGTH = 255
"""An operator's idempotency key for a grant, as long as a buyer's idempotency key may be."""


class EntryKind(enum.StrEnum):
    """Why a balance changed."""

    PURCHASE = "purchase"  # tokens credited for a successful payment
    REFUND = "refund"  # tokens taken back for a refunded share
    DISPUTE = "dispute"  # tokens held back for a dispute (negative) or released (positive)
    ADMIN = "admin"  # an operator's adjustment
    REDEMPTION = "redemption"  # tokens credited for redeeming a code


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
    user_id: str = attrs.field(converter=canonical_user_id, validator=_nonempty)
    kind: EntryKind
    tokens: int = attrs.field(validator=_whole)
    payment_intent_id: str | None = None
    reason: str = ""


def _shown(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _number(value: int) -> str:
    size = abs(value)
    if size < 10**30:
        return f"{value:,}"
    # str() refuses integers of more than 4,300 digits: count them without it, up from
    # the digits of 2**(bit_length - 1), which never has more than ``size``.
    digits = int((size.bit_length() - 1) * math.log10(2))
    while 10**digits <= size:
        digits += 1
    return f"a {digits:,}-digit number"


def check_user_id(user_id: str) -> str:
    """``user_id`` without surrounding blanks; raises InvalidUserId (an InvalidAdjustment)
    for an unusable one."""
    if not isinstance(user_id, str):
        raise InvalidUserId(f"user id must be a string, got {type(user_id).__name__}")
    user_id = user_id.strip()
    if not user_id:
        raise InvalidUserId("user id must not be empty")
    if len(user_id) > MAX_USER_ID_LENGTH or not user_id.isprintable():
        raise InvalidUserId(
            f"user id must be at most {MAX_USER_ID_LENGTH} printable characters, "
            f"got {len(user_id):,} starting {_shown(user_id)}"
        )
    return user_id


def check_reason(reason: str) -> str:
    """An operator's reason for the audit trail, trimmed; raises InvalidAdjustment."""
    if not isinstance(reason, str):
        raise InvalidAdjustment(f"the reason must be text, got {type(reason).__name__}")
    reason = reason.strip()
    if not reason:
        raise InvalidAdjustment("a reason is required for the audit trail")
    if len(reason) > MAX_REASON_LENGTH or not reason.isprintable():
        raise InvalidAdjustment(
            f"the reason must be one line of at most {MAX_REASON_LENGTH} printable characters, "
            f"got {len(reason):,}"
        )
    return reason


def admin_adjustment(
    user_id: str, tokens: int, reason: str, balance: int, *, key: str
) -> LedgerChange:
    """An operator's change of ``tokens`` (negative deducts) to a balance now at ``balance``,
    applied at most once under ``key``.

    Raises InvalidAdjustment for a zero or absurd amount, one that would take the balance
    past ``MAX_BALANCE``, an unusable user id or reason, or an over-long key.
    """
    user_id, reason = check_user_id(user_id), check_reason(reason)
    if type(tokens) is not int or tokens == 0:
        raise InvalidAdjustment("tokens must be a non-zero whole number")
    if abs(tokens) > MAX_TOKENS:
        raise InvalidAdjustment(
            f"tokens must be between -{MAX_TOKENS:,} and {MAX_TOKENS:,}, got {_number(tokens)}"
        )
    if balance + tokens > MAX_BALANCE:
        raise InvalidAdjustment(
            f"{user_id} has {balance:,} tokens; adding {tokens:,} would pass the largest "
            f"balance, {MAX_BALANCE:,}"
        )
    if not 0 < len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidAdjustment(f"the key must be 1-{MAX_KEY_LENGTH} printable characters")
    return LedgerChange(
        key=f"admin:{key}", user_id=user_id, kind=EntryKind.ADMIN, tokens=tokens, reason=reason
    )


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
