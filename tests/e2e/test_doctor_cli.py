"""``buytokens doctor`` as an operator runs it: a good set-up, then each piece broken."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from bson import ObjectId

from buytokens.adapters.mongo.connection import connect_mongo
from buytokens.adapters.mongo.inspection import MongoStoreInspector
from buytokens.adapters.stripe_events import HANDLED_EVENT_TYPES
from buytokens.entrypoints.container import create_container
from buytokens.entrypoints.doctor import run_doctor
from buytokens.entrypoints.settings import Settings
from buytokens.testing.localstripe import LocalStripe
from tests.support.fake_stripe import fake_stripe

SECRETS = {
    "JWT_SECRET": "jwt-doctor-7f3a9c2e5b1d",
    "STRIPE_SECRET_KEY": "sk_test_doctor_4e8b1c9d7a",
    "STRIPE_WEBHOOK_SECRET": "whsec_doctor_2c6f0a8e4b",
    "STRIPE_PUBLISHABLE_KEY": "pk_test_doctor_9d1e5b3f7c",
}
WEBHOOK = "/api/custom/stripe/webhook"


@pytest.fixture(scope="module")
def localstripe() -> Iterator[LocalStripe]:
    """localstripe with the webhook registered, as `buytokens demo` sets it up."""
    with LocalStripe.start() as server:
        server.register_webhook(f"http://127.0.0.1:3080{WEBHOOK}", SECRETS["STRIPE_WEBHOOK_SECRET"])
        yield server


def doctor(tmp_path: Path, **env: str | None) -> subprocess.CompletedProcess[str]:
    """Run `buytokens doctor` with the good environment changed by ``env`` (None unsets)."""
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STRIPE_", "MONGODB_", "BUYTOKENS_", "VITE_", "JWT_"))
    }
    environ |= SECRETS | {"BUYTOKENS_SQLITE_PATH": str(tmp_path / "store.sqlite3")}
    for name, value in env.items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    script = Path(sys.executable).with_name("buytokens")
    return subprocess.run(
        [str(script), "doctor"],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )


def lines(result: subprocess.CompletedProcess[str], status: str) -> list[str]:
    """The printed lines of one status."""
    return [line for line in result.stdout.splitlines() if line.startswith(f"{status} ")]


def assert_no_secret(result: subprocess.CompletedProcess[str]) -> None:
    """None of the known secret values, nor their tails, appears in the output."""
    for secret in SECRETS.values():
        for text in (result.stdout, result.stderr):
            assert secret not in text
            assert secret[-10:] not in text


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_good_setup_on_localstripe_passes_and_explains_localstripe(
    tmp_path: Path, localstripe: LocalStripe
) -> None:
    """Exit 0, no problem or warning, localstripe's limits stated, and no secret printed."""
    result = doctor(tmp_path, STRIPE_API_BASE=localstripe.api_base)
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines(result, "problem") == lines(result, "warning") == []
    assert "is localstripe" in result.stdout
    assert "retry" in result.stdout
    assert "ok       Stripe secret key: accepted (test mode)" in result.stdout
    assert result.stdout.splitlines()[-1] == "buytokens is set up: nothing to fix."
    assert_no_secret(result)


@pytest.mark.parametrize("variable", sorted(SECRETS))
def test_a_missing_variable_fails_naming_it(
    tmp_path: Path, localstripe: LocalStripe, variable: str
) -> None:
    """Each required variable unset: exit 1 and a problem line that names it."""
    result = doctor(tmp_path, STRIPE_API_BASE=localstripe.api_base, **{variable: None})
    assert result.returncode == 1
    assert any(
        line.startswith(f"problem  {variable}: not set") for line in lines(result, "problem")
    )
    assert_no_secret(result)


def test_an_unreachable_mongodb_fails(tmp_path: Path, localstripe: LocalStripe) -> None:
    """MONGODB_URI at a closed port: a problem that says what to check, within seconds."""
    uri = f"mongodb://127.0.0.1:{closed_port()}/LibreChat"
    result = doctor(tmp_path, STRIPE_API_BASE=localstripe.api_base, MONGODB_URI=uri)
    assert result.returncode == 1
    [problem] = lines(result, "problem")
    assert problem.startswith("problem  MongoDB LibreChat: cannot be read")
    assert "Check MONGODB_URI" in problem


def test_an_sqlite_path_that_cannot_be_created_fails(
    tmp_path: Path, localstripe: LocalStripe
) -> None:
    """A store path under a regular file: a problem naming the missing directory."""
    (tmp_path / "file").write_text("x")
    result = doctor(
        tmp_path,
        STRIPE_API_BASE=localstripe.api_base,
        BUYTOKENS_SQLITE_PATH=str(tmp_path / "file" / "store.sqlite3"),
    )
    assert result.returncode == 1
    [problem] = lines(result, "problem")
    assert "does not exist; create it" in problem


def test_a_wrong_key_fails_without_printing_it(tmp_path: Path, localstripe: LocalStripe) -> None:
    """A key localstripe refuses: the key's line and Stripe's refusal; the key is not shown."""
    wrong = "sk_x"  # localstripe refuses sk_ keys of five characters or fewer
    result = doctor(tmp_path, STRIPE_API_BASE=localstripe.api_base, STRIPE_SECRET_KEY=wrong)
    assert result.returncode == 1
    assert any(line.startswith("problem  Stripe secret key:") for line in lines(result, "problem"))
    assert_no_secret(result)


def test_a_webhook_missing_an_event_fails_naming_it(tmp_path: Path) -> None:
    """An endpoint without charge.refunded: exit 1, and the line names the event to add."""
    with fake_stripe(SECRETS["STRIPE_SECRET_KEY"]) as stripe_server:
        stripe_server.add_endpoint(
            f"https://chat.example.com{WEBHOOK}", sorted(HANDLED_EVENT_TYPES - {"charge.refunded"})
        )
        result = doctor(tmp_path, STRIPE_API_BASE=stripe_server.api_base)
        stripe_server.endpoints[0]["enabled_events"].append("charge.refunded")
        fixed = doctor(tmp_path, STRIPE_API_BASE=stripe_server.api_base)
    assert result.returncode == 1
    [problem] = lines(result, "problem")
    assert "we_0001" in problem
    assert "not subscribed to charge.refunded:" in problem
    assert fixed.returncode == 0, fixed.stdout
    assert_no_secret(result)


def test_duplicate_librechat_balances_fail_with_how_to_merge() -> None:
    """Two balance documents for one user (mongomock): the user, the ids, the merge steps."""
    database = connect_mongo("mongomock://localhost/LibreChat")
    user = ObjectId()
    database.get_collection("users").insert_one({"_id": user})
    balances = database.get_collection("balances")
    ids = [balances.insert_one({"user": user, "tokenCredits": n}).inserted_id for n in (70, 30)]
    database.get_collection("transactions").insert_one({"user": user, "tokenType": "credits"})
    settings = Settings(
        jwt_secret=SECRETS["JWT_SECRET"],
        stripe_webhook_secret=SECRETS["STRIPE_WEBHOOK_SECRET"],
        stripe_publishable_key=SECRETS["STRIPE_PUBLISHABLE_KEY"],
        mongodb_uri="mongomock://localhost/LibreChat",
    )
    container = create_container(settings)
    container.store_inspector.override(MongoStoreInspector(database))
    out = io.StringIO()
    assert run_doctor(container, out=out) == 1
    problems = [line for line in out.getvalue().splitlines() if line.startswith("problem")]
    duplicate = [line for line in problems if "balance documents" in line]
    assert len(duplicate) == 1
    assert f"user {user} has 2 balance documents [{ids[0]} (70), {ids[1]} (30)]" in duplicate[0]
    assert "together 100" in duplicate[0]
    assert "delete the others" in duplicate[0]
