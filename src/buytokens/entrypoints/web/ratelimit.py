"""Per-user and per-IP limits on creating payment intents, against card testing."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import limits
from limits import RateLimitItem
from limits.storage import Storage, storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from buytokens.domain.errors import BuyTokensError, ConfigurationError

# A real buyer creates a handful of intents; a card-testing script creates hundreds.
DEFAULT_PER_USER = "10/minute;40/hour"
DEFAULT_PER_IP = "30/minute;200/hour"
# The return-page check that has to ask Stripe: the page polls once a second
# for half a minute; more than that is a script spending the account's API quota.
DEFAULT_CHECKS_PER_USER = "60/minute;600/hour"
# Redeeming a code: a person types a few; a script guessing codes types thousands.
DEFAULT_REDEEMS_PER_USER = "10/minute;60/hour"


class RateLimited(BuyTokensError):
    """Too many attempts; ``retry_after`` says how many seconds to wait."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


MEMORY_STORAGE = "memory://"


class LocalWindows:
    """Sliding-window counters in this process, counted as ``limits`` counts them, with no thread.

    Each limit counts hits per fixed window (its period, aligned on the epoch); a
    hit is allowed while the current window's count plus the previous window's,
    weighted by the share of it still inside the sliding period, stays within
    the limit. ``limits``' own in-memory storage counts alike but starts a timer
    thread to expire its counters, again and again under load; here a counter is
    ignored once its window is older than the previous one, and dropped by a
    sweep at most once a minute. ``clock`` gives seconds since the epoch.
    """

    SWEEP_EVERY = 60.0

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        # (limit key, period, window number) -> hits counted in that window
        self._counts: dict[tuple[str, int, int], int] = {}
        self._next_sweep = 0.0

    def __len__(self) -> int:
        """Counters held."""
        return len(self._counts)

    def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        """Count one hit of ``item`` for ``identifiers``; False, counting nothing, when over."""
        key = item.key_for(*identifiers)
        period = item.get_expiry()
        with self._lock:
            now = self._clock()
            if now >= self._next_sweep:
                self._sweep(now)
            window = int(now / period)
            previous = self._counts.get((key, period, window - 1), 0)
            current = self._counts.get((key, period, window), 0)
            weighted = previous * _previous_share(now, period) if previous else 0.0
            if math.floor(weighted + current) + 1 > item.amount:
                return False
            self._counts[(key, period, window)] = current + 1
            return True

    def reset_in(self, item: RateLimitItem, *identifiers: str) -> float:
        """Seconds until ``item`` gives back a hit for ``identifiers``, as ``limits`` reckons."""
        key = item.key_for(*identifiers)
        period = item.get_expiry()
        with self._lock:
            now = self._clock()
            window = int(now / period)
            previous = self._counts.get((key, period, window - 1), 0)
            current = self._counts.get((key, period, window), 0)
        waits = [math.inf]
        if previous:  # when the previous window's weighted count next drops by one
            waits.append(_previous_share(now, period) * period % (period / previous))
        if current:  # the end of the current window
            waits.append(((1 - (now / period) % 1) * period + period) % period)
        return min(waits) if previous or current else 0.0

    def _sweep(self, now: float) -> None:
        self._counts = {
            (key, period, window): hits
            for (key, period, window), hits in self._counts.items()
            if window >= int(now / period) - 1
        }
        self._next_sweep = now + self.SWEEP_EVERY


def _previous_share(now: float, period: int) -> float:
    """The share of the previous window still inside the sliding period that ends ``now``."""
    return 1 - ((now - period) / period) % 1


class RateLimiter:
    """Sliding-window limits keyed by user id and by client IP, in a shared storage.

    ``memory://`` counts in this process (``LocalWindows``); any other storage
    URI goes to ``limits``' storage of that name (MongoDB shares it among
    replicas).

    The sliding-window counter keeps two counters per key and window, so a hit
    costs the same however high a limit is set; a moving window would keep one
    entry per hit. ``action`` names what is counted (each action has counters of
    its own); ``refusal`` opens the message of the 429.
    """

    def __init__(
        self,
        per_user: str = DEFAULT_PER_USER,
        per_ip: str = DEFAULT_PER_IP,
        storage_uri: str = "memory://",
        *,
        action: str = "create-payment-intent",
        refusal: str = "too many payment attempts",
    ) -> None:
        try:
            self._per_user = limits.parse_many(per_user)
            self._per_ip = limits.parse_many(per_ip)
        except ValueError as exc:
            raise ConfigurationError(f"invalid rate limit: {exc}") from exc
        self._local: LocalWindows | None = None
        self._limiter: SlidingWindowCounterRateLimiter | None = None
        if storage_uri == MEMORY_STORAGE:
            self._local = LocalWindows()
        else:
            storage = storage_from_string(storage_uri)
            if not isinstance(storage, Storage):
                raise ConfigurationError(f"rate limit storage must be synchronous: {storage_uri}")
            self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._action = action
        self._refusal = refusal

    def __repr__(self) -> str:
        return f"RateLimiter(per_user={self._per_user}, per_ip={self._per_ip})"

    def hit(self, user_id: str, client_ip: str | None) -> None:
        """Count one attempt; raise RateLimited when a limit is exhausted."""
        checks = [(item, "user", user_id) for item in self._per_user]
        if client_ip:
            checks += [(item, "ip", client_ip) for item in self._per_ip]
        for item, kind, key in checks:
            if self._local is not None:
                if self._local.hit(item, self._action, kind, key):
                    continue
                wait = self._local.reset_in(item, self._action, kind, key)
            else:
                assert self._limiter is not None
                if self._limiter.hit(item, self._action, kind, key):
                    continue
                stats = self._limiter.get_window_stats(item, self._action, kind, key)
                wait = stats.reset_time - time.time()
            retry_after = max(1, math.ceil(wait))
            raise RateLimited(f"{self._refusal}; try again in {retry_after} s", retry_after)
