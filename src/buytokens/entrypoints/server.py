"""``buytokens serve``: the app under uvicorn, checked before it listens."""

from __future__ import annotations

import logging
import sys

import uvicorn

from buytokens.entrypoints.container import Container
from buytokens.entrypoints.web.app import create_app

log = logging.getLogger("buytokens.serve")


def configure_logging() -> None:
    """One line per record on stderr; the request log lines are JSON already."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )


def serve(container: Container, host: str, port: int) -> None:
    """Validate the configuration, open the stores, then serve until SIGINT or SIGTERM.

    Everything that can be wrong with the settings fails here, before the port
    opens, as one ``BuyTokensError`` naming the problem.
    """
    settings = container.settings()
    settings.require("JWT_SECRET")
    container.catalogue()
    stores = container.stores()
    container.gateway()
    container.rate_limiter()
    configure_logging()
    if not stores.durable:
        # Stripe is answered 200 for credits this store cannot keep: say so, once, loudly.
        log.warning(
            "WARNING: MONGODB_URI is mongomock://, an in-memory store: every credit, purchase "
            "and ledger entry is lost when this process stops; use mongodb:// or unset "
            "MONGODB_URI for the SQLite file"
        )
    app = create_app(container)
    # uvicorn finishes in-flight requests on SIGTERM before exiting. Its own proxy
    # headers handling (on for 127.0.0.1 by default) is off: the app trusts exactly
    # the peers of BUYTOKENS_TRUSTED_PROXIES, and no others.
    uvicorn.run(
        app,
        host=host,
        port=port,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=20,
        proxy_headers=False,
    )
