"""Defining, listing, previewing and holding promo codes through the service, on every
store; and ``buytokens promo`` as an operator runs it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from buytokens.adapters.memory import FixedClock
from buytokens.domain.catalogue import DEFAULT_CATALOGUE
from buytokens.domain.errors import InvalidPromoCode, InvalidPromoDefinition, NotFound
from buytokens.domain.money import Money
from buytokens.domain.promo_uses import PaymentOutcome, UseState
from buytokens.entrypoints import cli
from buytokens.services.promos import (
    PromoDesk,
    count_payment,
    create_promo,
    disable_promo,
    hold_promo,
    list_promos,
    preview_promo,
    sweep_holds,
)
from buytokens.testing.stripe_twin import InMemoryPaymentGateway
from tests.support.concurrency import at_once
from tests.support.promo_stores import PROMO_STORES

T0 = datetime(2026, 5, 1, 8, tzinfo=UTC)


@pytest.fixture(params=sorted(PROMO_STORES))
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PromoDesk]:
    with PROMO_STORES[request.param](tmp_path) as promos:
        yield PromoDesk(promos, DEFAULT_CATALOGUE, FixedClock(T0))


def _reason(call: object) -> str:
    assert callable(call)
    with pytest.raises(InvalidPromoCode) as caught:
        call()
    return caught.value.reason


def test_create_preview_and_list(desk: PromoDesk) -> None:
    create_promo(desk, "spring-20", percent_off=20, max_redemptions=2)
    create_promo(desk, "five", amount_off=500, package_ids=["package_500k"])
    quote = preview_promo(desk, " Spring-20 ", "package_500k")
    assert (quote.original, quote.amount, quote.discount) == (
        Money(3_500, "cny"),
        Money(2_800, "cny"),
        Money(700, "cny"),
    )
    assert preview_promo(desk, "FIVE", "package_500k").amount == Money(3_000, "cny")
    assert _reason(lambda: preview_promo(desk, "FIVE", "package_1m")) == "not_for_package"
    assert _reason(lambda: preview_promo(desk, "NOPE", "package_1m")) == "unknown"
    assert _reason(lambda: preview_promo(desk, "!", "package_1m")) == "unknown"
    with pytest.raises(InvalidPromoDefinition, match="already exists"):
        create_promo(desk, "SPRING-20", percent_off=5)
    with pytest.raises(InvalidPromoDefinition, match="no package"):
        create_promo(desk, "OTHER", percent_off=5, package_ids=["package_none"])
    assert [(item.promo.code, item.usage.paid, item.usage.held) for item in list_promos(desk)] == [
        ("SPRING-20", 0, 0),
        ("FIVE", 0, 0),
    ]


def test_disable_refuses_new_checkouts(desk: PromoDesk) -> None:
    create_promo(desk, "LAUNCH", percent_off=10)
    assert disable_promo(desk, "launch").disabled
    assert _reason(lambda: preview_promo(desk, "LAUNCH", "package_1m")) == "disabled"
    with pytest.raises(NotFound):
        disable_promo(desk, "MISSING")


def test_holds_count_until_paid_or_released_and_expire(desk: PromoDesk) -> None:
    create_promo(desk, "ONCE", percent_off=50, max_redemptions=1)
    quote, use = hold_promo(desk, "once", "alice", "c1", "package_1m")
    assert quote.amount == Money(2_750, "cny")
    assert hold_promo(desk, "ONCE", "alice", "c1", "package_1m")[1] == use  # the same checkout
    assert _reason(lambda: hold_promo(desk, "ONCE", "bob", "c2", "package_1m")) == "used_up"
    (listing,) = list_promos(desk)
    assert (listing.usage.paid, listing.usage.held) == (0, 1)
    desk.promos.release("c1")
    hold_promo(desk, "ONCE", "bob", "c2", "package_1m")
    assert isinstance(desk.clock, FixedClock)
    desk.clock.advance(timedelta(hours=2))
    assert [u.checkout_id for u in sweep_holds(desk, InMemoryPaymentGateway()).retired] == ["c2"]
    hold_promo(desk, "ONCE", "carol", "c3", "package_1m")
    now = desk.clock.now()
    paid = count_payment(desk.promos, "ONCE", "carol", "c3", "pi_3", now)
    assert paid.outcome is PaymentOutcome.COUNTED
    assert count_payment(desk.promos, "ONCE", "carol", "c3", "pi_3", now).outcome is (
        PaymentOutcome.ALREADY_COUNTED
    )
    late = count_payment(desk.promos, "ONCE", "bob", "c2", "pi_2", now)
    assert late.outcome is PaymentOutcome.OVER_LIMIT
    assert "limit" in late.reason
    stored = desk.promos.find_use("c3")
    assert stored is not None
    assert stored.state is UseState.PAID
    (listing,) = list_promos(desk)
    assert (listing.usage.paid, listing.usage.held) == (1, 0)


def test_concurrent_checkouts_hold_no_more_than_the_limit(desk: PromoDesk) -> None:
    create_promo(desk, "RUSH", percent_off=30, max_redemptions=3)

    def checkout(index: int) -> bool:
        try:
            hold_promo(desk, "RUSH", f"user{index}", f"c{index}", "package_1m")
        except InvalidPromoCode:
            return False
        return True

    assert sum(at_once(checkout, 10)) == 3
    (listing,) = list_promos(desk)
    assert listing.usage.held == 3


def test_the_promo_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """create / list / disable print one line or a table; bad input is one stderr line."""
    monkeypatch.delenv("MONGODB_URI", raising=False)
    monkeypatch.delenv("BUYTOKENS_CATALOGUE", raising=False)
    monkeypatch.setenv("BUYTOKENS_SQLITE_PATH", str(tmp_path / "cli.sqlite3"))

    def run(*args: str) -> tuple[int, str, str]:
        code = cli.main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    assert run("promo", "create", "spring-20", "--percent-off", "20", "--max-redemptions", "5") == (
        0,
        "SPRING-20: 20% off\n",
        "",
    )
    code, out, err = run(
        "promo", "create", "FIVE", "--amount-off", "500", "--packages", "package_500k",
        "--per-user", "2", "--expires", "2099-01-01",
    )  # fmt: skip
    assert (code, out, err) == (0, "FIVE: ¥5.00 off\n", "")
    for bad in (
        ("promo", "create", "BAD", "--percent-off", "0"),
        ("promo", "create", "BAD", "--percent-off", "5", "--amount-off", "5"),
        ("promo", "create", "BAD"),
        ("promo", "create", "X", "--percent-off", "5"),
        ("promo", "create", "SPRING-20", "--percent-off", "5"),
        ("promo", "create", "BAD", "--percent-off", "5", "--packages", "nope"),
        ("promo", "create", "BAD", "--percent-off", "5", "--expires", "2001-01-01"),
        ("promo", "disable", "NOPE"),
    ):
        code, out, err = run(*bad)
        assert code != 0, bad
        assert out == ""
        assert len(err.splitlines()) == 1, err
    assert run("promo", "disable", "five")[1] == "FIVE: disabled\n"
    code, out, _err = run("promo", "list")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split()[:2] == ["code", "discount"]
    assert "paid" in header
    assert "held" in header
    assert [row.split()[0] for row in rows] == ["FIVE", "SPRING-20"]
    assert "disabled" in rows[0]
    assert "active" in rows[1]
