"""Background work of a serving process: finishing writes a crash or a lost reply interrupted,
and retiring expired promo code holds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI

from buytokens.domain.errors import BuyTokensError
from buytokens.ports.balances import UnfinishedWork
from buytokens.ports.payments import PaymentGateway
from buytokens.services.codes import CodeDesk, finish_redemptions
from buytokens.services.promos import PromoDesk, sweep_holds

log = logging.getLogger("buytokens.maintenance")


async def finish_unfinished_work(passes: Sequence[Callable[[], object]], interval: float) -> None:
    """Run each pass, in order, every ``interval`` seconds, off the event loop, until cancelled.

    A failing pass is logged and the next one tries again: a store that is down
    now is usually back by then.
    """
    while True:
        await asyncio.sleep(interval)
        for finish in passes:
            try:
                await asyncio.to_thread(finish)
            except BuyTokensError as exc:
                log.error("finishing interrupted writes failed: %s: %s", exc.code, exc.message)


def finish_code_redemptions(desk: CodeDesk) -> None:
    """Credit the redemptions a crash left uncredited, and log what could not be."""
    report = finish_redemptions(desk)
    if report.finished:
        log.warning("finished %d interrupted code redemption(s)", report.finished)
    for failure in report.failed:
        log.error("an interrupted code redemption is still not credited: %s", failure)


def sweep_promo_holds(desk: PromoDesk, payments: PaymentGateway) -> None:
    """Cancel the intents of expired promo code holds and retire the holds; log what is left."""
    report = sweep_holds(desk, payments)
    if report.retired:
        log.info("retired %d expired promo code hold(s)", len(report.retired))
    if report.unreachable:
        log.warning(
            "Stripe unreachable: %d expired promo code hold(s) wait for the next pass",
            len(report.unreachable),
        )
    for hold, reason in report.failed:
        log.error(
            "could not cancel payment intent %s of an expired promo code hold: %s",
            hold.payment_intent_id,
            reason,
        )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Finish interrupted redemptions and sweep expired promo code holds, then run the
    periodic passes; stop them on shutdown.

    The store's own ``recover()`` runs first in each pass (MongoDB), so that the
    redemptions it finishes find their ledger entries settled.
    """
    container = app.state.container
    store = container.store()
    desk = container.code_desk()
    passes: list[Callable[[], object]] = []
    if isinstance(store, UnfinishedWork):
        passes.append(store.recover)
    passes.append(lambda: finish_code_redemptions(desk))
    promos = container.promo_desk()
    payments = container.gateway()
    passes.append(lambda: sweep_promo_holds(promos, payments))
    try:
        await asyncio.to_thread(finish_code_redemptions, desk)
    except BuyTokensError as exc:
        log.error("finishing interrupted code redemptions failed: %s: %s", exc.code, exc.message)
    try:
        await asyncio.to_thread(sweep_promo_holds, promos, payments)
    except BuyTokensError as exc:
        log.error("sweeping expired promo code holds failed: %s: %s", exc.code, exc.message)
    interval = container.settings().recovery_interval
    task = asyncio.create_task(finish_unfinished_work(passes, interval))
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
