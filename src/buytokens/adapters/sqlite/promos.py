"""PromoCodes in the embedded store's SQLite file (tables ``promo_codes``, ``promo_uses``,
migrations 6 and 7)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from buytokens.adapters.sqlite.codec import optional_iso, optional_time, placeholders
from buytokens.adapters.sqlite.engine import SqliteDatabase
from buytokens.domain.errors import StoreCorrupted, UserError
from buytokens.domain.money import Money
from buytokens.domain.promo_uses import PromoUse, UseState
from buytokens.domain.promotions import AmountOff, PercentOff, PromoCode

_CODE_FIELDS = (
    "code",
    "kind",
    "value",
    "currency",
    "package_ids",
    "max_redemptions",
    "per_user",
    "expires_at",
    "created_at",
    "disabled",
)
_USE_FIELDS = (
    "checkout_id",
    "code",
    "user_id",
    "state",
    "held_until",
    "ticket",
    "user_ticket",
    "payment_intent_id",
    "cancel_pending",
)
_SELECT_CODES = f"SELECT {', '.join(_CODE_FIELDS)} FROM promo_codes"  # noqa: S608
_SELECT_USES = f"SELECT {', '.join(_USE_FIELDS)} FROM promo_uses"  # noqa: S608
_INSERT_CODE = (
    f"INSERT INTO promo_codes ({', '.join(_CODE_FIELDS)}) "  # noqa: S608 - our own columns
    f"VALUES ({placeholders(_CODE_FIELDS)}) ON CONFLICT (code) DO NOTHING"
)
_INSERT_USE = (
    f"INSERT INTO promo_uses ({', '.join(_USE_FIELDS)}) "  # noqa: S608 - our own columns
    f"VALUES ({placeholders(_USE_FIELDS)})"
)
_UPDATE_USE = (
    "UPDATE promo_uses SET "  # noqa: S608 - names of our own columns
    + ", ".join(f"{name} = :{name}" for name in _USE_FIELDS if name != "checkout_id")
    + " WHERE checkout_id = :checkout_id"
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
            cursor = conn.execute(_INSERT_CODE, row)
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
                conn.execute(_INSERT_USE if previous is None else _UPDATE_USE, row)
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
    conn.execute(_UPDATE_USE, _use_row(use))


def _code_row(p: PromoCode) -> dict[str, Any]:
    """The code's row, as named parameters of ``_INSERT_CODE``."""
    if isinstance(p.discount, PercentOff):
        kind, value, currency = "percent", p.discount.percent, None
    else:
        kind, value, currency = "amount", p.discount.amount.amount, p.discount.amount.currency
    return {
        "code": p.code,
        "kind": kind,
        "value": value,
        "currency": currency,
        "package_ids": None if p.package_ids is None else json.dumps(sorted(p.package_ids)),
        "max_redemptions": p.max_redemptions,
        "per_user": p.per_user,
        "expires_at": optional_iso(p.expires_at),
        "created_at": p.created_at.isoformat(),
        "disabled": int(p.disabled),
    }


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _code(row: Mapping[str, Any]) -> PromoCode:
    """The promo code a row of ``promo_codes`` holds."""
    try:
        value = int(row["value"])
        discount = (
            PercentOff(value)
            if row["kind"] == "percent"
            else AmountOff(Money(value, str(row["currency"])))
        )
        packages = row["package_ids"]
        return PromoCode(
            code=str(row["code"]),
            discount=discount,
            created_at=datetime.fromisoformat(str(row["created_at"])),
            package_ids=None if packages is None else [str(p) for p in json.loads(packages)],
            max_redemptions=_optional_int(row["max_redemptions"]),
            per_user=int(row["per_user"]),
            expires_at=optional_time(row["expires_at"]),
            disabled=bool(row["disabled"]),
        )
    except (ValueError, TypeError, UserError) as exc:
        raise StoreCorrupted(f"promo code row {row['code']!r} is unreadable: {exc}") from exc


def _use_row(u: PromoUse) -> dict[str, Any]:
    """The use's row, as named parameters of ``_INSERT_USE`` and ``_UPDATE_USE``."""
    return {
        "checkout_id": u.checkout_id,
        "code": u.code,
        "user_id": u.user_id,
        "state": u.state.value,
        "held_until": u.held_until.isoformat(),
        "ticket": u.ticket,
        "user_ticket": u.user_ticket,
        "payment_intent_id": u.payment_intent_id,
        "cancel_pending": int(u.cancel_pending),
    }


def _use(row: Mapping[str, Any]) -> PromoUse:
    """The use a row of ``promo_uses`` holds."""
    try:
        intent = row["payment_intent_id"]
        return PromoUse(
            code=str(row["code"]),
            checkout_id=str(row["checkout_id"]),
            user_id=str(row["user_id"]),
            state=UseState(str(row["state"])),
            held_until=datetime.fromisoformat(str(row["held_until"])),
            ticket=_optional_int(row["ticket"]),
            user_ticket=_optional_int(row["user_ticket"]),
            payment_intent_id=None if intent is None else str(intent),
            cancel_pending=bool(row["cancel_pending"]),
        )
    except (ValueError, TypeError) as exc:
        raise StoreCorrupted(f"promo use row {row['checkout_id']!r} is unreadable: {exc}") from exc
