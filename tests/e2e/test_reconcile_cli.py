"""``buytokens reconcile`` as an operator runs it: against localstripe, on the SQLite file."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import stripe

from buytokens.adapters.stripe_gateway import StripePaymentGateway
from buytokens.domain.catalogue import DEFAULT_CATALOGUE, PaymentMethod
from buytokens.domain.checkout import IntentRequest
from buytokens.entrypoints.cli import main
from buytokens.testing.localstripe import LocalStripe

SECRET_KEY = "sk_test_buytokens_reconcile_cli"
PACKAGE = DEFAULT_CATALOGUE.get("package_100k")  # 100 000 tokens for ¥10.00
SUMMARY = re.compile(
    r"^Stripe events since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: (\d+) found, (\d+) applied, "
    r"(\d+) already applied, (\d+) ignored, (\d+) need review, (\d+) failed$"
)


@pytest.fixture
def localstripe() -> Iterator[LocalStripe]:
    """A fresh localstripe per test, so that a window holds only this test's events."""
    with LocalStripe.start() as server:
        yield server


@pytest.fixture
def environment(
    localstripe: LocalStripe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The operator's environment: Stripe on localstripe, the store in a fresh SQLite file."""
    for name in ("MONGODB_URI", "BUYTOKENS_CATALOGUE", "STRIPE_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    values = {
        "STRIPE_SECRET_KEY": SECRET_KEY,
        "STRIPE_API_BASE": localstripe.api_base,
        "STRIPE_API_VERSION": localstripe.api_version,
        "BUYTOKENS_SQLITE_PATH": str(tmp_path / "cli.sqlite3"),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def _paid(localstripe: LocalStripe, user: str, amount: int | None = None) -> str:
    """An intent created by another instance and paid with the Visa test card."""
    client = stripe.StripeClient(
        SECRET_KEY,
        base_addresses={"api": localstripe.api_base},
        stripe_version=localstripe.api_version,
    )
    if amount is None:
        gateway = StripePaymentGateway(
            SECRET_KEY, None, api_base=localstripe.api_base, api_version=localstripe.api_version
        )
        request = IntentRequest(uuid.uuid4().hex, user, PACKAGE, PaymentMethod.CARD)
        pi = gateway.create_payment_intent(request).id
    else:
        # localstripe predates allowed_payment_method_types, which the SDK's types expect.
        params: Any = {
            "amount": amount,
            "currency": "cny",
            "payment_method_types": ["card"],
            "metadata": {"userId": user, "packageId": PACKAGE.id},
        }
        pi = client.v1.payment_intents.create(params).id
    # localstripe answers confirm(payment_method=...) with a 500: attach, then confirm.
    method = client.v1.payment_methods.create(
        {
            "type": "card",
            "card": {"number": "4242424242424242", "exp_month": 1, "exp_year": 2034, "cvc": "123"},
        }
    )
    client.v1.payment_intents.update(pi, {"payment_method": method.id})
    client.v1.payment_intents.confirm(pi)
    return pi


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _summary(out: str) -> tuple[int, ...]:
    match = SUMMARY.match(out.splitlines()[0])
    assert match is not None, out
    return tuple(int(group) for group in match.groups())


def test_reconcile_credits_what_no_webhook_delivered_and_prints_it(
    localstripe: LocalStripe, environment: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The summary counts the events; each applied one is listed with its intent."""
    pi = _paid(localstripe, "alice")

    code, out, err = _run(capsys, "reconcile", "--since", "90m")

    assert (code, err) == (0, "")
    assert _summary(out) == (1, 1, 0, 0, 0, 0)
    header, row = out.splitlines()[1:]
    assert header.split() == ["outcome", "event", "type", "payment", "intent", "reason"]
    assert row.split()[0::2] == ["applied", "payment_intent.succeeded"]
    assert row.split()[3] == pi
    assert _run(capsys, "balance", "alice")[1].strip() == "100000"


def test_reconcile_run_twice_credits_once_and_lists_nothing_the_second_time(
    localstripe: LocalStripe, environment: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Already applied events are counted, not listed, and change nothing."""
    _paid(localstripe, "alice")
    assert _run(capsys, "reconcile")[0] == 0

    code, out, _ = _run(capsys, "reconcile", "--since", "12h")

    assert code == 0
    assert out.splitlines() == [out.splitlines()[0]]
    assert _summary(out) == (1, 0, 1, 0, 0, 0)
    assert _run(capsys, "balance", "alice")[1].strip() == "100000"


def test_a_payment_needing_review_is_listed_with_its_reason_and_exits_non_zero(
    localstripe: LocalStripe, environment: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A success for the wrong amount credits nothing; the operator is told why."""
    pi = _paid(localstripe, "mallory", amount=1)

    code, out, _ = _run(capsys, "reconcile", "--since", "3d")

    assert code == 1
    assert _summary(out) == (1, 0, 0, 0, 1, 0)
    [row] = out.splitlines()[2:]
    assert row.startswith("needs_review")
    assert pi in row
    assert row.endswith("paid 1 cny but the package costs 1000 cny")
    assert _run(capsys, "balance", "mallory")[1].strip() == "0"
    assert _run(capsys, "reconcile", "--since", "3d")[0] == 0


@pytest.mark.parametrize("since", ["90m", "12h", "3d", "30d"])
def test_durations_in_minutes_hours_and_days_up_to_thirty_days_are_accepted(
    environment: dict[str, str], capsys: pytest.CaptureFixture[str], since: str
) -> None:
    """Every unit works, and Stripe's whole retention is a valid window."""
    code, out, err = _run(capsys, "reconcile", "--since", since)
    assert (code, err) == (0, "")
    assert _summary(out) == (0, 0, 0, 0, 0, 0)


@pytest.mark.parametrize(
    ("since", "needle"),
    [
        ("31d", "at most 30d"),
        ("721h", "at most 30d"),
        ("0m", "more than 0"),
        ("3w", "such as 90m, 12h or 3d"),
        ("1.5h", "such as 90m, 12h or 3d"),
        ("three days", "such as 90m, 12h or 3d"),
        ("", "such as 90m, 12h or 3d"),
    ],
)
def test_a_bad_since_is_one_line_on_stderr_with_exit_2(
    capsys: pytest.CaptureFixture[str], since: str, needle: str
) -> None:
    """The window is checked before anything is read or asked of Stripe."""
    code, out, err = _run(capsys, "reconcile", "--since", since)
    assert (code, out) == (2, "")
    assert len(err.strip().splitlines()) == 1
    assert "--since" in err
    assert needle in err


def test_without_a_stripe_key_reconcile_says_which_variable_is_missing(
    environment: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No STRIPE_SECRET_KEY, no event list: one line naming it, exit 1."""
    monkeypatch.delenv("STRIPE_SECRET_KEY")

    code, out, err = _run(capsys, "reconcile")

    assert (code, out) == (1, "")
    assert err == "buytokens: error: payments are not configured: set STRIPE_SECRET_KEY\n"


def test_an_unreachable_stripe_is_one_line_on_stderr_and_exit_1(
    environment: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When the events cannot be listed, nothing is applied and the cron job fails loudly."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv("STRIPE_API_BASE", f"http://127.0.0.1:{closed_port}")

    code, out, err = _run(capsys, "reconcile")

    assert (code, out) == (1, "")
    assert err == "buytokens: error: Stripe could not list events: it is unreachable or busy\n"


def test_the_console_script_reconciles(
    localstripe: LocalStripe, environment: dict[str, str]
) -> None:
    """The installed ``buytokens`` command runs the same reconcile."""
    _paid(localstripe, "alice")
    script = Path(sys.executable).with_name("buytokens")

    result = subprocess.run(
        [str(script), "reconcile", "--since", "2h"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert _summary(result.stdout) == (1, 1, 0, 0, 0, 0)
