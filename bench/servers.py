"""Serve one of the benchmarked apps under uvicorn, with the settings ``buytokens serve`` uses.

``python -m bench.servers KIND --port PORT --dir DIR`` where KIND is

* ``ceiling``: the bare endpoint (``bench.baselines.ceiling_app``);
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
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn
from dependency_injector import providers
from fastapi import FastAPI

from bench.baselines import ceiling_app, floor_app
from buytokens.entrypoints.container import create_container
from buytokens.entrypoints.server import configure_logging
from buytokens.entrypoints.settings import Settings
from buytokens.entrypoints.web.app import create_app
from buytokens.testing.stripe_twin import InMemoryPaymentGateway

KINDS = ("ceiling", "floor", "app", "app-memory-gateway", "app-stripe-hanging")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--stripe-api-base", help="where the Stripe adapter sends its calls")
    args = parser.parse_args()
    app = build(args.kind, args.dir, args.stripe_api_base)
    # The same uvicorn options as `buytokens serve`, for every kind.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=20,
    )


if __name__ == "__main__":
    main()
