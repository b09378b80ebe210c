"""The requests that wait on Stripe run apart from everything else, a bounded number at a time.

FastAPI runs synchronous work on one shared pool of worker threads (40 by
default). A request that waits on a hanging Stripe would hold one of them for as
long as Stripe hangs, and a few dozen such requests would leave none for
webhooks, balances and purchase lists, which never need Stripe. So the routes
that may call Stripe (creating an intent, the return-page check) run their use
case here instead: on threads of their own, at most ``slots`` at once, each
awaited for at most ``deadline`` seconds. When every slot is taken the request
is refused at once with a retryable error rather than queued: a queue would only
move the wait, and its length would be the number of calls Stripe sees.

A slot stays taken until its thread has really finished, not merely until its
request was answered, so the number of calls to Stripe in flight never exceeds
``slots``, even while Stripe hangs past the deadline.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from buytokens.domain.errors import ConfigurationError, GatewayBusy, GatewayTimeout

T = TypeVar("T")


class ProviderLane:
    """At most ``slots`` provider-bound calls at once, each answered within ``deadline`` s."""

    def __init__(self, slots: int, deadline: float) -> None:
        if slots < 1 or deadline <= 0:
            raise ConfigurationError("the Stripe lane needs at least one slot and a deadline")
        self.slots = slots
        self.deadline = deadline
        self._executor = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="provider")
        self._lock = threading.Lock()
        self._taken = 0

    def __repr__(self) -> str:
        return f"ProviderLane(slots={self.slots}, deadline={self.deadline:g})"

    @property
    def taken(self) -> int:
        """Slots whose call has not finished yet."""
        with self._lock:
            return self._taken

    async def run(self, call: Callable[[], T]) -> T:
        """``call()`` on a thread of the lane.

        Raises ``GatewayBusy`` at once when every slot is taken, and
        ``GatewayTimeout`` when the call has not finished within the deadline (it
        then finishes on its own, still holding its slot).
        """
        with self._lock:
            if self._taken >= self.slots:
                raise GatewayBusy(
                    "every connection to Stripe is busy; nothing was sent, try again shortly"
                )
            self._taken += 1
        try:
            future = self._executor.submit(call)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.deadline)
        except TimeoutError:
            if future.done():  # the call's own error, not the deadline
                raise
            raise GatewayTimeout(
                f"Stripe did not answer within {self.deadline:g} s; try again shortly"
            ) from None

    def _release(self, _done: Future[Any] | None = None) -> None:
        with self._lock:
            self._taken -= 1
