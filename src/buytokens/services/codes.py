"""Operator-issued redemption codes: issuing them, redeeming one exactly once, listing them.

Redeeming is three writes, each safe to repeat: **claim** the code for the user
(the commit point: one conditional write, so of any number of users exactly one
wins), **credit** the user through the balance store's idempotent adjustment
path under the code's one ledger key, then **mark** the code credited. A crash
or a lost reply after the claim leaves a claimed, uncredited code: the same
user's retry, or ``finish_redemptions`` (run at start-up and with the periodic
recovery), repeats the credit under the same key, which applies it at most once.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from datetime import datetime

import attrs

from buytokens.domain.codes import (
    CodeKind,
    CodeRecord,
    CodeState,
    Redemption,
    RedemptionCode,
    issue_codes,
    parse_code,
    redemption_key,
)
from buytokens.domain.crediting import redeem_gift
from buytokens.domain.errors import (
    BuyTokensError,
    ChangeNotApplied,
    GiftNotFound,
    StoreUnavailable,
    UserError,
)
from buytokens.domain.ledger import (
    MAX_BALANCE,
    MAX_TOKENS,
    EntryKind,
    LedgerChange,
    check_reason,
    check_user_id,
)
from buytokens.domain.users import canonical_user_id
from buytokens.ports.balances import BalanceRepository
from buytokens.ports.clock import Clock
from buytokens.ports.codes import RedemptionCodes
from buytokens.services.crediting import settle

_NOT_FOUND = "no such code, or it has expired"


@attrs.frozen
class CodeDesk:
    """What the code use cases run on: the codes, the balances they credit, time, randomness."""

    codes: RedemptionCodes
    store: BalanceRepository
    clock: Clock
    random_bytes: Callable[[int], bytes] = secrets.token_bytes


@attrs.frozen
class Redeemed:
    """A code redeemed: the tokens it credited and the redeemer's balance now."""

    tokens: int
    token_credits: int


@attrs.frozen
class FinishedRedemptions:
    """What one finishing pass did: redemptions credited, and those that failed (by hint)."""

    finished: int = 0
    failed: tuple[str, ...] = ()


def create_codes(
    desk: CodeDesk, tokens: int, count: int, reason: str, expires: datetime | None = None
) -> tuple[RedemptionCode, ...]:
    """Issue ``count`` codes worth ``tokens`` each; the codes are returned to be shown once.

    Only their digests and hints are stored. Raises ``UserError`` for a token
    count outside 1..``MAX_TOKENS``, a count outside 1..``MAX_CODES_PER_BATCH``,
    an empty or over-long reason, or an expiry that is not a future, timezone-aware time.
    """
    if type(tokens) is not int or not 0 < tokens <= MAX_TOKENS:
        raise UserError(
            f"a code is worth 1 to {MAX_TOKENS:,} tokens, got {tokens!r}", code="invalid_tokens"
        )
    reason = check_reason(reason)
    if expires is not None and expires.tzinfo is None:
        raise UserError(
            "the expiry needs a time zone (e.g. 2026-12-31T23:59Z)", code="invalid_expiry"
        )
    issued = issue_codes(desk.random_bytes, count, tokens, reason, desk.clock.now(), expires)
    desk.codes.add([record for _code, record in issued])
    return tuple(code for code, _record in issued)


def redeem_code(desk: CodeDesk, user_id: str, text: str) -> Redeemed:
    """Credit the code's tokens to ``user_id``, once for the code, whoever asks how often.

    Raises ``GiftNotFound`` (unknown, malformed or expired), ``GiftAlreadyRedeemed``,
    ``GiftVoid``; ``StoreUnavailable`` when the store failed, after which asking
    again finishes the redemption (the code stays this user's once claimed).
    """
    user_id = canonical_user_id(check_user_id(user_id))
    code = parse_code(text)
    record = desk.codes.find(code.digest)
    if record is None:
        raise GiftNotFound(_NOT_FOUND)
    if record.kind is CodeKind.GIFT:
        return _redeem_gift(desk, record, user_id)
    if _interrupted(record, user_id):
        return _credit(desk, record)
    now = desk.clock.now()
    redemption = record.redeem(user_id, now)
    _check_ceiling(desk, redemption)
    if not desk.codes.claim(record.digest, user_id, now):
        current = desk.codes.find(record.digest)
        if current is None:
            raise GiftNotFound(_NOT_FOUND)
        if _interrupted(current, user_id):  # our own claim, whose reply was lost
            return _credit(desk, current)
        current.redeem(user_id, now)  # raises: someone else claimed it first
        raise StoreUnavailable("the code changed while it was being redeemed; try again")
    return _credit(desk, redemption.record)


def _redeem_gift(desk: CodeDesk, record: CodeRecord, user_id: str) -> Redeemed:
    """A gift is redeemed by a transition of its purchase at the version read: of any
    number of concurrent redeemers one commits, the others find it redeemed."""
    if record.payment_intent_id is None:
        raise GiftNotFound(_NOT_FOUND)
    balance = desk.store.balance(user_id)
    if balance + record.tokens > MAX_BALANCE:
        raise UserError(
            f"your balance of {balance:,} tokens cannot take {record.tokens:,} more",
            code="balance_limit",
        )
    now = desk.clock.now()
    settle(
        desk.store,
        record.payment_intent_id,
        lambda current, taken: redeem_gift(current, user_id, now, taken_back=taken),
    )
    return Redeemed(record.tokens, desk.store.balance(user_id))


def finish_redemptions(desk: CodeDesk, limit: int = 100) -> FinishedRedemptions:
    """Credit every claimed code whose credit a crash or a lost reply left unmarked; idempotent.

    Cheap when there is nothing to finish: one indexed read.
    """
    finished = 0
    failed: list[str] = []
    for record in desk.codes.uncredited(limit):
        try:
            _credit(desk, record)
        except BuyTokensError as exc:
            failed.append(f"{record.hint}: {exc.message}")
        else:
            finished += 1
    return FinishedRedemptions(finished, tuple(failed))


def list_codes(
    desk: CodeDesk, *, unredeemed_only: bool = False, limit: int = 1000
) -> Sequence[CodeRecord]:
    """Stored codes, newest first, each in its state now; with ``unredeemed_only`` only
    those redeemable now.

    A gift's state lives on its purchase (the store holds only its index): each gift
    is read with its purchase, so it shows as redeemed (by whom, when), void (why),
    pending (not paid, or under review) or unredeemed as the redemption would answer.
    """
    records = [
        _as_purchased(desk, record)
        for record in desk.codes.codes(unredeemed_only=unredeemed_only, limit=limit)
    ]
    if not unredeemed_only:
        return records
    now = desk.clock.now()
    return [record for record in records if record.state(now) is CodeState.UNREDEEMED]


def _as_purchased(desk: CodeDesk, record: CodeRecord) -> CodeRecord:
    if record.kind is not CodeKind.GIFT or record.payment_intent_id is None:
        return record
    return record.with_purchase(desk.store.get_purchase(record.payment_intent_id))


def _interrupted(record: CodeRecord, user_id: str) -> bool:
    return record.redeemed_by == user_id and not record.credited


def _check_ceiling(desk: CodeDesk, redemption: Redemption) -> None:
    # Read before the claim: two redemptions racing past the ceiling overshoot it by at
    # most one code's tokens, far inside a 64-bit integer.
    balance = desk.store.balance(redemption.user_id)
    if balance + redemption.tokens > MAX_BALANCE:
        raise UserError(
            f"your balance of {balance:,} tokens cannot take {redemption.tokens:,} more",
            code="balance_limit",
        )


def _credit(desk: CodeDesk, record: CodeRecord) -> Redeemed:
    """Steps two and three: the credit under the code's key, then the mark."""
    assert record.redeemed_by is not None, "only a claimed code is credited"
    redemption = Redemption(
        record, redemption_key(record.digest), record.redeemed_by, record.tokens
    )
    change = LedgerChange(
        key=redemption.key,
        user_id=redemption.user_id,
        kind=EntryKind.REDEMPTION,
        tokens=redemption.tokens,
        reason=redemption.reason,
    )
    try:
        desk.store.record_adjustment(change)
    except (ChangeNotApplied, StoreUnavailable) as exc:
        raise StoreUnavailable(
            f"the code is yours, but its {record.tokens:,} tokens are not credited yet "
            f"({exc.message}); redeem it again in a moment to finish (it credits once)"
        ) from exc
    desk.codes.mark_credited(record.digest)
    return Redeemed(record.tokens, desk.store.balance(redemption.user_id))
