"""Every PromoCodes adapter, built alike for the shared contract tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import attrs

from buytokens.adapters.memory import InMemoryBalanceRepository
from buytokens.adapters.memory_promos import InMemoryPromoCodes
from buytokens.adapters.mongo.promos import MongoPromoCodes
from buytokens.adapters.mongo.store import MongoBalanceRepository
from buytokens.adapters.sqlite.engine import SqliteDatabase
from buytokens.adapters.sqlite.promos import SqlitePromoCodes
from buytokens.adapters.sqlite.store import SqliteBalanceRepository
from buytokens.ports.balances import BalanceRepository
from buytokens.ports.clock import Clock
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


@attrs.frozen
class PromoCheckoutStores:
    """Promo codes and the balances their purchases credit, in one database."""

    promos: PromoCodes
    balances: BalanceRepository


@contextmanager
def memory_checkout(_directory: Path, clock: Clock) -> Iterator[PromoCheckoutStores]:
    yield PromoCheckoutStores(InMemoryPromoCodes(), InMemoryBalanceRepository(clock))


@contextmanager
def sqlite_checkout(directory: Path, clock: Clock) -> Iterator[PromoCheckoutStores]:
    database = SqliteDatabase(directory / "checkout.sqlite3")
    try:
        yield PromoCheckoutStores(
            SqlitePromoCodes(database), SqliteBalanceRepository(database, clock)
        )
    finally:
        database.close()


@contextmanager
def mongo_checkout(_directory: Path, clock: Clock) -> Iterator[PromoCheckoutStores]:
    with mongo_database() as database:
        yield PromoCheckoutStores(
            MongoPromoCodes(database), MongoBalanceRepository(database, clock)
        )


PROMO_CHECKOUT_STORES: dict[
    str, Callable[[Path, Clock], AbstractContextManager[PromoCheckoutStores]]
] = {
    "memory": memory_checkout,
    "mongo": mongo_checkout,
    "sqlite": sqlite_checkout,
}
