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

from buytokens.adapters.memory import SystemClock
from buytokens.adapters.sqlite import SqliteBalanceRepository
from buytokens.domain.catalogue import DEFAULT_CATALOGUE
from buytokens.domain.purchases import Purchase
from tests.e2e.conftest import token_for
from tests.e2e.test_serve import Server, _env, _post_webhook, _succeeded

pytestmark = pytest.mark.slow

BUDGET = 3.0
RETRIES = 1
SLOTS = 4
USERS = [f"user{n}" for n in range(5)]
CHECKS_PER_USER = 10  # 50 checks in all
CHECK_LIMIT = 6  # per user and minute
FAST = 1.0  # seconds: a generous bound on a loaded two-core machine


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
        try:
            # A purchase that has settled is answered from the store alone.
            assert _post_webhook(server.url, _succeeded("pi_settled", "user0")).status_code == 200
            settled, took = _timed(
                lambda: httpx.get(
                    f"{server.url}/api/custom/stripe/payment-intents/pi_settled",
                    headers={"Authorization": f"Bearer {token_for('user0')}"},
                    timeout=30,
                )
            )
            assert settled.status_code == 200, settled.text
            assert settled.json()["status"] == "succeeded"
            assert took < FAST
            assert stripe.connections == 0

            answers: list[tuple[int, float, float]] = []
            lock = threading.Lock()

            def check(user: str, intent: str) -> None:
                started = time.monotonic()
                try:
                    status = httpx.get(
                        f"{server.url}/api/custom/stripe/payment-intents/{intent}",
                        headers={"Authorization": f"Bearer {token_for(user)}"},
                        timeout=120,
                    ).status_code
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
            for n in range(5):
                user = USERS[n]
                response, took = _timed(
                    lambda n=n, user=user: _post_webhook(
                        server.url, _succeeded(f"pi_during{n}", user)
                    )
                )
                fast.append(("webhook", response.status_code, took))
                headers = {"Authorization": f"Bearer {token_for(user)}"}
                for path in ("/api/custom/balance", "/api/custom/stripe/purchases"):
                    response, took = _timed(
                        lambda path=path, headers=headers: httpx.get(
                            server.url + path, headers=headers, timeout=30
                        )
                    )
                    fast.append((path, response.status_code, took))
            page, took = _timed(lambda: httpx.get(f"{server.url}/buy-tokens", timeout=30))
            fast.append(("page", page.status_code, took))
            measured_until = time.monotonic()

            for thread in threads:
                thread.join(timeout=180)
        finally:
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
    # Each slot makes one call at a time, and each call at most 1 + RETRIES attempts.
    assert stripe.connections <= SLOTS * (1 + RETRIES)
