"""PromoCodes in the embedded store's SQLite file (tables ``promo_codes``, ``promo_uses``,
migrations 6 and 7)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from buytokens.adapters.sqlite.engine import SqliteDatabase
from buytokens.domain.errors import StoreCorrupted, UserError
from buytokens.domain.money import Money
from buytokens.domain.promo_uses import PromoUse, UseState
from buytokens.domain.promotions import AmountOff, PercentOff, PromoCode

_CODE_COLUMNS = (
    "code, kind, value, currency, package_ids, max_redemptions, per_user, expires_at, "
    "created_at, disabled"
)
_USE_COLUMNS = (
    "checkout_id, code, user_id, state, held_until, ticket, user_ticket, payment_intent_id, "
    "cancel_pending"
)
_SELECT_CODES = f"SELECT {_CODE_COLUMNS} FROM promo_codes"  # noqa: S608
_SELECT_USES = f"SELECT {_USE_COLUMNS} FROM promo_uses"  # noqa: S608
_INSERT_USE = f"INSERT INTO promo_uses ({_USE_COLUMNS}) VALUES ({', '.join('?' * 9)})"  # noqa: S608
_UPDATE_USE = (
    "UPDATE promo_uses SET code = ?, user_id = ?, state = ?, held_until = ?, ticket = ?, "
    "user_ticket = ?, payment_intent_id = ?, cancel_pending = ? WHERE checkout_id = ?"
)


class SqlitePromoCodes:
    """PromoCodes in the same file as the balances.

    Each write reads and writes one use inside the writer's ``BEGIN IMMEDIATE``
    transaction, so the comparison with ``previous`` and the write are one step
    for every process on the file; the partial unique indexes refuse a second
    live use of a ticket.
    """

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    def create(self, promo: PromoCode) -> bool:
        row = _code_row(promo)

        def insert(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                f"INSERT INTO promo_codes ({_CODE_COLUMNS}) "  # noqa: S608
                f"VALUES ({', '.join('?' * 10)}) ON CONFLICT (code) DO NOTHING",
                row,
            )
            return cursor.rowcount == 1

        with self._db.guarded():
            return self._db.transact(insert)

    def get(self, code: str) -> PromoCode | None:
        rows = self._db.read(f"{_SELECT_CODES} WHERE code = ?", (code,))
        return _code(rows[0]) if rows else None

    def codes(self) -> Sequence[PromoCode]:
        rows = self._db.read(f"{_SELECT_CODES} ORDER BY created_at DESC, code DESC", ())
        return [_code(row) for row in rows]

    def disable(self, code: str) -> bool:
        def update(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute("UPDATE promo_codes SET disabled = 1 WHERE code = ?", (code,))
            return cursor.rowcount == 1

        with self._db.guarded():
            return self._db.transact(update)

    def live_uses(self, code: str) -> Sequence[PromoUse]:
        rows = self._db.read(f"{_SELECT_USES} WHERE code = ? AND state <> 'released'", (code,))
        return [_use(row) for row in rows]

    def find_use(self, checkout_id: str) -> PromoUse | None:
        rows = self._db.read(f"{_SELECT_USES} WHERE checkout_id = ?", (checkout_id,))
        return _use(rows[0]) if rows else None

    def write_use(self, use: PromoUse, previous: PromoUse | None) -> bool:
        row = _use_row(use)

        def write(conn: sqlite3.Connection) -> bool:
            if _stored(conn, use.checkout_id) != previous:
                return False
            try:
                if previous is None:
                    conn.execute(_INSERT_USE, row)
                else:
                    conn.execute(_UPDATE_USE, (*row[1:], row[0]))
            except sqlite3.IntegrityError:
                return False  # a ticket another live use holds
            return True

        with self._db.guarded():
            return self._db.transact(write)

    def retire(self, stale: PromoUse, now: datetime, *, intent_canceled: bool = False) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            stored = _stored(conn, stale.checkout_id)
            if stored != stale or stored.state is not UseState.HELD or now < stored.held_until:
                return False
            _replace(conn, stored.released(cancel_pending=not intent_canceled))
            return True

        with self._db.guarded():
            return self._db.transact(write)

    def pending_cancels(self) -> Sequence[PromoUse]:
        rows = self._db.read(f"{_SELECT_USES} WHERE cancel_pending = 1", ())
        return [_use(row) for row in rows]

    def release(self, checkout_id: str) -> PromoUse | None:
        def write(conn: sqlite3.Connection) -> PromoUse | None:
            stored = _stored(conn, checkout_id)
            if stored is None or stored.state is not UseState.HELD:
                return None
            released = stored.released()
            _replace(conn, released)
            return released

        with self._db.guarded():
            return self._db.transact(write)

    def attach_intent(self, checkout_id: str, payment_intent_id: str) -> None:
        with self._db.guarded():
            self._db.transact(
                lambda conn: conn.execute(
                    "UPDATE promo_uses SET payment_intent_id = ? "
                    "WHERE checkout_id = ? AND state = 'held'",
                    (payment_intent_id, checkout_id),
                )
            )


def _stored(conn: sqlite3.Connection, checkout_id: str) -> PromoUse | None:
    row = conn.execute(f"{_SELECT_USES} WHERE checkout_id = ?", (checkout_id,)).fetchone()
    return None if row is None else _use(row)


def _replace(conn: sqlite3.Connection, use: PromoUse) -> None:
    row = _use_row(use)
    conn.execute(_UPDATE_USE, (*row[1:], row[0]))


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


def _code_row(p: PromoCode) -> tuple[object, ...]:
    if isinstance(p.discount, PercentOff):
        kind, value, currency = "percent", p.discount.percent, None
    else:
        kind, value, currency = "amount", p.discount.amount.amount, p.discount.amount.currency
    return (
        p.code,
        kind,
        value,
        currency,
        None if p.package_ids is None else json.dumps(sorted(p.package_ids)),
        p.max_redemptions,
        p.per_user,
        _iso(p.expires_at),
        p.created_at.isoformat(),
        int(p.disabled),
    )


def _code(row: Sequence[Any]) -> PromoCode:
    code, kind, value, currency, packages, limit, per_user, expires, created, disabled = row
    try:
        discount = (
            PercentOff(int(value))
            if kind == "percent"
            else AmountOff(Money(int(value), str(currency)))
        )
        return PromoCode(
            code=str(code),
            discount=discount,
            created_at=datetime.fromisoformat(str(created)),
            package_ids=None if packages is None else [str(p) for p in json.loads(packages)],
            max_redemptions=None if limit is None else int(limit),
            per_user=int(per_user),
            expires_at=_time(expires),
            disabled=bool(disabled),
        )
    except (ValueError, TypeError, UserError) as exc:
        raise StoreCorrupted(f"promo code row {code!r} is unreadable: {exc}") from exc


def _use_row(u: PromoUse) -> tuple[object, ...]:
    return (
        u.checkout_id,
        u.code,
        u.user_id,
        u.state.value,
        u.held_until.isoformat(),
        u.ticket,
        u.user_ticket,
        u.payment_intent_id,
        int(u.cancel_pending),
    )


def _use(row: Sequence[Any]) -> PromoUse:
    checkout, code, user, state, until, ticket, user_ticket, intent, pending = row
    try:
        return PromoUse(
            code=str(code),
            checkout_id=str(checkout),
            user_id=str(user),
            state=UseState(str(state)),
            held_until=datetime.fromisoformat(str(until)),
            ticket=None if ticket is None else int(ticket),
            user_ticket=None if user_ticket is None else int(user_ticket),
            payment_intent_id=None if intent is None else str(intent),
            cancel_pending=bool(pending),
        )
    except (ValueError, TypeError) as exc:
        raise StoreCorrupted(f"promo use row {checkout!r} is unreadable: {exc}") from exc
