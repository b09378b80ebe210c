"""The Buy Tokens page in headless Chromium against the demo stack (app + localstripe).

These walk the seed's manual checklist: button, dialog, packages, prices, card payment,
balance, success and failure messages, duplicate deliveries, keyboard use, language and
a phone-width layout. Screenshots land in ``test-artifacts/``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, Route, expect, sync_playwright

from buytokens.adapters.memory import InMemoryBalanceRepository
from buytokens.adapters.memory_codes import InMemoryRedemptionCodes
from buytokens.adapters.system import SystemClock
from buytokens.services.codes import CodeDesk, create_codes
from buytokens.services.promos import create_promo
from buytokens.testing.demo import Demo, running_demo

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
README_SCREENSHOT = ROOT / "docs" / "img" / "buy-tokens-modal.png"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SUCCESS_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000341"
THREE_D_SECURE_CARD = "4000002500003155"
_CODE_SHAPE = re.compile(r"^[0-9A-Z]{4}(-[0-9A-Z]{4}){4}$")


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    """The demo stack (localstripe, webhook, SQLite, app) on a free port."""
    with running_demo(0) as running:
        yield running


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Playwright's driver."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's headless Chromium."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


class Shopper:
    """One user with their own balance, and the page they shop on."""

    def __init__(self, demo: Demo, page: Page, user_id: str) -> None:
        self.demo, self.page, self.user_id = demo, page, user_id

    def open(self) -> Page:
        self.page.goto(self.demo.page_url(self.user_id))
        expect(self.page.locator(".bt-package")).to_have_count(4)
        expect(self.page.locator("#bt-balance")).not_to_have_text("—")
        return self.page

    def open_dialog(self) -> None:
        self.page.locator("#bt-open").click()
        expect(self.page.get_by_role("dialog")).to_be_visible()

    def choose(self, package_id: str) -> None:
        self.page.locator(f'.bt-package[data-package-id="{package_id}"]').click()

    def enter_card(self, number: str) -> None:
        card = self.page.locator("#bt-card-element")
        for field, value in (
            ("number", number),
            ("exp_month", "12"),
            ("exp_year", "34"),
            ("cvc", "123"),
            ("postal_code", "10001"),
        ):
            box = card.locator(f'input[placeholder="{field}"]')
            box.fill("")
            box.press_sequentially(value)

    def api(self, path: str) -> Any:
        request = urllib.request.Request(
            f"{self.demo.base_url}/api/custom{path}",
            headers={"Authorization": f"Bearer {self.demo.token_for(self.user_id)}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def balance(self) -> int:
        return int(self.api("/balance")["tokenCredits"])

    def purchases(self) -> list[dict[str, Any]]:
        return list(self.api("/stripe/purchases")["purchases"])


@pytest.fixture
def shopper(demo: Demo, browser: Browser) -> Iterator[Shopper]:
    """A fresh user in a fresh Chinese-language browser context."""
    context = browser.new_context(locale="zh-CN", viewport={"width": 1100, "height": 900})
    context.set_default_timeout(15_000)
    yield Shopper(demo, context.new_page(), f"user-{uuid.uuid4().hex[:10]}")
    context.close()


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


# -- what the page shows ------------------------------------------------------------


def test_page_shows_the_balance_and_the_buy_button(shopper: Shopper) -> None:
    """A new user sees a zero balance and the 购买代币 button, and no dialog yet."""
    page = shopper.open()
    expect(page.locator("#bt-balance")).to_have_text("0")
    expect(page.get_by_role("button", name="购买代币")).to_be_visible()
    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(page.locator("#bt-history-empty")).to_be_visible()


def test_the_token_leaves_the_address_bar_and_survives_a_reload(shopper: Shopper) -> None:
    """The #token fragment is removed at once; a reload signs in from sessionStorage."""
    page = shopper.open()
    assert page.url == f"{shopper.demo.base_url}/buy-tokens"
    page.reload()
    expect(page.locator("#bt-balance")).to_have_text("0")
    expect(page.locator("#bt-notice")).to_be_hidden()


def test_without_a_token_the_page_asks_to_sign_in_again(demo: Demo, browser: Browser) -> None:
    """No token anywhere: a plain message, and no balance request fails loudly."""
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    page.goto(f"{demo.base_url}/buy-tokens")
    expect(page.locator("#bt-notice")).to_contain_text("sign-in is missing or expired")
    context.close()


def test_an_expired_token_asks_to_sign_in_again(demo: Demo, browser: Browser) -> None:
    """A token past its exp is refused by the API and the page says to reopen it."""
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    expired = demo.token_for("user-expired", lifetime=timedelta(minutes=-5))
    page.goto(f"{demo.base_url}/buy-tokens#token={expired}")
    expect(page.locator("#bt-notice")).to_contain_text("sign-in is missing or expired")
    expect(page.locator("#bt-balance")).to_have_text("—")
    assert page.evaluate("sessionStorage.getItem('buytokens.token')") is None
    context.close()


def test_an_embedding_host_hands_the_token_over_by_post_message(
    demo: Demo, browser: Browser
) -> None:
    """In a same-origin iframe with no token, the page asks its host and signs in with the reply."""
    token = demo.token_for(f"user-{uuid.uuid4().hex[:10]}")
    host = f"""<!doctype html><title>host</title>
<iframe id="buy" src="/buy-tokens" width="900" height="700"></iframe>
<script>
  addEventListener('message', (event) => {{
    if (event.origin !== location.origin || event.data?.type !== 'buytokens:token-request') return;
    event.source.postMessage({{type: 'buytokens:token', token: '{token}'}}, location.origin);
  }});
</script>"""
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    page.route(
        f"{demo.base_url}/host-app",
        lambda route: route.fulfill(body=host, content_type="text/html"),
    )
    page.goto(f"{demo.base_url}/host-app")
    frame = page.frame_locator("#buy")
    expect(frame.locator("#bt-balance")).to_have_text("0")
    expect(frame.locator("#bt-notice")).to_be_hidden()
    context.close()


def test_dialog_opens_and_closes_with_escape_and_the_close_button(shopper: Shopper) -> None:
    """The dialog is modal and labelled; Esc and × close it and focus returns to the button."""
    page = shopper.open()
    shopper.open_dialog()
    dialog = page.get_by_role("dialog", name="购买代币")
    expect(dialog).to_have_attribute("aria-modal", "true")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.locator("#bt-open")).to_be_focused()

    shopper.open_dialog()
    page.get_by_role("button", name="关闭").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#bt-open")).to_be_focused()


def test_dialog_lists_four_packages_with_cny_prices_discounts_and_the_popular_mark(
    shopper: Shopper,
) -> None:
    """Tokens, ¥ prices, struck-through original prices and 30/45/72 % badges, as seeded."""
    page = shopper.open()
    shopper.open_dialog()
    cards = page.locator(".bt-package")
    expected = [
        ("package_100k", "100K", "100,000", "¥10.00", None, None),
        ("package_500k", "500K", "500,000", "¥35.00", "¥50.00", "30%"),
        ("package_1m", "1M", "1,000,000", "¥55.00", "¥100.00", "45%"),
        ("package_10m", "10M", "10,000,000", "¥280.00", "¥1,000.00", "72%"),
    ]
    for index, (package_id, compact, grouped, price, was, off) in enumerate(expected):
        card = cards.nth(index)
        expect(card).to_have_attribute("data-package-id", package_id)
        expect(card.locator(".bt-package-tokens")).to_have_text(compact)
        expect(card.locator(".bt-package-grouped")).to_contain_text(grouped)
        expect(card.locator(".bt-price-now")).to_have_text(price)
        if was is None:
            expect(card.locator("s")).to_have_count(0)
            expect(card.locator(".bt-badge-discount")).to_have_count(0)
        else:
            expect(card.locator("s.bt-price-was")).to_have_text(was)
            expect(card.locator(".bt-badge-discount")).to_have_text(f"省 {off}")
    expect(page.locator(".bt-badge-popular")).to_have_count(1)
    expect(cards.nth(1).locator(".bt-badge-popular")).to_have_text("最受欢迎")
    screenshot(page, "modal-desktop")
    if os.environ.get("BUYTOKENS_REFRESH_DOC_IMAGES") == "1":  # only on request: a tracked file
        page.get_by_role("dialog").screenshot(path=str(README_SCREENSHOT))


def test_each_package_can_be_selected_and_the_pay_button_shows_its_price(
    shopper: Shopper,
) -> None:
    """Clicking a card checks it alone and puts its price on the Pay button."""
    page = shopper.open()
    shopper.open_dialog()
    expect(page.locator('input[value="package_500k"]')).to_be_checked()  # the popular one
    for package_id, price in (
        ("package_100k", "¥10.00"),
        ("package_500k", "¥35.00"),
        ("package_1m", "¥55.00"),
        ("package_10m", "¥280.00"),
    ):
        shopper.choose(package_id)
        expect(page.locator(f'input[value="{package_id}"]')).to_be_checked()
        expect(page.locator('input[name="bt-package"]:checked')).to_have_count(1)
        expect(page.locator("#bt-pay")).to_have_text(f"支付 {price}")


def test_money_is_formatted_by_the_currency_exponent(shopper: Shopper) -> None:
    """Minor units become ¥35.00, $35.00 for usd, ¥3,500 for the zero-decimal yen and
    990.00 kr for isk, whatever the browser thinks those currencies' decimals are."""
    page = shopper.open()
    formatted = page.evaluate(
        """async () => {
            const m = await import('/buy-tokens/static/buy-tokens.js');
            return [m.formatMoney(3500, 'cny', 2, 'zh-CN'), m.formatMoney(3500, 'usd', 2, 'en'),
                    m.formatMoney(3500, 'jpy', 0, 'en'), m.formatMoney(100000, 'cny', 2, 'en'),
                    m.formatMoney(5, 'usd', 2, 'en'), m.formatMoney(99000, 'isk', 2, 'en'),
                    m.formatMoney(-1234, 'bhd', 3, 'en')];
        }"""
    )
    assert formatted == [
        "¥35.00",
        "$35.00",
        "¥3,500",
        "¥1,000.00",
        "$0.05",
        "kr\u00a0990.00",
        "-BHD\u00a01.234",
    ]


# -- paying ------------------------------------------------------------------------


def test_card_payment_credits_the_balance_and_shows_the_success_message(
    shopper: Shopper,
) -> None:
    """4242… pays for 500K: success message, the new balance, a succeeded history row."""
    page = shopper.open()
    shopper.open_dialog()
    shopper.choose("package_500k")
    shopper.enter_card(SUCCESS_CARD)
    page.locator("#bt-pay").click()
    expect(page.locator("#bt-status")).to_contain_text("支付成功", timeout=20_000)
    expect(page.locator("#bt-status")).to_contain_text("500,000")
    expect(page.locator("#bt-balance")).to_have_text("500,000")
    screenshot(page, "payment-succeeded")
    page.keyboard.press("Escape")
    row = page.locator("#bt-history-body tr")
    expect(row).to_have_count(1)
    expect(row.locator(".bt-pill")).to_have_text("成功")
    expect(row).to_contain_text("¥35.00")
    assert shopper.balance() == 500_000


def test_a_declined_card_shows_the_bank_message_and_a_retry_succeeds(shopper: Shopper) -> None:
    """4000…0341 is declined with Stripe's message; the same dialog then pays with 4242…."""
    page = shopper.open()
    keys: list[str] = []
    page.on(
        "request",
        lambda request: (
            keys.append(request.headers.get("idempotency-key", ""))
            if request.url.endswith("/create-payment-intent")
            else None
        ),
    )
    shopper.open_dialog()
    shopper.choose("package_100k")
    shopper.enter_card(DECLINED_CARD)
    page.locator("#bt-pay").click()
    expect(page.locator("#bt-error")).to_contain_text("declined")
    expect(page.locator("#bt-pay")).to_be_enabled()
    screenshot(page, "payment-declined")
    assert shopper.balance() == 0

    shopper.enter_card(SUCCESS_CARD)
    page.locator("#bt-pay").click()
    expect(page.locator("#bt-status")).to_contain_text("支付成功", timeout=20_000)
    expect(page.locator("#bt-error")).to_be_empty()
    expect(page.locator("#bt-balance")).to_have_text("100,000")
    assert len(keys) == 2
    assert keys[0] != keys[1]  # a retry after a decline is a new attempt
    assert shopper.balance() == 100_000


def test_three_d_secure_is_completed_in_the_stripe_js_dialog(shopper: Shopper) -> None:
    """A card that needs authentication pays once the customer completes 3-D Secure."""
    page = shopper.open()
    shopper.open_dialog()
    shopper.choose("package_1m")
    shopper.enter_card(THREE_D_SECURE_CARD)
    page.locator("#bt-pay").click()
    page.get_by_role("button", name="Complete authentication").click()
    expect(page.locator("#bt-status")).to_contain_text("支付成功", timeout=20_000)
    assert shopper.balance() == 1_000_000


def test_double_click_on_pay_buys_once(shopper: Shopper) -> None:
    """Two fast clicks send one create request and credit one package."""
    page = shopper.open()
    creates: list[str] = []
    page.on(
        "request",
        lambda request: (
            creates.append(request.url) if request.url.endswith("/create-payment-intent") else None
        ),
    )
    shopper.open_dialog()
    shopper.choose("package_500k")
    shopper.enter_card(SUCCESS_CARD)
    page.locator("#bt-pay").dblclick()
    expect(page.locator("#bt-status")).to_contain_text("支付成功", timeout=20_000)
    assert len(creates) == 1
    assert shopper.balance() == 500_000
    assert [p["status"] for p in shopper.purchases()] == ["succeeded"]


def test_a_network_failure_says_so_and_leaves_pay_usable(shopper: Shopper) -> None:
    """When the server cannot be reached the page says so plainly and nothing is bought."""
    page = shopper.open()
    page.route("**/create-payment-intent", lambda route: route.abort("internetdisconnected"))
    shopper.open_dialog()
    shopper.enter_card(SUCCESS_CARD)
    page.locator("#bt-pay").click()
    expect(page.locator("#bt-error")).to_have_text("网络连接失败，请检查网络后重试。")
    expect(page.locator("#bt-pay")).to_be_enabled()
    assert shopper.balance() == 0


def test_a_busy_return_check_is_waited_out_and_the_payment_still_succeeds(
    shopper: Shopper,
) -> None:
    """503 and 429 with Retry-After from the return check (Stripe slow): the page keeps
    waiting as asked and shows the success once the check answers."""
    page = shopper.open()
    refused: list[int] = []

    def busy_twice(route: Route) -> None:
        if len(refused) < 2:
            status = (503, 429)[len(refused)]
            refused.append(status)
            route.fulfill(
                status=status,
                headers={"Retry-After": "1", "Content-Type": "application/json"},
                body=json.dumps(
                    {"success": False, "error": {"code": "gateway_busy", "message": "busy"}}
                ),
            )
            return
        route.continue_()

    page.route("**/api/custom/stripe/payment-intents/*", busy_twice)
    shopper.open_dialog()
    shopper.choose("package_500k")
    shopper.enter_card(SUCCESS_CARD)
    page.locator("#bt-pay").click()
    expect(page.locator("#bt-status")).to_contain_text("支付成功", timeout=30_000)
    assert refused == [503, 429]
    assert shopper.balance() == 500_000


def test_duplicate_webhook_deliveries_do_not_add_tokens_twice(shopper: Shopper) -> None:
    """Re-delivering the signed payment_intent.succeeded event twice leaves the balance alone."""
    page = shopper.open()
    shopper.open_dialog()
    shopper.choose("package_100k")
    shopper.enter_card(SUCCESS_CARD)
    page.locator("#bt-pay").click()
    expect(page.locator("#bt-status")).to_contain_text("支付成功", timeout=20_000)
    intent_id = shopper.purchases()[0]["paymentIntentId"]
    event = _succeeded_event(shopper.demo, intent_id)

    for _ in range(2):
        assert _deliver(shopper.demo, event) == 200
    assert shopper.balance() == 100_000


# -- keyboard, language, phone ------------------------------------------------------


def test_keyboard_alone_opens_the_dialog_buys_and_closes_it(shopper: Shopper) -> None:
    """Tab, arrows, typing and Enter buy a package; focus stays trapped; Esc closes."""
    page = shopper.open()
    _tab_until(page, "#bt-open")
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(page.locator('input[value="package_500k"]')).to_be_focused()
    page.keyboard.press("ArrowLeft")
    expect(page.locator('input[value="package_100k"]')).to_be_checked()

    # The focus never leaves the dialog: backwards from the close button lands on Pay.
    page.locator("#bt-close").focus()
    page.keyboard.press("Shift+Tab")
    expect(page.locator("#bt-pay")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#bt-close")).to_be_focused()

    _tab_until(page, '#bt-card-element input[placeholder="number"]')
    page.keyboard.type(SUCCESS_CARD + "12" + "34" + "123")  # the card element moves along
    page.keyboard.type("10001")
    _tab_until(page, "#bt-pay")
    page.keyboard.press("Enter")
    expect(page.locator("#bt-status")).to_contain_text("支付成功", timeout=20_000)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.locator("#bt-open")).to_be_focused()
    assert shopper.balance() == 100_000


def test_language_follows_the_browser_and_switches_between_chinese_and_english(
    demo: Demo, browser: Browser
) -> None:
    """An English browser gets English; the switch turns every label to Chinese and back."""
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    page.goto(demo.page_url(f"user-{uuid.uuid4().hex[:10]}"))
    expect(page.get_by_role("button", name="Buy Tokens")).to_be_visible()
    page.get_by_role("button", name="Buy Tokens").click()
    expect(page.locator(".bt-badge-discount").first).to_have_text("30% off")
    expect(page.locator(".bt-badge-popular")).to_have_text("Popular")
    page.keyboard.press("Escape")

    page.locator("#bt-lang").select_option("zh-CN")
    expect(page.get_by_role("button", name="购买代币")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator(".bt-badge-discount").first).to_have_text("省 30%")
    page.reload()
    expect(page.get_by_role("button", name="购买代币")).to_be_visible()  # the choice is kept
    page.locator("#bt-lang").select_option("en")
    expect(page.get_by_role("heading", name="Purchase history")).to_be_visible()
    context.close()


def test_phone_width_shows_the_whole_dialog_without_sideways_scrolling(
    demo: Demo, browser: Browser
) -> None:
    """At 390×844 the page and the dialog fit the screen's width."""
    context = browser.new_context(
        locale="zh-CN", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    page.goto(demo.page_url(f"user-{uuid.uuid4().hex[:10]}"))
    expect(page.locator(".bt-package")).to_have_count(4)
    screenshot(page, "phone-page")
    page.locator("#bt-open").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    box = dialog.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= 390
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for card in page.locator(".bt-package").all():
        card_box = card.bounding_box()
        assert card_box is not None
        assert card_box["x"] + card_box["width"] <= 390
    screenshot(page, "phone-modal")
    context.close()


# -- redeeming a code ----------------------------------------------------------------


def _issue_code(demo: Demo, tokens: int) -> str:
    (code,) = create_codes(demo.container.code_desk(), tokens, 1, "page test")
    return code.display()


def test_an_operator_code_redeemed_on_the_page_updates_the_balance(shopper: Shopper) -> None:
    """Typed in lower case without dashes, a code credits its tokens and shows the new balance;
    redeeming it again shows the "already redeemed" message and changes nothing."""
    code = _issue_code(shopper.demo, 123_456)
    page = shopper.open()
    expect(page.get_by_role("heading", name="兑换码")).to_be_visible()
    page.locator("#bt-redeem-code").fill(code.replace("-", "").lower())
    page.get_by_role("button", name="兑换", exact=True).click()
    message = page.locator("#bt-redeem-message")
    expect(message).to_have_text("兑换成功！已到账 123,456 代币，当前余额 123,456。")
    expect(page.locator("#bt-balance")).to_have_text("123,456")
    expect(page.locator("#bt-redeem-code")).to_have_value("")
    screenshot(page, "redeem-success")
    page.locator("#bt-redeem-code").fill(code)
    page.locator("#bt-redeem-code").press("Enter")
    expect(message).to_have_text("该兑换码已被使用。")
    expect(message).to_have_attribute("data-kind", "error")
    expect(page.locator("#bt-balance")).to_have_text("123,456")
    assert shopper.balance() == 123_456


def test_unknown_and_mistyped_codes_say_so_in_english(shopper: Shopper) -> None:
    """In English, an unknown code and a typo get their own messages; nothing is credited."""
    page = shopper.open()
    page.locator("#bt-lang").select_option("en")
    expect(page.get_by_role("heading", name="Redeem a code")).to_be_visible()
    stranger = "7KQ2-M9XD-4RTB-HN0C-WZ5F"
    page.locator("#bt-redeem-code").fill(stranger)
    page.get_by_role("button", name="Redeem").click()
    message = page.locator("#bt-redeem-message")
    expect(message).to_contain_text("That code is not right")
    real = _issue_code(shopper.demo, 5)
    page.locator("#bt-redeem-code").fill(real[:-1] + ("0" if real[-1] != "0" else "1"))
    page.get_by_role("button", name="Redeem").click()
    expect(message).to_contain_text("typo")
    (unknown,) = create_codes(
        CodeDesk(InMemoryRedemptionCodes(), InMemoryBalanceRepository(), SystemClock()), 5, 1, "x"
    )
    page.locator("#bt-redeem-code").fill(unknown.display())
    page.get_by_role("button", name="Redeem").click()
    expect(message).to_have_text("No such code, or it has expired.")
    expect(page.locator("#bt-balance")).to_have_text("0")


# -- the demo command ---------------------------------------------------------------


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_run_demo_prints_a_working_url_and_cleans_up_when_stopped(
    tmp_path: Path, stop: signal.Signals
) -> None:
    """run_demo serves the page at the printed URL; Ctrl-C or SIGTERM leaves no files behind."""
    code = "from buytokens.testing.demo import run_demo; run_demo(0)"
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    try:
        assert process.stdout is not None
        url = ""
        for line in process.stdout:
            if "/buy-tokens#token=" in line:
                url = line.strip()
                break
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url.partition("#")[0], timeout=10) as response:
            assert response.status == 200
        assert list(tmp_path.iterdir())  # the store and localstripe's state live here
        process.send_signal(stop)
        _, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert "Demo stopped" in stderr
    assert list(tmp_path.iterdir()) == []


# -- helpers ---------------------------------------------------------------------


def _tab_until(page: Page, selector: str, limit: int = 25) -> None:
    target = page.locator(selector)
    for _ in range(limit):
        if target.evaluate("node => node === document.activeElement"):
            return
        page.keyboard.press("Tab")
    pytest.fail(f"Tab never reached {selector}")


def _succeeded_event(demo: Demo, intent_id: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{demo.localstripe.api_base}/v1/events?type=payment_intent.succeeded&limit=100",
        headers={"Authorization": "Bearer sk_test_demo"},
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with urllib.request.urlopen(request, timeout=10) as response:
            events = json.load(response)["data"]
        for event in events:
            if event["data"]["object"]["id"] == intent_id:
                return dict(event)
        time.sleep(0.2)
    pytest.fail(f"localstripe recorded no payment_intent.succeeded for {intent_id}")


def _deliver(demo: Demo, event: dict[str, Any]) -> int:
    payload = json.dumps(event).encode()
    timestamp = int(time.time())
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(demo.webhook_secret.encode(), signed, hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        f"{demo.base_url}/api/custom/stripe/webhook",
        data=payload,
        headers={
            "Stripe-Signature": f"t={timestamp},v1={digest}",
            "Content-Type": "application/json",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def test_a_gift_bought_on_the_page_is_redeemed_by_another_user(
    shopper: Shopper, demo: Demo, browser: Browser
) -> None:
    """A buys 500K as a gift with 4242…: the code instead of a new balance, A's balance stays;
    the history shows the code; B redeems it on the page and sees the balance rise."""
    page = shopper.open()
    shopper.open_dialog()
    shopper.choose("package_500k")
    page.get_by_label("作为礼物购买").check()
    shopper.enter_card(SUCCESS_CARD)
    page.locator("#bt-pay").click()
    expect(page.locator("#bt-status")).to_contain_text("礼品码", timeout=20_000)
    code_box = page.locator("#bt-gift-code")
    expect(code_box).to_have_text(_CODE_SHAPE)
    expect(page.get_by_role("button", name="复制")).to_be_visible()
    code = code_box.inner_text()
    expect(page.locator("#bt-balance")).to_have_text("0")
    screenshot(page, "gift-bought")
    page.keyboard.press("Escape")
    row = page.locator("#bt-history-body tr")
    expect(row).to_have_count(1)
    expect(row.locator(".bt-gift-line")).to_contain_text(code)
    (bought,) = shopper.purchases()
    assert (bought["giftCode"], bought["giftRedeemed"]) == (code, False)
    assert shopper.balance() == 0

    context = browser.new_context(locale="zh-CN", viewport={"width": 1100, "height": 900})
    context.set_default_timeout(15_000)
    try:
        friend = Shopper(demo, context.new_page(), f"user-{uuid.uuid4().hex[:10]}")
        other = friend.open()
        other.locator("#bt-redeem-code").fill(code.lower())
        other.get_by_role("button", name="兑换", exact=True).click()
        expect(other.locator("#bt-redeem-message")).to_have_text(
            "兑换成功！已到账 500,000 代币，当前余额 500,000。"
        )
        expect(other.locator("#bt-balance")).to_have_text("500,000")
        assert friend.balance() == 500_000
        expect(other.locator("#bt-history-body tr")).to_have_count(0)
    finally:
        context.close()
    assert shopper.balance() == 0
    page.reload()
    expect(page.locator("#bt-history-body tr .bt-gift-redeemed")).to_have_text("已兑换")


def test_a_promo_code_shows_the_discounted_price_before_paying_and_on_success(
    shopper: Shopper,
) -> None:
    """A 20 %-off code on 500K: the preview and the Pay button say ¥28.00 before paying; the
    payment credits the full 500,000 tokens and says what the code saved; a refused code
    says why."""
    code = f"PAGE-{uuid.uuid4().hex[:8].upper()}"
    create_promo(shopper.demo.container.promo_desk(), code, percent_off=20)
    page = shopper.open()
    shopper.open_dialog()
    shopper.choose("package_500k")
    page.locator("#bt-promo-code").fill("no-such-code")
    page.get_by_role("button", name="使用", exact=True).click()
    expect(page.locator("#bt-promo-result")).to_contain_text("优惠码不可用")
    expect(page.locator("#bt-pay-label")).to_have_text("支付 ¥35.00")
    page.locator("#bt-promo-code").fill(code.lower())
    page.locator("#bt-promo-code").press("Enter")
    expect(page.locator("#bt-promo-result")).to_have_text(
        f"已使用优惠码 {code}：¥28.00（立减 ¥7.00）"
    )
    expect(page.locator("#bt-pay-label")).to_have_text("支付 ¥28.00")
    shopper.choose("package_1m")  # another package is priced again
    expect(page.locator("#bt-pay-label")).to_have_text("支付 ¥44.00")
    shopper.choose("package_500k")
    expect(page.locator("#bt-pay-label")).to_have_text("支付 ¥28.00")
    screenshot(page, "promo-applied")
    shopper.enter_card(SUCCESS_CARD)
    page.locator("#bt-pay").click()
    expect(page.locator("#bt-status")).to_contain_text("支付成功", timeout=20_000)
    expect(page.locator("#bt-status")).to_contain_text("节省了 ¥7.00")
    expect(page.locator("#bt-balance")).to_have_text("500,000")
    page.keyboard.press("Escape")
    row = page.locator("#bt-history-body tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("¥28.00")
    assert shopper.balance() == 500_000
