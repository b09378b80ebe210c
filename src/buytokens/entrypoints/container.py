"""The composition root: the only place that names concrete adapters."""

from __future__ import annotations

import attrs
from dependency_injector import containers, providers

from buytokens.adapters.catalogue_file import load_catalogue
from buytokens.adapters.memory import SystemClock, UuidIdSource
from buytokens.adapters.single_flight import SingleFlightPaymentGateway
from buytokens.adapters.sqlite import (
    SqliteBalanceRepository,
    SqliteCheckoutKeys,
    SqliteDatabase,
    SqliteEventJournal,
)
from buytokens.adapters.stripe_gateway import StripePaymentGateway
from buytokens.adapters.unconfigured_gateway import UnconfiguredPaymentGateway
from buytokens.domain.catalogue import DEFAULT_CATALOGUE, Catalogue
from buytokens.entrypoints.settings import Settings
from buytokens.entrypoints.web.auth import Authenticator
from buytokens.entrypoints.web.provider_lane import ProviderLane
from buytokens.entrypoints.web.ratelimit import CheckoutRateLimiter
from buytokens.ports.balances import BalanceRepository
from buytokens.ports.checkout import CheckoutKeys, EventJournal
from buytokens.ports.clock import Clock, IdSource
from buytokens.ports.payments import PaymentGateway
from buytokens.services.checkout import Shop


@attrs.frozen
class Backend:
    """The stores of one deployment, all in the same database."""

    store: BalanceRepository
    keys: CheckoutKeys
    journal: EventJournal
    rate_limit_storage: str  # a `limits` storage URI shared by every replica


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
        shared = uri if uri.startswith(("mongodb://", "mongodb+srv://")) else "memory://"
        return Backend(store, MongoCheckoutKeys(database), MongoEventJournal(database), shared)
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
        budget=settings.stripe_budget,
        max_network_retries=settings.stripe_retries,
        clock=clock,
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
    rate_limiter = providers.Singleton(
        lambda settings, backend: CheckoutRateLimiter(
            settings.rate_limit_per_user, settings.rate_limit_per_ip, backend.rate_limit_storage
        ),
        settings,
        backend,
    )
    check_rate_limiter = providers.Singleton(
        lambda settings, backend: CheckoutRateLimiter(
            settings.rate_limit_checks_per_user,
            settings.rate_limit_per_ip,
            backend.rate_limit_storage,
            action="check-payment-intent",
            refusal="too many payment checks",
        ),
        settings,
        backend,
    )
    provider_lane = providers.Singleton(
        lambda settings: ProviderLane(settings.stripe_concurrency, settings.stripe_budget),
        settings,
    )


def create_container(settings: Settings | None = None) -> Container:
    """A container for these settings (read from the environment when omitted)."""
    return Container(settings=settings or Settings.from_env())
