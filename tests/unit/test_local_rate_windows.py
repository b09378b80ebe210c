"""The in-process rate-limit counters allow, refuse and time refusals as ``limits`` does.

``LocalWindows`` replaces ``limits``' in-memory storage (which starts a timer
thread to expire its counters) for ``memory://``. Both are driven with the same
hits at the same instants; ``limits`` reads ``time.time`` itself, so the test
sets that clock for both.
"""

from __future__ import annotations

import math
import sys
import threading
import time

import limits
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from buytokens.entrypoints.web.ratelimit import LocalWindows, RateLimited, RateLimiter

ITEMS = limits.parse_many("3/second;5/minute;9/hour")
START = 1_767_225_600.0  # a whole hour

steps = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=0.5),  # the pause since the last hit, in periods
        st.sampled_from(["alice", "bob"]),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(item=st.sampled_from(ITEMS), steps=steps)
def test_local_windows_decide_and_time_as_limits_does(
    item: limits.RateLimitItem, steps: list[tuple[float, str]]
) -> None:
    now = [START]
    local = LocalWindows(clock=lambda: now[0])
    storage = MemoryStorage()
    reference = SlidingWindowCounterRateLimiter(storage)
    real_time = time.time
    time.time = lambda: now[0]  # limits reads this clock
    try:
        for pause, who in steps:
            now[0] += pause * item.get_expiry()
            allowed = reference.hit(item, "act", "user", who)
            assert local.hit(item, "act", "user", who) is allowed
            if not allowed:
                expected = reference.get_window_stats(item, "act", "user", who).reset_time
                assert local.reset_in(item, "act", "user", who) == pytest.approx(
                    expected - now[0], abs=1e-6
                )
    finally:
        time.time = real_time
        storage.timer.cancel()


def test_old_windows_are_swept_away() -> None:
    """Counters of windows past the previous one do not accumulate."""
    now = [START]
    local = LocalWindows(clock=lambda: now[0])
    for n in range(100):
        local.hit(ITEMS[0], "act", "ip", f"10.0.0.{n}")
    assert len(local) == 100
    now[0] += 2 * LocalWindows.SWEEP_EVERY
    local.hit(ITEMS[0], "act", "ip", "10.0.0.200")
    assert len(local) == 1


def test_a_memory_limiter_starts_no_thread_per_hit() -> None:
    """Hits over a tenth of a second (ten of limits' 10 ms expiry timers) start no thread."""
    limiter = RateLimiter("1000000/second", "1000000/second")
    started: list[str] = []

    def first_event(frame: object, event: str, arg: object) -> None:
        sys.setprofile(None)
        started.append(threading.current_thread().name)

    threading.setprofile(first_event)
    try:
        begun = time.monotonic()
        while time.monotonic() - begun < 0.1:
            limiter.hit("alice", "10.0.0.1")
            time.sleep(0.001)
    finally:
        threading.setprofile(None)
    time.sleep(0.05)  # a thread runs its profile hook just after it has started
    assert started == []


def test_the_retry_after_of_a_local_refusal() -> None:
    """Past the limit: RateLimited with a whole number of seconds, at least one."""
    limiter = RateLimiter("2/minute", "100/minute")
    limiter.hit("mallory", None)
    limiter.hit("mallory", None)
    with pytest.raises(RateLimited) as refused:
        limiter.hit("mallory", None)
    assert 1 <= refused.value.retry_after <= 60
    assert refused.value.retry_after == math.ceil(refused.value.retry_after)
    assert str(refused.value).startswith("too many payment attempts; try again in ")
