"""Connecting to MongoDB, the database type the adapter works on, and the driver's errors.

``connect_mongo`` gives a pymongo database whose writes wait for a journaled
majority, or an in-process mongomock one for demos and tests; ``translated_errors``
turns whatever the driver raises into the store errors, so nothing from pymongo
crosses a port.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from bson.errors import BSONError
from pymongo import MongoClient
from pymongo.errors import (
    ConfigurationError as MongoConfigurationError,
)
from pymongo.errors import (
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    PyMongoError,
    WriteConcernError,
)

from buytokens.domain.errors import (
    BuyTokensError,
    ConfigurationError,
    StoreCorrupted,
    StoreUnavailable,
)

Document = dict[str, Any]

PURCHASES = "buytokens_purchases"
BALANCES = "balances"
TRANSACTIONS = "transactions"
WEBHOOK_EVENTS = "buytokens_webhook_events"
DEFAULT_DATABASE = "LibreChat"  # LibreChat's default MONGO_URI names this database


class MongoDatabase(Protocol):
    """The part of a pymongo ``Database`` this adapter uses; ``connect_mongo`` returns one."""

    @property
    def name(self) -> str:
        """The database's name."""
        ...

    def get_collection(self, name: str) -> Any:
        """The named collection (a pymongo ``Collection`` or a stand-in with its methods)."""
        ...


def connect_mongo(
    uri: str,
    *,
    database: str | None = None,
    timeout_ms: int = 10_000,
    server_selection_timeout_ms: int = 5_000,
) -> MongoDatabase:
    """The database ``uri`` names (``LibreChat`` when it names none), ready for this adapter.

    ``mongodb://`` and ``mongodb+srv://`` connect with pymongo: writes wait for a
    journaled majority acknowledgement (a webhook answers 2xx only after a
    durable write), retryable writes and reads, and bounded timeouts so a lost
    server surfaces as ``StoreUnavailable`` rather than a hang. ``mongomock://``
    gives a fresh in-memory server for demos and tests, wrapped so each call
    runs under one lock, as a single mongod runs each operation atomically.
    ``database`` overrides the name in the URI. No I/O happens here.
    """
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme == "mongomock":
        from buytokens.adapters.mongo.mongomock import connect_mongomock  # noqa: PLC0415

        return connect_mongomock(uri, database)
    if scheme not in ("mongodb", "mongodb+srv"):
        raise ConfigurationError(
            "MONGODB_URI must start with mongodb://, mongodb+srv:// or mongomock://"
        )
    try:
        client: MongoClient[Document] = MongoClient(
            uri,
            w="majority",
            journal=True,
            retryWrites=True,
            retryReads=True,
            timeoutMS=timeout_ms,
            serverSelectionTimeoutMS=server_selection_timeout_ms,
            connectTimeoutMS=server_selection_timeout_ms,
            tz_aware=True,
            appname="buytokens",
            connect=False,
        )
        if database is not None:
            return client.get_database(database)
        return client.get_default_database(default=DEFAULT_DATABASE)
    except MongoConfigurationError as exc:
        raise ConfigurationError(f"MONGODB_URI is not usable: {exc}") from exc


@contextmanager
def translated_errors() -> Iterator[None]:
    """Translate the driver's errors; nothing from pymongo crosses the port."""
    try:
        yield
    except BuyTokensError:
        raise
    except DuplicateKeyError as exc:
        raise StoreCorrupted(f"MongoDB refused a write as a duplicate: {exc}") from exc
    except WriteConcernError as exc:
        raise StoreUnavailable(f"MongoDB did not confirm a durable write: {exc}") from exc
    except (ConnectionFailure, ExecutionTimeout) as exc:
        raise StoreUnavailable(f"MongoDB is unreachable or timed out: {exc}") from exc
    except PyMongoError as exc:
        raise StoreUnavailable(f"MongoDB operation failed: {exc}") from exc
    except BSONError as exc:
        raise StoreCorrupted(f"MongoDB returned a document that cannot be read: {exc}") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreCorrupted(f"a stored document is not in the expected shape: {exc!r}") from exc
