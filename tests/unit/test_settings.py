"""Settings from the environment: names of CONTRACT.md, aliases, and no secret in a repr."""

from __future__ import annotations

import pytest

from buytokens.domain.errors import ConfigurationError
from buytokens.entrypoints.settings import STRIPE_JS_URL, Settings


def test_every_contract_variable_is_read() -> None:
    """Each documented variable lands in its setting."""
    settings = Settings.from_env(
        {
            "JWT_SECRET": "jwt",
            "STRIPE_SECRET_KEY": "sk_test_1",
            "STRIPE_WEBHOOK_SECRET": "whsec_1",
            "STRIPE_PUBLISHABLE_KEY": "pk_test_1",
            "STRIPE_API_BASE": "http://127.0.0.1:8420",
            "STRIPE_JS_URL": "http://127.0.0.1:8420/js.stripe.com/v3/",
            "MONGODB_URI": "mongomock://x/db",
            "BUYTOKENS_SQLITE_PATH": "/tmp/a.sqlite3",
            "BUYTOKENS_CATALOGUE": "/etc/packages.toml",
        }
    )
    assert settings == Settings(
        jwt_secret="jwt",
        stripe_secret_key="sk_test_1",
        stripe_webhook_secret="whsec_1",
        stripe_publishable_key="pk_test_1",
        stripe_api_base="http://127.0.0.1:8420",
        stripe_js_url="http://127.0.0.1:8420/js.stripe.com/v3/",
        mongodb_uri="mongomock://x/db",
        sqlite_path="/tmp/a.sqlite3",
        catalogue_path="/etc/packages.toml",
    )


def test_defaults_and_the_vite_alias() -> None:
    """Unset or blank variables take the defaults; VITE_STRIPE_PUBLIC_KEY stands in for the key."""
    settings = Settings.from_env({"VITE_STRIPE_PUBLIC_KEY": "pk_vite", "JWT_SECRET": "  "})
    assert settings.stripe_publishable_key == "pk_vite"
    assert settings.jwt_secret is None
    assert settings.stripe_js_url == STRIPE_JS_URL
    assert settings.sqlite_path == "./buytokens.sqlite3"


def test_a_missing_required_variable_is_named() -> None:
    """require() names every missing variable in one message."""
    with pytest.raises(ConfigurationError, match="JWT_SECRET, STRIPE_SECRET_KEY"):
        Settings.from_env({}).require("JWT_SECRET", "STRIPE_SECRET_KEY")


def test_no_secret_shows_in_a_repr() -> None:
    """A logged Settings says which variables are set, never their values."""
    text = repr(Settings.from_env({"JWT_SECRET": "s3cr3t", "STRIPE_SECRET_KEY": "sk_live_x"}))
    assert "s3cr3t" not in text
    assert "sk_live_x" not in text
    assert "'JWT_SECRET': 'set'" in text


def test_the_stripe_budget_and_capacity_are_read_and_bounded() -> None:
    """The fault-isolation knobs have defaults and refuse nonsense with the variable's name."""
    defaults = Settings.from_env({})
    assert (defaults.stripe_budget, defaults.stripe_retries, defaults.stripe_concurrency) == (
        8.0,
        1,
        8,
    )
    settings = Settings.from_env(
        {
            "BUYTOKENS_STRIPE_BUDGET": "2.5",
            "BUYTOKENS_STRIPE_RETRIES": "0",
            "BUYTOKENS_STRIPE_CONCURRENCY": "16",
            "BUYTOKENS_RATE_LIMIT_CHECKS_PER_USER": "5/minute",
        }
    )
    assert (settings.stripe_budget, settings.stripe_retries, settings.stripe_concurrency) == (
        2.5,
        0,
        16,
    )
    assert settings.rate_limit_checks_per_user == "5/minute"
    for name, value in [
        ("BUYTOKENS_STRIPE_BUDGET", "0"),
        ("BUYTOKENS_STRIPE_BUDGET", "nan"),
        ("BUYTOKENS_STRIPE_BUDGET", "600"),
        ("BUYTOKENS_STRIPE_RETRIES", "1.5"),
        ("BUYTOKENS_STRIPE_RETRIES", "-1"),
        ("BUYTOKENS_STRIPE_CONCURRENCY", "0"),
        ("BUYTOKENS_STRIPE_CONCURRENCY", "many"),
    ]:
        with pytest.raises(ConfigurationError, match=name):
            Settings.from_env({name: value})
