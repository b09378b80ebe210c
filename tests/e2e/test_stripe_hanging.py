"""A Stripe that accepts connections and never answers slows nothing that does not need it.

A real ``buytokens serve`` points at a loopback server that never answers.
While fifty return-page checks wait on it, webhooks, balances, purchase lists
and the page answer at once, the checks end within the time budget with a
retryable error, and Stripe sees a bounded number of connections.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from bench.silent_stripe import SilentServer

from buytokens.adapters.sqlite.store import SqliteBalanceRepository
from buytokens.adapters.stripe_events import sign_payload
from buytokens.adapters.system import SystemClock
from buytokens.domain.catalogue import DEFAULT_CATALOGUE
from buytokens.domain.purchases import Purchase
from tests.e2e.conftest import WEBHOOK_SECRET, token_for
from tests.e2e.test_serve import Server, _env, _succeeded

pytestmark = pytest.mark.slow

BUDGET = 8.0  # the default
RETRIES = 1
SLOTS = 4
USERS = [f"user{n}" for n in range(5)]
CHECKS_PER_USER = 10  # 50 checks in all
CHECK_LIMIT = 6  # per user and minute
CHECK = "/api/custom/stripe/payment-intents/"
FAST = 2.0  # seconds: generous on a loaded two-core machine, far below the budget


def _seed_pending(path: Path) -> list[tuple[str, str]]:
    """Pending purchases the store knows and Stripe will never answer about."""
    store = SqliteBalanceRepository(path, SystemClock())
    package = DEFAULT_CATALOGUE.get("package_100k")
    now = datetime.now(UTC)
    checks = []
    try:
        for user in USERS:
            for n in range(CHECKS_PER_USER):
                intent = f"pi_hang{user}x{n}"
                store.add_purchase(
                    Purchase.pending(intent, user, package.id, package.tokens, package.price, now)
                )
                checks.append((user, intent))
    finally:
        store.close()
    return checks


def _timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def _webhook(client: httpx.Client, payload: bytes) -> httpx.Response:
    headers = {"Stripe-Signature": sign_payload(payload, WEBHOOK_SECRET)}
    return client.post("/api/custom/stripe/webhook", content=payload, headers=headers)


def _bearer(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(user)}"}


def test_a_hanging_stripe_slows_nothing_that_does_not_need_it(tmp_path: Path) -> None:
    """Webhooks, balances, purchases and the page stay fast; checks fail fast and retryably."""
    checks = _seed_pending(tmp_path / "serve.sqlite3")
    with SilentServer() as stripe:
        env = _env(
            tmp_path,
            STRIPE_SECRET_KEY="sk_test_hanging",
            STRIPE_API_BASE=stripe.url,
            BUYTOKENS_STRIPE_BUDGET=str(BUDGET),
            BUYTOKENS_STRIPE_RETRIES=str(RETRIES),
            BUYTOKENS_STRIPE_CONCURRENCY=str(SLOTS),
            BUYTOKENS_RATE_LIMIT_CHECKS_PER_USER=f"{CHECK_LIMIT}/minute",
        )
        server = Server(tmp_path, env)
        # Clients made up front: building one per request costs a TLS context each,
        # which on a loaded machine would be measured as the server's time.
        probe = httpx.Client(base_url=server.url, timeout=30)
        pages = httpx.Client(
            base_url=server.url, timeout=120, limits=httpx.Limits(max_connections=len(checks))
        )
        try:
            # A purchase that has settled is answered from the store alone.
            assert _webhook(probe, _succeeded("pi_settled", "user0")).status_code == 200
            settled, took = _timed(
                lambda: probe.get(CHECK + "pi_settled", headers=_bearer("user0"))
            )
            assert settled.status_code == 200, settled.text
            assert settled.json()["status"] == "succeeded"
            assert took < FAST
            assert stripe.connections == 0

            answers: list[tuple[int, float, float]] = []
            lock = threading.Lock()
            start = threading.Barrier(len(checks))

            def check(user: str, intent: str) -> None:
                headers = _bearer(user)
                start.wait()
                started = time.monotonic()
                try:
                    status = pages.get(CHECK + intent, headers=headers).status_code
                except httpx.HTTPError:
                    status = 0
                ended = time.monotonic()
                with lock:
                    answers.append((status, ended - started, ended))

            threads = [threading.Thread(target=check, args=pair) for pair in checks]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 10
            while stripe.connections == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert stripe.connections > 0, "no check reached Stripe"

            # Stripe now hangs on open connections: everything else answers at once.
            fast: list[tuple[str, int, float]] = []
            for n, user in enumerate(USERS):
                payload, headers = _succeeded(f"pi_during{n}", user), _bearer(user)
                response, took = _timed(lambda payload=payload: _webhook(probe, payload))
                fast.append(("webhook", response.status_code, took))
                for path in ("/api/custom/balance", "/api/custom/stripe/purchases"):
                    response, took = _timed(
                        lambda path=path, headers=headers: probe.get(path, headers=headers)
                    )
                    fast.append((path, response.status_code, took))
            page, took = _timed(lambda: probe.get("/buy-tokens"))
            fast.append(("page", page.status_code, took))
            measured_until = time.monotonic()

            for thread in threads:
                thread.join(timeout=180)
        finally:
            probe.close()
            pages.close()
            if server.process.poll() is None:
                server.stop()

    assert [(what, status) for what, status, _ in fast if status != 200] == []
    slow = [(what, round(took, 2)) for what, _, took in fast if took >= FAST]
    assert slow == [], f"answers that waited behind Stripe: {slow}"
    # The fast answers above were taken while checks were still waiting on Stripe.
    assert measured_until < max(ended for _, _, ended in answers)

    statuses = Counter(status for status, _, _ in answers)
    assert len(answers) == len(checks)
    assert set(statuses) <= {429, 502, 503, 504}, statuses
    assert statuses[429] == len(USERS) * (CHECKS_PER_USER - CHECK_LIMIT)
    assert 1 <= statuses[504] <= SLOTS
    longest = max(took for _, took, _ in answers)
    assert longest < BUDGET + 2, f"a check took {longest:.1f} s"
    # Never more calls to Stripe at once than the lane has slots, each call at most
    # 1 + RETRIES attempts (the checks all arrived within one budget).
    assert stripe.peak <= SLOTS
    assert stripe.connections <= SLOTS * (1 + RETRIES)
