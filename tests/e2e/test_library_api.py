"""The library API as another Python service uses it: ``buytokens.BuyTokens`` and its results."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from buytokens import (
    BuyTokens,
    ConfigurationError,
    Disposition,
    EntryKind,
    EventOutcome,
    IdempotencyConflict,
    InvalidWebhook,
    Money,
    NotFound,
    OperatorError,
    PurchaseStatus,
    StripeSettings,
    UnknownPackage,
    UserError,
)
from buytokens.entrypoints.container import create_container
from buytokens.entrypoints.settings import Settings
from buytokens.testing import FixedClock, InMemoryPaymentGateway

WEBHOOK_SECRET = "whsec_library_test_0123456789"


@pytest.fixture
def clock() -> FixedClock:
    """Time for both the store and the Stripe twin."""
    return FixedClock()


@pytest.fixture
def twin(clock: FixedClock) -> InMemoryPaymentGateway:
    """The in-memory Stripe, signing webhooks with WEBHOOK_SECRET."""
    return InMemoryPaymentGateway(webhook_secret=WEBHOOK_SECRET, clock=clock)


@pytest.fixture(params=["memory", "sqlite", "mongomock"])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each kind of store the library opens from a URI."""
    return {
        "memory": "memory://",
        "sqlite": str(tmp_path / "library.sqlite3"),
        "mongomock": f"mongomock://localhost/library{id(request)}",
    }[request.param]


@pytest.fixture
def shop(store_uri: str, twin: InMemoryPaymentGateway, clock: FixedClock) -> Iterator[BuyTokens]:
    """A deployment on each store, paid through the twin."""
    with BuyTokens(store_uri, gateway=twin, clock=clock) as opened:
        yield opened


def _deliver(shop: BuyTokens, twin: InMemoryPaymentGateway, event: dict[str, Any]) -> EventOutcome:
    body, signature = twin.signed_webhook(event)
    return shop.handle_webhook(body, signature)


def test_a_paid_intent_credits_its_package_once_on_every_store(
    shop: BuyTokens, twin: InMemoryPaymentGateway
) -> None:
    """Webhook, redelivery, queued copy and return-page check together credit exactly once."""
    intent = shop.create_payment_intent("alice", "package_500k")
    assert intent.amount == Money(3500, "cny")
    paid = twin.succeed(intent.id)

    first = _deliver(shop, twin, paid)
    assert (first.disposition, first.status, first.payment_intent_id) == (
        Disposition.APPLIED,
        PurchaseStatus.SUCCEEDED,
        intent.id,
    )
    assert [(e.kind, e.applied) for e in first.entries] == [(EntryKind.PURCHASE, 500_000)]
    assert _deliver(shop, twin, paid).disposition is Disposition.DUPLICATE
    assert shop.apply_stripe_event(json.loads(json.dumps(paid))).entries == ()
    check = shop.check_payment_intent("alice", intent.id)
    assert (check.status, check.token_credits) == (PurchaseStatus.SUCCEEDED, 500_000)

    history = shop.history("alice")
    assert [(p.payment_intent_id, p.status, p.price) for p in history.purchases] == [
        (intent.id, PurchaseStatus.SUCCEEDED, Money(3500, "cny"))
    ]
    assert [e.balance_after for e in history.ledger] == [500_000]
    assert shop.balance("alice") == 500_000


def test_refunds_and_grants_follow_the_ledger_rules(
    shop: BuyTokens, twin: InMemoryPaymentGateway
) -> None:
    """A refund takes the tokens back; a deduction stops at zero and records the shortfall."""
    intent = shop.create_payment_intent("bob", "package_100k")
    shop.apply_stripe_event(twin.succeed(intent.id))
    shop.grant("bob", -40_000, reason="spent elsewhere")
    refund = shop.apply_stripe_event(twin.refund(intent.id))
    assert [(e.kind, e.requested, e.applied, e.shortfall) for e in refund.entries] == [
        (EntryKind.REFUND, -100_000, -60_000, 40_000)
    ]
    assert shop.balance("bob") == 0
    once = shop.grant("bob", 5, reason="sorry", key="apology-1")
    assert shop.grant("bob", 5, reason="sorry", key="apology-1") == once
    assert shop.balance("bob") == 5


def test_concurrent_deliveries_of_one_event_credit_once(
    tmp_path: Path, twin: InMemoryPaymentGateway, clock: FixedClock
) -> None:
    """One instance shared by eight threads delivering the same event: one credit, the rest
    duplicates."""
    with BuyTokens(tmp_path / "shared.sqlite3", gateway=twin, clock=clock) as shop:
        intent = shop.create_payment_intent("carol", "package_1m")
        body, signature = twin.signed_webhook(twin.succeed(intent.id))
        start = threading.Barrier(8)
        outcomes: list[Disposition] = []

        def deliver() -> None:
            start.wait()
            outcomes.append(shop.handle_webhook(body, signature).disposition)

        threads = [threading.Thread(target=deliver) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == [Disposition.APPLIED] + [Disposition.DUPLICATE] * 7
        assert shop.balance("carol") == 1_000_000


def test_a_webhook_outcome_is_durable_when_the_call_returns(
    tmp_path: Path, twin: InMemoryPaymentGateway, clock: FixedClock
) -> None:
    """Another connection to the SQLite file sees the credit as soon as handle_webhook returns."""
    path = tmp_path / "durable.sqlite3"
    with BuyTokens(path, gateway=twin, clock=clock) as shop, BuyTokens(path) as reader:
        intent = shop.create_payment_intent("dave", "package_100k")
        _deliver(shop, twin, twin.succeed(intent.id))
        assert reader.balance("dave") == 100_000
    with BuyTokens(f"sqlite://{path}") as reopened:
        assert reopened.balance("dave") == 100_000


def test_stripe_settings_verify_webhooks_with_the_sdk(
    tmp_path: Path, twin: InMemoryPaymentGateway
) -> None:
    """With Stripe settings a genuine signature is applied and a forged one refused;
    without a secret key payments are refused, without a webhook secret every webhook is."""
    intent = twin.intent_json(_twin_intent(twin))
    paid = twin.succeed(intent["id"])
    body, signature = twin.signed_webhook(paid)
    forged_body, forged = twin.signed_webhook(paid, secret="whsec_someone_else")
    for settings in (
        StripeSettings(secret_key="sk_test_unused", webhook_secret=WEBHOOK_SECRET),
        StripeSettings(webhook_secret=WEBHOOK_SECRET),
    ):
        with BuyTokens(stripe=settings) as shop:
            with pytest.raises(InvalidWebhook):
                shop.handle_webhook(forged_body, forged)
            assert shop.balance("erin") == 0
            assert shop.handle_webhook(body.decode(), signature).disposition is Disposition.APPLIED
            assert shop.balance("erin") == 100_000
    with BuyTokens(stripe=StripeSettings(webhook_secret=WEBHOOK_SECRET)) as shop:
        with pytest.raises(ConfigurationError, match="STRIPE_SECRET_KEY") as refused:
            shop.create_payment_intent("erin", "package_100k")
        assert refused.value.code == "payments_not_configured"
    unsigned = BuyTokens(stripe=StripeSettings(secret_key="sk_test_unused"))
    with unsigned, pytest.raises(InvalidWebhook, match="no webhook signing secret"):
        unsigned.handle_webhook(body, signature)


def test_blank_stripe_settings_count_as_unset(twin: InMemoryPaymentGateway) -> None:
    """An empty key or secret (a blank variable in a config file) fails closed, as unset does."""
    body, signature = twin.signed_webhook(twin.succeed(_twin_intent(twin)))
    with BuyTokens(stripe=StripeSettings(secret_key="", webhook_secret="  ")) as shop:
        with pytest.raises(ConfigurationError, match="STRIPE_SECRET_KEY"):
            shop.create_payment_intent("erin", "package_100k")
        with pytest.raises(InvalidWebhook, match="no webhook signing secret"):
            shop.handle_webhook(body, signature)


def _twin_intent(twin: InMemoryPaymentGateway) -> str:
    with BuyTokens(gateway=twin) as other:
        return other.create_payment_intent("erin", "package_100k").id


def test_from_env_opens_what_serve_opens(tmp_path: Path) -> None:
    """The environment's SQLite file and catalogue are the ones the web app's container uses."""
    catalogue = tmp_path / "catalogue.toml"
    catalogue.write_text(
        'currency = "usd"\n\n[[packages]]\nid = "starter"\nlabel = "Starter"\n'
        "tokens = 1000\namount = 500\n",
        encoding="utf-8",
    )
    environ = {
        "BUYTOKENS_SQLITE_PATH": str(tmp_path / "env.sqlite3"),
        "BUYTOKENS_CATALOGUE": str(catalogue),
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    with BuyTokens.from_env(environ) as shop:
        assert [(p.id, p.price) for p in shop.catalogue] == [("starter", Money(500, "usd"))]
        shop.grant("frank", 7, reason="through the library")
        catalogue_opened = shop.catalogue
    container = create_container(Settings.from_env(environ))
    try:
        assert container.store().balance("frank") == 7
        assert container.catalogue() == catalogue_opened
    finally:
        container.stores().close()


@pytest.mark.parametrize(
    ("store", "problem"),
    [
        ("", "memory://, a SQLite path or a MongoDB URI"),
        ("postgres://db/buytokens", "unsupported store scheme 'postgres'"),
        ("sqlite://", "needs a file path"),
        ("mysql://x", "unsupported store scheme"),
    ],
)
def test_an_unusable_store_is_refused_with_a_clear_error(store: str, problem: str) -> None:
    """A store the library cannot open raises ConfigurationError saying which forms it takes."""
    with pytest.raises(ConfigurationError, match=problem):
        BuyTokens(store)


def test_stripe_settings_and_a_gateway_together_are_refused(twin: InMemoryPaymentGateway) -> None:
    """Two sources for Stripe are a configuration error, raised before anything opens."""
    with pytest.raises(ConfigurationError, match="not both"):
        BuyTokens(stripe=StripeSettings(), gateway=twin)


def test_bad_input_gets_a_user_error(shop: BuyTokens, twin: InMemoryPaymentGateway) -> None:
    """Empty ids, non-integer tokens, absurd limits, non-bytes bodies and non-events are refused."""
    with pytest.raises(UserError, match="user id"):
        shop.balance("")
    with pytest.raises(UserError, match="user id"):
        shop.create_payment_intent(None, "package_100k")  # type: ignore[arg-type]
    with pytest.raises(UnknownPackage):
        shop.create_payment_intent("gina", "package_free")
    with pytest.raises(UserError, match="whole number"):
        shop.grant("gina", 1.5, reason="x")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="zero"):
        shop.grant("gina", 0, reason="x")
    with pytest.raises(UserError, match="reason"):
        shop.grant("gina", 1, reason=" ")
    with pytest.raises(UserError, match="limit"):
        shop.history("gina", limit=0)
    with pytest.raises(UserError, match="raw request body"):
        shop.handle_webhook({"id": "evt"}, "t=1,v1=x")  # type: ignore[arg-type]
    with pytest.raises(InvalidWebhook):
        shop.apply_stripe_event({"id": "evt_1", "type": "payment_intent.succeeded"})
    with pytest.raises(UserError, match="future"):
        shop.reconcile(timedelta(days=-1))
    with pytest.raises(UserError, match="30 days"):
        shop.reconcile(timedelta(days=45))


def test_intents_are_private_to_their_buyer_and_keys_are_idempotent(
    shop: BuyTokens, twin: InMemoryPaymentGateway
) -> None:
    """Another user's intent does not exist for them; a key returns the same intent, and a key
    reused for another package conflicts."""
    intent = shop.create_payment_intent("hana", "package_500k", idempotency_key="order-1")
    assert shop.create_payment_intent("hana", "package_500k", idempotency_key="order-1") == intent
    with pytest.raises(IdempotencyConflict) as conflict:
        shop.create_payment_intent("hana", "package_1m", idempotency_key="order-1")
    assert conflict.value.message == (
        "this Idempotency-Key was already used for a different request (package_500k/card)"
    )
    with pytest.raises(NotFound):
        shop.check_payment_intent("ivan", intent.id)
    assert shop.check_payment_intent("hana", intent.id).status is PurchaseStatus.PENDING


def test_reconcile_applies_what_no_webhook_delivered(
    shop: BuyTokens, twin: InMemoryPaymentGateway, clock: FixedClock
) -> None:
    """An event Stripe has but no webhook brought is applied by reconcile, once."""
    intent = shop.create_payment_intent("judy", "package_100k")
    twin.succeed(intent.id)
    clock.advance(timedelta(minutes=10))
    report = shop.reconcile(timedelta(hours=1))
    assert (report.applied, report.complete) == (1, True)
    assert shop.reconcile(timedelta(hours=1)).applied == 0
    assert shop.balance("judy") == 100_000


def test_a_closed_instance_refuses_every_call(tmp_path: Path) -> None:
    """After close (idempotent) every use case raises OperatorError, not a stale connection."""
    shop = BuyTokens(tmp_path / "closed.sqlite3")
    shop.close()
    shop.close()
    for call in (lambda: shop.balance("kim"), lambda: shop.catalogue, shop.reconcile):
        with pytest.raises(OperatorError, match="closed") as closed:
            call()
        assert closed.value.code == "closed"
    assert repr(shop) == "<BuyTokens closed>"


def test_no_secret_or_store_uri_shows_in_a_repr(tmp_path: Path) -> None:
    """Stripe keys and a MongoDB URI's password never reach a repr (and so a log)."""
    settings = StripeSettings(secret_key="sk_live_topsecret", webhook_secret="whsec_topsecret")
    with BuyTokens("mongomock://admin:hunter2@localhost/x", stripe=settings) as shop:
        shown = repr(settings) + repr(shop)
    assert "topsecret" not in shown
    assert "hunter2" not in shown
    assert "secret_key" in shown
