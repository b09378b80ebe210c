"""What doctor's adapters find in real SQLite files, MongoDB databases and Stripe servers."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from bson import ObjectId

from buytokens.adapters.mongo.connection import MongoDatabase, connect_mongo
from buytokens.adapters.mongo.inspection import MongoStoreInspector
from buytokens.adapters.mongo.store import MongoBalanceRepository
from buytokens.adapters.sqlite.engine import SqliteDatabase
from buytokens.adapters.sqlite.inspection import SqliteStoreInspector
from buytokens.adapters.sqlite.schema import SCHEMA_VERSION
from buytokens.adapters.sqlite.store import SqliteBalanceRepository
from buytokens.adapters.stripe_account import StripeAccount
from buytokens.adapters.system import SystemClock
from buytokens.domain.errors import GatewayRejected
from buytokens.ports.diagnostics import DuplicateBalance, PaymentServer
from buytokens.testing.localstripe import LocalStripe
from tests.support.fake_stripe import fake_stripe

SECRET_KEY = "sk_test_buytokens_doctor"


@pytest.fixture(scope="module")
def localstripe() -> Iterator[LocalStripe]:
    """One localstripe for the module."""
    with LocalStripe.start() as server:
        yield server


# -- SQLite ------------------------------------------------------------------------


def test_a_missing_sqlite_file_is_reported_and_not_created(tmp_path: Path) -> None:
    """Inspecting reads only: the file does not appear."""
    state = SqliteStoreInspector(tmp_path / "store.sqlite3").inspect()
    assert (state.exists, state.directory_exists, state.writable) == (False, True, True)
    assert not (tmp_path / "store.sqlite3").exists()


def test_a_path_under_a_file_has_no_directory(tmp_path: Path) -> None:
    """A path whose parent is not a directory cannot be created."""
    (tmp_path / "plain").write_text("x")
    state = SqliteStoreInspector(tmp_path / "plain" / "store.sqlite3").inspect()
    assert (state.exists, state.directory_exists, state.writable) == (False, False, False)


def test_a_store_buytokens_opened_has_the_current_schema(tmp_path: Path) -> None:
    """After the repository opened it, the file is at this buytokens' schema version."""
    path = tmp_path / "store.sqlite3"
    SqliteBalanceRepository(SqliteDatabase(path), SystemClock()).close()
    state = SqliteStoreInspector(path).inspect()
    assert (state.schema_version, state.current_version, state.error) == (
        SCHEMA_VERSION,
        SCHEMA_VERSION,
        None,
    )
    assert state.writable


def test_a_newer_schema_and_a_non_database_are_reported(tmp_path: Path) -> None:
    """A version from the future is read as such; a text file is not a database."""
    newer = tmp_path / "newer.sqlite3"
    with sqlite3.connect(newer) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    assert SqliteStoreInspector(newer).inspect().schema_version == SCHEMA_VERSION + 1
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all, just some words " * 50)
    state = SqliteStoreInspector(text).inspect()
    assert state.schema_version is None
    assert state.error is not None


# -- MongoDB -----------------------------------------------------------------------


def test_duplicate_librechat_balances_are_found_without_touching_the_data(
    database: MongoDatabase,
) -> None:
    """Two balance documents for one user: the user, both ids and credits; no index is made."""
    user = ObjectId()
    database.get_collection("users").insert_one({"_id": user, "email": "a@example.com"})
    balances = database.get_collection("balances")
    first = balances.insert_one({"user": user, "tokenCredits": 300}).inserted_id
    second = balances.insert_one({"user": user, "tokenCredits": 200}).inserted_id
    state = MongoStoreInspector(database).inspect()
    assert state.error is None
    assert state.duplicates == (
        DuplicateBalance(str(user), (str(first), str(second)), (300.0, 200.0)),
    )
    assert not state.unique_user_index
    assert not state.buytokens_indexes
    assert "buytokens_one_balance_per_user" not in balances.index_information()


def test_a_database_buytokens_started_on_has_its_indexes(database: MongoDatabase) -> None:
    """After the repository's start-up the unique index is found; users is still missing."""
    MongoBalanceRepository(database, SystemClock())
    state = MongoStoreInspector(database).inspect()
    assert state.unique_user_index
    assert state.buytokens_indexes
    assert "users" not in state.collections


def test_a_closed_port_is_described_not_raised() -> None:
    """Nothing listening: the inspection returns the reason within the short timeout."""
    database = connect_mongo(
        "mongodb://127.0.0.1:9/LibreChat", timeout_ms=300, server_selection_timeout_ms=300
    )
    state = MongoStoreInspector(database).inspect()
    assert state.database == "LibreChat"
    assert state.error is not None
    assert "127.0.0.1:9" in state.error


# -- Stripe ------------------------------------------------------------------------


def test_localstripe_is_recognised_and_accepts_a_secret_key(localstripe: LocalStripe) -> None:
    """The probe finds localstripe; an sk_ key passes the authenticated read."""
    account = StripeAccount(SECRET_KEY, api_base=localstripe.api_base)
    assert account.server() is PaymentServer.LOCALSTRIPE
    account.verify_key()


def test_a_wrong_key_is_refused_without_being_echoed(localstripe: LocalStripe) -> None:
    """localstripe refuses anything but an sk_ key; the message keeps the key out."""
    account = StripeAccount("pk_test_wrong_key_value", api_base=localstripe.api_base)
    with pytest.raises(GatewayRejected) as caught:
        account.verify_key()
    assert "wrong_key_value" not in str(caught.value)


def test_nothing_listening_at_the_api_base_is_unreachable() -> None:
    """A closed loopback port answers nothing."""
    account = StripeAccount(SECRET_KEY, api_base="http://127.0.0.1:9", probe_timeout=1)
    assert account.server() is PaymentServer.UNREACHABLE


def test_stripe_itself_is_not_probed() -> None:
    """No API base (Stripe's own host) is classified without any request."""
    assert StripeAccount(SECRET_KEY).server() is PaymentServer.STRIPE


def test_webhook_endpoints_are_read_from_stripe_s_list() -> None:
    """Id, URL, status and enabled events come back as Stripe lists them."""
    with fake_stripe(SECRET_KEY) as server:
        server.add_endpoint("https://x.example.com/api/custom/stripe/webhook", ["charge.refunded"])
        server.add_endpoint("https://y.example.com/hook", ["*"], status="disabled")
        account = StripeAccount(SECRET_KEY, api_base=server.api_base)
        assert account.server() is PaymentServer.OTHER
        account.verify_key()
        endpoints = account.webhook_endpoints()
    assert [(e.id, e.enabled, e.events) for e in endpoints] == [
        ("we_0001", True, frozenset({"charge.refunded"})),
        ("we_0002", False, frozenset({"*"})),
    ]
