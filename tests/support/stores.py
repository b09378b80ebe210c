"""Every BalanceRepository adapter, built alike for the shared contract and property tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from buytokens.adapters.memory import InMemoryBalanceRepository
from buytokens.adapters.mongo.connection import MongoDatabase, connect_mongo
from buytokens.adapters.mongo.store import MongoBalanceRepository
from buytokens.adapters.sqlite.store import SqliteBalanceRepository
from buytokens.ports.balances import BalanceRepository
from buytokens.ports.clock import Clock


@contextmanager
def memory_store(_directory: Path, clock: Clock) -> Iterator[BalanceRepository]:
    yield InMemoryBalanceRepository(clock)


@contextmanager
def sqlite_store(directory: Path, clock: Clock) -> Iterator[BalanceRepository]:
    store = SqliteBalanceRepository(directory / "store.sqlite3", clock)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def mongo_database() -> Iterator[MongoDatabase]:
    """A fresh database: mongomock, or a throwaway one on the server ``MONGODB_URI`` names."""
    uri = os.environ.get("MONGODB_URI", "")
    if not uri.startswith(("mongodb://", "mongodb+srv://")):
        yield connect_mongo("mongomock://localhost/buytokens_test")
        return
    database = connect_mongo(uri, database=f"buytokens_test_{uuid.uuid4().hex[:16]}")
    client = database.client  # a pymongo Database here
    try:
        yield database
    finally:
        client.drop_database(database.name)
        client.close()


@contextmanager
def mongo_store(_directory: Path, clock: Clock) -> Iterator[BalanceRepository]:
    with mongo_database() as database:
        yield MongoBalanceRepository(database, clock)


STORES = {
    "memory": memory_store,
    "mongo": mongo_store,
    "sqlite": sqlite_store,
}
