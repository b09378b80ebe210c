"""The composition root: the only place that names concrete adapters."""

from __future__ import annotations

from dependency_injector import containers, providers

from buytokens.adapters.catalogue_file import load_catalogue
from buytokens.adapters.memory import SystemClock, UuidIdSource
from buytokens.adapters.sqlite import SqliteBalanceRepository
from buytokens.domain.catalogue import DEFAULT_CATALOGUE, Catalogue
from buytokens.entrypoints.settings import Settings
from buytokens.ports.balances import BalanceRepository
from buytokens.ports.clock import Clock


def build_catalogue(settings: Settings) -> Catalogue:
    """The catalogue file named by the settings, or the default packages."""
    if settings.catalogue_path is None:
        return DEFAULT_CATALOGUE
    return load_catalogue(settings.catalogue_path)


def build_store(settings: Settings, clock: Clock) -> BalanceRepository:
    """MongoDB when MONGODB_URI is set (mongomock:// for demos), else the SQLite file."""
    if settings.mongodb_uri is not None:
        from buytokens.adapters.mongo import MongoBalanceRepository, connect_mongo  # noqa: PLC0415

        return MongoBalanceRepository(connect_mongo(settings.mongodb_uri), clock)
    return SqliteBalanceRepository(settings.sqlite_path, clock)


class Container(containers.DeclarativeContainer):
    """Wires settings to adapters; tests override any provider."""

    settings = providers.Dependency(instance_of=Settings)
    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(UuidIdSource)
    catalogue = providers.Singleton(build_catalogue, settings)
    store = providers.Singleton(build_store, settings, clock)


def create_container(settings: Settings | None = None) -> Container:
    """A container for these settings (read from the environment when omitted)."""
    return Container(settings=settings or Settings.from_env())
