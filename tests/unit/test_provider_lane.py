"""The lane for calls to Stripe: bounded, refusing at once when full, answering by its deadline."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from buytokens.domain.errors import GatewayBusy, GatewayTimeout
from buytokens.entrypoints.web.provider_lane import ProviderLane


def _blocked(gate: threading.Event) -> str:
    gate.wait(timeout=30)
    return "answered"


def test_a_full_lane_refuses_at_once_and_a_slot_frees_only_when_its_call_ends() -> None:
    """Two slots: the third call is refused without waiting; slots outlive timed-out requests."""
    lane = ProviderLane(slots=2, deadline=0.3)
    gate = threading.Event()

    async def scenario() -> None:
        first = asyncio.create_task(lane.run(lambda: _blocked(gate)))
        second = asyncio.create_task(lane.run(lambda: _blocked(gate)))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(GatewayBusy):
            await lane.run(lambda: "never run")
        assert time.monotonic() - started < 0.1
        for task in (first, second):
            with pytest.raises(GatewayTimeout):
                await task
        # Answered, but the calls still run: their slots stay taken.
        assert lane.taken == 2
        with pytest.raises(GatewayBusy):
            await lane.run(lambda: "never run")
        gate.set()
        for _ in range(100):
            if lane.taken == 0:
                break
            await asyncio.sleep(0.01)
        assert lane.taken == 0
        assert await lane.run(lambda: "free again") == "free again"

    asyncio.run(scenario())


def test_a_calls_own_error_passes_through() -> None:
    """Errors raised by the call reach the caller unchanged and free the slot."""
    lane = ProviderLane(slots=1, deadline=5)

    def fails() -> None:
        raise TimeoutError("the call's own")

    async def scenario() -> None:
        with pytest.raises(TimeoutError, match="the call's own"):
            await lane.run(fails)
        await asyncio.sleep(0.05)
        assert lane.taken == 0

    asyncio.run(scenario())
