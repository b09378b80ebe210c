"""Every RedemptionCodes adapter with the balance store it shares a database with."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import attrs

from buytokens.adapters.memory import InMemoryBalanceRepository
from buytokens.adapters.memory_codes import InMemoryRedemptionCodes
from buytokens.adapters.mongo.codes import MongoRedemptionCodes
from buytokens.adapters.mongo.store import MongoBalanceRepository
from buytokens.adapters.sqlite.codes import SqliteRedemptionCodes
from buytokens.adapters.sqlite.engine import SqliteDatabase
from buytokens.adapters.sqlite.store import SqliteBalanceRepository
from buytokens.ports.balances import BalanceRepository
from buytokens.ports.clock import Clock
from buytokens.ports.codes import RedemptionCodes
from tests.support.stores import mongo_database


@attrs.frozen
class CodeStores:
    """A code store and the balances its redemptions credit, in one database."""

    codes: RedemptionCodes
    balances: BalanceRepository


@contextmanager
def memory_codes(_directory: Path, clock: Clock) -> Iterator[CodeStores]:
    yield CodeStores(InMemoryRedemptionCodes(), InMemoryBalanceRepository(clock))


@contextmanager
def sqlite_codes(directory: Path, clock: Clock) -> Iterator[CodeStores]:
    database = SqliteDatabase(directory / "codes.sqlite3")
    try:
        yield CodeStores(SqliteRedemptionCodes(database), SqliteBalanceRepository(database, clock))
    finally:
        database.close()


@contextmanager
def mongo_codes(_directory: Path, clock: Clock) -> Iterator[CodeStores]:
    with mongo_database() as database:
        yield CodeStores(MongoRedemptionCodes(database), MongoBalanceRepository(database, clock))


CODE_STORES: dict[str, Callable[[Path, Clock], AbstractContextManager[CodeStores]]] = {
    "memory": memory_codes,
    "mongo": mongo_codes,
    "sqlite": sqlite_codes,
}
