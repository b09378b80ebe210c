"""Shared pieces of the MongoDB adapter's tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from buytokens.adapters.memory import FixedClock
from buytokens.adapters.mongo.connection import MongoDatabase
from buytokens.adapters.mongo.store import MongoBalanceRepository
from buytokens.domain.catalogue import DEFAULT_CATALOGUE
from buytokens.domain.crediting import Disposition
from buytokens.domain.events import PaymentEvent, PaymentSucceeded
from buytokens.domain.money import Money
from buytokens.services.crediting import CreditingDependencies, apply_payment_event
from tests.support.crashes import CrashAt

USER = "0123456789abcdef01234567"  # a LibreChat user id: stored as an ObjectId
OCCURRED = datetime(2026, 1, 1, tzinfo=UTC)


def succeeded(pi: str, user: str = USER) -> PaymentSucceeded:
    """A genuine success for package_100k."""
    return PaymentSucceeded(f"evt_{pi}", pi, Money(1_000, "cny"), user, "package_100k", OCCURRED)


def deliver(event: PaymentEvent, store: MongoBalanceRepository, clock: FixedClock) -> Disposition:
    """Apply one delivery through the use case and say what it came to."""
    return apply_payment_event(
        CreditingDependencies(store, DEFAULT_CATALOGUE, clock), event
    ).disposition


WRITES = frozenset(
    {
        "insert_one",
        "insert_many",
        "update_one",
        "update_many",
        "replace_one",
        "delete_one",
        "delete_many",
        "find_one_and_update",
        "find_one_and_replace",
        "find_one_and_delete",
        "bulk_write",
    }
)


Hook = Callable[[str, str, tuple[Any, ...], Callable[[], Any]], Any]


def crash_on_writes(crash: CrashAt) -> Hook:
    """A hook that passes every write through ``crash`` and lets reads run."""

    def hook(_collection: str, method: str, _args: tuple[Any, ...], call: Callable[[], Any]) -> Any:
        return crash(call) if method in WRITES else call()

    return hook


class InterceptingDatabase:
    """A database whose collection calls pass through ``hook(collection, method, args, call)``.

    A ``CrashAt`` as the hook counts the writes and crashes at its n-th.
    """

    def __init__(self, database: MongoDatabase, hook: Hook | CrashAt) -> None:
        self._database = database
        self._hook = crash_on_writes(hook) if isinstance(hook, CrashAt) else hook

    @property
    def name(self) -> str:
        return self._database.name

    def get_collection(self, name: str) -> InterceptingCollection:
        return InterceptingCollection(name, self._database.get_collection(name), self._hook)


class InterceptingCollection:
    """Forwards every method call through the hook."""

    def __init__(self, name: str, collection: Any, hook: Hook) -> None:
        self._name = name
        self._collection = collection
        self._hook = hook

    def __getattr__(self, method: str) -> Any:
        attribute = getattr(self._collection, method)
        if not callable(attribute):
            return attribute

        def intercepted(*args: Any, **kwargs: Any) -> Any:
            return self._hook(self._name, method, args, lambda: attribute(*args, **kwargs))

        return intercepted


def assert_settled(
    database: MongoDatabase, store: MongoBalanceRepository, user: str, expected: int
) -> None:
    """The balance is ``expected``, its ledger explains it, and nothing is left half done."""
    assert store.balance(user) == expected
    assert sum(entry.applied for entry in store.ledger(user)) == expected
    assert (
        database.get_collection("buytokens_purchases").count_documents(
            {"pending.0": {"$exists": True}}
        )
        == 0
    )
    assert (
        database.get_collection("buytokens_purchases").count_documents(
            {"pendingSince": {"$exists": True}}
        )
        == 0
    )
    assert (
        database.get_collection("transactions").count_documents({"buytokens.state": "pending"}) == 0
    )
    assert (
        database.get_collection("balances").count_documents(
            {"buytokens.inflight.0": {"$exists": True}}
        )
        == 0
    )
    assert database.get_collection("balances").count_documents({}) <= 1
