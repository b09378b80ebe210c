"""Background work of a serving process: finishing writes a crash or a lost reply interrupted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI

from buytokens.domain.errors import BuyTokensError
from buytokens.ports.balances import UnfinishedWork

log = logging.getLogger("buytokens.maintenance")


async def finish_unfinished_work(store: UnfinishedWork, interval: float) -> None:
    """Run ``store.recover()`` every ``interval`` seconds, off the event loop, until cancelled.

    A failing pass is logged and the next one tries again: a store that is down
    now is usually back by then.
    """
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(store.recover)
        except BuyTokensError as exc:
            log.error("finishing interrupted writes failed: %s: %s", exc.code, exc.message)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the periodic recovery pass when the store needs one; stop it on shutdown."""
    container = app.state.container
    store = container.store()
    task: asyncio.Task[None] | None = None
    if isinstance(store, UnfinishedWork):
        interval = container.settings().recovery_interval
        task = asyncio.create_task(finish_unfinished_work(store, interval))
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
