"""Settling ledger changes against a balance."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from buytokens.domain.ledger import EntryKind, LedgerChange, LedgerEntry, Settlement, settle

T0 = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("balance", "requested", "expected"),
    [
        (0, 0, Settlement(0, 0, 0)),
        (5, 0, Settlement(0, 0, 5)),
        (0, 7, Settlement(7, 0, 7)),
        (10, 1, Settlement(1, 0, 11)),
        (10, -4, Settlement(-4, 0, 6)),
        (10, -10, Settlement(-10, 0, 0)),
        (10, -11, Settlement(-10, 1, 0)),
        (0, -3, Settlement(0, 3, 0)),
    ],
)
def test_settle_never_goes_below_zero_and_records_the_rest(
    balance: int, requested: int, expected: Settlement
) -> None:
    """Credits apply whole; a deduction takes at most the balance, the rest is the shortfall."""
    assert settle(balance, requested) == expected


def test_an_entry_records_the_request_the_settlement_and_its_time() -> None:
    """from_change keeps the change's identity and adds what the balance absorbed."""
    change = LedgerChange("refund:pi_1:2", "alice", EntryKind.REFUND, -50, "pi_1", "refund of 5")
    entry = LedgerEntry.from_change(change, 30, T0)
    assert entry == LedgerEntry(
        "refund:pi_1:2", "alice", EntryKind.REFUND, -50, -30, 20, 0, T0, "pi_1", "refund of 5"
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"key": ""}, "^key must be a non-empty string$"),
        ({"user_id": ""}, "^user_id must be a non-empty string$"),
        ({"user_id": 5}, "^user_id must be a non-empty string$"),
        ({"tokens": 1.5}, r"^tokens must be an integer, got 1\.5$"),
        ({"tokens": True}, "^tokens must be an integer, got True$"),
    ],
)
def test_a_change_refuses_what_is_not_a_change(fields: dict[str, object], message: str) -> None:
    """Empty keys or users, and tokens that are not whole numbers, are refused by name."""
    values: dict[str, object] = {"key": "k", "user_id": "u", "kind": EntryKind.ADMIN, "tokens": 1}
    with pytest.raises(ValueError, match=message):
        LedgerChange(**{**values, **fields})  # type: ignore[arg-type]
