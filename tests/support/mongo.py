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
from buytokens.services.crediting import apply_payment_event

USER = "0123456789abcdef01234567"  # a LibreChat user id: stored as an ObjectId
OCCURRED = datetime(2026, 1, 1, tzinfo=UTC)


def succeeded(pi: str, user: str = USER) -> PaymentSucceeded:
    """A genuine success for package_100k."""
    return PaymentSucceeded(f"evt_{pi}", pi, Money(1_000, "cny"), user, "package_100k", OCCURRED)


def deliver(event: PaymentEvent, store: MongoBalanceRepository, clock: FixedClock) -> Disposition:
    """Apply one delivery through the use case and say what it came to."""
    return apply_payment_event(event, store, DEFAULT_CATALOGUE, clock).disposition


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


class SimulatedCrash(Exception):
    """The process died at this point."""


Hook = Callable[[str, str, tuple[Any, ...], Callable[[], Any]], Any]


class InterceptingDatabase:
    """A database whose collection calls pass through ``hook(collection, method, args, call)``."""

    def __init__(self, database: MongoDatabase, hook: Hook) -> None:
        self._database = database
        self._hook = hook

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


class CrashAt:
    """A hook that crashes on the ``n``-th write, before or after it takes effect.

    ``error`` makes it fail that one write with another exception instead, e.g. a
    driver error for a reply lost after the write took effect.
    """

    def __init__(
        self, n: int | None, *, after: bool, error: Callable[[], Exception] | None = None
    ) -> None:
        self.n = n
        self.after = after
        self.error = error
        self.writes = 0

    def __call__(
        self, _collection: str, method: str, _args: tuple[Any, ...], call: Callable[[], Any]
    ) -> Any:
        if method not in WRITES:
            return call()
        self.writes += 1
        if self.writes != self.n:
            return call()
        if self.after:
            call()
        if self.error is not None:
            raise self.error()
        raise SimulatedCrash(f"crash {'after' if self.after else 'before'} write {self.n}")


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
