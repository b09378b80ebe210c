"""Every PromoCodes adapter, built alike for the shared contract tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from buytokens.adapters.memory_promos import InMemoryPromoCodes
from buytokens.adapters.mongo.promos import MongoPromoCodes
from buytokens.adapters.sqlite.engine import SqliteDatabase
from buytokens.adapters.sqlite.promos import SqlitePromoCodes
from buytokens.ports.promos import PromoCodes
from tests.support.stores import mongo_database


@contextmanager
def memory_promos(_directory: Path) -> Iterator[PromoCodes]:
    yield InMemoryPromoCodes()


@contextmanager
def sqlite_promos(directory: Path) -> Iterator[PromoCodes]:
    database = SqliteDatabase(directory / "promos.sqlite3")
    try:
        yield SqlitePromoCodes(database)
    finally:
        database.close()


@contextmanager
def mongo_promos(_directory: Path) -> Iterator[PromoCodes]:
    with mongo_database() as database:
        yield MongoPromoCodes(database)


PROMO_STORES: dict[str, Callable[[Path], AbstractContextManager[PromoCodes]]] = {
    "memory": memory_promos,
    "mongo": mongo_promos,
    "sqlite": sqlite_promos,
}
