"""``buytokens demo``: a working purchase on a fresh machine, with nothing to configure.

It starts localstripe (a fake Stripe server) on a free loopback port, points the
webhook at this app with a fresh signing secret, keeps balances in a temporary
SQLite file, and serves the API and the Buy Tokens page. The printed URL carries a
24-hour access token for a demo user. Ctrl-C (or SIGTERM) stops everything it
started and deletes its files.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Any

import attrs
import jwt
import stripe
import uvicorn
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from buytokens.adapters.stripe_events import HANDLED_EVENT_TYPES
from buytokens.domain.errors import OperatorError
from buytokens.entrypoints.container import Container, create_container
from buytokens.entrypoints.settings import Settings
from buytokens.entrypoints.web.app import create_app
from buytokens.entrypoints.web.page import PAGE_PATH, add_page_scripts
from buytokens.testing.localstripe import LocalStripe

LOOPBACK = "127.0.0.1"
DEMO_PUBLISHABLE_KEY = "pk_test_demo"
DEMO_SECRET_KEY = "sk_test_demo"  # noqa: S105 - localstripe accepts any sk_ key
TOKEN_LIFETIME = timedelta(hours=24)
WEBHOOK_PATH = "/api/custom/stripe/webhook"
LOCALSTRIPE_CONFIRM_PATH = "/_localstripe/confirm-card-payment"
LOCALSTRIPE_BRIDGE_URL = f"{PAGE_PATH}/demo/localstripe-bridge.js"
"""Script that lets localstripe's Stripe.js confirm card payments like the real one; it is
served under the page's path (the page's security policy allows same-origin scripts only)."""
STARTUP_TIMEOUT = 20.0


class DemoError(OperatorError):
    """The demo could not start."""

    code = "demo_error"


@attrs.frozen(repr=False)
class Demo:
    """A running demo: where it listens and what a test needs to drive it."""

    base_url: str
    user_id: str
    jwt_secret: str = attrs.field(repr=False)
    webhook_secret: str = attrs.field(repr=False)
    localstripe: LocalStripe
    container: Container
    app: FastAPI
    server_thread: threading.Thread = attrs.field(repr=False)

    def token_for(self, user_id: str, lifetime: timedelta = TOKEN_LIFETIME) -> str:
        """A LibreChat-style access token (HS256, claims ``id`` and ``exp``) for ``user_id``."""
        expires = datetime.now(UTC) + lifetime
        return jwt.encode({"id": user_id, "exp": expires}, self.jwt_secret, algorithm="HS256")

    def page_url(self, user_id: str | None = None) -> str:
        """The Buy Tokens page URL with a fresh token for ``user_id`` (the demo user by default)."""
        return f"{self.base_url}{PAGE_PATH}#token={self.token_for(user_id or self.user_id)}"

    def __repr__(self) -> str:
        return f"Demo(base_url={self.base_url!r}, user_id={self.user_id!r})"


class _ConfirmCardPayment(BaseModel):
    clientSecret: str = Field(min_length=1, max_length=200)  # noqa: N815 - the page's JSON
    token: str = Field(pattern=r"^tok_\w+$", max_length=100)


def localstripe_confirm_router(localstripe: LocalStripe) -> APIRouter:
    """The one step localstripe leaves to a secret key: attach a card token and confirm.

    It plays the part of Stripe's own servers for ``localstripe-bridge.js``: the page
    sends a token made by localstripe (never card details) and the intent's client
    secret, which must match.
    """
    client = stripe.StripeClient(
        DEMO_SECRET_KEY,
        base_addresses={"api": localstripe.api_base},
        stripe_version=localstripe.api_version,
        max_network_retries=0,
    )
    router = APIRouter(include_in_schema=False)
    bridge = resources.files("buytokens.testing").joinpath("static/localstripe-bridge.js")
    bridge_script = bridge.read_bytes()

    @router.get(LOCALSTRIPE_BRIDGE_URL)
    def localstripe_bridge() -> Response:
        return Response(
            bridge_script,
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    @router.post(LOCALSTRIPE_CONFIRM_PATH)
    def confirm_card_payment(body: _ConfirmCardPayment) -> JSONResponse:
        intent_id = body.clientSecret.partition("_secret_")[0]
        try:
            intent = client.v1.payment_intents.retrieve(intent_id)
            if not intent_id.startswith("pi_") or not secrets.compare_digest(
                intent.client_secret or "", body.clientSecret
            ):
                return _stripe_error(404, "invalid_request_error", "No such payment intent.")
            token = client.v1.tokens.retrieve(body.token)
            card = token.card
            if card is None:
                return _stripe_error(400, "invalid_request_error", "The token holds no card.")
            client.v1.payment_intents.update(intent_id, {"payment_method": card.id})
            confirmed = client.v1.payment_intents.confirm(intent_id)
        except stripe.CardError as exc:
            return _stripe_error(402, "card_error", exc.user_message or "Your card was declined.")
        except stripe.StripeError as exc:
            return _stripe_error(exc.http_status or 502, "api_error", exc.user_message or str(exc))
        return JSONResponse({"id": confirmed.id, "status": confirmed.status})

    return router


def _stripe_error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)


def build_demo_app(settings: Settings, localstripe: LocalStripe) -> tuple[Container, FastAPI]:
    """The production app on these settings, plus the localstripe bridge for the page."""
    container = create_container(settings)
    app = create_app(container)
    app.include_router(localstripe_confirm_router(localstripe))
    add_page_scripts(app, LOCALSTRIPE_BRIDGE_URL)
    return container, app


@contextlib.contextmanager
def running_demo(port: int = 0, *, host: str = LOOPBACK) -> Iterator[Demo]:
    """Run localstripe and the app (in a background thread) until the block exits.

    ``port`` 0 picks a free port. Everything started here is stopped, and the
    temporary directory deleted, on the way out, whatever happened.
    """
    with contextlib.ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="buytokens-demo-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        listener = _bind(host, port)
        stack.callback(listener.close)
        bound_port = listener.getsockname()[1]
        # The browser and localstripe both reach the app on loopback.
        base_url = f"http://{LOOPBACK if host in ('0.0.0.0', '') else host}:{bound_port}"  # noqa: S104

        localstripe = LocalStripe.start()
        stack.callback(localstripe.stop)
        webhook_secret = "whsec_" + secrets.token_hex(24)
        # Subscribed to the events an operator subscribes a real endpoint to.
        localstripe.register_webhook(
            f"http://{LOOPBACK}:{bound_port}{WEBHOOK_PATH}",
            webhook_secret,
            events=sorted(HANDLED_EVENT_TYPES),
        )

        settings = Settings(
            jwt_secret=secrets.token_urlsafe(32),
            stripe_secret_key=DEMO_SECRET_KEY,
            stripe_webhook_secret=webhook_secret,
            stripe_publishable_key=DEMO_PUBLISHABLE_KEY,
            stripe_api_base=localstripe.api_base,
            stripe_js_url=localstripe.js_url,
            stripe_api_version=localstripe.api_version,
            sqlite_path=str(workdir / "buytokens.sqlite3"),
        )
        assert settings.jwt_secret is not None
        container, app = build_demo_app(settings, localstripe)

        server = uvicorn.Server(
            uvicorn.Config(
                app, log_level="warning", access_log=False, lifespan="off", proxy_headers=False
            )
        )
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [listener]}, name="buytokens-demo", daemon=True
        )
        thread.start()
        stack.callback(_stop_server, server, thread)
        _wait_until_started(server, thread)

        yield Demo(
            base_url=base_url,
            user_id=f"demo-{uuid.uuid4().hex[:12]}",
            jwt_secret=settings.jwt_secret,
            webhook_secret=webhook_secret,
            localstripe=localstripe,
            container=container,
            app=app,
            server_thread=thread,
        )


def run_demo(
    port: int = 3080,
    *,
    host: str = LOOPBACK,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the demo on ``host:port``, print the page URL and block until Ctrl-C or SIGTERM.

    ``ready`` is called with the page URL once everything answers.
    """
    with (
        contextlib.suppress(KeyboardInterrupt),
        _terminate_as_interrupt(),
        running_demo(port, host=host) as demo,
    ):
        url = demo.page_url()
        print(f"Buy Tokens demo is running. Open:\n\n  {url}\n", flush=True)
        print(
            "Pay with 4242 4242 4242 4242 (any future date, any CVC); "
            "4000 0000 0000 0341 is declined. Press Ctrl-C to stop.",
            flush=True,
        )
        if ready is not None:
            ready(url)
        while demo.server_thread.is_alive():
            demo.server_thread.join(0.2)
    print("Demo stopped; its temporary files are deleted.", file=sys.stderr, flush=True)


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise DemoError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(128)
    return sock


def _wait_until_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not server.started:
        if not thread.is_alive():
            raise DemoError("the web server stopped while starting")
        if time.monotonic() > deadline:
            raise DemoError(f"the web server did not start within {STARTUP_TIMEOUT:g} s")
        time.sleep(0.02)


def _stop_server(server: uvicorn.Server, thread: threading.Thread) -> None:
    server.should_exit = True
    thread.join(timeout=10)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C, so both run the same clean-up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> Any:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
