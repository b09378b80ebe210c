"""``buytokens doctor``: the set-up checks, and what each says when something is wrong.

Pure over the ports: the store and the payment account are asked for facts
(``ports.diagnostics``) and every sentence an operator reads is written here.
Secrets never enter a report: the configuration keeps only what kind of key
each variable holds (its public prefix), never the key.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from pathlib import PurePath
from urllib.parse import urlsplit

import attrs

from buytokens.domain.catalogue import Catalogue
from buytokens.domain.errors import BuyTokensError, GatewayRejected
from buytokens.ports.diagnostics import (
    MongoState,
    PaymentAccount,
    PaymentServer,
    SqliteState,
    StoreInspector,
    WebhookEndpoint,
)

WEBHOOK_PATH = "/api/custom/stripe/webhook"
"""The path of the webhook route; a registered endpoint's URL must end in it."""

LIBRECHAT_COLLECTIONS = ("users", "balances", "transactions")
_LOCALSTRIPE_EVENTS = ("payment_intent.succeeded", "payment_intent.payment_failed")
_DASHBOARD_KEYS = "the Stripe Dashboard, Developers → API keys"
_DASHBOARD_WEBHOOKS = "the Stripe Dashboard, Developers → Webhooks"


class Status(enum.Enum):
    """How a check came out."""

    OK = "ok"
    NOTE = "note"  # worth knowing; nothing to fix
    WARNING = "warning"  # probably wrong: look at it
    PROBLEM = "problem"  # wrong: fix it


@attrs.frozen
class Finding:
    """One check's outcome, in plain words."""

    status: Status
    subject: str
    message: str

    def line(self) -> str:
        """The finding as the one line the command prints."""
        return f"{self.status.value:<8} {self.subject}: {self.message}"


@attrs.frozen
class DoctorReport:
    """Every finding, in the order the checks ran."""

    findings: tuple[Finding, ...]

    @property
    def ready(self) -> bool:
        """True when nothing is a problem or a warning (notes are fine)."""
        return all(f.status in (Status.OK, Status.NOTE) for f in self.findings)

    def lines(self) -> list[str]:
        """One line per finding, then a summary."""
        problems = sum(f.status is Status.PROBLEM for f in self.findings)
        warnings = sum(f.status is Status.WARNING for f in self.findings)
        if self.ready:
            summary = "buytokens is set up: nothing to fix."
        else:
            counts = [_plural(problems, "problem"), _plural(warnings, "warning")]
            summary = (
                f"{', '.join(c for c in counts if c)}: fix what the lines above say, "
                "then run `buytokens doctor` again."
            )
        return [f.line() for f in self.findings] + [summary]


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


def diagnose(
    config: Configuration,
    store: StoreInspector,
    account: PaymentAccount | None,
    required_events: Iterable[str],
    catalogue: Callable[[], Catalogue],
) -> DoctorReport:
    """Run every check and word its outcome.

    ``account`` is None when no secret key is configured (the Stripe checks are
    then skipped); ``required_events`` are the event types buytokens acts on;
    ``catalogue`` loads the configured catalogue.
    """
    server = account.server() if account is not None else None
    findings = [
        *_variables(config, server),
        _catalogue(config, catalogue),
        *_store(store.inspect()),
        *_stripe(config, account, server, frozenset(required_events)),
    ]
    return DoctorReport(tuple(findings))


# -- the environment -----------------------------------------------------------------------------


def _variables(config: Configuration, server: PaymentServer | None) -> list[Finding]:
    found = [_jwt_secret(config), _secret_key(config.secret_key)]
    found.append(_webhook_secret(config, server))
    found.append(_publishable_key(config.publishable_key))
    modes = _modes(config, server)
    if modes is not None:
        found.append(modes)
    return found


def _jwt_secret(config: Configuration) -> Finding:
    if config.jwt_secret:
        return _ok("JWT_SECRET", "set")
    return _problem(
        "JWT_SECRET",
        "not set, so `buytokens serve` refuses to start: set it to LibreChat's JWT_SECRET "
        "(the same value, so that LibreChat's sign-ins are accepted here)",
    )


def _secret_key(kind: KeyKind | None) -> Finding:
    subject = "STRIPE_SECRET_KEY"
    if kind is None:
        return _problem(
            subject,
            "not set, so every purchase is refused (503 payments_not_configured): set the "
            f"secret key (sk_live_... or sk_test_...) from {_DASHBOARD_KEYS}",
        )
    if kind.role is KeyRole.PUBLISHABLE:
        return _problem(
            subject,
            f"holds a publishable key ({kind.prefix}...): set the secret key (sk_...) "
            f"from {_DASHBOARD_KEYS}",
        )
    if kind.role is KeyRole.UNKNOWN:
        return _problem(
            subject,
            "does not look like a Stripe secret key (one starts with sk_live_, sk_test_, "
            f"rk_live_ or rk_test_): copy it again from {_DASHBOARD_KEYS}",
        )
    return _ok(subject, f"set ({kind.prefix}..., a {kind.role.value} key)")


def _webhook_secret(config: Configuration, server: PaymentServer | None) -> Finding:
    subject = "STRIPE_WEBHOOK_SECRET"
    if not config.webhook_secret:
        return _problem(
            subject,
            "not set, so the webhook refuses every event and purchases are credited only by "
            "the page's return check and `buytokens reconcile`: set the signing secret "
            f"(whsec_...) of the webhook endpoint, shown in {_DASHBOARD_WEBHOOKS}",
        )
    if config.webhook_secret_is_api_key:
        return _problem(
            subject,
            "holds an API key, not a signing secret: set the webhook endpoint's signing secret "
            f"(whsec_...), shown in {_DASHBOARD_WEBHOOKS}",
        )
    if not config.webhook_secret_prefix_ok and server is not PaymentServer.LOCALSTRIPE:
        return _problem(
            subject,
            "does not start with whsec_, as Stripe's signing secrets do: copy the endpoint's "
            f"signing secret again from {_DASHBOARD_WEBHOOKS}",
        )
    return _ok(subject, "set")


def _publishable_key(kind: KeyKind | None) -> Finding:
    subject = "STRIPE_PUBLISHABLE_KEY"
    if kind is None:
        return _problem(
            subject,
            "not set (nor VITE_STRIPE_PUBLIC_KEY), so the page cannot load Stripe.js: set the "
            f"publishable key (pk_live_... or pk_test_...) from {_DASHBOARD_KEYS}",
        )
    if kind.role in (KeyRole.SECRET, KeyRole.RESTRICTED):
        return _problem(
            subject,
            f"holds a {kind.role.value} key ({kind.prefix}...), which the page would show to "
            "every visitor: set the publishable key (pk_...) instead, and roll the secret key "
            "in the Dashboard if the page has already been served with it",
        )
    if kind.role is KeyRole.UNKNOWN:
        return _problem(
            subject,
            "does not look like a Stripe publishable key (one starts with pk_live_ or "
            f"pk_test_): copy it again from {_DASHBOARD_KEYS}",
        )
    return _ok(subject, f"set ({kind.prefix}...)")


def _modes(config: Configuration, server: PaymentServer | None) -> Finding | None:
    secret, public = config.secret_key, config.publishable_key
    if secret is None or secret.mode is None or secret.role is KeyRole.PUBLISHABLE:
        return None
    mode = secret.mode
    subject = "Stripe mode"
    if public is not None and public.mode is not None and public.mode is not mode:
        return _problem(
            subject,
            f"the secret key is a {mode.value}-mode key but the publishable key is a "
            f"{public.mode.value}-mode key: use both keys of one mode of the same account",
        )
    if config.expected_mode is not None and mode is not config.expected_mode:
        return _problem(
            subject,
            f"the keys are {mode.value}-mode keys, but --mode {config.expected_mode.value} "
            f"was asked for: set the {config.expected_mode.value}-mode keys",
        )
    if mode is Mode.LIVE and server is PaymentServer.LOCALSTRIPE:
        return _problem(
            subject,
            "a live secret key is being sent to localstripe: use a test key (sk_test_...) "
            "with localstripe, and keep live keys for Stripe itself",
        )
    return _ok(subject, f"{mode.value} mode")


def _catalogue(config: Configuration, load: Callable[[], Catalogue]) -> Finding:
    subject = "BUYTOKENS_CATALOGUE"
    try:
        catalogue = load()
    except BuyTokensError as exc:
        return _problem(subject, f"{exc}: fix the file, or unset the variable for the defaults")
    count = len(catalogue.packages)
    source = config.catalogue_path or "the default catalogue"
    return _ok(subject, f"{source}: {_plural(count, 'package')} in {catalogue.currency.upper()}")


# -- the store ----------------------------------------------------------------------------------


def _store(state: SqliteState | MongoState) -> list[Finding]:
    if isinstance(state, SqliteState):
        return [_sqlite(state)]
    return _mongo(state)


def _sqlite(state: SqliteState) -> Finding:
    subject = "store"
    path = state.path
    directory = str(PurePath(path).parent)
    if not state.exists:
        if not state.directory_exists:
            return _problem(
                subject,
                f"the SQLite file {path} cannot be created: its directory {directory} does not "
                "exist; create it, or point BUYTOKENS_SQLITE_PATH elsewhere",
            )
        if not state.writable:
            return _problem(
                subject,
                f"the SQLite file {path} cannot be created: this user may not write to "
                f"{directory}; fix the directory's owner or permissions, or point "
                "BUYTOKENS_SQLITE_PATH elsewhere",
            )
        return _note(
            subject,
            f"the SQLite file {path} does not exist yet; buytokens creates it at first use "
            "(if you expected existing balances, BUYTOKENS_SQLITE_PATH points at the wrong file)",
        )
    if state.error is not None or state.schema_version is None:
        return _problem(
            subject,
            f"{path} is not a readable SQLite database ({state.error or 'no schema'}): point "
            "BUYTOKENS_SQLITE_PATH at buytokens' database file, or move this file away",
        )
    if state.schema_version > state.current_version:
        return _problem(
            subject,
            f"{path} has schema version {state.schema_version}, newer than this buytokens "
            f"understands ({state.current_version}): upgrade buytokens",
        )
    if not state.writable:
        return _problem(
            subject,
            f"this user may not write {path} or its directory {directory} (which holds the "
            "-wal and -shm files): fix the owner or permissions",
        )
    if state.schema_version < state.current_version:
        return _note(
            subject,
            f"{path} has schema version {state.schema_version}; buytokens migrates it to "
            f"{state.current_version} when it next opens it (back the file up first)",
        )
    return _ok(subject, f"SQLite file {path}, schema version {state.schema_version} (current)")


def _mongo(state: MongoState) -> list[Finding]:
    subject = f"MongoDB {state.database}"
    if state.error is not None:
        return [
            _problem(
                subject,
                f"cannot be read: {state.error}. Check MONGODB_URI (host, port, user name, "
                "password, database), that mongod is running, and that this machine may reach it",
            )
        ]
    found = [_ok(subject, "reachable"), _collections(subject, state)]
    found.extend(
        _problem(
            f"{subject} balances",
            f"{duplicate.describe()}; until then this user is credited nothing",
        )
        for duplicate in state.duplicates
    )
    if state.unique_user_index:
        found.append(_ok(f"{subject} balances", "unique index on user: one balance per user"))
    elif not state.duplicates:
        if state.buytokens_indexes:
            found.append(
                _problem(
                    f"{subject} balances",
                    "no unique index on user although buytokens has started on this database: "
                    "MongoDB before 5.0 refuses it beside LibreChat's own index on user; drop "
                    'that one (db.balances.dropIndex("user_1")) and restart buytokens, or '
                    "upgrade MongoDB",
                )
            )
        else:
            found.append(
                _note(
                    f"{subject} balances",
                    "no unique index on user yet: buytokens creates it when it first starts "
                    "on this database",
                )
            )
    return found


def _collections(subject: str, state: MongoState) -> Finding:
    if "users" not in state.collections:
        return _warning(
            subject,
            "has no users collection, where LibreChat keeps its users: is this LibreChat's "
            "database? Name LibreChat's database in MONGODB_URI's path (LibreChat's default "
            "is LibreChat), or credits land where LibreChat never looks",
        )
    missing = [name for name in LIBRECHAT_COLLECTIONS if name not in state.collections]
    if missing:
        return _note(
            subject,
            f"LibreChat's users are here; {', '.join(missing)} does not exist yet and is "
            "created at the first credit",
        )
    return _ok(subject, f"LibreChat's collections are here ({', '.join(LIBRECHAT_COLLECTIONS)})")


# -- Stripe -------------------------------------------------------------------------------------


def _stripe(
    config: Configuration,
    account: PaymentAccount | None,
    server: PaymentServer | None,
    required: frozenset[str],
) -> list[Finding]:
    if account is None or server is None:
        return [_note("Stripe", "not checked: STRIPE_SECRET_KEY is not set")]
    found = [_server(config, server)]
    if server is PaymentServer.UNREACHABLE:
        found.append(_note("Stripe", "key and webhook not checked: nothing answers"))
        return found
    try:
        account.verify_key()
    except GatewayRejected as exc:
        found.append(
            _problem(
                "Stripe secret key",
                f"{exc}; copy the secret key again from {_DASHBOARD_KEYS} (a restricted key "
                "needs write access to PaymentIntents and read access to Events and Webhook "
                "Endpoints)",
            )
        )
        return found
    except BuyTokensError as exc:
        found.append(_problem("Stripe", f"{exc}; check this machine's network and proxy"))
        return found
    mode = config.secret_key.mode if config.secret_key is not None else None
    found.append(_ok("Stripe secret key", "accepted" + (f" ({mode.value} mode)" if mode else "")))
    if server is PaymentServer.LOCALSTRIPE:
        found.append(
            _note(
                "Stripe webhook",
                "not checked: localstripe cannot list webhook endpoints; register one with "
                f"POST /_config/webhooks/ID (url ending in {WEBHOOK_PATH}, secret = "
                "STRIPE_WEBHOOK_SECRET), as `buytokens demo` does",
            )
        )
        return found
    try:
        endpoints = account.webhook_endpoints()
    except BuyTokensError as exc:
        found.append(
            _warning(
                "Stripe webhook",
                f"not checked ({exc}); check the endpoint in {_DASHBOARD_WEBHOOKS} by hand",
            )
        )
        return found
    found.extend(check_webhooks(endpoints, required))
    return found


def _server(config: Configuration, server: PaymentServer) -> Finding:
    subject = "STRIPE_API_BASE"
    base = config.api_base or "https://api.stripe.com"
    pinned = f", version {config.api_version} (STRIPE_API_VERSION)" if config.api_version else ""
    if server is PaymentServer.STRIPE:
        return _ok(subject, f"Stripe's API {base}{pinned}")
    if server is PaymentServer.UNREACHABLE:
        return _problem(
            subject,
            f"nothing answers at {base}: start the server it names, or fix the URL, or unset "
            "STRIPE_API_BASE to use Stripe itself",
        )
    if server is PaymentServer.LOCALSTRIPE:
        return _note(
            subject,
            f"{base} is localstripe, a development fake. Payment intents are created in its "
            "2017 API (payment_method_types, no receipt_email) without setting "
            "STRIPE_API_VERSION. It cannot: retry a webhook delivery (it tries each once), "
            f"send events other than {' and '.join(_LOCALSTRIPE_EVENTS)} (refunds, disputes "
            "and cancellations cannot be tried on it), or list webhook endpoints",
        )
    parts = urlsplit(base)
    if parts.scheme != "https" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return _warning(
            subject,
            f"{base} is reached over plain http, so the secret key crosses the network "
            "unencrypted: use https",
        )
    return _note(
        subject,
        f"{base} is not Stripe's API host and not localstripe; it is checked as Stripe "
        f"(a proxy?){pinned}",
    )


def check_webhooks(endpoints: Sequence[WebhookEndpoint], required: frozenset[str]) -> list[Finding]:
    """Whether an enabled endpoint at the webhook route receives every event type required."""
    subject = "Stripe webhook"
    wanted = ", ".join(sorted(required))
    ours = [e for e in endpoints if urlsplit(e.url).path.rstrip("/").endswith(WEBHOOK_PATH)]
    if not ours:
        registered = ", ".join(e.url for e in endpoints) or "none"
        return [
            _problem(
                subject,
                f"no endpoint's URL ends in {WEBHOOK_PATH} (registered: {registered}): add "
                f"https://YOUR-HOST{WEBHOOK_PATH} in {_DASHBOARD_WEBHOOKS} with the events "
                f"{wanted}, and put its signing secret in STRIPE_WEBHOOK_SECRET",
            )
        ]
    verdicts = [(endpoint, _endpoint_fault(endpoint, required)) for endpoint in ours]
    good = [endpoint for endpoint, fault in verdicts if fault is None]
    found = []
    for endpoint in good:
        every = "every event type" if "*" in endpoint.events else f"all {len(required)} event types"
        found.append(
            _ok(
                subject,
                f"{endpoint.id} {endpoint.url}: enabled, receives {every} buytokens acts on",
            )
        )
    for endpoint, fault in verdicts:
        if fault is not None:
            # With a working endpoint elsewhere, a broken one (an old host?) loses nothing.
            report = _note if good else _problem
            found.append(report(subject, f"{endpoint.id} {endpoint.url}: {fault}"))
    return found


def _endpoint_fault(endpoint: WebhookEndpoint, required: frozenset[str]) -> str | None:
    if not endpoint.enabled:
        return f"disabled, so Stripe sends it nothing: enable it in {_DASHBOARD_WEBHOOKS}"
    if urlsplit(endpoint.url).path.endswith("/"):
        return (
            "the URL ends in a slash, which buytokens answers with a redirect and Stripe counts "
            f"as a failed delivery: change it to end in {WEBHOOK_PATH}"
        )
    missing = sorted(required - endpoint.events) if "*" not in endpoint.events else []
    if missing:
        return (
            f"not subscribed to {', '.join(missing)}: add "
            f"{'this event' if len(missing) == 1 else 'these events'} to the endpoint in "
            f"{_DASHBOARD_WEBHOOKS}"
        )
    return None


def _plural(count: int, noun: str) -> str:
    if count == 0:
        return ""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _ok(subject: str, message: str) -> Finding:
    return Finding(Status.OK, subject, message)


def _note(subject: str, message: str) -> Finding:
    return Finding(Status.NOTE, subject, message)


def _warning(subject: str, message: str) -> Finding:
    return Finding(Status.WARNING, subject, message)


def _problem(subject: str, message: str) -> Finding:
    return Finding(Status.PROBLEM, subject, message)
