"""Settings read from the environment (names in CONTRACT.md), never printed."""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from typing import TypeVar

import attrs

from buytokens.adapters.stripe_gateway import DEFAULT_BUDGET, DEFAULT_NETWORK_RETRIES
from buytokens.domain.errors import ConfigurationError
from buytokens.entrypoints.web.ratelimit import (
    DEFAULT_CHECKS_PER_USER,
    DEFAULT_PER_IP,
    DEFAULT_PER_USER,
    DEFAULT_REDEEMS_PER_USER,
)

STRIPE_JS_URL = "https://js.stripe.com/v3/"
SQLITE_PATH = "./buytokens.sqlite3"
RECOVERY_INTERVAL = 30.0  # seconds between passes that finish interrupted MongoDB writes
STRIPE_CONCURRENCY = 8


@attrs.frozen(repr=False)
class Settings:
    """Everything the entrypoints read from the environment."""

    jwt_secret: str | None = None
    stripe_secret_key: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_publishable_key: str | None = None
    stripe_api_base: str | None = None
    stripe_js_url: str = STRIPE_JS_URL
    mongodb_uri: str | None = None
    sqlite_path: str = SQLITE_PATH
    catalogue_path: str | None = None
    stripe_api_version: str | None = None
    rate_limit_per_user: str = DEFAULT_PER_USER
    rate_limit_per_ip: str = DEFAULT_PER_IP
    recovery_interval: float = RECOVERY_INTERVAL
    trusted_proxies: tuple[str, ...] = ()
    """Peers whose ``X-Forwarded-For`` names the client (IPs or CIDR networks); none by default."""
    rate_limit_checks_per_user: str = DEFAULT_CHECKS_PER_USER
    stripe_budget: float = DEFAULT_BUDGET
    stripe_retries: int = DEFAULT_NETWORK_RETRIES
    stripe_concurrency: int = STRIPE_CONCURRENCY
    rate_limit_redeems_per_user: str = DEFAULT_REDEEMS_PER_USER
    code_secret: str | None = None
    """BUYTOKENS_CODE_SECRET: gift codes are derived from it (from JWT_SECRET without it)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings; empty variables count as unset."""
        env = {k: v for k, v in (os.environ if environ is None else environ).items() if v.strip()}
        return cls(
            jwt_secret=env.get("JWT_SECRET"),
            stripe_secret_key=env.get("STRIPE_SECRET_KEY"),
            stripe_webhook_secret=env.get("STRIPE_WEBHOOK_SECRET"),
            stripe_publishable_key=env.get(
                "STRIPE_PUBLISHABLE_KEY", env.get("VITE_STRIPE_PUBLIC_KEY")
            ),
            stripe_api_base=env.get("STRIPE_API_BASE"),
            stripe_js_url=env.get("STRIPE_JS_URL", STRIPE_JS_URL),
            mongodb_uri=env.get("MONGODB_URI"),
            sqlite_path=env.get("BUYTOKENS_SQLITE_PATH", SQLITE_PATH),
            catalogue_path=env.get("BUYTOKENS_CATALOGUE"),
            stripe_api_version=env.get("STRIPE_API_VERSION"),
            rate_limit_per_user=env.get("BUYTOKENS_RATE_LIMIT_PER_USER", DEFAULT_PER_USER),
            rate_limit_per_ip=env.get("BUYTOKENS_RATE_LIMIT_PER_IP", DEFAULT_PER_IP),
            recovery_interval=_seconds(
                "BUYTOKENS_RECOVERY_INTERVAL", env.get("BUYTOKENS_RECOVERY_INTERVAL")
            ),
            trusted_proxies=parse_trusted_proxies(env.get("BUYTOKENS_TRUSTED_PROXIES", "")),
            rate_limit_checks_per_user=env.get(
                "BUYTOKENS_RATE_LIMIT_CHECKS_PER_USER", DEFAULT_CHECKS_PER_USER
            ),
            stripe_budget=_number(env, "BUYTOKENS_STRIPE_BUDGET", DEFAULT_BUDGET, float, 0.5, 60),
            stripe_retries=_number(
                env, "BUYTOKENS_STRIPE_RETRIES", DEFAULT_NETWORK_RETRIES, int, 0, 5
            ),
            stripe_concurrency=_number(
                env, "BUYTOKENS_STRIPE_CONCURRENCY", STRIPE_CONCURRENCY, int, 1, 256
            ),
            rate_limit_redeems_per_user=env.get(
                "BUYTOKENS_RATE_LIMIT_REDEEMS_PER_USER", DEFAULT_REDEEMS_PER_USER
            ),
            code_secret=env.get("BUYTOKENS_CODE_SECRET"),
        )

    def require(self, *names: str) -> None:
        """Raise ConfigurationError naming every listed variable that is unset."""
        missing = [name for name in names if getattr(self, _FIELDS[name]) is None]
        if missing:
            raise ConfigurationError(
                f"missing required environment variable(s): {', '.join(missing)}"
            )

    def __repr__(self) -> str:
        shown = {
            name: ("set" if getattr(self, field) else "unset") for name, field in _FIELDS.items()
        }
        return f"Settings({shown})"


def parse_trusted_proxies(value: str) -> tuple[str, ...]:
    """Comma-separated IP addresses or networks, each checked: ``"10.0.0.2, 172.16.0.0/12"``."""
    entries = tuple(item.strip() for item in value.split(",") if item.strip())
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigurationError(
                f"BUYTOKENS_TRUSTED_PROXIES: {entry!r} is not an IP address or network"
            ) from None
    return entries


N = TypeVar("N", int, float)


def _number(env: Mapping[str, str], name: str, default: N, kind: type[N], low: N, high: N) -> N:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = kind(raw.strip())
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ConfigurationError(
            f"{name} must be {'a whole' if kind is int else 'a'} number from {low} to {high}"
        )
    return value


_FIELDS = {
    "JWT_SECRET": "jwt_secret",
    "STRIPE_SECRET_KEY": "stripe_secret_key",
    "STRIPE_WEBHOOK_SECRET": "stripe_webhook_secret",
    "STRIPE_PUBLISHABLE_KEY": "stripe_publishable_key",
    "MONGODB_URI": "mongodb_uri",
}


def _seconds(name: str, value: str | None) -> float:
    if value is None:
        return RECOVERY_INTERVAL
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0.1 <= seconds <= 86_400:  # NaN fails this too
        raise ConfigurationError(f"{name} must be a number of seconds from 0.1 to 86400")
    return seconds
