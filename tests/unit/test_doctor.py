"""The set-up checks of ``buytokens doctor`` and their wording, on in-memory fakes."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from buytokens.adapters.memory_diagnostics import FixedStoreInspector, MemoryPaymentAccount
from buytokens.adapters.stripe_events import HANDLED_EVENT_TYPES
from buytokens.domain.catalogue import DEFAULT_CATALOGUE, Catalogue
from buytokens.domain.errors import GatewayRejected, GatewayUnavailable, InvalidCatalogue
from buytokens.ports.diagnostics import (
    DuplicateBalance,
    MongoState,
    PaymentServer,
    SqliteState,
    WebhookEndpoint,
)
from buytokens.services.doctor.diagnosis import diagnose
from buytokens.services.doctor.environment import Configuration, KeyKind, KeyRole, Mode
from buytokens.services.doctor.report import DoctorReport, Status
from buytokens.services.doctor.stripe_checks import WEBHOOK_PATH, check_webhooks

SECRETS = {
    "jwt_secret": "jwt-0b7e4c1d9a",
    "secret_key": "sk_test_51Hq8XAbCdEfGhIjKl",
    "webhook_secret": "whsec_Zx9Yw8Vu7Ts6",
    "publishable_key": "pk_test_51Hq8XMnOpQrStUv",
}
URL = f"https://chat.example.com{WEBHOOK_PATH}"
SQLITE_OK = SqliteState("/srv/buytokens.sqlite3", True, True, True, 3, 3)
MONGO_OK = MongoState(
    "LibreChat",
    None,
    frozenset({"users", "balances", "transactions"}),
    unique_user_index=True,
    buytokens_indexes=True,
)


def endpoint(
    events: Iterable[str] = HANDLED_EVENT_TYPES, *, url: str = URL, enabled: bool = True
) -> WebhookEndpoint:
    """A registered endpoint, by default the right one."""
    return WebhookEndpoint("we_1", url, enabled, frozenset(events))


def config(**changes: str | None) -> Configuration:
    """The configuration of a good set-up, with some values changed or removed (None)."""
    values: dict[str, str | None] = {**SECRETS, **changes}
    return Configuration.from_values(
        jwt_secret=values["jwt_secret"],
        secret_key=values["secret_key"],
        webhook_secret=values["webhook_secret"],
        publishable_key=values["publishable_key"],
        api_base=values.get("api_base"),
    )


def run(
    configuration: Configuration | None = None,
    *,
    store: SqliteState | MongoState = SQLITE_OK,
    account: MemoryPaymentAccount | None = None,
    catalogue: Catalogue | Exception = DEFAULT_CATALOGUE,
) -> DoctorReport:
    """Diagnose with the fakes; a good set-up unless told otherwise."""

    def load() -> Catalogue:
        if isinstance(catalogue, Exception):
            raise catalogue
        return catalogue

    return diagnose(
        configuration or config(),
        FixedStoreInspector(store),
        account if account is not None else MemoryPaymentAccount(endpoints=[endpoint()]),
        HANDLED_EVENT_TYPES,
        load,
    )


def statuses(report: DoctorReport, subject: str) -> list[Status]:
    """The statuses of the findings about one subject."""
    return [f.status for f in report.findings if f.subject == subject]


def only(report: DoctorReport, subject: str) -> str:
    """The one message about ``subject``."""
    [message] = [f.message for f in report.findings if f.subject == subject]
    return message


def test_a_good_setup_is_ready_with_every_line_ok() -> None:
    """Everything set and right: every check ok, and the summary says nothing is to fix."""
    report = run()
    assert report.ready
    assert {f.status for f in report.findings} == {Status.OK}
    assert report.lines()[-1] == "buytokens is set up: nothing to fix."


@pytest.mark.parametrize(
    ("field", "variable"),
    [
        ("jwt_secret", "JWT_SECRET"),
        ("secret_key", "STRIPE_SECRET_KEY"),
        ("webhook_secret", "STRIPE_WEBHOOK_SECRET"),
        ("publishable_key", "STRIPE_PUBLISHABLE_KEY"),
    ],
)
def test_each_missing_variable_is_a_problem_naming_it(field: str, variable: str) -> None:
    """An unset required variable is a problem line that names it and says what to set."""
    report = run(config(**{field: None}))
    assert not report.ready
    assert statuses(report, variable) == [Status.PROBLEM]
    assert only(report, variable).startswith("not set")
    assert report.lines()[-1].startswith("1 problem:")


def test_without_a_secret_key_stripe_is_not_asked() -> None:
    """No key, no account: the Stripe checks are skipped with a note, not an error."""
    report = diagnose(
        config(secret_key=None),
        FixedStoreInspector(SQLITE_OK),
        None,
        HANDLED_EVENT_TYPES,
        lambda: DEFAULT_CATALOGUE,
    )
    assert statuses(report, "Stripe") == [Status.NOTE]
    assert statuses(report, "STRIPE_SECRET_KEY") == [Status.PROBLEM]


def test_key_kinds_are_read_from_their_prefix_only() -> None:
    """The role and mode come from the public prefix; the key is not kept."""
    kind = KeyKind.of("rk_live_abcdef")
    assert (kind.role, kind.mode, kind.prefix) == (KeyRole.RESTRICTED, Mode.LIVE, "rk_live_")
    assert KeyKind.of("whatever").role is KeyRole.UNKNOWN
    assert "abcdef" not in repr(kind)


def test_a_publishable_key_in_the_secret_variable_is_a_problem() -> None:
    """pk_ in STRIPE_SECRET_KEY: the line says it is the publishable key."""
    report = run(config(secret_key="pk_test_abc"))
    assert "holds a publishable key" in only(report, "STRIPE_SECRET_KEY")
    assert statuses(report, "Stripe mode") == []


def test_a_secret_key_in_the_publishable_variable_is_a_problem() -> None:
    """sk_ in STRIPE_PUBLISHABLE_KEY would reach every browser: a problem that says so."""
    report = run(config(publishable_key="sk_test_abc"))
    message = only(report, "STRIPE_PUBLISHABLE_KEY")
    assert "every visitor" in message
    assert "roll the secret key" in message


def test_keys_of_different_modes_are_a_problem() -> None:
    """A live secret key with a test publishable key cannot work together."""
    report = run(config(secret_key="sk_live_abc"))
    assert statuses(report, "Stripe mode") == [Status.PROBLEM]
    assert "live-mode" in only(report, "Stripe mode")


def test_the_expected_mode_is_enforced() -> None:
    """--mode live with test keys is a problem; with live keys it is fine."""
    test_keys = Configuration.from_values(**SECRETS, expected_mode=Mode.LIVE)
    assert statuses(run(test_keys), "Stripe mode") == [Status.PROBLEM]
    live_keys = Configuration.from_values(
        **{**SECRETS, "secret_key": "sk_live_x", "publishable_key": "pk_live_y"},
        expected_mode=Mode.LIVE,
    )
    assert statuses(run(live_keys), "Stripe mode") == [Status.OK]


def test_a_webhook_secret_that_is_not_a_signing_secret_is_a_problem() -> None:
    """An API key or a value without whsec_ in STRIPE_WEBHOOK_SECRET is called out."""
    assert "API key" in only(run(config(webhook_secret="sk_test_x")), "STRIPE_WEBHOOK_SECRET")
    assert "whsec_" in only(run(config(webhook_secret="abc123")), "STRIPE_WEBHOOK_SECRET")


def test_a_refused_key_is_a_problem_and_the_webhook_is_not_asked() -> None:
    """A key Stripe refuses: one problem line; the webhook check does not run on it."""
    account = MemoryPaymentAccount(
        key_error=GatewayRejected("Stripe refused to accept the secret key: it is invalid"),
        endpoints_error=AssertionError("must not be asked"),  # type: ignore[arg-type]
    )
    report = run(account=account)
    assert statuses(report, "Stripe secret key") == [Status.PROBLEM]
    assert "copy the secret key again" in only(report, "Stripe secret key")
    assert statuses(report, "Stripe webhook") == []


def test_an_unreachable_stripe_is_a_problem() -> None:
    """Stripe timing out is a problem that points at the network."""
    account = MemoryPaymentAccount(key_error=GatewayUnavailable("Stripe could not ..."))
    report = run(account=account)
    assert statuses(report, "Stripe") == [Status.PROBLEM]


def test_nothing_answering_at_the_api_base_is_a_problem() -> None:
    """STRIPE_API_BASE that nobody answers: a problem naming the URL; nothing else is asked."""
    account = MemoryPaymentAccount(
        PaymentServer.UNREACHABLE,
        key_error=AssertionError("must not be asked"),  # type: ignore[arg-type]
    )
    report = run(config(api_base="http://127.0.0.1:9"), account=account)
    assert statuses(report, "STRIPE_API_BASE") == [Status.PROBLEM]
    assert "http://127.0.0.1:9" in only(report, "STRIPE_API_BASE")


def test_localstripe_is_explained_not_failed() -> None:
    """On localstripe the report is ready, and says what localstripe cannot do."""
    account = MemoryPaymentAccount(
        PaymentServer.LOCALSTRIPE,
        endpoints_error=AssertionError("must not be asked"),  # type: ignore[arg-type]
    )
    report = run(
        config(api_base="http://127.0.0.1:8420", webhook_secret="anything"), account=account
    )
    assert report.ready
    message = only(report, "STRIPE_API_BASE")
    assert "localstripe" in message
    assert "2017" in message
    assert "retry" in message
    assert "refunds, disputes" in message
    assert statuses(report, "Stripe webhook") == [Status.NOTE]


def test_a_live_key_sent_to_localstripe_is_a_problem() -> None:
    """Live keys belong to Stripe; sending one to localstripe is called out."""
    account = MemoryPaymentAccount(PaymentServer.LOCALSTRIPE)
    live = config(
        secret_key="sk_live_x", publishable_key="pk_live_y", api_base="http://127.0.0.1:1"
    )
    assert statuses(run(live, account=account), "Stripe mode") == [Status.PROBLEM]


def test_another_host_over_plain_http_is_a_warning() -> None:
    """A non-loopback http API base would send the key in clear text."""
    account = MemoryPaymentAccount(PaymentServer.OTHER, endpoints=[endpoint()])
    report = run(config(api_base="http://stripe-proxy.internal"), account=account)
    assert statuses(report, "STRIPE_API_BASE") == [Status.WARNING]
    assert not report.ready


# -- the webhook endpoint ----------------------------------------------------------


def test_no_endpoint_at_the_webhook_path_is_a_problem_listing_what_to_subscribe() -> None:
    """Endpoints elsewhere only: the problem names them and every event type to add."""
    [finding] = check_webhooks(
        [endpoint(url="https://other.example.com/hook")], HANDLED_EVENT_TYPES
    )
    assert finding.status is Status.PROBLEM
    assert "https://other.example.com/hook" in finding.message
    assert all(event in finding.message for event in HANDLED_EVENT_TYPES)


@pytest.mark.parametrize("missing", sorted(HANDLED_EVENT_TYPES))
def test_an_endpoint_missing_any_handled_event_is_a_problem_naming_it(missing: str) -> None:
    """Every type the event translation acts on is required; the missing one is named."""
    [finding] = check_webhooks([endpoint(HANDLED_EVENT_TYPES - {missing})], HANDLED_EVENT_TYPES)
    assert finding.status is Status.PROBLEM
    assert f"not subscribed to {missing}:" in finding.message


def test_a_disabled_endpoint_is_a_problem() -> None:
    """Stripe sends nothing to a disabled endpoint."""
    [finding] = check_webhooks([endpoint(enabled=False)], HANDLED_EVENT_TYPES)
    assert finding.status is Status.PROBLEM
    assert "disabled" in finding.message


def test_a_trailing_slash_is_a_problem() -> None:
    """The route answers a trailing slash with a redirect, which Stripe does not follow."""
    [finding] = check_webhooks([endpoint(url=URL + "/")], HANDLED_EVENT_TYPES)
    assert finding.status is Status.PROBLEM
    assert "slash" in finding.message


def test_an_endpoint_for_every_event_type_is_fine() -> None:
    """The wildcard subscription covers every type."""
    [finding] = check_webhooks([endpoint({"*"})], HANDLED_EVENT_TYPES)
    assert finding.status is Status.OK


def test_a_broken_endpoint_beside_a_working_one_is_only_a_note() -> None:
    """An old disabled endpoint loses nothing while a working one receives every event."""
    findings = check_webhooks(
        [endpoint(), endpoint(url=f"https://old.example.com{WEBHOOK_PATH}", enabled=False)],
        HANDLED_EVENT_TYPES,
    )
    assert [f.status for f in findings] == [Status.OK, Status.NOTE]


def test_endpoints_that_cannot_be_listed_are_a_warning() -> None:
    """A restricted key without the permission: check by hand, and the exit says so."""
    account = MemoryPaymentAccount(endpoints_error=GatewayRejected("lacks permission"))
    report = run(account=account)
    assert statuses(report, "Stripe webhook") == [Status.WARNING]
    assert not report.ready


# -- the store ---------------------------------------------------------------------


def test_sqlite_states_are_worded_with_what_to_do() -> None:
    """Missing directory, unwritable, newer schema, not a database: problems; fresh: a note."""
    base = {
        "path": "/srv/x.sqlite3",
        "exists": True,
        "directory_exists": True,
        "writable": True,
        "schema_version": 3,
        "current_version": 3,
    }
    cases = {
        "does not exist; create it": (
            Status.PROBLEM,
            {"exists": False, "directory_exists": False, "schema_version": None},
        ),
        "may not write to": (
            Status.PROBLEM,
            {"exists": False, "writable": False, "schema_version": None},
        ),
        "creates it at first use": (Status.NOTE, {"exists": False, "schema_version": None}),
        "upgrade buytokens": (Status.PROBLEM, {"schema_version": 4}),
        "migrates it to 3": (Status.NOTE, {"schema_version": 2}),
        "-wal and -shm": (Status.PROBLEM, {"writable": False}),
        "not a readable SQLite database": (
            Status.PROBLEM,
            {"schema_version": None, "error": "file is not a database"},
        ),
        "(current)": (Status.OK, {}),
    }
    for phrase, (status, changes) in cases.items():
        state = SqliteState(**{**base, **changes})  # type: ignore[arg-type]
        [finding] = [f for f in run(store=state).findings if f.subject == "store"]
        assert (finding.status, phrase in finding.message) == (status, True), (phrase, finding)


def test_an_unreachable_mongodb_is_a_problem() -> None:
    """The reason is kept and the line says what to check."""
    report = run(store=MongoState("LibreChat", "127.0.0.1:9: Connection refused"))
    message = only(report, "MongoDB LibreChat")
    assert "Connection refused" in message
    assert "MONGODB_URI" in message
    assert not report.ready


def test_a_database_without_users_is_a_warning_about_the_database_name() -> None:
    """No users collection: probably not LibreChat's database."""
    state = MongoState("test", None, frozenset({"balances"}), unique_user_index=True)
    report = run(store=state)
    [collections] = [
        f for f in report.findings if f.subject == "MongoDB test" and "users" in f.message
    ]
    assert collections.status is Status.WARNING
    assert "LibreChat's database" in collections.message
    assert not report.ready


def test_duplicate_balances_are_one_problem_per_user_with_how_to_merge() -> None:
    """Each user with several balance documents: ids, credits, and the merge steps."""
    duplicates = (
        DuplicateBalance("u1", ("a1", "a2"), (300.0, 200.0)),
        DuplicateBalance("u2", ("b1", "b2", "b3"), (1.0, 2.0, 3.0)),
    )
    state = MongoState(
        "LibreChat", None, MONGO_OK.collections, buytokens_indexes=True, duplicates=duplicates
    )
    report = run(store=state)
    lines = [f for f in report.findings if f.subject == "MongoDB LibreChat balances"]
    assert [f.status for f in lines] == [Status.PROBLEM, Status.PROBLEM]
    assert "user u1 has 2 balance documents [a1 (300), a2 (200)]" in lines[0].message
    assert "together 500" in lines[0].message
    assert "b3" in lines[1].message


def test_the_missing_unique_index_before_and_after_buytokens_ran() -> None:
    """Not yet created: a note; missing after buytokens started here: a problem."""
    fresh = MongoState("LibreChat", None, MONGO_OK.collections)
    assert statuses(run(store=fresh), "MongoDB LibreChat balances") == [Status.NOTE]
    refused = MongoState("LibreChat", None, MONGO_OK.collections, buytokens_indexes=True)
    assert statuses(run(store=refused), "MongoDB LibreChat balances") == [Status.PROBLEM]
    assert statuses(run(store=MONGO_OK), "MongoDB LibreChat balances") == [Status.OK]


def test_a_broken_catalogue_is_a_problem_with_the_loader_message() -> None:
    """The catalogue file's own error is kept."""
    report = run(
        catalogue=InvalidCatalogue("cat.toml: packages.x.tokens must be positive", field="tokens")
    )
    assert "packages.x.tokens must be positive" in only(report, "BUYTOKENS_CATALOGUE")


# -- secrets -------------------------------------------------------------------------


def test_no_secret_appears_in_any_report() -> None:
    """Whatever goes wrong, the printed lines never hold a secret value."""
    reports = [
        run(),
        run(config(secret_key=SECRETS["publishable_key"], publishable_key=SECRETS["secret_key"])),
        run(config(webhook_secret=SECRETS["secret_key"])),
        run(account=MemoryPaymentAccount(key_error=GatewayRejected("refused"))),
    ]
    text = "\n".join(line for report in reports for line in report.lines())
    for secret in SECRETS.values():
        assert secret not in text
        assert secret[8:] not in text
