"""Soak: minutes of mixed traffic against a real ``buytokens serve``, then every balance checked.

``python -m bench.soak [--minutes 3] [--clients 8] [--users 20] [--seed 1]``

Starts ``buytokens serve`` on a free loopback port with a temporary SQLite file
(``STRIPE_SECRET_KEY`` unset: webhooks only), then ``--clients`` concurrent
workers send, at random:

* **new purchases**: a signed ``payment_intent.succeeded`` for a new intent;
* **duplicates**: an acknowledged event delivered again, with its own event id or a new one;
* **concurrent duplicates**: one new event delivered three times at once;
* **refunds**: ``charge.refunded`` with a higher cumulative ``amount_refunded`` (and, now
  and then, the same refund again);
* **balance reads**: ``GET /api/custom/balance``.

An independent model (a dict per user, written from the contract's rules, not
from the product's code) says what every balance must be. At the end every
user's balance is read back and compared. Pass: no 5xx, no transport error,
no drift. Not part of CI; ``tests/e2e/test_soak_short.py`` runs 15 seconds of it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.web import bearer_token, free_port, stop, succeeded_event, wait_until_listening
from buytokens.adapters.stripe_events import sign_payload
from buytokens.domain.catalogue import DEFAULT_CATALOGUE

HOST = "127.0.0.1"
JWT_SECRET = "soak-jwt-secret-0123456789abcdef"
WEBHOOK_SECRET = "whsec_soak_0123456789"
WEBHOOK = "/api/custom/stripe/webhook"
BALANCE = "/api/custom/balance"
PACKAGES = [DEFAULT_CATALOGUE.get(p) for p in ("package_100k", "package_500k", "package_1m")]
# Operation mix, by weight.
MIX = {
    "purchase": 30,
    "duplicate": 15,
    "concurrent_duplicates": 10,
    "refund": 15,
    "balance": 30,
}


@dataclass
class _Purchase:
    user: str
    intent: str
    amount: int
    currency: str
    tokens: int
    event: dict[str, object]
    refunded: int = 0  # cumulative minor units acknowledged
    refund_event: dict[str, object] | None = None


@dataclass
class SoakReport:
    """What the soak sent and what it found."""

    seconds: float = 0.0
    requests: int = 0
    operations: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    drift: dict[str, tuple[int, int]] = field(default_factory=dict)  # user: (expected, actual)
    users_checked: int = 0

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    @property
    def ok(self) -> bool:
        unexpected = sum(n for status, n in self.statuses.items() if status != 200)
        return not (self.server_errors or self.transport_errors or self.drift or unexpected)

    def summary(self) -> str:
        lines = [
            f"{self.requests} requests in {self.seconds:.0f} s "
            f"({self.requests / max(self.seconds, 1e-9):.0f} req/s)",
            "operations: " + ", ".join(f"{k} {v}" for k, v in sorted(self.operations.items())),
            "statuses: " + ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items())),
            "webhook outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())),
            f"5xx: {self.server_errors}; transport errors: {self.transport_errors}",
            f"balances checked: {self.users_checked}; drifted: {len(self.drift)}",
        ]
        lines += [f"  {user}: expected {e}, got {a}" for user, (e, a) in self.drift.items()]
        lines.append("PASS" if self.ok else "FAIL")
        return "\n".join(lines)


class _Model:
    """What every balance must be, from the contract's crediting rules."""

    def __init__(self, users: list[str]) -> None:
        self.balances = dict.fromkeys(users, 0)
        self.credited: list[_Purchase] = []  # acknowledged, free for duplicates and refunds
        self.busy: set[str] = set()  # intents a worker is refunding right now

    def credit(self, purchase: _Purchase) -> None:
        self.balances[purchase.user] += purchase.tokens
        self.credited.append(purchase)

    def refund(self, purchase: _Purchase, cumulative: int) -> None:
        # The refunded share of the tokens, by cumulative amount, rounded down.
        before = purchase.tokens * purchase.refunded // purchase.amount
        after = purchase.tokens * cumulative // purchase.amount
        self.balances[purchase.user] -= after - before
        purchase.refunded = cumulative


class _Soak:
    def __init__(
        self, client: httpx.AsyncClient, users: list[str], rng: random.Random, report: SoakReport
    ) -> None:
        self.client = client
        self.users = users
        self.rng = rng
        self.report = report
        self.model = _Model(users)
        self.tokens = {user: bearer_token(user, JWT_SECRET) for user in users}
        self.sequence = 0

    def _next_id(self, prefix: str) -> str:
        self.sequence += 1
        return f"{prefix}_soak{self.sequence:08d}"

    async def _send(self, method: str, path: str, **kwargs: object) -> httpx.Response | None:
        self.report.requests += 1
        try:
            response = await self.client.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError:
            self.report.transport_errors += 1
            return None
        self.report.statuses[response.status_code] += 1
        return response

    async def _deliver(self, event: dict[str, object]) -> str | None:
        """Deliver ``event`` signed; its outcome on 200, else None."""
        payload = json.dumps(event).encode()
        headers = {
            "Content-Type": "application/json",
            "Stripe-Signature": sign_payload(payload, WEBHOOK_SECRET),
        }
        response = await self._send("POST", WEBHOOK, content=payload, headers=headers)
        if response is None or response.status_code != 200:
            return None
        outcome = str(response.json().get("outcome"))
        self.report.outcomes[outcome] += 1
        return outcome

    def _new_purchase(self) -> _Purchase:
        package = self.rng.choice(PACKAGES)
        user = self.rng.choice(self.users)
        intent = self._next_id("pi")
        event = succeeded_event(self._next_id("evt"), intent, user, int(time.time()))
        subject = event["data"]["object"]
        subject["amount"] = package.price.amount
        subject["currency"] = package.price.currency
        subject["metadata"]["packageId"] = package.id
        return _Purchase(
            user, intent, package.price.amount, package.price.currency, package.tokens, event
        )

    async def purchase(self) -> None:
        purchase = self._new_purchase()
        if await self._deliver(purchase.event) is not None:
            self.model.credit(purchase)

    async def concurrent_duplicates(self) -> None:
        purchase = self._new_purchase()
        outcomes = await asyncio.gather(*(self._deliver(purchase.event) for _ in range(3)))
        if any(outcome is not None for outcome in outcomes):
            self.model.credit(purchase)

    async def duplicate(self) -> None:
        if not self.model.credited:
            return await self.purchase()
        purchase = self.rng.choice(self.model.credited)
        event = purchase.event
        if self.rng.random() < 0.5:  # Stripe may also resend the fact under a new event id
            event = {**event, "id": self._next_id("evt")}
        await self._deliver(event)
        return None

    async def refund(self) -> None:
        candidates = [
            p
            for p in self.model.credited
            if p.refunded < p.amount and p.intent not in self.model.busy
        ]
        if not candidates:
            return await self.purchase()
        purchase = self.rng.choice(candidates)
        self.model.busy.add(purchase.intent)
        try:
            if purchase.refund_event is not None and self.rng.random() < 0.2:
                await self._deliver(purchase.refund_event)  # the same refund, again
                return None
            step = self.rng.choice((purchase.amount // 3, purchase.amount // 2, purchase.amount))
            cumulative = min(purchase.amount, purchase.refunded + max(step, 1))
            event: dict[str, object] = {
                "id": self._next_id("evt"),
                "object": "event",
                "type": "charge.refunded",
                "created": int(time.time()),
                "livemode": False,
                "data": {
                    "object": {
                        "id": f"ch_{purchase.intent}",
                        "object": "charge",
                        "amount": purchase.amount,
                        "currency": purchase.currency,
                        "amount_refunded": cumulative,
                        "refunded": cumulative == purchase.amount,
                        "payment_intent": purchase.intent,
                    }
                },
            }
            if await self._deliver(event) is not None:
                self.model.refund(purchase, cumulative)
                purchase.refund_event = event
        finally:
            self.model.busy.discard(purchase.intent)
        return None

    async def balance(self) -> None:
        user = self.rng.choice(self.users)
        await self._send("GET", BALANCE, headers={"Authorization": f"Bearer {self.tokens[user]}"})

    async def worker(self, deadline: float) -> None:
        names = list(MIX)
        weights = [MIX[name] for name in names]
        while time.monotonic() < deadline:
            name = self.rng.choices(names, weights)[0]
            self.report.operations[name] += 1
            await getattr(self, name)()

    async def verify(self) -> None:
        for user in self.users:
            expected = self.model.balances[user]
            response = await self._send(
                "GET", BALANCE, headers={"Authorization": f"Bearer {self.tokens[user]}"}
            )
            actual = -1 if response is None else int(response.json().get("tokenCredits", -1))
            self.report.users_checked += 1
            if actual != expected:
                self.report.drift[user] = (expected, actual)


async def soak_async(port: int, seconds: float, clients: int, users: int, seed: int) -> SoakReport:
    """Drive the server on ``port`` for ``seconds``, then verify every balance."""
    report = SoakReport()
    names = [f"soakuser{n:03d}" for n in range(users)]
    limits = httpx.Limits(max_connections=clients * 3, max_keepalive_connections=clients * 3)
    async with httpx.AsyncClient(
        base_url=f"http://{HOST}:{port}", limits=limits, timeout=30
    ) as client:
        soak = _Soak(client, names, random.Random(seed), report)
        started = time.monotonic()
        await asyncio.gather(*(soak.worker(started + seconds) for _ in range(clients)))
        report.seconds = time.monotonic() - started
        await soak.verify()
    return report


def buytokens_command() -> list[str]:
    """The installed ``buytokens`` console script next to this interpreter."""
    beside = Path(sys.executable).with_name("buytokens")
    found = str(beside) if beside.exists() else shutil.which("buytokens")
    if found is None:
        return [sys.executable, "-m", "buytokens.entrypoints.cli"]
    return [found]


@contextmanager
def served(directory: Path) -> Iterator[int]:
    """``buytokens serve`` on a free loopback port over ``directory``; yield the port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "MONGODB_"))}
    env |= {
        "JWT_SECRET": JWT_SECRET,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "BUYTOKENS_SQLITE_PATH": str(directory / "soak.sqlite3"),
    }
    log = (directory / "serve.log").open("wb")
    process = subprocess.Popen(
        [*buytokens_command(), "serve", "--host", HOST, "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_listening(port, process)
        yield port
    finally:
        stop(process)
        log.close()


def run_soak(seconds: float, clients: int = 8, users: int = 20, seed: int = 1) -> SoakReport:
    """Start a server, soak it for ``seconds``, verify, stop it."""
    with tempfile.TemporaryDirectory(prefix="buytokens-soak-") as tmp, served(Path(tmp)) as port:
        return asyncio.run(soak_async(port, seconds, clients, users, seed))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    report = run_soak(args.minutes * 60, args.clients, args.users, args.seed)
    print(report.summary())
    raise SystemExit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
