"""Catalogues in other currencies: USD in cents with crypto offered, JPY in whole yen."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from fastapi.testclient import TestClient

from buytokens.entrypoints.container import create_container
from buytokens.entrypoints.web.app import create_app
from buytokens.testing.stripe_twin import InMemoryPaymentGateway
from tests.e2e.conftest import WEBHOOK_SECRET, Stack, auth, settings_for

USD_CATALOGUE = """
currency = "usd"

[[packages]]
id = "starter"
label = "Starter"
tokens = 100000
amount = 199              # $1.99

[[packages]]
id = "bulk"
label = "Bulk"
tokens = 1000000
amount = 1499             # $14.99
original_amount = 1999
popular = true
"""

JPY_CATALOGUE = """
currency = "jpy"

[[packages]]
id = "starter"
label = "Starter"
tokens = 100000
amount = 300              # ¥300: yen have no minor unit

[[packages]]
id = "bulk"
label = "Bulk"
tokens = 1000000
amount = 2200
original_amount = 3000
"""

CREATE = "/api/custom/stripe/create-payment-intent"


@pytest.fixture(params=["sqlite", "mongomock"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """Which store the app runs on."""
    return str(request.param)


def _stack(tmp_path: Path, store_kind: str, catalogue: str) -> Iterator[Stack]:
    path = tmp_path / "catalogue.toml"
    path.write_text(catalogue, encoding="utf-8")
    mongo = (
        {"mongodb_uri": f"mongomock://localhost/c{id(path)}"} if store_kind == "mongomock" else {}
    )
    container = create_container(settings_for(tmp_path, catalogue_path=str(path), **mongo))
    gateway = InMemoryPaymentGateway(webhook_secret=WEBHOOK_SECRET)
    container.gateway.override(providers.Object(gateway))
    with TestClient(create_app(container), raise_server_exceptions=False) as client:
        yield Stack(client, gateway, container)
    container.gateway.reset_override()


@pytest.fixture
def usd(tmp_path: Path, store_kind: str) -> Iterator[Stack]:
    """The app selling the USD catalogue."""
    yield from _stack(tmp_path, store_kind, USD_CATALOGUE)


@pytest.fixture
def jpy(tmp_path: Path, store_kind: str) -> Iterator[Stack]:
    """The app selling the JPY catalogue."""
    yield from _stack(tmp_path, store_kind, JPY_CATALOGUE)


def _create(stack: Stack, package: str, method: str) -> Any:
    return stack.client.post(
        CREATE, json={"packageId": package, "paymentMethod": method}, headers=auth("alice")
    )


# -- USD --------------------------------------------------------------------------------------


def test_a_usd_catalogue_lists_its_packages_in_cents(usd: Stack) -> None:
    """The packages route says usd and gives every amount in cents."""
    body = usd.client.get("/api/custom/stripe/packages").json()
    assert body["currency"] == "usd"
    assert [(p["id"], p["amount"], p["originalAmount"]) for p in body["packages"]] == [
        ("starter", 199, 199),
        ("bulk", 1499, 1999),
    ]
    assert body["packages"][1]["discountPercent"] == 25


def test_a_usd_catalogue_offers_crypto(usd: Stack) -> None:
    """Stablecoin payments are USD-only, so a USD catalogue offers them beside the others."""
    body = usd.client.get("/api/custom/stripe/payment-methods", headers=auth("alice")).json()
    assert body["paymentMethods"] == ["card", "alipay", "wechat_pay", "crypto"]


def test_paying_a_usd_package_with_crypto_credits_it(usd: Stack) -> None:
    """The crypto intent is for the package's cents, and its success credits the tokens."""
    response = _create(usd, "bulk", "crypto")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["amount"], body["currency"]) == (1499, "usd")
    intent = usd.gateway.intent_json(body["paymentIntentId"])
    assert (intent["amount"], intent["currency"]) == (1499, "usd")
    assert intent["payment_method_types"] == ["crypto"]

    assert usd.deliver(usd.gateway.succeed(body["paymentIntentId"])).json()["outcome"] == "applied"

    assert usd.balance("alice") == 1_000_000


def test_a_usd_success_for_dollars_instead_of_cents_is_flagged(usd: Stack) -> None:
    """14.99 read as 14 cents (or any other amount) credits nothing and awaits review."""
    pi = _create(usd, "bulk", "card").json()["paymentIntentId"]
    event = usd.gateway.succeed(pi)
    event["id"] += "_dollars"
    event["data"]["object"]["amount"] = 14

    assert usd.deliver(event).json()["outcome"] == "needs_review"
    assert usd.balance("alice") == 0


# -- JPY --------------------------------------------------------------------------------------


def test_a_jpy_catalogue_keeps_whole_yen(jpy: Stack) -> None:
    """Zero-decimal yen are sent to Stripe as they are, never multiplied by 100."""
    packages = jpy.client.get("/api/custom/stripe/packages").json()
    assert packages["currency"] == "jpy"
    assert [p["amount"] for p in packages["packages"]] == [300, 2200]

    body = _create(jpy, "bulk", "card").json()
    assert (body["amount"], body["currency"]) == (2200, "jpy")
    assert jpy.gateway.intent_json(body["paymentIntentId"])["amount"] == 2200

    assert jpy.deliver(jpy.gateway.succeed(body["paymentIntentId"])).json()["outcome"] == "applied"
    assert jpy.balance("alice") == 1_000_000


def test_a_jpy_catalogue_offers_wallets_but_not_crypto(jpy: Stack) -> None:
    """Alipay and WeChat Pay take yen; crypto is refused as unsupported."""
    methods = jpy.client.get("/api/custom/stripe/payment-methods", headers=auth("alice")).json()
    assert methods["paymentMethods"] == ["card", "alipay", "wechat_pay"]

    refused = _create(jpy, "starter", "crypto")

    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "unsupported_payment_method"


def test_a_jpy_success_for_a_hundred_times_the_price_is_flagged(jpy: Stack) -> None:
    """An amount scaled as if yen had cents does not match the package and credits nothing."""
    pi = _create(jpy, "starter", "card").json()["paymentIntentId"]
    event = jpy.gateway.succeed(pi)
    event["id"] += "_scaled"
    event["data"]["object"]["amount"] = 30_000

    assert jpy.deliver(event).json()["outcome"] == "needs_review"
    assert jpy.balance("alice") == 0


# -- the exponent the page formats with ------------------------------------------------------


@pytest.mark.parametrize(("catalogue", "exponent"), [(USD_CATALOGUE, 2), (JPY_CATALOGUE, 0)])
def test_every_amount_comes_with_the_exponent_stripe_reads_it_with(
    tmp_path: Path, store_kind: str, catalogue: str, exponent: int
) -> None:
    """Packages, a new intent and the purchase list say how many decimals the amounts have."""
    for stack in _stack(tmp_path, store_kind, catalogue):
        assert stack.client.get("/api/custom/stripe/packages").json()["exponent"] == exponent
        assert _create(stack, "bulk", "card").json()["exponent"] == exponent
        listed = stack.client.get("/api/custom/stripe/purchases", headers=auth("alice")).json()
        assert [p["exponent"] for p in listed["purchases"]] == [exponent]
