"""P5: webhook latency with Stripe hanging, beside the same traffic with Stripe healthy.

Two products run side by side, as in P1 (one uvicorn worker pinned to CPU 0,
the load generator on CPU 1): ``healthy`` with the in-memory Stripe twin, which
answers at once, and ``hanging`` with the Stripe adapter pointed at a loopback
server that accepts connections and never answers (``bench.silent_stripe``),
with the default time budget and lane. While the 8 webhook clients of P1 run,
``POLLERS`` pages poll the return-page check every ``POLL_INTERVAL`` seconds for
intents the store does not know, so every check has to ask Stripe: against the
hanging one they fill the lane and hold its slots for the whole budget. The
pollers run on a thread of the load generator's process, against whichever app
is being measured. The row compares the webhooks' p99 latency of the two.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass
from types import TracebackType

from bench.load import http_request, read_response
from bench.silent_stripe import SilentServer
from bench.table import Row, at_most
from bench.web import (
    HOST,
    LOAD_CPU,
    Contender,
    Measured,
    bearer_token,
    pin_to,
    run_load,
    servers,
    webhook_requests,
)

POLLERS = 32
POLL_INTERVAL = 0.25
CHECK_PATH = "/api/custom/stripe/payment-intents/"


class Pollers:
    """``count`` pages polling the return-page check of ``port`` on a thread of their own."""

    def __init__(self, port: int, count: int = POLLERS, interval: float = POLL_INTERVAL) -> None:
        self.port, self.count, self.interval = port, count, interval
        self.statuses: Counter[int] = Counter()
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Pollers:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        self._loop.run_until_complete(self._all())
        self._loop.close()

    async def _all(self) -> None:
        tasks = [asyncio.create_task(self._poll(n)) for n in range(self.count)]
        await self._stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _poll(self, number: int) -> None:
        headers = {"Authorization": f"Bearer {bearer_token(f'poller{number}')}"}
        sequence = 0
        while True:
            try:
                reader, writer = await asyncio.open_connection(HOST, self.port)
            except OSError:
                await asyncio.sleep(self.interval)
                continue
            try:
                while True:
                    sequence += 1
                    path = f"{CHECK_PATH}pi_poll{number}n{sequence}"
                    writer.write(http_request("GET", path, headers=headers))
                    status, _ = await read_response(reader)
                    self.statuses[status] += 1
                    await asyncio.sleep(self.interval)
            except (OSError, asyncio.IncompleteReadError):
                self.statuses[0] += 1
            finally:
                writer.close()


@dataclass
class HangingRun:
    """The webhooks measured per app, the answers the pollers got, what Stripe saw."""

    webhooks: dict[str, Measured]
    checks: dict[str, Counter[int]]
    stripe_connections: int


def bench_hanging(rounds: int, seconds: float, warmup: float) -> HangingRun:
    """P5: the webhooks of P1 while pages poll the check, Stripe healthy and hanging."""
    pin_to(LOAD_CPU)
    labels = ("healthy", "hanging")
    results = {label: Measured(label, []) for label in labels}
    checks: dict[str, Counter[int]] = {label: Counter() for label in labels}
    with SilentServer() as stripe:
        contenders = [
            Contender("healthy", "app-memory-gateway"),
            Contender("hanging", "app-stripe-hanging", options=("--stripe-api-base", stripe.url)),
        ]
        with servers(contenders) as running:
            ports = {label: server.port for label, server in running.items()}
            for number in range(rounds):
                for label in labels:
                    with Pollers(ports[label]) as pollers:
                        time.sleep(1.0)  # the pollers fill the lane first
                        result = run_load(
                            HOST,
                            ports[label],
                            webhook_requests(f"{label}{number}"),
                            clients=8,
                            seconds=seconds,
                            warmup=warmup,
                            prebuilt=int(2500 * (seconds + warmup)),
                        )
                    results[label].rounds.append(result)
                    checks[label] += pollers.statuses
        connections = stripe.connections
    return HangingRun(results, checks, connections)


def _statuses(counter: Counter[int]) -> str:
    # 0 counts connections that broke before an answer.
    return " ".join(f"{status}x{n}" for status, n in sorted(counter.items()))


def rows(quick: bool) -> list[Row]:
    """P5 as table rows."""
    rounds, seconds, warmup = (1, 2.0, 0.5) if quick else (3, 5.0, 1.0)
    run = bench_hanging(rounds, seconds, warmup)
    healthy, hanging = run.webhooks["healthy"], run.webhooks["hanging"]
    p99 = hanging.percentile(99) / healthy.percentile(99)
    throughput = hanging.throughput / healthy.throughput
    failures = healthy.failures + hanging.failures
    return [
        Row(
            "P5 webhook p99 latency, Stripe hanging vs healthy",
            f"{hanging.percentile(99) * 1e3:.1f} vs {healthy.percentile(99) * 1e3:.1f} ms",
            p99,
            *at_most(p99, 1.5),
        ),
        Row(
            "P5 webhook throughput, Stripe hanging vs healthy",
            f"{hanging.throughput:.0f} vs {healthy.throughput:.0f} req/s",
            throughput,
        ),
        Row(
            "P5 non-2xx webhooks (both) / return checks meanwhile",
            f"{failures} / hanging: {_statuses(run.checks['hanging'])}, "
            f"{run.stripe_connections} connections to Stripe; "
            f"healthy: {_statuses(run.checks['healthy'])}",
            float(failures),
            "0 failures",
            failures == 0,
        ),
    ]
