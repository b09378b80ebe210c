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
from buytokens.adapters.memory_codes import InMemoryRedemptionCodes
from buytokens.adapters.memory_promos import InMemoryPromoCodes
from buytokens.adapters.single_flight import SingleFlightPaymentGateway
from buytokens.adapters.sqlite.checkout_keys import SqliteCheckoutKeys
from buytokens.adapters.sqlite.codes import SqliteRedemptionCodes
from buytokens.adapters.sqlite.engine import SqliteDatabase
from buytokens.adapters.sqlite.inspection import SqliteStoreInspector
from buytokens.adapters.sqlite.journal import SqliteEventJournal
from buytokens.adapters.sqlite.promos import SqlitePromoCodes
from buytokens.adapters.sqlite.store import SqliteBalanceRepository
from buytokens.adapters.stripe_account import StripeAccount
from buytokens.adapters.stripe_gateway import (
    DEFAULT_BUDGET,
    DEFAULT_NETWORK_RETRIES,
    STRIPE_EVENT_HISTORY,
    StripePaymentGateway,
)
from buytokens.adapters.stripe_methods import offered_payment_methods
from buytokens.adapters.unconfigured_gateway import UnconfiguredPaymentGateway
from buytokens.domain.catalogue import DEFAULT_CATALOGUE, Catalogue
from buytokens.domain.codes import CodeSecret
from buytokens.domain.errors import ConfigurationError
from buytokens.entrypoints.settings import Settings
from buytokens.ports.balances import BalanceRepository
from buytokens.ports.checkout import CheckoutKeys, EventJournal
from buytokens.ports.clock import Clock, IdSource
from buytokens.ports.codes import RedemptionCodes
from buytokens.ports.diagnostics import PaymentAccount, StoreInspector
from buytokens.ports.payments import PaymentGateway
from buytokens.ports.promos import PromoCodes
from buytokens.services.admin import ApprovalDependencies, GrantDependencies
from buytokens.services.buying import BuyingDependencies, CheckingDependencies
from buytokens.services.codes import CodeDesk
from buytokens.services.crediting import CreditingDependencies
from buytokens.services.gifts import GiftCodes
from buytokens.services.promos import PromoDesk
from buytokens.services.reconciliation import ReconcileDependencies
from buytokens.services.webhooks import WebhookDependencies

MEMORY_URI = "memory://"
_MONGO_SCHEMES = ("mongodb://", "mongodb+srv://", "mongomock://")
_SQLITE_SCHEME = "sqlite://"


def _nothing_to_close() -> None:
    return None


@attrs.frozen
class Stores:
    """The stores of one deployment, all in the same database."""

    store: BalanceRepository
    keys: CheckoutKeys
    journal: EventJournal
    rate_limit_storage: str  # a `limits` storage URI shared by every replica
    close: Callable[[], None] = _nothing_to_close  # releases connections and files
    durable: bool = True  # False: everything stored is lost when the process ends
    codes: RedemptionCodes = attrs.field(kw_only=True)
    promos: PromoCodes = attrs.field(kw_only=True)


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


def build_stores(settings: Settings, clock: Clock) -> Stores:
    """MongoDB when MONGODB_URI is set (mongomock:// for demos), else the SQLite file."""
    if settings.mongodb_uri is not None:
        return open_mongo_stores(settings.mongodb_uri, clock)
    return open_sqlite_stores(settings.sqlite_path, clock)


def open_stores(uri: str | os.PathLike[str], clock: Clock) -> Stores:
    """The stores a URI names.

    ``memory://`` keeps everything in this process (tests, demos); ``mongodb://``,
    ``mongodb+srv://`` and ``mongomock://`` open MongoDB in LibreChat's shape;
    ``sqlite://PATH`` or a bare file path opens (and creates) an SQLite file.
    """
    text = os.fspath(uri)
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError("the store must be memory://, a SQLite path or a MongoDB URI")
    if text == MEMORY_URI:
        return open_memory_stores(clock)
    if text.lower().startswith(_MONGO_SCHEMES):
        return open_mongo_stores(text, clock)
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
    return open_sqlite_stores(text, clock)


def open_memory_stores(clock: Clock) -> Stores:
    """Stores that live and die with this process."""
    store = InMemoryBalanceRepository(clock)
    return Stores(
        store,
        InMemoryCheckoutKeys(),
        store.journal,
        MEMORY_URI,
        durable=False,
        codes=InMemoryRedemptionCodes(),
        promos=InMemoryPromoCodes(),
    )


def open_sqlite_stores(path: str | os.PathLike[str], clock: Clock) -> Stores:
    """One SQLite file (created with its schema when missing)."""
    sqlite = SqliteDatabase(os.fspath(path))
    return Stores(
        SqliteBalanceRepository(sqlite, clock),
        SqliteCheckoutKeys(sqlite),
        SqliteEventJournal(sqlite),
        MEMORY_URI,
        sqlite.close,
        codes=SqliteRedemptionCodes(sqlite),
        promos=SqlitePromoCodes(sqlite),
    )


def open_mongo_stores(uri: str, clock: Clock) -> Stores:
    """LibreChat's MongoDB, after finishing whatever a crash left half-done."""
    from buytokens.adapters.mongo.checkout_keys import MongoCheckoutKeys  # noqa: PLC0415
    from buytokens.adapters.mongo.codes import MongoRedemptionCodes  # noqa: PLC0415
    from buytokens.adapters.mongo.connection import connect_mongo  # noqa: PLC0415
    from buytokens.adapters.mongo.journal import MongoEventJournal  # noqa: PLC0415
    from buytokens.adapters.mongo.promos import MongoPromoCodes  # noqa: PLC0415
    from buytokens.adapters.mongo.store import MongoBalanceRepository  # noqa: PLC0415

    database = connect_mongo(uri)
    store = MongoBalanceRepository(database, clock)
    store.recover()
    real = uri.lower().startswith(("mongodb://", "mongodb+srv://"))
    # A pymongo Database has its client; mongomock's in-process server holds nothing.
    client = getattr(database, "client", None) if real else None
    return Stores(
        store,
        MongoCheckoutKeys(database),
        MongoEventJournal(database),
        uri if real else MEMORY_URI,
        _nothing_to_close if client is None else client.close,
        durable=real,
        codes=MongoRedemptionCodes(database),
        promos=MongoPromoCodes(database),
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


@attrs.frozen
class UseCaseDependencies:
    """The dependencies of every use case of one deployment, each bundle built once."""

    catalogue: Catalogue
    store: BalanceRepository
    buying: BuyingDependencies
    checking: CheckingDependencies
    webhooks: WebhookDependencies
    reconciling: ReconcileDependencies
    granting: GrantDependencies
    approving: ApprovalDependencies

    @property
    def events(self) -> CreditingDependencies:
        """What applying an already verified provider event needs."""
        return self.webhooks.events


def build_use_cases(
    catalogue: Catalogue,
    stores: Stores,
    gateway: PaymentGateway,
    clock: Clock,
    ids: IdSource,
    gifts: GiftCodes | None = None,
) -> UseCaseDependencies:
    """Every use case's dependencies over these parts; concurrent checks of one intent
    share a call to the provider. Without ``gifts`` nothing can be bought as a gift."""
    shared = SingleFlightPaymentGateway(gateway)
    crediting = CreditingDependencies(stores.store, catalogue, clock, gifts, stores.promos)
    events = crediting
    return UseCaseDependencies(
        catalogue,
        stores.store,
        BuyingDependencies(
            catalogue,
            offered_payment_methods(catalogue.currency),
            stores.store,
            shared,
            stores.keys,
            clock,
            ids,
            gifts,
            stores.promos,
        ),
        CheckingDependencies(crediting, shared),
        WebhookDependencies(shared, events),
        ReconcileDependencies(shared, events, STRIPE_EVENT_HISTORY),
        GrantDependencies(stores.store, ids),
        ApprovalDependencies(stores.store, clock),
    )


def build_code_secret(settings: Settings) -> CodeSecret | None:
    """The secret gift codes are derived from: BUYTOKENS_CODE_SECRET, else JWT_SECRET's own
    derivation (whoever holds JWT_SECRET can act as any user already); None without both."""
    secret = settings.code_secret or settings.jwt_secret
    return None if secret is None else CodeSecret.derived_from(secret)


def build_gift_codes(settings: Settings, stores: Stores) -> GiftCodes | None:
    """Gift codes over the stores' code index; None when there is no secret to derive them."""
    secret = build_code_secret(settings)
    return None if secret is None else GiftCodes(secret, stores.codes)


def build_code_desk(stores: Stores, clock: Clock) -> CodeDesk:
    """The bundle the code use cases run on: the stores' codes and balances."""
    return CodeDesk(stores.codes, stores.store, clock)


def build_promo_desk(stores: Stores, catalogue: Catalogue, clock: Clock) -> PromoDesk:
    """The bundle the promo code use cases run on: the stores' promo codes and the catalogue."""
    return PromoDesk(stores.promos, catalogue, clock)


DOCTOR_MONGO_TIMEOUT_MS = 3_000
DOCTOR_STRIPE_TIMEOUT = 10.0


def build_store_inspector(settings: Settings) -> StoreInspector:
    """A read-only look at the store ``build_stores`` would open; it connects lazily."""
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
