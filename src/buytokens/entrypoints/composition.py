"""Building the product's parts from settings: the one place that names concrete adapters.

The web app's container and the library facade (``buytokens.api``) both build
their stores, gateway and catalogue here, so a deployment opened either way is
wired the same.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import attrs

from buytokens.adapters.catalogue_file import load_catalogue
from buytokens.adapters.memory import (
    InMemoryBalanceRepository,
    InMemoryCheckoutKeys,
)
from buytokens.adapters.single_flight import SingleFlightPaymentGateway
from buytokens.adapters.sqlite.checkout_keys import SqliteCheckoutKeys
from buytokens.adapters.sqlite.engine import SqliteDatabase
from buytokens.adapters.sqlite.inspection import SqliteStoreInspector
from buytokens.adapters.sqlite.journal import SqliteEventJournal
from buytokens.adapters.sqlite.store import SqliteBalanceRepository
from buytokens.adapters.stripe_account import StripeAccount
from buytokens.adapters.stripe_gateway import (
    DEFAULT_BUDGET,
    DEFAULT_NETWORK_RETRIES,
    StripePaymentGateway,
)
from buytokens.adapters.unconfigured_gateway import UnconfiguredPaymentGateway
from buytokens.domain.catalogue import DEFAULT_CATALOGUE, Catalogue
from buytokens.domain.errors import ConfigurationError
from buytokens.entrypoints.settings import Settings
from buytokens.ports.balances import BalanceRepository
from buytokens.ports.checkout import CheckoutKeys, EventJournal
from buytokens.ports.clock import Clock, IdSource
from buytokens.ports.diagnostics import PaymentAccount, StoreInspector
from buytokens.ports.payments import PaymentGateway
from buytokens.services.checkout import Shop

MEMORY_URI = "memory://"
_MONGO_SCHEMES = ("mongodb://", "mongodb+srv://", "mongomock://")
_SQLITE_SCHEME = "sqlite://"


def _nothing_to_close() -> None:
    return None


@attrs.frozen
class Backend:
    """The stores of one deployment, all in the same database."""

    store: BalanceRepository
    keys: CheckoutKeys
    journal: EventJournal
    rate_limit_storage: str  # a `limits` storage URI shared by every replica
    close: Callable[[], None] = _nothing_to_close  # releases connections and files
    durable: bool = True  # False: everything stored is lost when the process ends


def build_catalogue(settings: Settings) -> Catalogue:
    """The catalogue file named by the settings, or the default packages."""
    return open_catalogue(settings.catalogue_path)


def open_catalogue(source: Catalogue | str | os.PathLike[str] | None) -> Catalogue:
    """A catalogue as given, read from a TOML or JSON file, or the default packages (None)."""
    if source is None:
        return DEFAULT_CATALOGUE
    if isinstance(source, Catalogue):
        return source
    return load_catalogue(Path(source))


def build_backend(settings: Settings, clock: Clock) -> Backend:
    """MongoDB when MONGODB_URI is set (mongomock:// for demos), else the SQLite file."""
    if settings.mongodb_uri is not None:
        return open_mongo_backend(settings.mongodb_uri, clock)
    return open_sqlite_backend(settings.sqlite_path, clock)


def open_backend(uri: str | os.PathLike[str], clock: Clock) -> Backend:
    """The stores a URI names.

    ``memory://`` keeps everything in this process (tests, demos); ``mongodb://``,
    ``mongodb+srv://`` and ``mongomock://`` open MongoDB in LibreChat's shape;
    ``sqlite://PATH`` or a bare file path opens (and creates) an SQLite file.
    """
    text = os.fspath(uri)
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError("the store must be memory://, a SQLite path or a MongoDB URI")
    if text == MEMORY_URI:
        return open_memory_backend(clock)
    if text.lower().startswith(_MONGO_SCHEMES):
        return open_mongo_backend(text, clock)
    if text.lower().startswith(_SQLITE_SCHEME):
        text = text[len(_SQLITE_SCHEME) :]
        if not text:
            raise ConfigurationError("sqlite:// needs a file path, e.g. sqlite:///var/lib/bt.db")
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise ConfigurationError(
            f"unsupported store scheme {scheme!r}: use memory://, sqlite://PATH, "
            "mongodb://, mongodb+srv:// or mongomock://"
        )
    return open_sqlite_backend(text, clock)


def open_memory_backend(clock: Clock) -> Backend:
    """Stores that live and die with this process."""
    store = InMemoryBalanceRepository(clock)
    return Backend(store, InMemoryCheckoutKeys(), store.journal, MEMORY_URI, durable=False)


def open_sqlite_backend(path: str | os.PathLike[str], clock: Clock) -> Backend:
    """One SQLite file (created with its schema when missing)."""
    sqlite = SqliteDatabase(os.fspath(path))
    return Backend(
        SqliteBalanceRepository(sqlite, clock),
        SqliteCheckoutKeys(sqlite),
        SqliteEventJournal(sqlite),
        MEMORY_URI,
        sqlite.close,
    )


def open_mongo_backend(uri: str, clock: Clock) -> Backend:
    """LibreChat's MongoDB, after finishing whatever a crash left half-done."""
    from buytokens.adapters.mongo.checkout_keys import MongoCheckoutKeys  # noqa: PLC0415
    from buytokens.adapters.mongo.connection import connect_mongo  # noqa: PLC0415
    from buytokens.adapters.mongo.journal import MongoEventJournal  # noqa: PLC0415
    from buytokens.adapters.mongo.store import MongoBalanceRepository  # noqa: PLC0415

    database = connect_mongo(uri)
    store = MongoBalanceRepository(database, clock)
    store.recover()
    real = uri.lower().startswith(("mongodb://", "mongodb+srv://"))
    # A pymongo Database has its client; mongomock's in-process server holds nothing.
    client = getattr(database, "client", None) if real else None
    return Backend(
        store,
        MongoCheckoutKeys(database),
        MongoEventJournal(database),
        uri if real else MEMORY_URI,
        _nothing_to_close if client is None else client.close,
        durable=real,
    )


def build_gateway(settings: Settings, clock: Clock) -> PaymentGateway:
    """Stripe when a secret key is configured; otherwise webhooks verify and payments refuse."""
    return open_gateway(
        settings.stripe_secret_key,
        settings.stripe_webhook_secret,
        api_base=settings.stripe_api_base,
        api_version=settings.stripe_api_version,
        budget=settings.stripe_budget,
        max_network_retries=settings.stripe_retries,
        clock=clock,
    )


def open_gateway(
    secret_key: str | None,
    webhook_secret: str | None,
    *,
    api_base: str | None = None,
    api_version: str | None = None,
    budget: float = DEFAULT_BUDGET,
    max_network_retries: int = DEFAULT_NETWORK_RETRIES,
    clock: Clock | None = None,
) -> PaymentGateway:
    """Stripe with these credentials; without a secret key, webhooks verify and payments refuse.

    ``budget`` bounds each Stripe call in seconds, its ``max_network_retries`` included.
    """
    if secret_key is None:
        return UnconfiguredPaymentGateway(webhook_secret)
    return StripePaymentGateway(
        secret_key,
        webhook_secret,
        api_base=api_base,
        api_version=api_version,
        budget=budget,
        max_network_retries=max_network_retries,
        clock=clock,
    )


def build_shop(
    catalogue: Catalogue,
    backend: Backend,
    gateway: PaymentGateway,
    clock: Clock,
    ids: IdSource,
) -> Shop:
    """The bundle the buying use cases run on; concurrent checks of one intent share a call."""
    return Shop(
        catalogue,
        backend.store,
        SingleFlightPaymentGateway(gateway),
        backend.keys,
        backend.journal,
        clock,
        ids,
    )


DOCTOR_MONGO_TIMEOUT_MS = 3_000
DOCTOR_STRIPE_TIMEOUT = 10.0


def build_store_inspector(settings: Settings) -> StoreInspector:
    """A read-only look at the store ``build_backend`` would open; it connects lazily."""
    uri = settings.mongodb_uri
    if uri is not None:
        from buytokens.adapters.mongo.connection import connect_mongo  # noqa: PLC0415
        from buytokens.adapters.mongo.inspection import MongoStoreInspector  # noqa: PLC0415

        return MongoStoreInspector(
            connect_mongo(
                uri,
                timeout_ms=DOCTOR_MONGO_TIMEOUT_MS,
                server_selection_timeout_ms=DOCTOR_MONGO_TIMEOUT_MS,
            )
        )
    return SqliteStoreInspector(settings.sqlite_path)


def build_payment_account(settings: Settings) -> PaymentAccount | None:
    """The Stripe account the secret key opens, for set-up checks; None without a key."""
    if settings.stripe_secret_key is None:
        return None
    return StripeAccount(
        settings.stripe_secret_key,
        api_base=settings.stripe_api_base,
        api_version=settings.stripe_api_version,
        timeout=DOCTOR_STRIPE_TIMEOUT,
    )
