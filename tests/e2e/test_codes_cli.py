"""``buytokens codes create`` and ``codes list`` on the embedded store, as an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from buytokens.adapters.sqlite.codes import SqliteRedemptionCodes
from buytokens.adapters.sqlite.engine import SqliteDatabase
from buytokens.adapters.sqlite.store import SqliteBalanceRepository
from buytokens.adapters.stripe_events import translate_event
from buytokens.adapters.system import SystemClock
from buytokens.domain.codes import CodeSecret, RedemptionCode, parse_code
from buytokens.services.codes import CodeDesk, redeem_code
from buytokens.services.gifts import GiftCodes
from buytokens.services.webhooks import apply_received_event
from buytokens.testing.stripe_twin import InMemoryPaymentGateway
from tests.support import stripe_json
from tests.support.use_cases import wire


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v for k, v in os.environ.items() if k not in {"MONGODB_URI", "BUYTOKENS_CATALOGUE"}
    }
    environ["BUYTOKENS_SQLITE_PATH"] = str(tmp_path / "cli.sqlite3")
    script = Path(sys.executable).with_name("buytokens")
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, env=environ, timeout=60, check=False
    )


def test_create_prints_the_codes_one_per_line_and_nothing_else(tmp_path: Path) -> None:
    """K distinct, well-formed codes on stdout, nothing on stderr; list shows hints only."""
    result = _run(
        tmp_path, "codes", "create", "--tokens", "50_000", "--count", "5", "--reason", "launch"
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == len(set(lines)) == 5
    assert result.stdout == "".join(f"{parse_code(line).display()}\n" for line in lines)
    listed = _run(tmp_path, "codes", "list")
    assert listed.returncode == 0, listed.stderr
    rows = listed.stdout.splitlines()
    assert rows[0].split()[:3] == ["code", "tokens", "state"]
    assert len(rows) == 6
    for line in lines:
        assert line not in listed.stdout
        assert line.replace("-", "") not in listed.stdout
        assert f"****-****-****-****-{line[-4:]}" in listed.stdout
    assert all("50,000" in row and "unredeemed" in row for row in rows[1:])


def test_list_shows_who_redeemed_and_unredeemed_leaves_them_out(tmp_path: Path) -> None:
    """A redeemed code shows its redeemer and time, and drops out of ``--unredeemed``."""
    created = _run(tmp_path, "codes", "create", "--tokens", "7", "--count", "2", "--reason", "r")
    first, second = created.stdout.splitlines()
    database = SqliteDatabase(tmp_path / "cli.sqlite3")
    clock = SystemClock()
    desk = CodeDesk(
        SqliteRedemptionCodes(database), SqliteBalanceRepository(database, clock), clock
    )
    redeem_code(desk, "carol", first)
    database.close()
    listed = _run(tmp_path, "codes", "list").stdout
    (row,) = [line for line in listed.splitlines() if line.split()[0].endswith(first[-4:])]
    assert "redeemed" in row
    assert "carol" in row
    unredeemed = _run(tmp_path, "codes", "list", "--unredeemed").stdout
    assert first[-4:] not in unredeemed
    assert second[-4:] in unredeemed
    assert _run(tmp_path, "balance", "carol").stdout.strip() == "7"


def test_list_shows_gift_codes_as_their_purchases_have_them(tmp_path: Path) -> None:
    """A redeemed gift shows its redeemer, a refunded one is void and says why, a paid one is
    unredeemed; only that one stays in ``--unredeemed``."""
    database = SqliteDatabase(tmp_path / "cli.sqlite3")
    clock = SystemClock()
    codes, balances = SqliteRedemptionCodes(database), SqliteBalanceRepository(database, clock)
    secret = CodeSecret.derived_from("any-secret-the-list-does-not-need")
    use_cases = wire(
        InMemoryPaymentGateway(clock=clock),
        clock,
        store=balances,
        gifts=GiftCodes(secret, codes),
    )
    for pi in ("pi_redeemed", "pi_refunded", "pi_open"):
        event = stripe_json.succeeded(pi, "buyer", "package_500k", 3500, "cny")
        event["data"]["object"]["metadata"]["gift"] = "true"
        apply_received_event(use_cases.events, translate_event(event))
    redeem_code(
        CodeDesk(codes, balances, clock),
        "carol",
        RedemptionCode.for_gift(secret, "pi_redeemed").display(),
    )
    refund = stripe_json.refunded("pi_refunded", 3500, 3500, "cny")
    apply_received_event(use_cases.events, translate_event(refund))
    database.close()

    def row(listing: str, pi: str) -> str:
        hint = RedemptionCode.for_gift(secret, pi).hint
        (line,) = [line for line in listing.splitlines() if line.split()[0].endswith(hint)]
        return line

    listed = _run(tmp_path, "codes", "list")
    assert listed.returncode == 0, listed.stderr
    redeemed = row(listed.stdout, "pi_redeemed").split()
    assert redeemed[2:4] == ["redeemed", "gift"]
    assert "carol" in redeemed
    refunded = row(listed.stdout, "pi_refunded")
    assert refunded.split()[2:4] == ["void", "gift"]
    assert "its payment was refunded" in refunded
    assert row(listed.stdout, "pi_open").split()[2:4] == ["unredeemed", "gift"]
    unredeemed = _run(tmp_path, "codes", "list", "--unredeemed").stdout
    assert row(unredeemed, "pi_open")
    for gone in ("pi_redeemed", "pi_refunded"):
        assert RedemptionCode.for_gift(secret, gone).hint not in unredeemed


def test_an_expiry_in_the_past_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    """``--expires`` in the past is one stderr line, and no code is stored."""
    refused = _run(
        tmp_path, "codes", "create", "--tokens", "7", "--count", "1", "--reason", "r",
        "--expires", "2001-01-01",
    )  # fmt: skip
    assert refused.returncode == 1
    assert "not in the future" in refused.stderr
    assert refused.stdout == ""
    assert _run(tmp_path, "codes", "list").stdout.strip() == "no codes"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--tokens", "0", "--count", "1", "--reason", "r"], "--tokens must be 1-"),
        (["--tokens", "1000000000001", "--count", "1", "--reason", "r"], "--tokens must be 1-"),
        (["--tokens", "9" * 5000, "--count", "1", "--reason", "r"], "out of range"),
        (["--tokens", "-5", "--count", "1", "--reason", "r"], "--tokens must be 1-"),
        (["--tokens", "ten", "--count", "1", "--reason", "r"], "whole number"),
        (["--tokens", "5", "--count", "0", "--reason", "r"], "--count must be 1-10,000"),
        (["--tokens", "5", "--count", "10001", "--reason", "r"], "--count must be 1-10,000"),
        (["--tokens", "5", "--count", "1", "--reason", " "], "reason is required"),
        (["--tokens", "5", "--count", "1", "--reason", "x" * 501], "at most 500"),
        (["--tokens", "5", "--count", "1", "--reason", "r", "--expires", "soon"], "ISO-8601"),
        (["--tokens", "5", "--count", "1"], "--reason"),
    ],
)
def test_bad_input_is_one_stderr_line_and_no_codes(
    tmp_path: Path, args: list[str], says: str
) -> None:
    """Out-of-bounds numbers, an empty reason or a bad date: one clear line, exit ≠ 0."""
    result = _run(tmp_path, "codes", "create", *args)
    assert result.returncode != 0
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert says in result.stderr
