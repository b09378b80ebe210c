"""An operator's balance adjustments: the bounds on amounts, balances, ids and reasons."""

from __future__ import annotations

import pytest

from buytokens.adapters.memory import FixedClock, InMemoryBalanceRepository, SequentialIdSource
from buytokens.domain.catalogue import TokenPackage
from buytokens.domain.errors import (
    ChangeNotApplied,
    InvalidAdjustment,
    InvalidCatalogue,
    InvalidUserId,
    OutcomeUnknown,
    StoreUnavailable,
    UserError,
)
from buytokens.domain.ledger import (
    MAX_BALANCE,
    MAX_KEY_LENGTH,
    MAX_REASON_LENGTH,
    MAX_TOKENS,
    MAX_USER_ID_LENGTH,
    EntryKind,
    LedgerChange,
    LedgerEntry,
    admin_adjustment,
    check_reason,
    check_user_id,
)
from buytokens.domain.money import MAX_AMOUNT, Money
from buytokens.services.admin import GrantDependencies, grant_tokens


@pytest.mark.parametrize("tokens", [MAX_TOKENS, -MAX_TOKENS, 1, -1])
def test_an_adjustment_up_to_the_bound_is_allowed(tokens: int) -> None:
    """A trillion tokens either way is the largest single change."""
    change = admin_adjustment("alice", tokens, " welcome ", 0, key="k1")
    assert (change.user_id, change.tokens, change.reason) == ("alice", tokens, "welcome")
    assert (change.kind, change.key) == (EntryKind.ADMIN, "admin:k1")


@pytest.mark.parametrize("tokens", [MAX_TOKENS + 1, -MAX_TOKENS - 1, 2**63, -(2**63) - 1, 0])
def test_an_absurd_or_zero_adjustment_is_a_user_error(tokens: int) -> None:
    """Past the bound, or nothing at all, is refused before any store sees it."""
    with pytest.raises(InvalidAdjustment) as raised:
        admin_adjustment("alice", tokens, "x", 0, key="k")
    assert isinstance(raised.value, UserError)


def test_an_adjustment_may_not_take_a_balance_past_what_librechat_holds_exactly() -> None:
    """2**53 - 1 is the largest balance a grant may reach; a deduction is always allowed."""
    admin_adjustment("alice", 5, "x", MAX_BALANCE - 5, key="k")
    with pytest.raises(InvalidAdjustment, match="largest balance"):
        admin_adjustment("alice", 6, "x", MAX_BALANCE - 5, key="k")
    admin_adjustment("alice", -MAX_TOKENS, "x", MAX_BALANCE, key="k")


@pytest.mark.parametrize(
    ("user_id", "reason", "key", "needle"),
    [
        ("u" * (MAX_USER_ID_LENGTH + 1), "x", "k", "user id must be at most 255"),
        ("a\x00b", "x", "k", "user id must be at most 255 printable"),
        ("  ", "x", "k", "user id must not be empty"),
        ("alice", "r" * (MAX_REASON_LENGTH + 1), "k", "at most 500 printable"),
        ("alice", "first\nsecond", "k", "one line"),
        ("alice", " ", "k", "a reason is required"),
        ("alice", "x", "k" * 256, "key must be 1-255"),
    ],
)
def test_unusable_ids_reasons_and_keys_are_refused(
    user_id: str, reason: str, key: str, needle: str
) -> None:
    """Over-long or unprintable text never reaches the ledger."""
    with pytest.raises(InvalidAdjustment, match=needle):
        admin_adjustment(user_id, 5, reason, 0, key=key)


def test_a_refused_grant_leaves_no_trace() -> None:
    """grant_tokens checks the bounds against the stored balance and records nothing."""
    store = InMemoryBalanceRepository(FixedClock())
    ids = SequentialIdSource()
    grant_tokens(GrantDependencies(store, ids), "alice", MAX_TOKENS, "bulk")
    with pytest.raises(InvalidAdjustment):
        grant_tokens(GrantDependencies(store, ids), "alice", MAX_TOKENS + 1, "more")
    with pytest.raises(InvalidAdjustment):
        grant_tokens(GrantDependencies(store, ids), "b" * 1_000, 5, "x")
    assert store.balance("alice") == MAX_TOKENS
    assert len(store.ledger("alice", 10)) == 1


def test_a_catalogue_package_is_bounded_like_a_grant() -> None:
    """More tokens than one change may move, or a price no payment reaches, is refused."""
    with pytest.raises(InvalidCatalogue, match="tokens: must be at most"):
        TokenPackage("big", "Big", MAX_TOKENS + 1, Money(100, "usd"))
    with pytest.raises(InvalidCatalogue, match="amount: must be at most"):
        TokenPackage("dear", "Dear", 5, Money(MAX_AMOUNT + 1, "usd"))
    with pytest.raises(InvalidCatalogue, match="original_amount: must be at most"):
        TokenPackage("was", "Was", 5, Money(100, "usd"), Money(MAX_AMOUNT + 1, "usd"))
    TokenPackage("edge", "Edge", MAX_TOKENS, Money(MAX_AMOUNT, "usd"))


@pytest.mark.parametrize(
    ("tokens", "shown"),
    [
        (MAX_TOKENS + 1, "got 1,000,000,000,001"),
        (-(10**29), "got -100,000,000,000,000,000,000,000,000,000"),
        (10**30, "got a 31-digit number"),
        (10**40, "got a 41-digit number"),
        (2**200, "got a 61-digit number"),
        (-(10**5_000), "got a 5,001-digit number"),
    ],
    ids=["13-digits", "30-digits", "31-digits", "41-digits", "61-digits", "5001-digits"],
)
def test_an_absurd_amount_is_refused_with_its_size(tokens: int, shown: str) -> None:
    """The refusal names the amount, or only its length when it is too long to print: an
    integer longer than Python will print is refused like any other, not with a crash."""
    with pytest.raises(InvalidAdjustment) as raised:
        admin_adjustment("alice", tokens, "x", 0, key="k")
    assert raised.value.message == (
        f"tokens must be between -{MAX_TOKENS:,} and {MAX_TOKENS:,}, {shown}"
    )


def test_ids_reasons_and_keys_of_the_largest_length_are_accepted() -> None:
    """The bounds are inclusive: 255 characters of id and key, 500 of reason."""
    change = admin_adjustment(
        "u" * MAX_USER_ID_LENGTH, 5, "r" * MAX_REASON_LENGTH, 0, key="k" * MAX_KEY_LENGTH
    )
    assert (len(change.user_id), len(change.reason), change.key) == (
        MAX_USER_ID_LENGTH,
        MAX_REASON_LENGTH,
        "admin:" + "k" * MAX_KEY_LENGTH,
    )
    with pytest.raises(InvalidAdjustment, match="key must be 1-255"):
        admin_adjustment("alice", 5, "x", 0, key="")


@pytest.mark.parametrize(
    ("user_id", "shown"),
    [
        ("a\tb", "got 3 starting 'a\\tb'"),
        ("a\x00" + "x" * 38, f"got 40 starting 'a\\x00{'x' * 38}'"),
        ("0123456789" * 30, f"got 300 starting '{'0123456789' * 4}...'"),
    ],
    ids=["unprintable", "forty-unprintable", "too-long"],
)
def test_a_refused_user_id_is_shown_escaped_and_cut_short(user_id: str, shown: str) -> None:
    """The operator sees what was wrong with the id: its length and (up to 40 characters)
    its start, escaped."""
    with pytest.raises(InvalidAdjustment) as raised:
        admin_adjustment(user_id, 5, "x", 0, key="k")
    assert raised.value.message == (
        f"user id must be at most {MAX_USER_ID_LENGTH} printable characters, {shown}"
    )


class _FailingStore(InMemoryBalanceRepository):
    """The in-memory store, whose adjustments fail with ``error`` while it is set."""

    def __init__(self, error: Exception | None = None) -> None:
        super().__init__(FixedClock())
        self.error = error

    def record_adjustment(self, change: LedgerChange) -> LedgerEntry:
        if self.error is not None:
            raise self.error
        return super().record_adjustment(change)


def test_a_grant_the_store_certainly_did_not_apply_says_asking_again_is_safe() -> None:
    """The operator is told nothing was granted, to whom, why, and that repeating is safe."""
    store = _FailingStore(ChangeNotApplied("the write was refused"))
    with pytest.raises(ChangeNotApplied) as raised:
        grant_tokens(GrantDependencies(store, SequentialIdSource()), " alice ", 5, "welcome")
    assert raised.value.message == (
        "nothing was granted to alice: the write was refused; asking again is safe"
    )
    assert store.balance("alice") == 0


@pytest.mark.parametrize(("key", "retry_key"), [(None, "g-1"), ("mine", "mine")])
def test_a_grant_of_unknown_outcome_names_the_key_that_finishes_it(
    key: str | None, retry_key: str
) -> None:
    """Told the outcome is open, the operator learns the key to repeat it with (theirs, or
    the one made up for it), that repeating without it is wrong, and where to look."""
    store = _FailingStore(StoreUnavailable("no reply from the server"))
    ids = SequentialIdSource("g")
    with pytest.raises(OutcomeUnknown) as raised:
        grant_tokens(GrantDependencies(store, ids), "alice", -1_500, "correction", key=key)
    assert raised.value.retry_key == retry_key
    assert raised.value.message == (
        "the grant of -1,500 tokens to alice is not confirmed (no reply from the server); "
        f"it takes effect at most once: repeat it with --key {retry_key} to finish it, never "
        "without; unless repeated it is cancelled within minutes if it has not reached the "
        "balance (`buytokens history alice` shows it)"
    )
    store.error = None
    store.record_adjustment(admin_adjustment("alice", 2_000, "start", 0, key="start"))
    finished = grant_tokens(GrantDependencies(store, ids), "alice", -1_500, "x", key=retry_key)
    assert (finished.key, finished.applied, store.balance("alice")) == (
        f"admin:{retry_key}",
        -1_500,
        500,
    )


def test_a_grant_is_bounded_by_the_balance_it_would_add_to() -> None:
    """grant_tokens reads the user's stored balance: five tokens short of the largest
    balance, five more are granted and a sixth is refused."""
    store = InMemoryBalanceRepository(FixedClock())
    full, rest = divmod(MAX_BALANCE - 5, MAX_TOKENS)
    for n in range(full):
        store.record_adjustment(admin_adjustment("alice", MAX_TOKENS, "bulk", 0, key=f"{n}"))
    store.record_adjustment(admin_adjustment("alice", rest, "bulk", 0, key="rest"))
    ids = SequentialIdSource()
    with pytest.raises(InvalidAdjustment, match="would pass the largest balance"):
        grant_tokens(GrantDependencies(store, ids), "alice", 6, "more")
    grant_tokens(GrantDependencies(store, ids), "alice", 5, "more")
    assert store.balance("alice") == MAX_BALANCE


@pytest.mark.parametrize(("value", "kind"), [(42, "int"), (None, "NoneType"), (b"ab", "bytes")])
def test_a_user_id_or_reason_that_is_not_text_is_refused_naming_its_type(
    value: object, kind: str
) -> None:
    """A caller of the library passing the wrong type learns which type it passed."""
    with pytest.raises(InvalidUserId) as user:
        check_user_id(value)  # type: ignore[arg-type]
    assert user.value.message == f"user id must be a string, got {kind}"
    with pytest.raises(InvalidAdjustment) as reason:
        check_reason(value)  # type: ignore[arg-type]
    assert reason.value.message == f"the reason must be text, got {kind}"
