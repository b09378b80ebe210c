"""The composition root: the only place that names concrete adapters."""

from __future__ import annotations

import attrs
from dependency_injector import containers, providers

from buytokens.adapters.catalogue_file import load_catalogue
from buytokens.adapters.system import SystemClock, UuidIdSource
from buytokens.adapters.sqlite import (
    SqliteBalanceRepository,
    SqliteCheckoutKeys,
    SqliteDatabase,
    SqliteEventJournal,
)
from buytokens.adapters.sqlite_inspection import SqliteStoreInspector
from buytokens.adapters.stripe_account import StripeAccount
from buytokens.adapters.stripe_gateway import StripePaymentGateway
from buytokens.adapters.unconfigured_gateway import UnconfiguredPaymentGateway
from buytokens.domain.catalogue import DEFAULT_CATALOGUE, Catalogue
from buytokens.entrypoints.settings import Settings
from buytokens.entrypoints.web.auth import Authenticator
from buytokens.entrypoints.web.ratelimit import CheckoutRateLimiter
from buytokens.ports.balances import BalanceRepository
from buytokens.ports.checkout import CheckoutKeys, EventJournal
from buytokens.ports.clock import Clock, IdSource
from buytokens.ports.diagnostics import PaymentAccount, StoreInspector
from buytokens.ports.payments import PaymentGateway
from buytokens.services.checkout import Shop


@attrs.frozen
class Backend:
    """The stores of one deployment, all in the same database."""

    store: BalanceRepository
    keys: CheckoutKeys
    journal: EventJournal
    rate_limit_storage: str  # a `limits` storage URI shared by every replica
    durable: bool = True  # False: everything stored is lost when the process ends


def build_catalogue(settings: Settings) -> Catalogue:
    """The catalogue file named by the settings, or the default packages."""
    if settings.catalogue_path is None:
        return DEFAULT_CATALOGUE
    return load_catalogue(settings.catalogue_path)


def build_backend(settings: Settings, clock: Clock) -> Backend:
    """MongoDB when MONGODB_URI is set (mongomock:// for demos), else the SQLite file."""
    uri = settings.mongodb_uri
    if uri is not None:
        from buytokens.adapters.mongo import MongoBalanceRepository, connect_mongo  # noqa: PLC0415
        from buytokens.adapters.mongo_checkout import (  # noqa: PLC0415
            MongoCheckoutKeys,
            MongoEventJournal,
        )

        database = connect_mongo(uri)
        store = MongoBalanceRepository(database, clock)
        store.recover()
        real = uri.startswith(("mongodb://", "mongodb+srv://"))
        return Backend(
            store,
            MongoCheckoutKeys(database),
            MongoEventJournal(database),
            uri if real else "memory://",
            durable=real,
        )
    sqlite = SqliteDatabase(settings.sqlite_path)
    return Backend(
        SqliteBalanceRepository(sqlite, clock),
        SqliteCheckoutKeys(sqlite),
        SqliteEventJournal(sqlite),
        "memory://",
    )


def build_gateway(settings: Settings, clock: Clock) -> PaymentGateway:
    """Stripe when a secret key is configured; otherwise webhooks verify and payments refuse."""
    if settings.stripe_secret_key is None:
        return UnconfiguredPaymentGateway(settings.stripe_webhook_secret)
    return StripePaymentGateway(
        settings.stripe_secret_key,
        settings.stripe_webhook_secret,
        api_base=settings.stripe_api_base,
        api_version=settings.stripe_api_version,
        clock=clock,
    )


DOCTOR_MONGO_TIMEOUT_MS = 3_000
DOCTOR_STRIPE_TIMEOUT = 10.0


def build_store_inspector(settings: Settings) -> StoreInspector:
    """A read-only look at the store ``build_backend`` would open; it connects lazily."""
    uri = settings.mongodb_uri
    if uri is not None:
        from buytokens.adapters.mongo import connect_mongo  # noqa: PLC0415
        from buytokens.adapters.mongo_inspection import MongoStoreInspector  # noqa: PLC0415

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


def build_authenticator(settings: Settings) -> Authenticator:
    """Token verification with JWT_SECRET, which serving requires."""
    settings.require("JWT_SECRET")
    assert settings.jwt_secret is not None
    return Authenticator(settings.jwt_secret)


def build_shop(
    catalogue: Catalogue,
    backend: Backend,
    gateway: PaymentGateway,
    clock: Clock,
    ids: IdSource,
) -> Shop:
    """The bundle the buying use cases run on."""
    return Shop(catalogue, backend.store, gateway, backend.keys, backend.journal, clock, ids)


class Container(containers.DeclarativeContainer):
    """Wires settings to adapters; tests override any provider."""

    settings = providers.Dependency(instance_of=Settings)
    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(UuidIdSource)
    catalogue = providers.Singleton(build_catalogue, settings)
    backend = providers.Singleton(build_backend, settings, clock)
    store = providers.Singleton(lambda backend: backend.store, backend)
    gateway = providers.Singleton(build_gateway, settings, clock)
    shop = providers.Singleton(build_shop, catalogue, backend, gateway, clock, ids)
    authenticator = providers.Singleton(build_authenticator, settings)
    store_inspector = providers.Singleton(build_store_inspector, settings)
    payment_account = providers.Singleton(build_payment_account, settings)
    rate_limiter = providers.Singleton(
        lambda settings, backend: CheckoutRateLimiter(
            settings.rate_limit_per_user, settings.rate_limit_per_ip, backend.rate_limit_storage
        ),
        settings,
        backend,
    )


def create_container(settings: Settings | None = None) -> Container:
    """A container for these settings (read from the environment when omitted)."""
    return Container(settings=settings or Settings.from_env())
