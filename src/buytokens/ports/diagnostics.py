"""What ``buytokens doctor`` asks of the store and of the payment provider: facts, never fixes.

Every inspection here reads; none creates a file, a collection or an index.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol

import attrs


class PaymentServer(enum.Enum):
    """What answers at the payment provider's API address."""

    STRIPE = "stripe"  # Stripe's own API host
    LOCALSTRIPE = "localstripe"  # the development fake: 2017 API, no retries, no refunds
    OTHER = "other"  # another host that answers (a proxy, a mock): treated as Stripe
    UNREACHABLE = "unreachable"  # nothing answers at the configured address


@attrs.frozen
class WebhookEndpoint:
    """A webhook endpoint registered with the provider."""

    id: str
    url: str
    enabled: bool
    events: frozenset[str]  # "*" stands for every event type


class PaymentAccount(Protocol):
    """The provider account as seen by a set-up check.

    Errors: ``GatewayRejected`` (the key is refused or lacks a permission),
    ``GatewayUnavailable`` (the provider could not be reached).
    """

    def server(self) -> PaymentServer:
        """What answers at the configured API address; asks nothing of Stripe's own host."""
        ...

    def verify_key(self) -> None:
        """Make one cheap authenticated read with the secret key; return if it is accepted."""
        ...

    def webhook_endpoints(self) -> Sequence[WebhookEndpoint]:
        """Every webhook endpoint of the account."""
        ...


@attrs.frozen
class DuplicateBalance:
    """A user with more than one balance document, which LibreChat would read arbitrarily."""

    user_id: str
    document_ids: tuple[str, ...]
    token_credits: tuple[float, ...]

    def describe(self) -> str:
        """One line naming the user, the documents and how to merge them."""
        documents = ", ".join(
            f"{doc_id} ({credits:g})"
            for doc_id, credits in zip(self.document_ids, self.token_credits, strict=True)
        )
        return (
            f"user {self.user_id} has {len(self.document_ids)} balance documents [{documents}]: "
            "keep one, set its tokenCredits to the intended total "
            f"(together {sum(self.token_credits):g}), "
            "delete the others, then restart buytokens to create the unique index"
        )


@attrs.frozen
class SqliteState:
    """The embedded store's file as found."""

    path: str
    exists: bool
    directory_exists: bool
    writable: bool  # the file (and its directory, for the WAL files) can be written
    schema_version: int | None  # None when the file is missing or unreadable
    current_version: int  # the schema this buytokens writes
    error: str | None = None  # why an existing file could not be read


@attrs.frozen
class MongoState:
    """LibreChat's MongoDB database as found."""

    database: str
    error: str | None  # why it could not be read; then nothing else is known
    collections: frozenset[str] = frozenset()
    unique_user_index: bool = False  # a unique index on balances.user exists
    buytokens_indexes: bool = False  # buytokens has started on this database before
    duplicates: tuple[DuplicateBalance, ...] = ()


class StoreInspector(Protocol):
    """Reads the configured store's state without changing it."""

    def inspect(self) -> SqliteState | MongoState:
        """The store's state; an unreachable store is described, never raised."""
        ...
