"""Where a webhook's CPU goes, step by step: ``python -m bench.decompose [--rounds 2]``.

Five servers take turns under the P1 load (the same signed 2.4 kB events to
all), each one step further from the bare endpoint:

1. ceiling: read the body, answer 200;
2. + one hop: also hand a no-op to a worker thread and wait for it;
3. + two hops: that worker hands the no-op on to a dedicated thread, as the
   product reaches its SQLite writer;
4. durable floor: signature, JSON, one fsync'd SQLite transaction in a worker;
5. the product.

For each it prints what the server spent per request answered, from ``/proc``:
CPU (and the kernel's part of it) by kind of thread, and context switches. The
differences between neighbours price a thread hop, the floor's work, and what
the product adds on top, on this machine and under this load.

``--scenario checkout`` does the same for P2's create-intent requests with the
ceiling, the durable floor and the product on the in-memory Stripe twin.
"""

from __future__ import annotations

import argparse

from bench.web import Contender, Measured, checkout_requests, compare, webhook_requests

STEPS = (
    Contender("ceiling", "ceiling"),
    Contender("+ one hop", "ceiling-hop"),
    Contender("+ two hops", "ceiling-two-hops"),
    Contender("durable floor", "floor"),
    Contender("app", "app"),
)
CHECKOUT_STEPS = (
    Contender("ceiling", "ceiling"),
    Contender("durable floor", "floor"),
    Contender("app", "app-memory-gateway"),
)
THREADS = ("event loop", "worker threads", "writer thread")


def _row(label: str, m: Measured) -> str:
    us = [m.thread_cpu_per_request(kind) * 1e6 for kind in THREADS]
    return (
        f"{label:14} {m.throughput:7.0f} {m.cpu_per_request * 1e6:7.0f} "
        f"{m.kernel_cpu_per_request * 1e6:7.0f} "
        + " ".join(f"{u:7.0f}" for u in us)
        + f" {m.switches_per_request:7.1f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--scenario", choices=("webhook", "checkout"), default="webhook")
    args = parser.parse_args(argv)
    steps = CHECKOUT_STEPS if args.scenario == "checkout" else STEPS
    requests = (lambda _prefix: checkout_requests()) if args.scenario == "checkout" else None
    measured = compare(
        steps, requests or webhook_requests, rounds=args.rounds, seconds=args.seconds, warmup=1.0
    )
    print("per request answered; CPU in microseconds (user + system), kernel = system part")
    print(
        f"{'server':14} {'req/s':>7} {'CPU':>7} {'kernel':>7} {'loop':>7} {'workers':>7} "
        f"{'writer':>7} {'ctxsw':>7}"
    )
    for step in steps:
        print(_row(step.label, measured[step.label]))


if __name__ == "__main__":
    main()
