"""The environment `buytokens doctor` checks: variables, the kind of each key, the catalogue.

Secrets never enter a report: the configuration keeps only what kind of key
each variable holds (its public prefix), never the key.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

import attrs

from buytokens.domain.catalogue import Catalogue
from buytokens.domain.errors import BuyTokensError
from buytokens.ports.diagnostics import PaymentServer
from buytokens.services.doctor.report import (
    DASHBOARD_KEYS,
    DASHBOARD_WEBHOOKS,
    Finding,
    ok,
    plural,
    problem,
)


class KeyRole(enum.Enum):
    """What a Stripe API key is for, by its prefix."""

    SECRET = "secret"  # noqa: S105 - the name of a role, not a key
    RESTRICTED = "restricted"
    PUBLISHABLE = "publishable"
    UNKNOWN = "unknown"


class Mode(enum.Enum):
    """Stripe's test and live modes."""

    TEST = "test"
    LIVE = "live"


_KEY_PREFIXES = {
    f"{kind}_{mode.value}_": (role, mode)
    for kind, role in (
        ("sk", KeyRole.SECRET),
        ("rk", KeyRole.RESTRICTED),
        ("pk", KeyRole.PUBLISHABLE),
    )
    for mode in Mode
}


@attrs.frozen
class KeyKind:
    """What a key is, without the key: its role, its mode and its public prefix."""

    role: KeyRole
    mode: Mode | None
    prefix: str  # e.g. "sk_test_"; empty when unrecognised

    @classmethod
    def of(cls, key: str) -> KeyKind:
        """Classify ``key`` by its prefix; the key itself is not kept."""
        for prefix, (role, mode) in _KEY_PREFIXES.items():
            if key.startswith(prefix):
                return cls(role, mode, prefix)
        return cls(KeyRole.UNKNOWN, None, "")


@attrs.frozen
class Configuration:
    """What doctor knows of the environment: which variables are set, and what kind of key
    each Stripe variable holds. Build it with ``from_values``."""

    jwt_secret: bool
    secret_key: KeyKind | None
    webhook_secret: bool
    webhook_secret_prefix_ok: bool  # starts with whsec_, as Stripe's signing secrets do
    webhook_secret_is_api_key: bool
    publishable_key: KeyKind | None
    api_base: str | None  # as displayed: no user name or password
    api_version: str | None
    catalogue_path: str | None = None
    expected_mode: Mode | None = None

    @classmethod
    def from_values(
        cls,
        *,
        jwt_secret: str | None,
        secret_key: str | None,
        webhook_secret: str | None,
        publishable_key: str | None,
        api_base: str | None = None,
        api_version: str | None = None,
        catalogue_path: str | None = None,
        expected_mode: Mode | None = None,
    ) -> Configuration:
        """Reduce the settings to what the checks need; no secret value is kept."""
        return cls(
            jwt_secret=jwt_secret is not None,
            secret_key=KeyKind.of(secret_key) if secret_key is not None else None,
            webhook_secret=webhook_secret is not None,
            webhook_secret_prefix_ok=(webhook_secret or "").startswith("whsec_"),
            webhook_secret_is_api_key=webhook_secret is not None
            and KeyKind.of(webhook_secret).role is not KeyRole.UNKNOWN,
            publishable_key=KeyKind.of(publishable_key) if publishable_key is not None else None,
            api_base=api_base,
            api_version=api_version,
            catalogue_path=catalogue_path,
            expected_mode=expected_mode,
        )


def check_environment(
    config: Configuration, server: PaymentServer | None, catalogue: Callable[[], Catalogue]
) -> list[Finding]:
    """The variables, the Stripe keys' mode, and the catalogue they name."""
    found = [_jwt_secret(config), _secret_key(config.secret_key)]
    found.append(_webhook_secret(config, server))
    found.append(_publishable_key(config.publishable_key))
    modes = _modes(config, server)
    if modes is not None:
        found.append(modes)
    found.append(_catalogue(config, catalogue))
    return found


def _jwt_secret(config: Configuration) -> Finding:
    if config.jwt_secret:
        return ok("JWT_SECRET", "set")
    return problem(
        "JWT_SECRET",
        "not set, so `buytokens serve` refuses to start: set it to LibreChat's JWT_SECRET "
        "(the same value, so that LibreChat's sign-ins are accepted here)",
    )


def _secret_key(kind: KeyKind | None) -> Finding:
    subject = "STRIPE_SECRET_KEY"
    if kind is None:
        return problem(
            subject,
            "not set, so every purchase is refused (503 payments_not_configured): set the "
            f"secret key (sk_live_... or sk_test_...) from {DASHBOARD_KEYS}",
        )
    if kind.role is KeyRole.PUBLISHABLE:
        return problem(
            subject,
            f"holds a publishable key ({kind.prefix}...): set the secret key (sk_...) "
            f"from {DASHBOARD_KEYS}",
        )
    if kind.role is KeyRole.UNKNOWN:
        return problem(
            subject,
            "does not look like a Stripe secret key (one starts with sk_live_, sk_test_, "
            f"rk_live_ or rk_test_): copy it again from {DASHBOARD_KEYS}",
        )
    return ok(subject, f"set ({kind.prefix}..., a {kind.role.value} key)")


def _webhook_secret(config: Configuration, server: PaymentServer | None) -> Finding:
    subject = "STRIPE_WEBHOOK_SECRET"
    if not config.webhook_secret:
        return problem(
            subject,
            "not set, so the webhook refuses every event and purchases are credited only by "
            "the page's return check and `buytokens reconcile`: set the signing secret "
            f"(whsec_...) of the webhook endpoint, shown in {DASHBOARD_WEBHOOKS}",
        )
    if config.webhook_secret_is_api_key:
        return problem(
            subject,
            "holds an API key, not a signing secret: set the webhook endpoint's signing secret "
            f"(whsec_...), shown in {DASHBOARD_WEBHOOKS}",
        )
    if not config.webhook_secret_prefix_ok and server is not PaymentServer.LOCALSTRIPE:
        return problem(
            subject,
            "does not start with whsec_, as Stripe's signing secrets do: copy the endpoint's "
            f"signing secret again from {DASHBOARD_WEBHOOKS}",
        )
    return ok(subject, "set")


def _publishable_key(kind: KeyKind | None) -> Finding:
    subject = "STRIPE_PUBLISHABLE_KEY"
    if kind is None:
        return problem(
            subject,
            "not set (nor VITE_STRIPE_PUBLIC_KEY), so the page cannot load Stripe.js: set the "
            f"publishable key (pk_live_... or pk_test_...) from {DASHBOARD_KEYS}",
        )
    if kind.role in (KeyRole.SECRET, KeyRole.RESTRICTED):
        return problem(
            subject,
            f"holds a {kind.role.value} key ({kind.prefix}...), which the page would show to "
            "every visitor: set the publishable key (pk_...) instead, and roll the secret key "
            "in the Dashboard if the page has already been served with it",
        )
    if kind.role is KeyRole.UNKNOWN:
        return problem(
            subject,
            "does not look like a Stripe publishable key (one starts with pk_live_ or "
            f"pk_test_): copy it again from {DASHBOARD_KEYS}",
        )
    return ok(subject, f"set ({kind.prefix}...)")


def _modes(config: Configuration, server: PaymentServer | None) -> Finding | None:
    secret, public = config.secret_key, config.publishable_key
    if secret is None or secret.mode is None or secret.role is KeyRole.PUBLISHABLE:
        return None
    mode = secret.mode
    subject = "Stripe mode"
    if public is not None and public.mode is not None and public.mode is not mode:
        return problem(
            subject,
            f"the secret key is a {mode.value}-mode key but the publishable key is a "
            f"{public.mode.value}-mode key: use both keys of one mode of the same account",
        )
    if config.expected_mode is not None and mode is not config.expected_mode:
        return problem(
            subject,
            f"the keys are {mode.value}-mode keys, but --mode {config.expected_mode.value} "
            f"was asked for: set the {config.expected_mode.value}-mode keys",
        )
    if mode is Mode.LIVE and server is PaymentServer.LOCALSTRIPE:
        return problem(
            subject,
            "a live secret key is being sent to localstripe: use a test key (sk_test_...) "
            "with localstripe, and keep live keys for Stripe itself",
        )
    return ok(subject, f"{mode.value} mode")


def _catalogue(config: Configuration, load: Callable[[], Catalogue]) -> Finding:
    subject = "BUYTOKENS_CATALOGUE"
    try:
        catalogue = load()
    except BuyTokensError as exc:
        return problem(subject, f"{exc}: fix the file, or unset the variable for the defaults")
    count = len(catalogue.packages)
    source = config.catalogue_path or "the default catalogue"
    return ok(subject, f"{source}: {plural(count, 'package')} in {catalogue.currency.upper()}")
