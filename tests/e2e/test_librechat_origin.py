"""The page on LibreChat's origin: a real nginx, LibreChat's session cookie, headless Chromium.

nginx runs LibreChat's shipped server block plus the two locations of docs/LIBRECHAT.md,
in front of the buytokens demo stack (app + localstripe) and a stand-in for LibreChat's
auth endpoints (tests/support/librechat.py). The browser holds nothing but LibreChat's
``refreshToken`` cookie.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Request,
    expect,
    sync_playwright,
)

from buytokens.testing.demo import Demo, running_demo
from tests.e2e.conftest import JWT_SECRET, token_for
from tests.e2e.test_buy_tokens_page import CHROMIUM, CHROMIUM_ARGS, SUCCESS_CARD
from tests.support.librechat import LibreChatStandIn, running_librechat
from tests.support.nginx import Nginx, running_nginx

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
DOC_IMAGE = ROOT / "docs" / "img" / "buy-tokens-librechat.png"
PASSWORD = "correct horse battery staple"
# The buytokens demo's localstripe bridge posts here; only the demo has it.
DEMO_ONLY = "/_localstripe/"


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    """The buytokens demo stack (localstripe, webhook, SQLite, app)."""
    with running_demo(0) as running:
        yield running


@pytest.fixture(scope="module")
def librechat(demo: Demo) -> Iterator[tuple[LibreChatStandIn, str]]:
    """LibreChat's auth endpoints, signing access tokens with the shared JWT_SECRET."""
    state = LibreChatStandIn(demo.jwt_secret)
    with running_librechat(state) as address:
        yield state, address


@pytest.fixture(scope="module")
def nginx(
    demo: Demo, librechat: tuple[LibreChatStandIn, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Nginx]:
    """nginx on loopback: LibreChat's locations plus the documented buytokens ones."""
    app = demo.base_url.removeprefix("http://")
    with running_nginx(
        tmp_path_factory.mktemp("nginx"), librechat=librechat[1], buytokens=app
    ) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def nginx_with_demo_bridge(
    demo: Demo, librechat: tuple[LibreChatStandIn, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Nginx]:
    """The same, plus the route of the demo's localstripe bridge, so cards can be paid."""
    app = demo.base_url.removeprefix("http://")
    with running_nginx(
        tmp_path_factory.mktemp("nginx-bridge"),
        librechat=librechat[1],
        buytokens=app,
        extra_locations=f"location {DEMO_ONLY} {{ proxy_pass http://{app}; }}",
    ) as proxy:
        yield proxy


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


@pytest.fixture
def stand_in(librechat: tuple[LibreChatStandIn, str]) -> Iterator[LibreChatStandIn]:
    """The stand-in, reset to LibreChat's defaults after each test."""
    state = librechat[0]
    yield state
    state.access_lifetime = timedelta(minutes=15)
    state.refused_tokens = 0


def _signed_in(browser: Browser, proxy: Nginx, stand_in: LibreChatStandIn) -> BrowserContext:
    """A browser that signed in to LibreChat: it holds the refreshToken cookie, nothing else."""
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    stand_in.add_user(email, PASSWORD)
    context = browser.new_context(base_url=proxy.url, locale="en-US")
    context.set_default_timeout(20_000)
    response = context.request.post("/api/auth/login", data={"email": email, "password": PASSWORD})
    assert response.status == 200
    cookies = {cookie["name"]: cookie for cookie in context.cookies()}
    assert set(cookies) == {"refreshToken"}
    assert cookies["refreshToken"]["httpOnly"] is True
    assert cookies["refreshToken"]["sameSite"] == "Strict"
    return context


def _bearers(page: Page) -> list[tuple[str, str]]:
    """(path, token) of every API call the page makes, as they happen."""
    seen: list[tuple[str, str]] = []

    def record(request: Request) -> None:
        if "/api/custom/" in request.url and "authorization" in request.headers:
            path = request.url.split("/api/custom", 1)[1]
            seen.append((path, request.headers["authorization"]))

    page.on("request", record)
    return seen


def _statuses(page: Page) -> list[int]:
    codes: list[int] = []
    page.on(
        "response",
        lambda response: codes.append(response.status) if "/api/custom/" in response.url else None,
    )
    return codes


def _pay(page: Page, package_id: str) -> None:
    page.locator("#bt-open").click()
    page.locator(f'.bt-package[data-package-id="{package_id}"]').click()
    card = page.locator("#bt-card-element")
    for field, value in (
        ("number", SUCCESS_CARD),
        ("exp_month", "12"),
        ("exp_year", "34"),
        ("cvc", "123"),
        ("postal_code", "10001"),
    ):
        card.locator(f'input[placeholder="{field}"]').press_sequentially(value)
    page.locator("#bt-pay").click()


def _save_screenshot(page: Page, name: str, doc_image: Path | None = None) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    if doc_image is not None and os.environ.get("BUYTOKENS_REFRESH_DOC_IMAGES") == "1":
        doc_image.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(doc_image))


# -- signed in with LibreChat's cookie -----------------------------------------------


def test_with_only_the_session_cookie_the_balance_shows_and_a_purchase_completes(
    browser: Browser, nginx_with_demo_bridge: Nginx, stand_in: LibreChatStandIn
) -> None:
    """The page turns LibreChat's cookie into a token, shows the balance and buys 100K."""
    context = _signed_in(browser, nginx_with_demo_bridge, stand_in)
    page = context.new_page()
    before = stand_in.refresh_calls
    page.goto("/buy-tokens")
    expect(page.locator("#bt-balance")).to_have_text("0")
    expect(page.locator("#bt-notice")).to_be_hidden()
    assert stand_in.refresh_calls - before == 1

    _pay(page, "package_100k")
    expect(page.locator("#bt-status")).to_contain_text("Payment successful", timeout=30_000)
    expect(page.locator("#bt-balance")).to_have_text("100,000")
    assert stand_in.refresh_calls - before == 1  # a 15-minute token needs no other
    assert page.evaluate("sessionStorage.length") == 0  # the token lives in memory only
    context.close()


def test_an_access_token_that_expires_mid_session_is_replaced_and_the_purchase_goes_through(
    browser: Browser, nginx_with_demo_bridge: Nginx, stand_in: LibreChatStandIn
) -> None:
    """With 4-second tokens, the page renews before calling and no call is ever refused."""
    stand_in.access_lifetime = timedelta(seconds=4)
    context = _signed_in(browser, nginx_with_demo_bridge, stand_in)
    page = context.new_page()
    bearers, statuses = _bearers(page), _statuses(page)
    page.goto("/buy-tokens")
    expect(page.locator("#bt-balance")).to_have_text("0")
    first = bearers[0][1]
    time.sleep(5)  # the first token is past its exp now

    _pay(page, "package_500k")
    expect(page.locator("#bt-status")).to_contain_text("Payment successful", timeout=30_000)
    expect(page.locator("#bt-balance")).to_have_text("500,000")
    create = [token for path, token in bearers if path.endswith("/create-payment-intent")]
    assert create
    assert create[0] != first
    assert 401 not in statuses
    context.close()


def test_a_refused_token_is_renewed_once_and_the_call_retried(
    browser: Browser, nginx: Nginx, stand_in: LibreChatStandIn
) -> None:
    """A token buytokens refuses (401) costs one refresh; every refused call is retried once."""
    context = _signed_in(browser, nginx, stand_in)
    stand_in.refused_tokens = 1
    page = context.new_page()
    statuses = _statuses(page)
    before = stand_in.refresh_calls
    page.goto("/buy-tokens")
    expect(page.locator("#bt-balance")).to_have_text("0")
    expect(page.locator("#bt-history-empty")).to_be_visible()
    assert statuses.count(401) >= 1
    assert stand_in.refresh_calls - before == 2  # the page's first, and one after the 401s
    context.close()


def test_tokens_that_are_always_refused_end_in_the_sign_in_link_not_a_refresh_loop(
    browser: Browser, nginx: Nginx, stand_in: LibreChatStandIn
) -> None:
    """If even a fresh token is refused, the page stops after one renewal and offers sign-in."""
    context = _signed_in(browser, nginx, stand_in)
    stand_in.refused_tokens = 1_000
    page = context.new_page()
    before = stand_in.refresh_calls
    page.goto("/buy-tokens")
    expect(page.locator("#bt-sign-in")).to_be_visible()
    page.locator("#bt-open").click()
    page.keyboard.press("Escape")
    time.sleep(3)
    assert stand_in.refresh_calls - before == 2
    context.close()


# -- without a session ------------------------------------------------------------


def test_without_a_session_the_page_links_to_sign_in_and_asks_once(
    browser: Browser, nginx: Nginx, stand_in: LibreChatStandIn
) -> None:
    """LibreChat's 200 "Refresh token not provided": one request, then a link to /login."""
    context = browser.new_context(base_url=nginx.url, locale="en-US")
    page = context.new_page()
    before = stand_in.refresh_calls
    page.goto("/buy-tokens")
    link = page.locator("#bt-sign-in")
    expect(link).to_be_visible()
    expect(link).to_have_attribute("href", "/login?redirect_to=%2Fbuy-tokens")
    expect(page.locator("#bt-balance")).to_have_text("—")
    time.sleep(3)
    assert stand_in.refresh_calls - before == 1
    _save_screenshot(page, "librechat-signed-out")

    link.click()
    expect(page.locator("#login")).to_be_visible()  # LibreChat's login page, through nginx
    assert page.url == f"{nginx.url}/login?redirect_to=%2Fbuy-tokens"
    context.close()


def test_a_session_ended_in_librechat_leads_to_sign_in_with_one_more_refresh(
    browser: Browser, nginx: Nginx, stand_in: LibreChatStandIn
) -> None:
    """Logged out elsewhere: the rotated cookie is refused (401) once, and the page stops."""
    stand_in.access_lifetime = timedelta(seconds=3)
    context = _signed_in(browser, nginx, stand_in)
    page = context.new_page()
    page.goto("/buy-tokens")
    expect(page.locator("#bt-balance")).to_have_text("0")
    stand_in.end_sessions()
    time.sleep(4)
    before = stand_in.refresh_calls
    page.locator("#bt-open").click()
    page.locator("#bt-close").click()
    page.reload()
    expect(page.locator("#bt-sign-in")).to_be_visible()
    time.sleep(2)
    assert stand_in.refresh_calls - before == 1
    context.close()


# -- LibreChat's look ---------------------------------------------------------------


def test_the_page_follows_librechat_theme_and_language_and_links_back_to_the_chat(
    browser: Browser, nginx: Nginx, stand_in: LibreChatStandIn
) -> None:
    """LibreChat's dark theme and Chinese language on this origin carry over to the page."""
    context = _signed_in(browser, nginx, stand_in)
    context.add_cookies([{"name": "lang", "value": "zh-Hans", "url": nginx.url}])
    page = context.new_page()
    page.goto("/")  # LibreChat stores its settings on its origin
    page.evaluate("localStorage.setItem('color-theme', 'dark')")
    page.goto("/buy-tokens")
    expect(page.locator("#bt-balance")).to_have_text("0")
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    background = page.evaluate("getComputedStyle(document.body.parentElement).backgroundColor")
    assert background == "rgb(33, 33, 33)"
    back = page.get_by_role("link", name="返回聊天")
    expect(back).to_have_attribute("href", "/")
    _save_screenshot(page, "librechat-dark", DOC_IMAGE)

    page.evaluate("localStorage.setItem('color-theme', JSON.stringify('light'))")
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    back.click()
    expect(page.locator("#chat")).to_be_visible()
    context.close()


# -- the client's address through the proxy -------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Serve:
    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.port = _free_port()
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("STRIPE_", "MONGODB_", "BUYTOKENS_", "JWT_", "FORWARDED_"))
        }
        self.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("buytokens")), "serve", "--port", str(self.port)],
            env=keep
            | {
                "JWT_SECRET": JWT_SECRET,
                "BUYTOKENS_SQLITE_PATH": str(tmp_path / f"serve-{self.port}.sqlite3"),
                "BUYTOKENS_RATE_LIMIT_PER_IP": "2/minute",
                "BUYTOKENS_RATE_LIMIT_PER_USER": "100/minute",
            }
            | env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                return
            except httpx.HTTPError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("serve did not come up") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture
def proxied_serve(
    tmp_path: Path, librechat: tuple[LibreChatStandIn, str]
) -> Iterator[tuple[Nginx, Nginx]]:
    """One ``buytokens serve`` trusting the proxy, one not; each behind its own nginx.

    nginx connects to buytokens from 127.0.0.5, as a proxy in another container would
    from its own address: not the loopback address uvicorn trusts out of the box.
    """
    trusting = _Serve(tmp_path, BUYTOKENS_TRUSTED_PROXIES="127.0.0.5")
    plain = _Serve(tmp_path)
    try:
        with (
            running_nginx(
                tmp_path / "nginx-trusting",
                librechat=librechat[1],
                buytokens=f"127.0.0.1:{trusting.port}",
                extra_http="proxy_bind 127.0.0.5;",
            ) as first,
            running_nginx(
                tmp_path / "nginx-plain",
                librechat=librechat[1],
                buytokens=f"127.0.0.1:{plain.port}",
                extra_http="proxy_bind 127.0.0.5;",
            ) as second,
        ):
            yield first, second
    finally:
        trusting.stop()
        plain.stop()


def _attempts(proxy: Nginx, client_ip: str, count: int, forwarded_for: str = "") -> list[int]:
    """``count`` create-payment-intent calls from ``client_ip`` (a loopback address)."""
    transport = httpx.HTTPTransport(local_address=client_ip)
    codes = []
    with httpx.Client(base_url=proxy.url, transport=transport, timeout=10) as client:
        for _ in range(count):
            headers = {"Authorization": f"Bearer {_token()}"}
            if forwarded_for:
                headers["X-Forwarded-For"] = forwarded_for
            response = client.post(
                "/api/custom/stripe/create-payment-intent",
                json={"packageId": "package_100k", "paymentMethod": "card"},
                headers=headers,
            )
            codes.append(response.status_code)
    return codes


def _token() -> str:
    return token_for(f"user-{uuid.uuid4().hex[:8]}")


def test_through_a_trusted_proxy_buyers_are_limited_per_real_client_ip(
    proxied_serve: tuple[Nginx, Nginx],
) -> None:
    """Two clients behind nginx: each gets its own per-IP allowance, spoofed header or not."""
    trusting, _ = proxied_serve
    # No Stripe key here: an attempt that passes the limits answers 503, a limited one 429.
    assert _attempts(trusting, "127.0.0.2", 3, forwarded_for="203.0.113.9") == [503, 503, 429]
    assert _attempts(trusting, "127.0.0.3", 2) == [503, 503]
    assert _attempts(trusting, "127.0.0.2", 1, forwarded_for="198.51.100.1") == [429]


def test_through_an_untrusted_proxy_all_buyers_share_the_proxy_address(
    proxied_serve: tuple[Nginx, Nginx],
) -> None:
    """Without BUYTOKENS_TRUSTED_PROXIES the header is ignored: nginx's address is limited."""
    _, plain = proxied_serve
    assert _attempts(plain, "127.0.0.2", 2) == [503, 503]
    assert _attempts(plain, "127.0.0.3", 1) == [429]
