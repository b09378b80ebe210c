"""The web app's composition root: providers over ``composition``, which tests override."""

from __future__ import annotations

from dependency_injector import containers, providers

from buytokens.adapters.system import SystemClock, UuidIdSource
from buytokens.entrypoints.composition import (
    build_catalogue,
    build_code_desk,
    build_gateway,
    build_gift_codes,
    build_payment_account,
    build_promo_desk,
    build_store_inspector,
    build_stores,
    build_use_cases,
)
from buytokens.entrypoints.settings import Settings
from buytokens.entrypoints.web.auth import Authenticator
from buytokens.entrypoints.web.provider_lane import ProviderLane
from buytokens.entrypoints.web.ratelimit import RateLimiter


def build_authenticator(settings: Settings) -> Authenticator:
    """Token verification with JWT_SECRET, which serving requires."""
    settings.require("JWT_SECRET")
    assert settings.jwt_secret is not None
    return Authenticator(settings.jwt_secret)


class Container(containers.DeclarativeContainer):
    """Wires settings to adapters; tests override any provider."""

    settings = providers.Dependency(instance_of=Settings)
    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(UuidIdSource)
    catalogue = providers.Singleton(build_catalogue, settings)
    stores = providers.Singleton(build_stores, settings, clock)
    store = providers.Singleton(lambda stores: stores.store, stores)
    gateway = providers.Singleton(build_gateway, settings, clock)
    gift_codes = providers.Singleton(build_gift_codes, settings, stores)
    use_cases = providers.Singleton(
        build_use_cases, catalogue, stores, gateway, clock, ids, gift_codes
    )
    buying = providers.Singleton(lambda use_cases: use_cases.buying, use_cases)
    checking = providers.Singleton(lambda use_cases: use_cases.checking, use_cases)
    webhooks = providers.Singleton(lambda use_cases: use_cases.webhooks, use_cases)
    reconciling = providers.Singleton(lambda use_cases: use_cases.reconciling, use_cases)
    granting = providers.Singleton(lambda use_cases: use_cases.granting, use_cases)
    approving = providers.Singleton(lambda use_cases: use_cases.approving, use_cases)
    code_desk = providers.Singleton(build_code_desk, stores, clock)
    promo_desk = providers.Singleton(build_promo_desk, stores, catalogue, clock)
    authenticator = providers.Singleton(build_authenticator, settings)
    store_inspector = providers.Singleton(build_store_inspector, settings)
    payment_account = providers.Singleton(build_payment_account, settings)
    rate_limiter = providers.Singleton(
        lambda settings, stores: RateLimiter(
            settings.rate_limit_per_user, settings.rate_limit_per_ip, stores.rate_limit_storage
        ),
        settings,
        stores,
    )
    check_rate_limiter = providers.Singleton(
        lambda settings, stores: RateLimiter(
            settings.rate_limit_checks_per_user,
            settings.rate_limit_per_ip,
            stores.rate_limit_storage,
            action="check-payment-intent",
            refusal="too many payment checks",
        ),
        settings,
        stores,
    )
    redeem_rate_limiter = providers.Singleton(
        lambda settings, stores: RateLimiter(
            settings.rate_limit_redeems_per_user,
            settings.rate_limit_per_ip,
            stores.rate_limit_storage,
            action="redeem-code",
            refusal="too many code redemption attempts",
        ),
        settings,
        stores,
    )
    provider_lane = providers.Singleton(
        lambda settings: ProviderLane(settings.stripe_concurrency, settings.stripe_budget),
        settings,
    )


def create_container(settings: Settings | None = None) -> Container:
    """A container for these settings (read from the environment when omitted)."""
    return Container(settings=settings or Settings.from_env())
