"""Per-user and per-IP limits on creating payment intents, against card testing."""

from __future__ import annotations

import math
import time

import limits
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


class RateLimiter:
    """Sliding-window limits keyed by user id and by client IP, in a shared storage.

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
            if not self._limiter.hit(item, self._action, kind, key):
                stats = self._limiter.get_window_stats(item, self._action, kind, key)
                retry_after = max(1, math.ceil(stats.reset_time - time.time()))
                raise RateLimited(f"{self._refusal}; try again in {retry_after} s", retry_after)
