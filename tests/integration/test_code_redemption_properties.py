"""Random issue-and-redeem histories against every store, checked against the contract.

The model is the contract's sentence, nothing more: a code credits its tokens to
the first user who redeems it before it expires, and to nobody else, ever; a code
that was never issued, is mistyped or has expired is not found; one already
redeemed is refused. Each user's balance is the sum of the codes they redeemed.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from buytokens.adapters.memory import FixedClock
from buytokens.domain.codes import ALPHABET, RedemptionCode, redemption_key
from buytokens.domain.errors import GiftAlreadyRedeemed, GiftNotFound
from buytokens.services.codes import CodeDesk, create_codes, redeem_code
from tests.support.code_stores import CODE_STORES

USERS = ("u1", "u2", "507f1f77bcf86cd799439011")
T0 = datetime(2026, 3, 1, tzinfo=UTC)
# The SQLite store fsyncs every commit; fewer of its examples keep the suite quick.
EXAMPLES = {"memory": 1.0, "mongo": 0.3, "sqlite": 0.15}


class _Issued:
    """One code as the operator holds it, and what the contract says became of it."""

    def __init__(self, code: RedemptionCode, tokens: int, expires: datetime | None) -> None:
        self.code, self.tokens, self.expires = code, tokens, expires
        self.redeemed_by: str | None = None


class RedemptionMachine(RuleBasedStateMachine):
    """Operators issue codes, users type them (well or badly), time passes."""

    store_kind = "memory"

    def __init__(self) -> None:
        super().__init__()
        self._exit = ExitStack()
        self._directory = Path(tempfile.mkdtemp(prefix="codes-"))
        self.clock = FixedClock(T0)
        stores = self._exit.enter_context(CODE_STORES[self.store_kind](self._directory, self.clock))
        self.desk = CodeDesk(stores.codes, stores.balances, self.clock)
        self.issued: list[_Issued] = []
        self.outcomes: list[str] = []

    def teardown(self) -> None:
        self._exit.close()
        shutil.rmtree(self._directory, ignore_errors=True)

    @rule(
        tokens=st.integers(1, 10**12),
        count=st.integers(1, 3),
        expires_in=st.none() | st.integers(1, 180),
    )
    def issue(self, tokens: int, count: int, expires_in: int | None) -> None:
        expires = None if expires_in is None else self.clock.now() + timedelta(minutes=expires_in)
        codes = create_codes(self.desk, tokens, count, "a campaign", expires)
        assert len(codes) == count
        self.issued.extend(_Issued(code, tokens, expires) for code in codes)

    @precondition(lambda self: self.issued)
    @rule(data=st.data(), user=st.sampled_from(USERS), lower=st.booleans(), dashes=st.booleans())
    def redeem(self, data: st.DataObject, user: str, lower: bool, dashes: bool) -> None:
        issued = data.draw(st.sampled_from(self.issued))
        text = issued.code.display() if dashes else issued.code.symbols
        text = text.lower() if lower else text
        now = self.clock.now()
        try:
            redeemed = redeem_code(self.desk, user, text)
        except GiftAlreadyRedeemed:
            assert issued.redeemed_by is not None
            self.outcomes.append("409")
            return
        except GiftNotFound:
            assert issued.redeemed_by is None
            assert issued.expires is not None
            assert now >= issued.expires
            self.outcomes.append("404")
            return
        assert issued.redeemed_by is None
        assert issued.expires is None or now < issued.expires
        issued.redeemed_by = user
        assert redeemed.tokens == issued.tokens
        assert redeemed.token_credits == self._expected_balance(user)
        self.outcomes.append("200")

    @rule(user=st.sampled_from(USERS), junk=st.text(max_size=30))
    def redeem_junk(self, user: str, junk: str) -> None:
        """Anything typed that is not an issued code is not found, and credits nothing."""
        try:
            redeem_code(self.desk, user, junk)
        except GiftNotFound:
            return
        raise AssertionError("junk redeemed")

    @precondition(lambda self: self.issued)
    @rule(data=st.data(), user=st.sampled_from(USERS), position=st.integers(0, 19))
    def redeem_a_typo(self, data: st.DataObject, user: str, position: int) -> None:
        """One mistyped symbol of an issued code is caught, never a redemption."""
        symbols = data.draw(st.sampled_from(self.issued)).code.symbols
        wrong = data.draw(st.sampled_from([s for s in ALPHABET if s != symbols[position]]))
        typo = symbols[:position] + wrong + symbols[position + 1 :]
        try:
            redeem_code(self.desk, user, typo)
        except GiftNotFound:
            return
        raise AssertionError("a mistyped code was redeemed")

    @rule(minutes=st.integers(0, 120))
    def time_passes(self, minutes: int) -> None:
        self.clock.advance(timedelta(minutes=minutes))

    def _expected_balance(self, user: str) -> int:
        return sum(i.tokens for i in self.issued if i.redeemed_by == user)

    @invariant()
    def each_balance_is_the_sum_of_its_redemptions(self) -> None:
        for user in USERS:
            assert self.desk.store.balance(user) == self._expected_balance(user)

    @invariant()
    def each_code_credits_at_most_once(self) -> None:
        keys = [e.key for user in USERS for e in self.desk.store.ledger(user, 10_000)]
        assert len(keys) == len(set(keys))
        assert set(keys) == {
            redemption_key(i.code.digest) for i in self.issued if i.redeemed_by is not None
        }


def _machine_for(kind: str) -> type[RedemptionMachine]:
    machine = type(f"RedemptionMachine_{kind}", (RedemptionMachine,), {"store_kind": kind})
    examples = max(10, int(settings().max_examples * EXAMPLES[kind]))
    machine.TestCase.settings = settings(settings(), max_examples=examples)
    return machine


for _kind in sorted(CODE_STORES):
    globals()[f"TestRedemption_{_kind}"] = _machine_for(_kind).TestCase
