"""The ``buytokens`` command on the embedded store, as an operator runs it."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

import buytokens
from buytokens.adapters.sqlite.store import SqliteBalanceRepository
from buytokens.adapters.system import SystemClock
from buytokens.domain.catalogue import DEFAULT_CATALOGUE
from buytokens.domain.events import ChargeRefunded, PaymentSucceeded
from buytokens.domain.money import Money
from buytokens.domain.purchases import Purchase
from buytokens.entrypoints import cli
from buytokens.services.crediting import CreditingDependencies, apply_payment_event


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v for k, v in os.environ.items() if k not in {"MONGODB_URI", "BUYTOKENS_CATALOGUE"}
    }
    environ |= {"BUYTOKENS_SQLITE_PATH": str(tmp_path / "cli.sqlite3")} | env
    script = Path(sys.executable).with_name("buytokens")
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, env=environ, timeout=60, check=False
    )


def test_packages_prints_the_default_catalogue(tmp_path: Path) -> None:
    """Every seed package with tokens, price, original price and discount."""
    result = _run(tmp_path, "packages")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["id", "label", "tokens", "price", "was", "off"]
    assert lines[2].split() == [
        "package_500k",
        "Popular",
        "500,000",
        "¥35.00",
        "¥50.00",
        "30%",
        "popular",
    ]
    assert lines[4].split() == [
        "package_10m",
        "Enterprise",
        "10,000,000",
        "¥280.00",
        "¥1,000.00",
        "72%",
    ]


def test_grant_balance_and_history_round_trip_on_the_sqlite_file(tmp_path: Path) -> None:
    """A grant and a deduction are on the ledger; the balance and history agree with them."""
    assert _run(tmp_path, "grant", "alice", "1000", "--reason", "welcome").returncode == 0
    deduct = _run(tmp_path, "grant", "alice", "-1500", "--reason", "abuse refund")
    assert "500 could not be deducted" in deduct.stdout
    assert _run(tmp_path, "balance", "alice").stdout.strip() == "0"
    store = SqliteBalanceRepository(tmp_path / "cli.sqlite3", SystemClock())
    event = PaymentSucceeded(
        "evt_1",
        "pi_cli",
        DEFAULT_CATALOGUE.get("package_1m").price,
        "alice",
        "package_1m",
        SystemClock().now(),
    )
    apply_payment_event(CreditingDependencies(store, DEFAULT_CATALOGUE, SystemClock()), event)
    store.close()
    assert _run(tmp_path, "balance", "alice").stdout.strip() == "1000000"
    history = _run(tmp_path, "history", "alice").stdout
    for needle in ("pi_cli", "succeeded", "¥55.00", "abuse refund", "welcome", "+1,000,000"):
        assert needle in history


def test_grant_with_a_key_is_idempotent(tmp_path: Path) -> None:
    """Repeating a keyed grant does not grant twice."""
    for _ in range(2):
        assert (
            _run(
                tmp_path, "grant", "bob", "250", "--reason", "promo", "--key", "promo-7"
            ).returncode
            == 0
        )
    assert _run(tmp_path, "balance", "bob").stdout.strip() == "250"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("grant", "alice", "ten", "--reason", "x"), "TOKENS must be a whole number"),
        (("grant", "alice", "0", "--reason", "x"), "TOKENS must not be zero"),
        (("grant", "alice", "5"), "--reason"),
        (("grant", "alice", "5", "--reason", "  "), "a reason is required"),
        (("balance",), "USER_ID"),
        (("balance", " "), "user id must not be empty"),
        (("frobnicate",), "invalid choice"),
        (("grant", "alice", str(2**63), "--reason", "x"), "tokens must be between"),
    ],
)
def test_bad_arguments_are_one_line_on_stderr(
    tmp_path: Path, args: tuple[str, ...], needle: str
) -> None:
    """No traceback, one clear line, non-zero exit."""
    result = _run(tmp_path, *args)
    assert result.returncode != 0
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert len(result.stderr) < 300
    assert needle in result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("grant", "alice", str(-(2**63) - 1), "--reason", "x"), "tokens must be between"),
        (("grant", "alice", "1000000000001", "--reason", "x"), "tokens must be between"),
        (("grant", "alice", "9" * 5000, "--reason", "x"), "TOKENS is out of range"),
        (("grant", "alice", "5", "--reason", "r" * 501), "at most 500 printable characters"),
        (("grant", "alice", "5", "--reason", "two\nlines"), "one line"),
        (("grant", "u" * 256, "5", "--reason", "x"), "user id must be at most 255"),
        (("grant", "alice", "5", "--reason", "x", "--key", "k" * 256), "key must be 1-255"),
        (("balance", "u" * 100_000), "user id must be at most 255"),
        (("history", "alice", "--limit", "9" * 20), "--limit must be 1-10,000"),
        (("review", "--limit", "-1"), "--limit must be 1-10,000"),
        (("approve", "pi_" + "9" * 300, "--reason", "x"), "PAYMENT_INTENT must be 1-255"),
        (("reconcile", "--since", "9" * 20 + "d"), "--since takes a duration"),
        (("reconcile", "--since", "999999d"), "at most 30d"),
        (("serve", "--port", "9" * 5000), "port must be 1-65535"),
    ],
)
def test_absurd_input_is_one_line_on_stderr(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    needle: str,
) -> None:
    """Absurd numbers and over-long text: a short clear line, non-zero exit, nothing stored."""
    monkeypatch.delenv("MONGODB_URI", raising=False)
    monkeypatch.delenv("BUYTOKENS_CATALOGUE", raising=False)
    monkeypatch.setenv("BUYTOKENS_SQLITE_PATH", str(tmp_path / "cli.sqlite3"))
    assert cli.main(list(args)) != 0
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert len(err) < 300
    assert needle in err
    store = SqliteBalanceRepository(tmp_path / "cli.sqlite3", SystemClock())
    assert store.ledger("alice", 10) == []
    store.close()


def test_a_grant_of_the_largest_amount_is_applied_and_recorded(tmp_path: Path) -> None:
    """A trillion tokens is the bound, not past it: granted and on the ledger."""
    result = _run(tmp_path, "grant", "alice", "1,000,000,000,000", "--reason", "bulk")
    assert result.returncode == 0, result.stderr
    assert _run(tmp_path, "balance", "alice").stdout.strip() == "1000000000000"
    assert "+1,000,000,000,000" in _run(tmp_path, "history", "alice").stdout


def test_a_broken_catalogue_file_stops_with_its_name(tmp_path: Path) -> None:
    """BUYTOKENS_CATALOGUE pointing at a bad file is reported in one line."""
    bad = tmp_path / "cat.toml"
    bad.write_text(
        'currency = "cny"\n[[packages]]\nid = "x"\nlabel = "X"\ntokens = -1\namount = 5\n'
    )
    result = _run(tmp_path, "packages", BUYTOKENS_CATALOGUE=str(bad))
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"buytokens: error: catalogue {bad}: packages.x.tokens: must be a positive integer"
    )


def test_approve_credits_a_flagged_purchase_once(tmp_path: Path) -> None:
    """An operator's approval credits the package once; a second approval is refused."""
    store = SqliteBalanceRepository(tmp_path / "cli.sqlite3", SystemClock())
    package = DEFAULT_CATALOGUE.get("package_100k")
    paid_less = Money(package.price.amount - 1, package.price.currency)
    event = PaymentSucceeded(
        "evt_odd", "pi_odd", paid_less, "carol", package.id, SystemClock().now()
    )
    apply_payment_event(CreditingDependencies(store, DEFAULT_CATALOGUE, SystemClock()), event)
    store.close()
    assert "needs_review" in _run(tmp_path, "history", "carol").stdout
    listed = _run(tmp_path, "review").stdout.splitlines()
    assert listed[0].split()[:4] == ["flagged", "(UTC)", "payment", "intent"]
    assert listed[1].split()[2:6] == ["pi_odd", "carol", "package_100k", "¥10.00"]
    assert "paid 999 cny but the package costs 1000 cny" in listed[1]
    approved = _run(tmp_path, "approve", "pi_odd", "--reason", "one fen short, goodwill")
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.strip() == "pi_odd: credited +100,000 tokens to carol; now succeeded"
    again = _run(tmp_path, "approve", "pi_odd", "--reason", "again")
    assert again.returncode == 1
    assert "not awaiting review" in again.stderr
    assert _run(tmp_path, "balance", "carol").stdout.strip() == "100000"
    assert _run(tmp_path, "review").stdout.strip() == "no purchases await review"
    assert "goodwill" in _run(tmp_path, "history", "carol").stdout
    missing = _run(tmp_path, "approve", "pi_nothing", "--reason", "x")
    assert (missing.returncode, missing.stderr.count("\n")) == (1, 1)


def test_a_purchase_its_record_cannot_credit_points_the_operator_to_grant(
    tmp_path: Path,
) -> None:
    """The refusal is the domain's one line, and the CLI adds which command to use instead."""
    store = SqliteBalanceRepository(tmp_path / "cli.sqlite3", SystemClock())
    package = DEFAULT_CATALOGUE.get("package_100k")
    now = SystemClock().now()
    store.add_purchase(
        Purchase.pending("pi_usd", "dora", package.id, package.tokens, package.price, now)
    )
    event = ChargeRefunded("evt_usd", "pi_usd", Money(100, "usd"), now)
    apply_payment_event(CreditingDependencies(store, DEFAULT_CATALOGUE, SystemClock()), event)
    store.close()
    refused = _run(tmp_path, "approve", "pi_usd", "--reason", "x")
    assert refused.returncode == 1
    assert refused.stderr == (
        "buytokens: error: purchase pi_usd cannot be credited from its own record "
        "(refund in usd for a cny payment); use `buytokens grant` instead\n"
    )


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    """``buytokens --version`` prints the version the package metadata and the API carry."""
    result = _run(tmp_path, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"buytokens {buytokens.__version__}\n"
    assert buytokens.__version__ == importlib.metadata.version("buytokens")
