"""The Buy Tokens page in headless Chromium selling in currencies whose minor units Stripe
counts differently from the browser's currency data (HUF: Stripe two decimals, Intl none).

The page must read prices with the exponent the API sends, never with the browser's own
idea of the currency, or a 990.00 Ft package shows as 99,000 Ft.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from dependency_injector import providers
from playwright.sync_api import Browser, Page, expect, sync_playwright

from buytokens.entrypoints.container import create_container
from buytokens.entrypoints.web.app import create_app
from buytokens.testing.stripe_twin import InMemoryPaymentGateway
from tests.e2e.conftest import WEBHOOK_SECRET, auth, settings_for, token_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]

# Stripe reads HUF amounts with two decimals (and wants them divisible by 100);
# Chromium's currency data gives HUF no decimals at all.
HUF_CATALOGUE = """
currency = "huf"

[[packages]]
id = "starter"
label = "Starter"
tokens = 100000
amount = 99000            # 990.00 Ft

[[packages]]
id = "bulk"
label = "Bulk"
tokens = 1000000
amount = 450000           # 4,500.00 Ft
original_amount = 600000  # 6,000.00 Ft
popular = true
"""


class Site:
    """The app selling the HUF catalogue on a loopback port, with the in-memory Stripe twin."""

    def __init__(self, base_url: str, gateway: InMemoryPaymentGateway) -> None:
        self.base_url, self.gateway = base_url, gateway

    def buy_and_pay(self, user: str, package: str) -> None:
        created = httpx.post(
            f"{self.base_url}/api/custom/stripe/create-payment-intent",
            json={"packageId": package, "paymentMethod": "card"},
            headers=auth(user),
            timeout=10,
        )
        assert created.status_code == 200, created.text
        payload, header = self.gateway.signed_webhook(
            self.gateway.succeed(created.json()["paymentIntentId"])
        )
        delivered = httpx.post(
            f"{self.base_url}/api/custom/stripe/webhook",
            content=payload,
            headers={"Stripe-Signature": header},
            timeout=10,
        )
        assert delivered.json()["outcome"] == "applied", delivered.text


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """The HUF shop served by uvicorn in a background thread."""
    catalogue = tmp_path / "catalogue.toml"
    catalogue.write_text(HUF_CATALOGUE, encoding="utf-8")
    container = create_container(settings_for(tmp_path, catalogue_path=str(catalogue)))
    gateway = InMemoryPaymentGateway(webhook_secret=WEBHOOK_SECRET)
    container.gateway.override(providers.Object(gateway))
    listener = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(create_app(container), log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the app did not start"
    try:
        yield Site(f"http://127.0.0.1:{listener.getsockname()[1]}", gateway)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()
        container.gateway.reset_override()


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium."""
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextlib.contextmanager
def english_page(browser: Browser) -> Iterator[Page]:
    """A page in an English-language context; Stripe.js is not needed to show prices."""
    context = browser.new_context(locale="en-US")
    context.set_default_timeout(15_000)
    context.route("https://js.stripe.com/**", lambda route: route.fulfill(body=""))
    try:
        yield context.new_page()
    finally:
        context.close()


def test_a_huf_catalogue_shows_prices_with_stripes_two_decimals(
    site: Site, browser: Browser
) -> None:
    """99000 minor units of HUF are 990.00 Ft on every price: never 99,000 Ft."""
    with english_page(browser) as page:
        page.goto(f"{site.base_url}/buy-tokens#token={token_for('ilona')}")
        expect(page.locator(".bt-package")).to_have_count(2)
        starter = page.locator('.bt-package[data-package-id="starter"]')
        bulk = page.locator('.bt-package[data-package-id="bulk"]')
        expect(starter.locator(".bt-price-now")).to_have_text("Ft\u00a0990.00")
        expect(bulk.locator(".bt-price-now")).to_have_text("Ft\u00a04,500.00")
        expect(bulk.locator(".bt-price-was")).to_have_text("Ft\u00a06,000.00")
        expect(page.locator("#bt-pay-label")).to_have_text("Pay Ft\u00a04,500.00")


def test_the_purchase_history_shows_huf_amounts_with_stripes_two_decimals(
    site: Site, browser: Browser
) -> None:
    """A paid 4,500.00 Ft package is listed at 4,500.00 Ft in the history."""
    site.buy_and_pay("ilona", "bulk")
    with english_page(browser) as page:
        page.goto(f"{site.base_url}/buy-tokens#token={token_for('ilona')}")
        row = page.locator("#bt-history-body tr")
        expect(row).to_have_count(1)
        expect(row.locator("td.bt-num")).to_have_text("Ft\u00a04,500.00")
