"""The SQLite code and promo tables are read by column name, and a bad row names itself."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from buytokens.adapters.sqlite.codes import SqliteRedemptionCodes
from buytokens.adapters.sqlite.engine import SqliteDatabase
from buytokens.adapters.sqlite.promos import SqlitePromoCodes
from buytokens.domain.codes import issue_codes
from buytokens.domain.errors import StoreCorrupted
from buytokens.domain.money import Money
from buytokens.domain.promo_uses import PromoUse, UseState
from buytokens.domain.promotions import AmountOff, PromoCode

AT = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[SqliteDatabase]:
    """An empty store file."""
    db = SqliteDatabase(tmp_path / "rows.sqlite3")
    try:
        yield db
    finally:
        db.close()


def _spoil(database: SqliteDatabase, sql: str, *params: object) -> None:
    database.transact(lambda conn: conn.execute(sql, params))


def test_every_column_of_a_code_survives_and_a_bad_row_is_named(
    database: SqliteDatabase,
) -> None:
    """A redeemed, credited code with an expiry reads back whole; a spoiled one names its digest."""
    codes = SqliteRedemptionCodes(database)
    ((_code, record),) = issue_codes(
        secrets.token_bytes, 1, 5_000, "launch", AT, AT + timedelta(days=3, microseconds=9)
    )
    codes.add([record])
    later = AT + timedelta(hours=1, microseconds=3)
    assert codes.claim(record.digest, "alice", later)
    codes.mark_credited(record.digest)
    stored = codes.find(record.digest)
    assert stored is not None
    assert (stored.expires_at, stored.redeemed_by, stored.redeemed_at, stored.credited) == (
        record.expires_at,
        "alice",
        later,
        True,
    )
    assert stored.reason == "launch"
    _spoil(database, "UPDATE codes SET kind = 'coupon' WHERE digest = ?", record.digest)
    with pytest.raises(StoreCorrupted, match=record.digest):
        codes.find(record.digest)


def test_promo_codes_and_uses_round_trip_and_a_bad_row_is_named(
    database: SqliteDatabase,
) -> None:
    """Every field of a promo code and of a use reads back; a spoiled row names its key."""
    promos = SqlitePromoCodes(database)
    promo = PromoCode(
        code="SPRING",
        discount=AmountOff(Money(500, "cny")),
        created_at=AT,
        package_ids=["package_1m", "package_500k"],
        max_redemptions=7,
        per_user=2,
        expires_at=AT + timedelta(days=30, microseconds=1),
    )
    assert promos.create(promo)
    assert promos.get("SPRING") == promo
    use = PromoUse(
        code="SPRING",
        checkout_id="co_1",
        user_id="alice",
        state=UseState.HELD,
        held_until=AT + timedelta(hours=1),
        ticket=3,
        user_ticket=1,
    )
    assert promos.write_use(use, None)
    assert promos.find_use("co_1") == use
    attached = PromoUse(
        code="SPRING",
        checkout_id="co_1",
        user_id="alice",
        state=UseState.HELD,
        held_until=AT + timedelta(hours=1),
        ticket=3,
        user_ticket=1,
        payment_intent_id="pi_1",
    )
    promos.attach_intent("co_1", "pi_1")
    assert promos.find_use("co_1") == attached
    _spoil(database, "UPDATE promo_codes SET per_user = 'many' WHERE code = 'SPRING'")
    with pytest.raises(StoreCorrupted, match="SPRING"):
        promos.get("SPRING")
    _spoil(database, "UPDATE promo_uses SET held_until = 'soon' WHERE checkout_id = 'co_1'")
    with pytest.raises(StoreCorrupted, match="co_1"):
        promos.find_use("co_1")
