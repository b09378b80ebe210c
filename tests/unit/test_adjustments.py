"""An operator's balance adjustments: the bounds on amounts, balances, ids and reasons."""

from __future__ import annotations

import pytest

from buytokens.adapters.memory import FixedClock, InMemoryBalanceRepository, SequentialIdSource
from buytokens.domain.catalogue import TokenPackage
from buytokens.domain.errors import InvalidAdjustment, InvalidCatalogue, UserError
from buytokens.domain.ledger import (
    MAX_BALANCE,
    MAX_REASON_LENGTH,
    MAX_TOKENS,
    MAX_USER_ID_LENGTH,
    EntryKind,
    admin_adjustment,
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
        (10**40, "got a 41-digit number"),
        (-(10**5_000), "got a 5,001-digit number"),
    ],
    ids=["13-digits", "30-digits", "41-digits", "5001-digits"],
)
def test_an_absurd_amount_is_refused_with_its_size(tokens: int, shown: str) -> None:
    """The refusal names the amount, or only its length when it is too long to print: an
    integer longer than Python will print is refused like any other, not with a crash."""
    with pytest.raises(InvalidAdjustment) as raised:
        admin_adjustment("alice", tokens, "x", 0, key="k")
    assert raised.value.message == (
        f"tokens must be between -{MAX_TOKENS:,} and {MAX_TOKENS:,}, {shown}"
    )
