"""Redeeming a code credits exactly once: races, crashes at every step, retries, recovery."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from buytokens.adapters.memory import FixedClock
from buytokens.adapters.mongo.codes import MongoRedemptionCodes
from buytokens.adapters.mongo.connection import MongoDatabase
from buytokens.adapters.mongo.recovery import ADJUSTMENT_GRACE
from buytokens.adapters.mongo.store import MongoBalanceRepository
from buytokens.domain.codes import CodeRecord, RedemptionCode, redemption_key
from buytokens.domain.errors import GiftAlreadyRedeemed, GiftNotFound, StoreUnavailable
from buytokens.domain.ledger import EntryKind, LedgerChange, LedgerEntry
from buytokens.ports.balances import BalanceRepository
from buytokens.ports.codes import RedemptionCodes
from buytokens.services.codes import CodeDesk, create_codes, finish_redemptions, redeem_code
from tests.support.code_stores import CODE_STORES, CodeStores
from tests.support.concurrency import at_once
from tests.support.crashes import CrashAt, SimulatedCrash
from tests.support.mongo import USER, InterceptingDatabase
from tests.support.stores import mongo_database

TOKENS = 25_000
OTHER = "fedcba9876543210fedcba98"


@pytest.fixture(params=sorted(CODE_STORES))
def stores(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FixedClock
) -> Iterator[CodeStores]:
    """Each code store with its balances, empty."""
    with CODE_STORES[request.param](tmp_path, clock) as both:
        yield both


def _desk(stores: CodeStores, clock: FixedClock) -> CodeDesk:
    return CodeDesk(stores.codes, stores.balances, clock)


def _credits(balances: BalanceRepository, user: str, digest: str) -> list[LedgerEntry]:
    return [e for e in balances.ledger(user) if e.key == redemption_key(digest)]


def _assert_credited_once(desk: CodeDesk, code: RedemptionCode, user: str) -> None:
    assert desk.store.balance(user) == TOKENS
    (entry,) = _credits(desk.store, user, code.digest)
    assert (entry.kind, entry.applied) == (EntryKind.REDEMPTION, TOKENS)
    assert code.display() not in entry.reason
    assert code.hint in entry.reason
    stored = desk.codes.find(code.digest)
    assert stored is not None
    assert (stored.redeemed_by, stored.credited) == (user, True)
    assert list(desk.codes.uncredited()) == []


def test_a_code_credits_its_redeemer_once(stores: CodeStores, clock: FixedClock) -> None:
    """Redeeming in any case, dashes or not, credits the tokens; the balance is reported."""
    desk = _desk(stores, clock)
    (code,) = create_codes(desk, TOKENS, 1, "launch")
    typed = code.display().lower().replace("-", " ")
    redeemed = redeem_code(desk, USER, typed)
    assert (redeemed.tokens, redeemed.token_credits) == (TOKENS, TOKENS)
    _assert_credited_once(desk, code, USER)


def test_a_second_redemption_is_refused_by_whoever_asks(
    stores: CodeStores, clock: FixedClock
) -> None:
    """The redeemer and anyone else get GiftAlreadyRedeemed; nothing more is credited."""
    desk = _desk(stores, clock)
    (code,) = create_codes(desk, TOKENS, 1, "launch")
    redeem_code(desk, USER, code.display())
    with pytest.raises(GiftAlreadyRedeemed, match="by you"):
        redeem_code(desk, USER, code.display())
    with pytest.raises(GiftAlreadyRedeemed, match="someone else"):
        redeem_code(desk, OTHER, code.display())
    assert desk.store.balance(OTHER) == 0
    _assert_credited_once(desk, code, USER)


def test_unknown_malformed_and_expired_codes_are_not_found(
    stores: CodeStores, clock: FixedClock
) -> None:
    """A code never issued, a typo, junk and an expired code all answer GiftNotFound."""
    desk = _desk(stores, clock)
    (code,) = create_codes(desk, TOKENS, 1, "launch", clock.now() + timedelta(days=1))
    stranger = RedemptionCode.generate(secrets.token_bytes)
    typo = code.symbols[:-1] + ("0" if code.symbols[-1] != "0" else "1")
    for text in (stranger.display(), typo, "hello", ""):
        with pytest.raises(GiftNotFound):
            redeem_code(desk, USER, text)
    clock.advance(timedelta(days=1))
    with pytest.raises(GiftNotFound, match="expired"):
        redeem_code(desk, USER, code.display())
    assert desk.store.balance(USER) == 0


class SlowReads:
    """A RedemptionCodes whose reads take a while, so racing redeemers all read before any claim."""

    def __init__(self, inner: RedemptionCodes, pause: float = 0.05) -> None:
        self._inner, self._pause = inner, pause

    def find(self, digest: str) -> CodeRecord | None:
        found = self._inner.find(digest)
        time.sleep(self._pause)
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_twenty_users_at_once_get_one_credit(stores: CodeStores, clock: FixedClock) -> None:
    """Twenty users redeeming one code at the same instant: one credit, nineteen refusals.

    Every redeemer reads the code as unredeemed before anyone claims it, so only
    the conditional claim can keep it to one.
    """
    (code,) = create_codes(_desk(stores, clock), TOKENS, 1, "launch")
    slow: Any = SlowReads(stores.codes)
    desk = CodeDesk(slow, stores.balances, clock)
    users = [f"{i:024x}" for i in range(1, 21)]

    def attempt(i: int) -> str:
        try:
            redeem_code(desk, users[i], code.display())
        except GiftAlreadyRedeemed:
            return "409"
        return "200"

    outcomes = at_once(attempt, 20)
    assert sorted(outcomes) == ["200"] + ["409"] * 19
    winner = users[outcomes.index("200")]
    desk = _desk(stores, clock)
    assert [desk.store.balance(user) for user in users].count(TOKENS) == 1
    assert sum(desk.store.balance(user) for user in users) == TOKENS
    _assert_credited_once(desk, code, winner)


@pytest.mark.parametrize("redeemed_first", [False, True], ids=["fresh", "redeemed"])
def test_the_redeemer_retrying_while_others_try_credits_once(
    stores: CodeStores, clock: FixedClock, redeemed_first: bool
) -> None:
    """Ten attempts by one user (retries after lost answers) and ten by others, at once.

    On a fresh code every answer of 200 is that one winner's (a retry that finds
    its own claim unfinished finishes it); on a code the user already redeemed
    everyone gets 409, the redeemer told it was them. Either way: one credit.
    """
    (code,) = create_codes(_desk(stores, clock), TOKENS, 1, "launch")
    if redeemed_first:
        redeem_code(_desk(stores, clock), USER, code.display())
    slow: Any = SlowReads(stores.codes)
    desk = CodeDesk(slow, stores.balances, clock)
    others = [f"{i:024x}" for i in range(1, 11)]
    callers = [USER] * 10 + others

    def attempt(i: int) -> tuple[str, str]:
        try:
            redeem_code(desk, callers[i], code.display())
        except GiftAlreadyRedeemed as refused:
            return callers[i], "by you" if "by you" in refused.message else "409"
        return callers[i], "200"

    outcomes = at_once(attempt, 20)
    winners = {caller for caller, answer in outcomes if answer == "200"}
    if redeemed_first:
        assert winners == set()
        assert sorted(answer for caller, answer in outcomes if caller == USER) == ["by you"] * 10
    else:
        assert len(winners) == 1
    owner = USER if redeemed_first else winners.pop()
    refused = [answer for caller, answer in outcomes if caller != owner]
    assert refused == ["409"] * len(refused)
    desk = _desk(stores, clock)
    assert sum(desk.store.balance(user) for user in [USER, *others]) == TOKENS
    _assert_credited_once(desk, code, owner)


# -- crashes on every store: an injected failing store wrapper ------------------------------


class CrashingCodes:
    """A RedemptionCodes whose ``method`` dies once, before or after it takes effect."""

    def __init__(self, inner: RedemptionCodes, method: str, *, after: bool) -> None:
        self._inner, self._method, self._after = inner, method, after
        self.crashed = False

    def _maybe_crash(self, method: str, call: Callable[[], Any]) -> Any:
        if method != self._method or self.crashed:
            return call()
        self.crashed = True
        if self._after:
            call()
        raise SimulatedCrash(f"crash {'after' if self._after else 'before'} {method}")

    def add(self, records: Sequence[CodeRecord]) -> None:
        self._maybe_crash("add", lambda: self._inner.add(records))

    def find(self, digest: str) -> CodeRecord | None:
        found: CodeRecord | None = self._maybe_crash("find", lambda: self._inner.find(digest))
        return found

    def claim(self, digest: str, user_id: str, at: datetime) -> bool:
        return bool(self._maybe_crash("claim", lambda: self._inner.claim(digest, user_id, at)))

    def mark_credited(self, digest: str) -> None:
        self._maybe_crash("mark_credited", lambda: self._inner.mark_credited(digest))

    def codes(self, *, unredeemed_only: bool = False, limit: int = 1000) -> Sequence[CodeRecord]:
        return self._inner.codes(unredeemed_only=unredeemed_only, limit=limit)

    def uncredited(self, limit: int = 100) -> Sequence[CodeRecord]:
        return self._inner.uncredited(limit)


class CrashingBalances:
    """A BalanceRepository whose ``record_adjustment`` dies once, before or after applying."""

    def __init__(self, inner: BalanceRepository, *, after: bool) -> None:
        self._inner, self._after = inner, after
        self.crashed = False

    def record_adjustment(self, change: LedgerChange) -> LedgerEntry:
        if self.crashed:
            return self._inner.record_adjustment(change)
        self.crashed = True
        if self._after:
            self._inner.record_adjustment(change)
        raise SimulatedCrash("crash around the credit")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


# (what dies, before or after its write)
STEPS = [
    ("claim", False),
    ("claim", True),  # claimed, nothing credited
    ("credit", False),
    ("credit", True),  # credited, not marked
    ("mark_credited", False),  # credited, not marked
    ("mark_credited", True),  # done, but the answer was lost
]


def _crashing_desk(stores: CodeStores, clock: FixedClock, step: str, after: bool) -> CodeDesk:
    if step == "credit":
        balances: Any = CrashingBalances(stores.balances, after=after)
        return CodeDesk(stores.codes, balances, clock)
    return CodeDesk(CrashingCodes(stores.codes, step, after=after), stores.balances, clock)


@pytest.mark.parametrize(("step", "after"), STEPS)
@pytest.mark.parametrize("finisher", ["same user retries", "finishing pass", "someone else"])
def test_a_crash_at_any_step_then_a_retry_credits_once(
    stores: CodeStores, clock: FixedClock, step: str, after: bool, finisher: str
) -> None:
    """Whatever step dies, the redeemer's retry or the finishing pass ends in one credit."""
    healthy = _desk(stores, clock)
    (code,) = create_codes(healthy, TOKENS, 1, "launch")
    with pytest.raises(SimulatedCrash):
        redeem_code(_crashing_desk(stores, clock, step, after), USER, code.display())
    claimed = step != "claim" or after
    if finisher == "same user retries":
        if step == "mark_credited" and after:
            with pytest.raises(GiftAlreadyRedeemed, match="by you"):
                redeem_code(healthy, USER, code.display())
        else:
            assert redeem_code(healthy, USER, code.display()).token_credits == TOKENS
    elif finisher == "finishing pass":
        report = finish_redemptions(healthy)
        assert report.failed == ()
        if not claimed:
            assert report.finished == 0
            redeem_code(healthy, USER, code.display())
    else:
        if claimed:
            with pytest.raises(GiftAlreadyRedeemed, match="someone else"):
                redeem_code(healthy, OTHER, code.display())
            finish_redemptions(healthy)
        else:
            redeem_code(healthy, OTHER, code.display())
            assert healthy.store.balance(OTHER) == TOKENS
            assert healthy.store.balance(USER) == 0
            return
    assert finish_redemptions(healthy).finished == 0  # nothing left to do
    _assert_credited_once(healthy, code, USER)
    assert healthy.store.balance(OTHER) == 0


# -- crashes in MongoDB: at every single write ----------------------------------------------


def _mongo_desk(database: MongoDatabase, clock: FixedClock) -> CodeDesk:
    return CodeDesk(MongoRedemptionCodes(database), MongoBalanceRepository(database, clock), clock)


def _writes_of_a_redemption() -> int:
    clock = FixedClock()
    with mongo_database() as database:
        (code,) = create_codes(_mongo_desk(database, clock), TOKENS, 1, "launch")
        counter = CrashAt(None, after=False)
        redeem_code(
            _mongo_desk(InterceptingDatabase(database, counter), clock), USER, code.display()
        )
        return counter.count


WRITES = _writes_of_a_redemption()


def test_a_redemption_is_several_writes() -> None:
    """The claim, the ledger steps and the mark are separate writes a crash can fall between."""
    assert WRITES >= 5


@pytest.mark.parametrize("n", range(1, WRITES + 1))
@pytest.mark.parametrize("how", ["crash before", "crash after", "reply lost"])
@pytest.mark.parametrize("late", [False, True], ids=["soon", "after the grace"])
def test_a_mongo_crash_at_any_write_then_recovery_credits_once(
    n: int, how: str, late: bool
) -> None:
    """A crash or lost reply at write n, a restart (recover, finishing pass), a retry: one
    credit."""
    clock = FixedClock()
    with mongo_database() as database:
        (code,) = create_codes(_mongo_desk(database, clock), TOKENS, 1, "launch")
        crash = CrashAt(
            n,
            after=how != "crash before",
            error=(lambda: AutoReconnect("reply lost")) if how == "reply lost" else None,
        )
        failing = _mongo_desk(InterceptingDatabase(database, crash), clock)
        with contextlib.suppress(SimulatedCrash, StoreUnavailable):
            redeem_code(failing, USER, code.display())
        if late:
            clock.advance(ADJUSTMENT_GRACE + timedelta(seconds=1))
        restarted = _mongo_desk(database, clock)
        assert isinstance(restarted.store, MongoBalanceRepository)
        restarted.store.recover()
        assert finish_redemptions(restarted).failed == ()
        stored = restarted.codes.find(code.digest)
        assert stored is not None
        if stored.redeemed_by is None:  # the crash came before the claim
            redeem_code(restarted, USER, code.display())
        else:
            assert stored.credited  # the finishing pass finished it
            with pytest.raises(GiftAlreadyRedeemed):
                redeem_code(restarted, USER, code.display())
        _assert_credited_once(restarted, code, USER)
        transactions = database.get_collection("transactions")
        assert (
            transactions.count_documents(
                {"context": "code_redemption", "buytokens.state": "applied"}
            )
            == 1
        )
        assert transactions.count_documents({"buytokens.state": "pending"}) == 0
