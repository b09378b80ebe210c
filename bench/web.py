"""P1 and P2: the product's HTTP throughput and latency beside the ceiling and the durable floor.

Every app runs in its own ``uvicorn`` process (``bench.servers``: one worker, the
options of ``buytokens serve``) pinned to CPU 0; the load generator
(``bench.load``, 8 keep-alive clients) runs in this process pinned to CPU 1. The
apps take turns, round after round, on identical request bytes, so slow drift of
the machine hits all of them alike. Throughput is the median over rounds;
latency percentiles pool every round's requests.

P1 sends signed ``payment_intent.succeeded`` webhooks, each for a new payment
intent (unique purchases), to the product on the SQLite store. P2 creates payment
intents with a bearer JWT, the product using the in-memory Stripe twin.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import jwt

from bench.baselines import CHECKOUT_PATH, WEBHOOK_PATH
from bench.load import LoadResult, RequestFactory, http_request, run_load
from bench.servers import JWT_SECRET, WEBHOOK_SECRET
from bench.table import Row, at_least, at_most
from buytokens.adapters.stripe_events import sign_payload
from buytokens.domain.catalogue import DEFAULT_CATALOGUE

HOST = "127.0.0.1"
SERVER_CPU = 0
LOAD_CPU = 1
USERS = 64
PACKAGE = DEFAULT_CATALOGUE.get("package_500k")
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Measured:
    """One app's results over every round of a scenario."""

    kind: str
    rounds: list[LoadResult]

    @property
    def throughput(self) -> float:
        return statistics.median(r.throughput for r in self.rounds)

    def percentile(self, p: float) -> float:
        pooled = LoadResult(seconds=1.0)
        for result in self.rounds:
            pooled.latencies.extend(result.latencies)
        return pooled.percentile(p)

    @property
    def failures(self) -> int:
        return sum(r.failures for r in self.rounds)

    @property
    def generator_busy(self) -> float:
        return max(r.generator_busy for r in self.rounds)


def pin_to(cpu: int) -> None:
    """Pin the calling process to ``cpu`` when the machine has it (no-op otherwise)."""
    if hasattr(os, "sched_setaffinity") and cpu in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {cpu})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_until_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Block until ``GET /healthz`` answers, or fail if the server exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        try:
            with socket.create_connection((HOST, port), timeout=1) as sock:
                sock.sendall(http_request("GET", "/healthz") + b"")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not answer within {timeout} s")


@dataclass(frozen=True)
class Server:
    """A running server process."""

    port: int
    pid: int


@contextmanager
def running_server(kind: str, directory: Path, *options: str) -> Iterator[Server]:
    """Serve ``kind`` (see ``bench.servers``, which takes ``options`` too) pinned to the
    server CPU."""
    port = free_port()
    log = (directory / f"{kind}.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.servers",
            kind,
            "--port",
            str(port),
            "--dir",
            str(directory),
            *options,
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: pin_to(SERVER_CPU),  # noqa: PLW1509 -- no threads started yet
    )
    try:
        wait_until_listening(port, process)
        yield Server(port, process.pid)
    finally:
        stop(process)
        log.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    """Ask a server to shut down; kill it if it has not within 30 s."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def succeeded_event(event_id: str, intent_id: str, user_id: str, created: int) -> dict[str, object]:
    """A Stripe-shaped ``payment_intent.succeeded`` event for one package_500k purchase."""
    return {
        "id": event_id,
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": created,
        "livemode": False,
        "data": {
            "object": {
                "id": intent_id,
                "object": "payment_intent",
                "amount": PACKAGE.price.amount,
                "currency": PACKAGE.price.currency,
                "status": "succeeded",
                "metadata": {"userId": user_id, "packageId": PACKAGE.id},
            }
        },
    }


def signed_webhook(event: dict[str, object], secret: str = WEBHOOK_SECRET) -> bytes:
    """The request Stripe would send for ``event``."""
    payload = json.dumps(event).encode()
    headers = {
        "Content-Type": "application/json",
        "Stripe-Signature": sign_payload(payload, secret),
    }
    return http_request("POST", WEBHOOK_PATH, payload, headers)


def webhook_requests(prefix: str) -> RequestFactory:
    """Request ``i``: a signed success event for a new intent of user ``i mod USERS``."""
    created = int(time.time())

    def build(i: int) -> bytes:
        event = succeeded_event(
            f"evt_{prefix}_{i}", f"pi_{prefix}_{i}", f"user{i % USERS}", created
        )
        return signed_webhook(event)

    return build


def bearer_token(user_id: str, secret: str = JWT_SECRET) -> str:
    """A LibreChat-style access token valid for an hour."""
    return jwt.encode({"id": user_id, "exp": int(time.time()) + 3600}, secret, algorithm="HS256")


def checkout_requests() -> RequestFactory:
    """Request ``i``: user ``i mod USERS`` creates a card payment intent for package_500k."""
    body = json.dumps({"packageId": PACKAGE.id, "paymentMethod": "card"}).encode()
    prepared = [
        http_request(
            "POST",
            CHECKOUT_PATH,
            body,
            {"Content-Type": "application/json", "Authorization": f"Bearer {bearer_token(u)}"},
        )
        for u in (f"user{n}" for n in range(USERS))
    ]
    return lambda i: prepared[i % USERS]


def compare(
    kinds: Sequence[tuple[str, str]],
    requests_for: Callable[[str], RequestFactory],
    *,
    rounds: int,
    seconds: float,
    warmup: float,
    clients: int = 8,
) -> dict[str, Measured]:
    """Measure each ``(label, server kind)`` in turn, ``rounds`` times, on the same requests."""
    pin_to(LOAD_CPU)
    results = {label: Measured(label, []) for label, _ in kinds}
    with servers(kinds) as ports:
        for number in range(rounds):
            for label, _ in kinds:
                factory = requests_for(f"{label}{number}")
                result = run_load(
                    HOST,
                    ports[label],
                    factory,
                    clients=clients,
                    seconds=seconds,
                    warmup=warmup,
                    prebuilt=int(2500 * (seconds + warmup)),
                )
                results[label].rounds.append(result)
    return results


@contextmanager
def servers(
    kinds: Sequence[tuple[str, str]], options: dict[str, Sequence[str]] | None = None
) -> Iterator[dict[str, int]]:
    """Every ``(label, kind)`` running at once, each on a fresh directory and with its
    ``options[label]``; yield their ports."""
    with tempfile.TemporaryDirectory(prefix="buytokens-bench-") as tmp, ExitStack() as stack:
        ports = {}
        for label, kind in kinds:
            directory = Path(tmp) / label
            directory.mkdir()
            extra = (options or {}).get(label, ())
            ports[label] = stack.enter_context(running_server(kind, directory, *extra)).port
        yield ports


def bench_webhooks(rounds: int, seconds: float, warmup: float) -> dict[str, Measured]:
    """P1: unique signed purchases, 8 clients, one worker."""
    kinds = [("ceiling", "ceiling"), ("floor", "floor"), ("app", "app")]
    return compare(kinds, webhook_requests, rounds=rounds, seconds=seconds, warmup=warmup)


def bench_checkout(rounds: int, seconds: float, warmup: float) -> dict[str, Measured]:
    """P2: create-payment-intent with the in-memory Stripe twin, 8 clients, one worker."""
    kinds = [("ceiling", "ceiling"), ("floor", "floor"), ("app", "app-memory-gateway")]
    return compare(
        kinds, lambda _prefix: checkout_requests(), rounds=rounds, seconds=seconds, warmup=warmup
    )


def _scenario_rows(name: str, measured: dict[str, Measured]) -> list[Row]:
    app, floor, ceiling = measured["app"], measured["floor"], measured["ceiling"]
    share_of_floor = app.throughput / floor.throughput
    share_of_ceiling = app.throughput / ceiling.throughput
    p99 = app.percentile(99) / floor.percentile(99)
    p50 = app.percentile(50) / floor.percentile(50)
    failures = app.failures + floor.failures + ceiling.failures
    busy = max(m.generator_busy for m in measured.values())
    return [
        Row(
            f"{name} throughput, app vs durable floor",
            f"{app.throughput:.0f} vs {floor.throughput:.0f} req/s",
            share_of_floor,
            *at_least(share_of_floor, 0.75),
        ),
        Row(
            f"{name} throughput, app vs ceiling (bare endpoint)",
            f"{app.throughput:.0f} vs {ceiling.throughput:.0f} req/s",
            share_of_ceiling,
        ),
        Row(
            f"{name} p99 latency, app vs durable floor",
            f"{app.percentile(99) * 1e3:.1f} vs {floor.percentile(99) * 1e3:.1f} ms",
            p99,
            *at_most(p99, 1.5),
        ),
        Row(
            f"{name} p50 latency, app vs durable floor",
            f"{app.percentile(50) * 1e3:.1f} vs {floor.percentile(50) * 1e3:.1f} ms",
            p50,
        ),
        Row(
            f"{name} non-2xx answers (all three apps) / load generator CPU",
            f"{failures} / {busy:.0%} of its core at most",
            float(failures),
            "0 failures",
            failures == 0,
        ),
    ]


def rows(quick: bool) -> list[Row]:
    """P1 and P2 as table rows."""
    rounds, seconds, warmup = (1, 2.0, 0.5) if quick else (3, 5.0, 1.0)
    p1 = bench_webhooks(rounds, seconds, warmup)
    p2 = bench_checkout(rounds, seconds, warmup)
    return _scenario_rows("P1 webhook", p1) + _scenario_rows("P2 create-intent", p2)
