"""Every BalanceRepository adapter, built the same way for the shared contract and property tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from buytokens.adapters.memory import InMemoryBalanceRepository
from buytokens.adapters.sqlite import SqliteBalanceRepository
from buytokens.ports.balances import BalanceRepository
from buytokens.ports.clock import Clock

StoreFactory = Callable[[Path, Clock], BalanceRepository]


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


STORES = {
    "memory": memory_store,
    "sqlite": sqlite_store,
}
