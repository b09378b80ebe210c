"""While the app serves, a background pass finishes MongoDB writes a crash interrupted."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from buytokens.adapters.memory import FixedClock
from buytokens.adapters.mongo.store import MongoBalanceRepository
from buytokens.entrypoints.container import create_container
from buytokens.entrypoints.web.app import create_app
from tests.e2e.conftest import settings_for
from tests.support.crashes import CrashAt, SimulatedCrash
from tests.support.mongo import InterceptingDatabase, deliver
from tests.support.mongo import succeeded as payment_succeeded


def test_a_credit_interrupted_by_a_crash_is_finished_while_serving(tmp_path: Path) -> None:
    """Nobody reads the balance, yet the periodic pass credits what the crash left pending."""
    container = create_container(
        settings_for(tmp_path, mongodb_uri="mongomock://localhost/bg", recovery_interval=0.1)
    )
    store = container.store()
    assert isinstance(store, MongoBalanceRepository)
    database = store.database
    clock = FixedClock()
    crashing = MongoBalanceRepository(InterceptingDatabase(database, CrashAt(1, after=True)), clock)
    with pytest.raises(SimulatedCrash):
        deliver(payment_succeeded("pi_1"), crashing, clock)
    balances = database.get_collection("balances")
    pending = database.get_collection("buytokens_purchases")
    assert pending.count_documents({"pendingSince": {"$exists": True}}) == 1
    with TestClient(create_app(container)):
        deadline = time.monotonic() + 30  # the pass runs every 0.1 s; the margin is for load
        while pending.count_documents({"pendingSince": {"$exists": True}}) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.05)
        assert pending.count_documents({"pendingSince": {"$exists": True}}) == 0
        assert balances.find_one({})["tokenCredits"] == 100_000
