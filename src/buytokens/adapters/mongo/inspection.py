"""LibreChat's MongoDB as ``buytokens doctor`` finds it, read without changing it."""

from __future__ import annotations

from pymongo.errors import OperationFailure, PyMongoError

from buytokens.adapters.mongo.connection import BALANCES, TRANSACTIONS, MongoDatabase
from buytokens.adapters.mongo.indexes import find_duplicate_balances, has_unique_user_index
from buytokens.ports.diagnostics import MongoState

_AUTHENTICATION_FAILED = 18
_ENTRY_KEY_INDEX = "buytokens_entry_key"  # created by the repository's first start


class MongoStoreInspector:
    """``StoreInspector`` for a MongoDB database (``connect_mongo`` gives one)."""

    def __init__(self, database: MongoDatabase) -> None:
        self._database = database

    def inspect(self) -> MongoState:
        """Collections, the one-balance-per-user index and duplicate balances; errors described."""
        name = self._database.name
        try:
            collections = frozenset(self._collection_names())
            balances = self._database.get_collection(BALANCES)
            transactions = self._database.get_collection(TRANSACTIONS)
            return MongoState(
                name,
                None,
                collections,
                unique_user_index=BALANCES in collections and has_unique_user_index(balances),
                buytokens_indexes=TRANSACTIONS in collections
                and _ENTRY_KEY_INDEX in transactions.index_information(),
                duplicates=find_duplicate_balances(balances) if BALANCES in collections else (),
            )
        except OperationFailure as exc:
            if exc.code == _AUTHENTICATION_FAILED:
                return MongoState(name, "MongoDB refused the user name or password in the URI")
            return MongoState(name, f"MongoDB refused a read: {_first_line(str(exc))}")
        except PyMongoError as exc:
            return MongoState(name, _first_line(str(exc)))

    def _collection_names(self) -> list[str]:
        # The adapter's database type exposes collections only; the client lists them.
        client = getattr(self._database, "client")  # noqa: B009 - part of pymongo's Database
        return list(client.get_database(self._database.name).list_collection_names())


def _first_line(message: str) -> str:
    # pymongo appends the whole topology description after the reason.
    return message.split(", Timeout:", 1)[0].split("\n", 1)[0][:300]
