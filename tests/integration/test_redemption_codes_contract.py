"""The RedemptionCodes contract, run against every adapter."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest

from buytokens.adapters.memory import FixedClock
from buytokens.domain.codes import CodeRecord, RedemptionCode, issue_codes
from buytokens.domain.errors import StoreCorrupted
from buytokens.ports.codes import RedemptionCodes
from tests.support.code_stores import CODE_STORES
from tests.support.concurrency import at_once

AT = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture(params=sorted(CODE_STORES))
def codes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedemptionCodes]:
    """Each RedemptionCodes adapter in turn, empty."""
    with CODE_STORES[request.param](tmp_path, FixedClock(AT)) as stores:
        yield stores.codes


def _issue(
    count: int = 1, at: datetime = AT, expires_at: datetime | None = None
) -> list[CodeRecord]:
    issued = issue_codes(secrets.token_bytes, count, 5_000, "launch", at, expires_at)
    return [record for _code, record in issued]


def test_an_unknown_digest_is_none(codes: RedemptionCodes) -> None:
    """A digest never stored reads back as None, and cannot be claimed."""
    digest = RedemptionCode.generate(secrets.token_bytes).digest
    assert codes.find(digest) is None
    assert codes.claim(digest, "alice", AT) is False
    assert codes.find(digest) is None


def test_added_codes_round_trip_exactly(codes: RedemptionCodes) -> None:
    """Every field of a record, expiry and microseconds included, survives storage."""
    records = _issue(3, expires_at=AT + timedelta(days=30, microseconds=7))
    codes.add(records)
    for record in records:
        assert codes.find(record.digest) == record


def test_a_claim_succeeds_once_and_records_who_and_when(codes: RedemptionCodes) -> None:
    """The first claim wins; a second, by anyone, changes nothing."""
    (record,) = _issue()
    codes.add([record])
    later = AT + timedelta(hours=2, microseconds=5)
    assert codes.claim(record.digest, "alice", later) is True
    assert codes.claim(record.digest, "bob", later + timedelta(seconds=1)) is False
    assert codes.claim(record.digest, "alice", later + timedelta(seconds=1)) is False
    claimed = codes.find(record.digest)
    assert claimed == attrs.evolve(record, redeemed_by="alice", redeemed_at=later)
    assert claimed is not None
    assert not claimed.credited


def test_claiming_takes_the_canonical_user_id(codes: RedemptionCodes) -> None:
    """An ObjectId-shaped user id is stored in its canonical (lower-case) spelling."""
    (record,) = _issue()
    codes.add([record])
    assert codes.claim(record.digest, "0123456789ABCDEF01234567", AT)
    stored = codes.find(record.digest)
    assert stored is not None
    assert stored.redeemed_by == "0123456789abcdef01234567"


def test_concurrent_claims_have_exactly_one_winner(codes: RedemptionCodes) -> None:
    """Twenty users claiming one code at once: one True, nineteen False."""
    (record,) = _issue()
    codes.add([record])
    won = at_once(lambda i: codes.claim(record.digest, f"user{i}", AT), 20)
    assert won.count(True) == 1
    stored = codes.find(record.digest)
    assert stored is not None
    assert stored.redeemed_by == f"user{won.index(True)}"


def test_uncredited_lists_claims_until_they_are_marked(codes: RedemptionCodes) -> None:
    """A claim is uncredited until marked; marking twice is a no-op; unclaimed codes never show."""
    first, second, untouched = _issue(3)
    codes.add([first, second, untouched])
    codes.claim(second.digest, "bob", AT + timedelta(minutes=2))
    codes.claim(first.digest, "alice", AT + timedelta(minutes=1))
    assert [r.digest for r in codes.uncredited()] == [first.digest, second.digest]
    assert [r.digest for r in codes.uncredited(limit=1)] == [first.digest]
    codes.mark_credited(first.digest)
    codes.mark_credited(first.digest)
    codes.mark_credited(untouched.digest)  # never claimed: stays as it is
    assert [r.digest for r in codes.uncredited()] == [second.digest]
    stored = codes.find(first.digest)
    assert stored is not None
    assert stored.credited
    assert codes.find(untouched.digest) == untouched


def test_listing_is_newest_first_and_can_leave_out_redeemed_codes(codes: RedemptionCodes) -> None:
    """``codes`` lists newest first, up to a limit; ``unredeemed_only`` drops claimed ones."""
    older = _issue(at=AT)
    newer = _issue(2, at=AT + timedelta(days=1))
    codes.add(older)
    codes.add(newer)
    newest_first = sorted(newer, key=lambda r: r.digest, reverse=True) + older
    assert [r.digest for r in codes.codes()] == [r.digest for r in newest_first]
    assert len(codes.codes(limit=2)) == 2
    assert codes.codes(limit=0) == []
    codes.claim(older[0].digest, "alice", AT)
    assert {r.digest for r in codes.codes(unredeemed_only=True)} == {r.digest for r in newer}
    assert len(codes.codes()) == 3


def test_a_batch_with_a_stored_digest_is_refused(codes: RedemptionCodes) -> None:
    """Adding a digest twice is a corrupted store, never a silent overwrite of a redemption."""
    (record,) = _issue()
    codes.add([record])
    codes.claim(record.digest, "alice", AT)
    with pytest.raises(StoreCorrupted):
        codes.add([attrs.evolve(record, redeemed_by=None, redeemed_at=None)])
    stored = codes.find(record.digest)
    assert stored is not None
    assert stored.redeemed_by == "alice"


def test_only_unredeemed_codes_can_be_added(codes: RedemptionCodes) -> None:
    """A record that claims to be redeemed already is refused before anything is written."""
    (record,) = _issue()
    with pytest.raises(ValueError, match="unredeemed"):
        codes.add([attrs.evolve(record, redeemed_by="alice", redeemed_at=AT)])
    assert codes.find(record.digest) is None
