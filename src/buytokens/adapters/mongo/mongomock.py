"""An in-process MongoDB for ``buytokens demo`` and tests: mongomock behind one lock.

mongomock comes with the demo extra and is imported only when a
``mongomock://`` URI is opened, never on the production import path.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

from buytokens.adapters.mongo.connection import DEFAULT_DATABASE, MongoDatabase
from buytokens.domain.errors import ConfigurationError


def connect_mongomock(uri: str, database: str | None = None) -> MongoDatabase:
    """A fresh in-memory server's database named by ``database`` or the URI's path.

    Each call runs under one lock, as a single mongod runs each operation atomically.
    """
    try:
        import mongomock  # noqa: PLC0415 -- a test and demo dependency, loaded only when asked for
    except ImportError:
        raise ConfigurationError(
            "MONGODB_URI=mongomock:// needs mongomock, which comes with the demo extra: "
            "pip install 'buytokens[demo]'"
        ) from None

    name = database or urlsplit(uri).path.lstrip("/").split("/")[0] or DEFAULT_DATABASE
    fake: Any = mongomock.MongoClient(tz_aware=True)
    return _LockedDatabase(fake.get_database(name), threading.RLock())


class _LockedDatabase:
    """A mongomock database whose collection calls each run under one shared lock."""

    def __init__(self, database: Any, lock: threading.RLock) -> None:
        self._database = database
        self._lock = lock

    @property
    def name(self) -> str:
        return str(self._database.name)

    @property
    def client(self) -> Any:
        return self._database.client

    def get_collection(self, name: str) -> _LockedCollection:
        return _LockedCollection(self._database.get_collection(name), self._lock)

    def __getitem__(self, name: str) -> _LockedCollection:
        return self.get_collection(name)


class _LockedCollection:
    """Serialises every call; cursors are read to the end inside the lock."""

    _CURSORS = frozenset({"find", "aggregate", "list_indexes"})

    def __init__(self, collection: Any, lock: threading.RLock) -> None:
        self._collection = collection
        self._lock = lock

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._collection, name)
        if not callable(attribute):
            return attribute

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                result = attribute(*args, **kwargs)
                return list(result) if name in self._CURSORS else result

        return locked
