"""Serve one of the benchmarked apps under uvicorn, with the settings ``buytokens serve`` uses.

``python -m bench.servers KIND --port PORT --dir DIR`` where KIND is

* ``ceiling``: the bare endpoint (``bench.baselines.ceiling_app``);
* ``ceiling-hop``, ``ceiling-two-hops``: the bare endpoint plus one or two thread
  hand-offs of a no-op (``bench.baselines.hop_app``);
* ``floor``: the durable floor (``bench.baselines.floor_app``) on ``DIR/floor.sqlite3``;
* ``app``: the product, ``create_app`` on a container from ``create_container(Settings(...))``
  with the SQLite store in ``DIR/app.sqlite3`` and the Stripe adapter (a webhook never
  calls Stripe);
* ``app-memory-gateway``: the same with the in-memory Stripe twin in place of the Stripe
  adapter, so creating payment intents costs no network round trip;
* ``app-stripe-hanging``: the product with the Stripe adapter pointed at ``--stripe-api-base``
  (a Stripe that never answers, ``bench.silent_stripe``), with the default time budget and
  lane.

The product logs as ``buytokens serve`` does (one JSON line per request on stderr);
the caller decides where stderr goes.

``--stack`` picks uvicorn's event loop and HTTP parser for every kind alike:
``asyncio-h11`` (the default, and what a plain ``pip install buytokens`` gets)
or ``uvloop-httptools`` (what ``uvicorn[standard]`` adds). It is explicit
because uvicorn otherwise picks uvloop and httptools whenever they are installed.

``--count-calls FILE`` runs the server under ``cProfile`` in every thread and
writes the merged call counts to FILE when it shuts down (``bench.callcount``).
"""

from __future__ import annotations

import argparse
import ctypes
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import uvicorn
from dependency_injector import providers
from fastapi import FastAPI

from bench import callcount
from bench.baselines import ceiling_app, floor_app, hop_app
from buytokens.entrypoints.container import create_container
from buytokens.entrypoints.server import configure_logging
from buytokens.entrypoints.settings import Settings
from buytokens.entrypoints.web.app import create_app
from buytokens.testing.stripe_twin import InMemoryPaymentGateway

KINDS = (
    "ceiling",
    "ceiling-hop",
    "ceiling-two-hops",
    "floor",
    "app",
    "app-memory-gateway",
    "app-stripe-hanging",
)
_PR_SET_NAME = 15
STACKS = {"asyncio-h11": ("asyncio", "h11"), "uvloop-httptools": ("uvloop", "httptools")}
JWT_SECRET = "bench-jwt-secret-0123456789abcdef"
WEBHOOK_SECRET = "whsec_bench_0123456789"


def product_settings(directory: Path, stripe_api_base: str | None = None) -> Settings:
    """The product's settings for a benchmark run: SQLite in ``directory``, no rate limits."""
    return Settings(
        jwt_secret=JWT_SECRET,
        stripe_secret_key="sk_test_bench_never_called",
        stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_api_base=stripe_api_base,
        sqlite_path=str(directory / "app.sqlite3"),
        rate_limit_per_user="1000000/minute",
        rate_limit_per_ip="1000000/minute",
        rate_limit_checks_per_user="1000000/minute",
    )


def build(kind: str, directory: Path, stripe_api_base: str | None = None) -> FastAPI:
    """The app of ``kind`` (see the module documentation)."""
    if kind == "ceiling":
        return ceiling_app()
    if kind in ("ceiling-hop", "ceiling-two-hops"):
        return hop_app(two_hops=kind == "ceiling-two-hops")
    if kind == "floor":
        return floor_app(directory / "floor.sqlite3", WEBHOOK_SECRET, JWT_SECRET)
    if kind == "app-stripe-hanging" and stripe_api_base is None:
        raise SystemExit("app-stripe-hanging needs --stripe-api-base")
    container = create_container(product_settings(directory, stripe_api_base))
    if kind == "app-memory-gateway":
        gateway = InMemoryPaymentGateway(webhook_secret=WEBHOOK_SECRET)
        container.gateway.override(providers.Object(gateway))
    # What `buytokens serve` checks and opens before it listens.
    container.catalogue()
    container.stores()
    container.gateway()
    container.rate_limiter()
    configure_logging()
    return create_app(container)


def _on_every_new_thread(counter: callcount.CallCounter | None) -> None:
    """Give every thread started from now on its Python name as its native name too.

    Python 3.11 leaves every thread named after the process, so ``/proc`` could
    not tell the event loop's helpers apart (``bench.procstat`` reads the names).
    With ``counter``, each new thread also starts counting calls.
    """
    libc = ctypes.CDLL(None) if sys.platform == "linux" else None

    def first_event(frame: FrameType, event: str, arg: object) -> None:
        sys.setprofile(None)  # once per thread; cProfile may take over below
        if libc is not None:
            name = threading.current_thread().name.encode()[:15]
            libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)
        if counter is not None:
            counter.begin_thread()

    threading.setprofile(first_event)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--stripe-api-base", help="where the Stripe adapter sends its calls")
    parser.add_argument("--stack", choices=sorted(STACKS), default="asyncio-h11")
    parser.add_argument("--count-calls", type=Path, help="write per-function call counts here")
    args = parser.parse_args()
    counter = callcount.CallCounter() if args.count_calls else None
    _on_every_new_thread(counter)
    if counter is not None:
        counter.begin_thread()
        # uvicorn re-raises the SIGTERM it shut down on once it is done; outlive it to dump.
        signal.signal(signal.SIGTERM, lambda signum, frame: None)
    app = build(args.kind, args.dir, args.stripe_api_base)
    loop, http = STACKS[args.stack]
    # The same uvicorn options as `buytokens serve`, for every kind.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=20,
        loop=loop,
        http=http,
    )
    if counter is not None:
        counter.dump(args.count_calls)


if __name__ == "__main__":
    main()
