"""Promo codes, gifts and redemption codes through the library API, on every store."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from buytokens import (
    BuyTokens,
    BuyTokensError,
    CodeKind,
    CodeState,
    ConfigurationError,
    EntryKind,
    GiftAlreadyRedeemed,
    GiftNotFound,
    GiftVoid,
    IdempotencyConflict,
    InvalidMoney,
    InvalidPromoCode,
    InvalidPromoDefinition,
    InvalidUserId,
    MalformedCode,
    Money,
    NotFound,
    PurchaseStatus,
    UnknownPackage,
    UserError,
)
from buytokens.domain.codes import RedemptionCode
from buytokens.entrypoints.container import create_container
from buytokens.entrypoints.settings import Settings
from buytokens.testing import FixedClock, InMemoryPaymentGateway

CODE_SECRET = "a code secret for the library tests"


@pytest.fixture
def clock() -> FixedClock:
    """Time for the store and the Stripe twin."""
    return FixedClock()


@pytest.fixture
def twin(clock: FixedClock) -> InMemoryPaymentGateway:
    """The in-memory Stripe."""
    return InMemoryPaymentGateway(webhook_secret="whsec_library_codes", clock=clock)


@pytest.fixture(params=["memory", "sqlite", "mongomock"])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each kind of store the library opens from a URI."""
    return {
        "memory": "memory://",
        "sqlite": str(tmp_path / "codes.sqlite3"),
        "mongomock": f"mongomock://localhost/codes{id(request)}",
    }[request.param]


@pytest.fixture
def shop(store_uri: str, twin: InMemoryPaymentGateway, clock: FixedClock) -> Iterator[BuyTokens]:
    """A deployment on each store that can sell gifts."""
    with BuyTokens(store_uri, gateway=twin, clock=clock, code_secret=CODE_SECRET) as opened:
        yield opened


def _pay(shop: BuyTokens, twin: InMemoryPaymentGateway, intent_id: str) -> None:
    shop.apply_stripe_event(twin.succeed(intent_id))


def _refusal(call: Callable[[], object]) -> BuyTokensError:
    with pytest.raises(BuyTokensError) as raised:
        call()
    return raised.value


# -- promo codes ----------------------------------------------------------------


def test_a_promo_code_prices_the_purchase_and_the_payment_credits_the_full_package(
    shop: BuyTokens, twin: InMemoryPaymentGateway
) -> None:
    """Preview and checkout charge the discounted price; the paid use is counted once and the
    package's full tokens are credited."""
    created = shop.create_promo("spring-20", percent_off=20, packages=["package_500k"])
    assert (created.code, created.percent_off, created.packages) == (
        "SPRING-20",
        20,
        frozenset({"package_500k"}),
    )
    assert (created.paid, created.held, created.disabled, created.per_user) == (0, 0, False, 1)
    preview = shop.preview_promo("Spring-20", "package_500k")
    assert (preview.amount, preview.original_amount, preview.discount_amount) == (
        Money(2800, "cny"),
        Money(3500, "cny"),
        Money(700, "cny"),
    )

    intent = shop.create_payment_intent("alice", "package_500k", promo_code="spring-20")
    assert (intent.amount, intent.discount) == (Money(2800, "cny"), Money(700, "cny"))
    assert shop.create_payment_intent("alice", "package_100k").discount is None
    assert [(p.paid, p.held) for p in shop.list_promos()] == [(0, 1)]
    _pay(shop, twin, intent.id)
    _pay(shop, twin, intent.id)
    assert [(p.paid, p.held) for p in shop.list_promos()] == [(1, 0)]
    assert shop.balance("alice") == 500_000
    assert shop.history("alice").purchases[-1].price == Money(2800, "cny")


def test_an_amount_off_code_is_money_in_the_catalogue_currency(shop: BuyTokens) -> None:
    """A fixed discount is Money; another currency is refused when the code is defined."""
    fixed = shop.create_promo("FIVE", amount_off=Money(500, "cny"), max_redemptions=10, per_user=2)
    assert (fixed.amount_off, fixed.percent_off, fixed.max_redemptions, fixed.per_user) == (
        Money(500, "cny"),
        None,
        10,
        2,
    )
    assert shop.preview_promo("five", "package_100k").amount == Money(500, "cny")
    with pytest.raises(InvalidPromoDefinition, match="amount off is in usd"):
        shop.create_promo("DOLLAR", amount_off=Money(100, "usd"))


def test_every_refusal_of_a_promo_code_says_which_rule(
    shop: BuyTokens, twin: InMemoryPaymentGateway, clock: FixedClock
) -> None:
    """Unknown, not for this package, already used, used up, expired and disabled codes are
    InvalidPromoCode with that reason, at preview or checkout, and charge nothing."""
    shop.create_promo("ONCE", percent_off=10, max_redemptions=1, packages=["package_1m"])
    shop.create_promo("SOON", percent_off=10, expires=clock.now() + timedelta(hours=1))
    paid = shop.create_payment_intent("bob", "package_1m", promo_code="once")
    _pay(shop, twin, paid.id)

    def reason(call: Callable[[], object]) -> str:
        with pytest.raises(InvalidPromoCode) as raised:
            call()
        assert raised.value.code == "invalid_promo_code"
        return raised.value.reason

    assert reason(lambda: shop.preview_promo("NOPE", "package_1m")) == "unknown"
    assert reason(lambda: shop.preview_promo("no such code!", "package_1m")) == "unknown"
    assert reason(lambda: shop.preview_promo("ONCE", "package_100k")) == "not_for_package"
    buy = shop.create_payment_intent
    assert reason(lambda: buy("bob", "package_1m", promo_code="ONCE")) == "already_used"
    assert reason(lambda: buy("carol", "package_1m", promo_code="ONCE")) == "used_up"
    clock.advance(timedelta(hours=2))
    assert reason(lambda: buy("carol", "package_100k", promo_code="soon")) == "expired"
    shop.create_promo("LATER", percent_off=10)
    shop.disable_promo("later")
    assert reason(lambda: buy("carol", "package_100k", promo_code="LATER")) == "disabled"
    with pytest.raises(UnknownPackage):
        shop.preview_promo("LATER", "package_free")
    assert shop.history("carol").purchases == ()


def test_disabling_a_code_keeps_the_price_of_checkouts_holding_it(
    shop: BuyTokens, twin: InMemoryPaymentGateway
) -> None:
    """A checkout that held the code before it was disabled pays its discounted price and is
    credited; disabling again is harmless; an unknown code is NotFound."""
    shop.create_promo("HALF", percent_off=50)
    intent = shop.create_payment_intent("dave", "package_1m", promo_code="HALF")
    disabled = shop.disable_promo("half")
    assert (disabled.code, disabled.disabled, disabled.held) == ("HALF", True, 1)
    assert shop.disable_promo("HALF").disabled
    _pay(shop, twin, intent.id)
    assert shop.balance("dave") == 1_000_000
    assert [(p.disabled, p.paid) for p in shop.list_promos()] == [(True, 1)]
    for unknown in ("NEVER", "x", 7):
        with pytest.raises(NotFound, match="no promo code"):
            shop.disable_promo(unknown)  # type: ignore[arg-type]


def test_an_idempotency_key_covers_the_promo_code(shop: BuyTokens) -> None:
    """The same key and code return the same intent, holding one use; the key reused without
    the code conflicts."""
    shop.create_promo("KEYED", percent_off=10, per_user=1)
    first = shop.create_payment_intent(
        "erin", "package_500k", idempotency_key="o-1", promo_code="KEYED"
    )
    again = shop.create_payment_intent(
        "erin", "package_500k", idempotency_key="o-1", promo_code="keyed"
    )
    assert again.id == first.id
    assert again.amount == Money(3150, "cny")
    assert [p.held for p in shop.list_promos()] == [1]
    with pytest.raises(IdempotencyConflict, match="Idempotency-Key"):
        shop.create_payment_intent("erin", "package_500k", idempotency_key="o-1")


@pytest.mark.parametrize(
    ("definition", "error", "needle"),
    [
        (
            {"percent_off": 10, "amount_off": Money(100, "cny")},
            InvalidPromoDefinition,
            "exactly one",
        ),
        ({}, InvalidPromoDefinition, "exactly one"),
        ({"percent_off": 0}, InvalidPromoDefinition, "1 to 100"),
        ({"percent_off": 101}, InvalidPromoDefinition, "1 to 100"),
        ({"percent_off": "20"}, InvalidPromoDefinition, "1 to 100"),
        ({"amount_off": Money(0, "cny")}, InvalidPromoDefinition, "positive"),
        ({"amount_off": 1.5}, InvalidMoney, "integer"),
        ({"percent_off": 5, "packages": "package_1m"}, InvalidPromoDefinition, "collection"),
        ({"percent_off": 5, "packages": [1]}, InvalidPromoDefinition, "collection"),
        ({"percent_off": 5, "packages": 3}, InvalidPromoDefinition, "collection"),
        ({"percent_off": 5, "packages": []}, InvalidPromoDefinition, "at least one"),
        ({"percent_off": 5, "packages": ["package_free"]}, InvalidPromoDefinition, "package_free"),
        ({"percent_off": 5, "max_redemptions": 0}, InvalidPromoDefinition, "max_redemptions"),
        ({"percent_off": 5, "per_user": True}, InvalidPromoDefinition, "per_user"),
        ({"percent_off": 5, "expires": "2030-01-01"}, UserError, "datetime"),
        (
            {"percent_off": 5, "expires": datetime(2020, 1, 1, tzinfo=UTC)},
            InvalidPromoDefinition,
            "not after",
        ),
    ],
)
def test_a_bad_promo_definition_is_refused_clearly(
    shop: BuyTokens, definition: dict[str, Any], error: type[BuyTokensError], needle: str
) -> None:
    """Each broken rule raises a UserError naming it, and stores nothing."""
    with pytest.raises(error, match=needle):
        shop.create_promo("BROKEN", **definition)
    assert shop.list_promos() == ()


def test_promo_code_names_and_expiries_are_read_as_the_cli_reads_them(shop: BuyTokens) -> None:
    """A malformed or taken name is refused; an expiry without a zone is UTC."""
    with pytest.raises(InvalidPromoDefinition, match="3-32 letters"):
        shop.create_promo("x", percent_off=5)
    created = shop.create_promo("NAIVE", percent_off=5, expires=datetime(2030, 1, 1))
    assert created.expires_at == datetime(2030, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidPromoDefinition, match="already exists"):
        shop.create_promo("naive", percent_off=50)


def test_concurrent_checkouts_never_exceed_a_promo_limit(
    tmp_path: Path, twin: InMemoryPaymentGateway, clock: FixedClock
) -> None:
    """Eight buyers racing for a code limited to three uses: exactly three checkouts hold it."""
    with BuyTokens(tmp_path / "race.sqlite3", gateway=twin, clock=clock) as shop:
        shop.create_promo("RUSH", percent_off=50, max_redemptions=3)
        start = threading.Barrier(8)
        outcomes: list[str] = []

        def checkout(user: str) -> None:
            start.wait()
            try:
                shop.create_payment_intent(user, "package_1m", promo_code="RUSH")
                outcomes.append("held")
            except InvalidPromoCode as refused:
                outcomes.append(refused.reason)

        threads = [threading.Thread(target=checkout, args=(f"u{n}",)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["held"] * 3 + ["used_up"] * 5
        assert [(p.paid, p.held) for p in shop.list_promos()] == [(0, 3)]


# -- gifts ------------------------------------------------------------------------


def test_a_paid_gift_shows_its_code_to_the_buyer_and_credits_the_redeemer_once(
    shop: BuyTokens, twin: InMemoryPaymentGateway
) -> None:
    """A gift credits no one when paid; its code, shown to its buyer only, credits whoever
    redeems it, once; a second redemption is refused and credits nothing."""
    gift = shop.create_payment_intent("frank", "package_500k", gift=True)
    with pytest.raises(UserError, match="pending") as unpaid:
        shop.gift_code("frank", gift.id)
    assert unpaid.value.code == "gift_not_paid"
    _pay(shop, twin, gift.id)
    assert shop.balance("frank") == 0
    assert [(p.gift, p.status) for p in shop.history("frank").purchases] == [
        (True, PurchaseStatus.SUCCEEDED)
    ]

    shown = shop.gift_code("frank", gift.id)
    assert (shown.payment_intent_id, shown.redeemed) == (gift.id, False)
    assert shown.code is not None
    assert len(shown.code) == 24
    with pytest.raises(NotFound):
        shop.gift_code("grace", gift.id)

    redeemed = shop.redeem_code("grace", shown.code.lower().replace("-", ""))
    assert (redeemed.tokens, redeemed.token_credits) == (500_000, 500_000)
    with pytest.raises(GiftAlreadyRedeemed, match="by you"):
        shop.redeem_code("grace", shown.code)
    with pytest.raises(GiftAlreadyRedeemed, match="someone else"):
        shop.redeem_code("frank", shown.code)
    assert (shop.balance("grace"), shop.balance("frank")) == (500_000, 0)
    assert [e.kind for e in shop.history("grace").ledger] == [EntryKind.REDEMPTION]
    assert shop.gift_code("frank", gift.id).redeemed


def test_a_gift_refunded_before_redemption_is_void(
    shop: BuyTokens, twin: InMemoryPaymentGateway
) -> None:
    """Refunding the gift's payment withdraws its code: redeeming it is GiftVoid, crediting
    nothing."""
    gift = shop.create_payment_intent("hana", "package_100k", gift=True)
    _pay(shop, twin, gift.id)
    code = shop.gift_code("hana", gift.id).code
    assert code is not None
    shop.apply_stripe_event(twin.refund(gift.id))
    with pytest.raises(GiftVoid, match="refunded"):
        shop.redeem_code("ivan", code)
    assert shop.balance("ivan") == 0


def test_gift_code_refuses_what_is_not_the_callers_paid_gift(
    shop: BuyTokens, twin: InMemoryPaymentGateway
) -> None:
    """An ordinary purchase is not_a_gift; an unknown intent or a bad id is NotFound; the
    gift flag is a bool."""
    plain = shop.create_payment_intent("judy", "package_100k")
    _pay(shop, twin, plain.id)
    assert _refusal(lambda: shop.gift_code("judy", plain.id)).code == "not_a_gift"
    for unknown in ("pi_unknown", "", None):
        with pytest.raises(NotFound):
            shop.gift_code("judy", unknown)  # type: ignore[arg-type]
    with pytest.raises(UserError, match="True or False"):
        shop.create_payment_intent("judy", "package_100k", gift="yes")  # type: ignore[arg-type]


def test_without_a_code_secret_nothing_is_sold_as_a_gift(
    tmp_path: Path, twin: InMemoryPaymentGateway, clock: FixedClock
) -> None:
    """No secret: buying a gift is refused before Stripe is called, and a gift bought by a
    deployment with the secret cannot be shown (ConfigurationError); codes still redeem."""
    path = tmp_path / "shared.sqlite3"
    with BuyTokens(path, gateway=twin, clock=clock, code_secret=CODE_SECRET) as seller:
        gift = seller.create_payment_intent("kim", "package_100k", gift=True)
        _pay(seller, twin, gift.id)
        code = seller.gift_code("kim", gift.id).code
    assert code is not None
    with BuyTokens(path, gateway=twin, clock=clock, code_secret="  ") as plain:
        refused = _refusal(lambda: plain.create_payment_intent("kim", "package_1m", gift=True))
        assert refused.code == "gifts_unavailable"
        with pytest.raises(ConfigurationError, match="code_secret"):
            plain.gift_code("kim", gift.id)
        assert plain.redeem_code("lee", code).tokens == 100_000


def test_from_env_derives_gift_codes_as_serve_does(
    tmp_path: Path, twin: InMemoryPaymentGateway, clock: FixedClock
) -> None:
    """The library opened with BUYTOKENS_CODE_SECRET shows the code the web app's container
    derives for the same gift."""
    environ = {
        "BUYTOKENS_SQLITE_PATH": str(tmp_path / "env.sqlite3"),
        "BUYTOKENS_CODE_SECRET": CODE_SECRET,
    }
    with BuyTokens(
        environ["BUYTOKENS_SQLITE_PATH"], gateway=twin, clock=clock, code_secret=CODE_SECRET
    ) as seller:
        gift = seller.create_payment_intent("mia", "package_100k", gift=True)
        _pay(seller, twin, gift.id)
    with BuyTokens.from_env(environ) as shop:
        shown = shop.gift_code("mia", gift.id)
    container = create_container(Settings.from_env(environ))
    try:
        gifts = container.gift_codes()
        assert gifts is not None
        assert shown.code == RedemptionCode.for_gift(gifts.secret, gift.id).display()
    finally:
        container.stores().close()


# -- redemption codes -------------------------------------------------------------


def test_operator_codes_are_shown_once_listed_by_hint_and_redeemed_once(shop: BuyTokens) -> None:
    """A batch of codes, listed without the codes; each redeems once, in any spelling."""
    issued = shop.create_codes(5_000, 3, reason="launch party")
    assert len(set(issued)) == 3
    assert all(len(code) == 24 for code in issued)
    listed = shop.list_codes()
    assert sorted(c.hint for c in listed) == sorted(code[-4:] for code in issued)
    assert {(c.kind, c.state, c.tokens, c.reason) for c in listed} == {
        (CodeKind.OPERATOR, CodeState.UNREDEEMED, 5_000, "launch party")
    }
    assert all(code not in repr(listed) for code in issued)

    first = issued[0]
    assert shop.redeem_code("nora", first.lower().replace("-", " ")).token_credits == 5_000
    with pytest.raises(GiftAlreadyRedeemed):
        shop.redeem_code("nora", first)
    with pytest.raises(GiftAlreadyRedeemed, match="someone else"):
        shop.redeem_code("omar", first)
    assert (shop.balance("nora"), shop.balance("omar")) == (5_000, 0)
    assert [(e.kind, e.applied) for e in shop.history("nora").ledger] == [
        (EntryKind.REDEMPTION, 5_000)
    ]
    redeemed = [c for c in shop.list_codes() if c.state is CodeState.REDEEMED]
    assert [(c.hint, c.redeemed_by) for c in redeemed] == [(first[-4:], "nora")]
    assert len(shop.list_codes(unredeemed=True)) == 2
    assert len(shop.list_codes(limit=1)) == 1


def test_a_code_redeemed_concurrently_credits_exactly_once(
    store_uri: str, twin: InMemoryPaymentGateway, clock: FixedClock
) -> None:
    """Eight users redeeming one code at once: one credit, seven refusals."""
    with BuyTokens(store_uri, gateway=twin, clock=clock) as shop:
        (code,) = shop.create_codes(777, 1, reason="race")
        start = threading.Barrier(8)
        credited: list[str] = []
        refused: list[str] = []

        def redeem(user: str) -> None:
            start.wait()
            try:
                shop.redeem_code(user, code)
                credited.append(user)
            except GiftAlreadyRedeemed:
                refused.append(user)

        threads = [threading.Thread(target=redeem, args=(f"r{n}",)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert (len(credited), len(refused)) == (1, 7)
        assert sum(shop.balance(f"r{n}") for n in range(8)) == 777


def test_an_expired_unknown_or_mistyped_code_is_not_found(
    shop: BuyTokens, clock: FixedClock
) -> None:
    """Expired and unknown codes are GiftNotFound; malformed text is MalformedCode saying
    what is wrong; nothing is credited."""
    (expiring,) = shop.create_codes(10, 1, reason="flash", expires=clock.now() + timedelta(hours=1))
    with BuyTokens() as elsewhere:
        (unknown,) = elsewhere.create_codes(10, 1, reason="other shop")
    clock.advance(timedelta(hours=2))
    assert [c.state for c in shop.list_codes()] == [CodeState.EXPIRED]
    assert shop.list_codes(unredeemed=True) == ()
    for code in (expiring, unknown):
        with pytest.raises(GiftNotFound, match="no such code"):
            shop.redeem_code("pat", code)
    typo = unknown[:-1] + ("0" if unknown[-1] != "0" else "1")
    for text, needle in (
        (typo, "typo"),
        ("ABCD", "20 characters"),
        ("ABCD-!", "never appears"),
        (None, "text"),
    ):
        with pytest.raises(MalformedCode, match=needle):
            shop.redeem_code("pat", text)  # type: ignore[arg-type]
    assert shop.balance("pat") == 0


@pytest.mark.parametrize(
    ("tokens", "count", "reason", "expires", "needle"),
    [
        (0, 1, "x", None, "1 to"),
        (1.5, 1, "x", None, "1 to"),
        (10**13, 1, "x", None, "1 to"),
        (5, 0, "x", None, "1 to 10000"),
        (5, 10_001, "x", None, "1 to 10000"),
        (5, 1, " ", None, "reason is required"),
        (5, 1, None, None, "reason must be text"),
        (5, 1, "x" * 501, None, "at most 500"),
        (5, 1, "x", datetime(2020, 1, 1, tzinfo=UTC), "not in the future"),
        (5, 1, "x", "tomorrow", "datetime"),
    ],
)
def test_a_bad_batch_of_codes_is_refused_clearly(
    shop: BuyTokens, tokens: Any, count: Any, reason: Any, expires: Any, needle: str
) -> None:
    """Absurd tokens or counts, a missing reason and a past or unreadable expiry are UserErrors,
    and no code is stored."""
    with pytest.raises(UserError, match=needle):
        shop.create_codes(tokens, count, reason=reason, expires=expires)
    assert shop.list_codes() == ()


def test_listing_codes_takes_only_sensible_options(shop: BuyTokens) -> None:
    """A limit outside 1-10 000 and a non-bool filter are refused."""
    for limit in (0, 10_001, 1.5):
        with pytest.raises(UserError, match="limit"):
            shop.list_codes(limit=limit)  # type: ignore[arg-type]
    with pytest.raises(UserError, match="True or False"):
        shop.list_codes(unredeemed="yes")  # type: ignore[arg-type]


# -- user ids ----------------------------------------------------------------------


def test_user_ids_are_checked_and_spelled_by_the_domain(
    shop: BuyTokens, twin: InMemoryPaymentGateway
) -> None:
    """A LibreChat ObjectId in capitals names the same buyer as in lower case (as the web app
    reads it); an id that is not text, empty or unprintable is InvalidUserId."""
    upper = "65A1B2C3D4E5F60718293A4B"
    intent = shop.create_payment_intent(upper.lower(), "package_100k")
    assert shop.check_payment_intent(upper, intent.id).status is PurchaseStatus.PENDING
    _pay(shop, twin, intent.id)
    assert shop.balance(upper) == 100_000
    for bad, needle in (
        (None, "must be a string"),
        ("  ", "must not be empty"),
        ("a\nb", "printable"),
    ):
        with pytest.raises(InvalidUserId, match=needle) as refused:
            shop.redeem_code(bad, "ABCD")  # type: ignore[arg-type]
        assert refused.value.code == "invalid_user_id"
        with pytest.raises(InvalidUserId, match=needle):
            shop.balance(bad)  # type: ignore[arg-type]
