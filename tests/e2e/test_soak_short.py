"""Fifteen seconds of the soak against a real ``buytokens serve``: no 5xx, no drift."""

from __future__ import annotations

import pytest
from bench.soak import run_soak


@pytest.mark.slow
def test_mixed_traffic_leaves_every_balance_as_the_model_says() -> None:
    """Purchases, duplicates, concurrent duplicates, refunds and reads: zero 5xx, zero drift."""
    report = run_soak(seconds=15, clients=8, users=12, seed=7)
    assert report.server_errors == 0, report.summary()
    assert report.transport_errors == 0, report.summary()
    assert report.drift == {}, report.summary()
    assert report.users_checked == 12
    assert report.operations["purchase"] > 0
    assert report.operations["refund"] > 0
    assert report.outcomes["applied"] > 0
    assert report.outcomes["duplicate"] > 0
    assert report.ok, report.summary()
