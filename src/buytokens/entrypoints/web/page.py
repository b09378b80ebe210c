"""The Buy Tokens page: one server-rendered HTML shell, native ES modules and a stylesheet.

The modules (``PAGE_MODULES``, entry ``buy-tokens.js``) are served as written, without a
build step; the shell preloads them all so the browser fetches them in parallel.

The page talks only to the JSON routes under ``/api/custom`` and to Stripe.js; card
details go from Stripe's card element straight to Stripe and never reach this server.

How the page gets the user's access token
-----------------------------------------
Every API call carries ``Authorization: Bearer <JWT>``, the same HS256 access token
LibreChat keeps in memory and sends on its own API calls (claim ``id``, short ``exp``).
The page looks for it, in this order:

1. ``/buy-tokens#token=<JWT>`` - the host app opens the page (new tab, popup or iframe)
   with the token in the URL fragment. Browsers never send the fragment to a server
   or in a ``Referer``; the page moves it to ``sessionStorage`` and removes it from the
   address bar and history at once.
2. ``sessionStorage`` - a reload in the same tab keeps working.
3. ``postMessage`` - embedded in an iframe or opened as a popup, the page posts
   ``{"type": "buytokens:token-request", "reason": "missing" | "expired"}`` to its
   parent (or opener) and accepts ``{"type": "buytokens:token", "token": "<JWT>"}``
   back. Both directions are restricted to the page's own origin, so the page must
   be served under LibreChat's origin (e.g. a reverse-proxy route to ``/buy-tokens``).

In LibreChat the "Buy Tokens" button therefore opens
``/buy-tokens#token=${token}`` with the token from its auth context, and answers the
``token-request`` message after it has refreshed the token (access tokens last about
15 minutes; the page asks again on any 401).

Payment flow
------------
Pay creates the intent with a fresh ``Idempotency-Key`` per attempt (kept across a
network retry, replaced after a decline or another package), then calls
``stripe.confirmCardPayment(clientSecret, {payment_method: {card}})``;
``confirmAlipayPayment`` (redirect with ``return_url`` back to this page) and
``confirmWechatPayPayment`` (QR code) when the server offers those methods and the
loaded Stripe.js has them. Afterwards the page polls
``GET /api/custom/stripe/payment-intents/{id}`` until the purchase settles.

localstripe's stand-in for Stripe.js cannot attach a card element to an intent; the
demo (``buytokens.testing.demo``) serves and loads a bridge script (see
``add_page_scripts``) to fill that gap; production never serves it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from buytokens.entrypoints.settings import STRIPE_JS_URL, Settings

PAGE_PATH = "/buy-tokens"
STATIC_PATH = f"{PAGE_PATH}/static"

PAGE_MODULES = (
    "buy-tokens.js",
    "state.js",
    "i18n.js",
    "money.js",
    "session.js",
    "api.js",
    "render.js",
    "dialog.js",
    "account.js",
    "pay.js",
    "redeem.js",
)
"""The page's ES modules, the entry first; each imports others only from this list."""

_JS = "text/javascript; charset=utf-8"
_STATIC_FILES = {
    **dict.fromkeys(PAGE_MODULES, _JS),
    "buy-tokens.css": "text/css; charset=utf-8",
}
_EXTRA_SCRIPTS_STATE = "buy_tokens_extra_scripts"
_REAL_STRIPE_ORIGIN = "https://js.stripe.com"


def static_dir() -> Traversable:
    """The directory holding the page's template, script and stylesheet."""
    return resources.files("buytokens.entrypoints").joinpath("static")


def add_page_scripts(app: FastAPI, *urls: str) -> None:
    """Load these same-origin scripts on the page right after Stripe.js (demo and tests)."""
    current: tuple[str, ...] = getattr(app.state, _EXTRA_SCRIPTS_STATE, ())
    setattr(app.state, _EXTRA_SCRIPTS_STATE, (*current, *urls))


def build_page_router(settings: Settings) -> APIRouter:
    """The routes of the Buy Tokens page, configured with the publishable key and Stripe.js URL."""
    folder = static_dir()
    template = folder.joinpath("buy-tokens.html").read_text(encoding="utf-8")
    assets = {name: folder.joinpath(name).read_bytes() for name in _STATIC_FILES}
    config = {"publishableKey": settings.stripe_publishable_key, "apiBase": "/api/custom"}
    headers = {
        "Content-Security-Policy": content_security_policy(settings.stripe_js_url),
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
    router = APIRouter(include_in_schema=False)

    @router.get(PAGE_PATH, response_class=HTMLResponse)
    def buy_tokens_page(request: Request) -> HTMLResponse:
        extra: tuple[str, ...] = getattr(request.app.state, _EXTRA_SCRIPTS_STATE, ())
        body = render_page(template, settings.stripe_js_url, config, extra)
        return HTMLResponse(body, headers=headers)

    @router.get(STATIC_PATH + "/{name}")
    def buy_tokens_asset(name: str) -> Response:
        media_type = _STATIC_FILES.get(name)
        if media_type is None:
            return Response(status_code=404)
        return Response(
            assets[name],
            media_type=media_type,
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    return router


def render_page(
    template: str,
    stripe_js_url: str,
    config: Mapping[str, object],
    extra_scripts: tuple[str, ...],
) -> str:
    """Fill the HTML template; every inserted value is escaped for where it lands."""
    # JSON inside <script>: escape the characters that could close the element.
    config_json = (
        json.dumps(config, ensure_ascii=False)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )
    scripts = "\n".join(
        f'  <script src="{html.escape(url, quote=True)}"></script>' for url in extra_scripts
    )
    preloads = "\n".join(
        f'  <link rel="modulepreload" href="{STATIC_PATH}/{name}">' for name in PAGE_MODULES
    )
    return (
        template.replace("{{MODULE_PRELOADS}}", preloads)
        .replace("{{STATIC}}", STATIC_PATH)
        .replace("{{STRIPE_JS_URL}}", html.escape(stripe_js_url, quote=True))
        .replace("{{EXTRA_SCRIPTS}}", scripts)
        .replace("{{CONFIG}}", config_json)
    )


def content_security_policy(stripe_js_url: str) -> str:
    """A policy allowing this origin plus Stripe.js, its API and its frames."""
    parts = urlsplit(stripe_js_url)
    origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    if stripe_js_url == STRIPE_JS_URL or origin == _REAL_STRIPE_ORIGIN:
        script = "https://js.stripe.com https://*.js.stripe.com"
        connect = "https://api.stripe.com"
        frame = "https://js.stripe.com https://*.js.stripe.com https://hooks.stripe.com"
    else:  # a stand-in such as localstripe serves its script and API from one origin
        script = connect = frame = origin
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src 'self' {script}",
            f"connect-src 'self' {connect}",
            f"frame-src {frame}",
            "img-src 'self' data: https://*.stripe.com",
            "style-src 'self' 'unsafe-inline'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'self'",
            "object-src 'none'",
        )
    )
