"""Fixtures shared by every test layer."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from buytokens.adapters.memory import FixedClock
from buytokens.ports.balances import BalanceRepository
from tests.support.stores import STORES

settings.register_profile(
    "ci",
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# scripts/mutate runs the properties once per surviving mutant: fewer, shorter examples.
settings.register_profile(
    "mutation",
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def clock() -> FixedClock:
    """A clock that stands still until a test moves it."""
    return FixedClock()


@pytest.fixture(params=sorted(STORES))
def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FixedClock
) -> Iterator[BalanceRepository]:
    """Each BalanceRepository adapter in turn, empty."""
    with STORES[request.param](tmp_path, clock) as repository:
        yield repository
