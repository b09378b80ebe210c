"""Redemption and gift codes: their text form, their storage form, and redeeming one."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from buytokens.domain.codes import (
    ALPHABET,
    BITS_PER_SYMBOL,
    CODE_LENGTH,
    ENTROPY_BITS,
    ENTROPY_BYTES,
    MAX_CODE_TOKENS,
    RANDOM_SYMBOLS,
    SECRET_BITS_BEYOND_HINT,
    CodeKind,
    CodeRecord,
    CodeSecret,
    CodeState,
    RedemptionCode,
    check_symbol,
    issue_codes,
    masked,
    parse_code,
    redemption_key,
)
from buytokens.domain.errors import (
    GiftAlreadyRedeemed,
    GiftNotFound,
    GiftVoid,
    MalformedCode,
    NotFound,
    UserError,
)

T0 = datetime(2026, 5, 1, tzinfo=UTC)
SECRET = CodeSecret.derived_from("a-jwt-secret-of-the-server")

entropy = st.binary(min_size=ENTROPY_BYTES, max_size=ENTROPY_BYTES)
codes = entropy.map(RedemptionCode.from_entropy)


def _random_part(code: RedemptionCode) -> int:
    number = 0
    for symbol in code.symbols[:RANDOM_SYMBOLS]:
        number = number * 32 + ALPHABET.index(symbol)
    return number


def test_alphabet_is_32_unambiguous_symbols() -> None:
    """Crockford's base 32: digits and capitals without I, L, O and U, each once."""
    assert len(set(ALPHABET)) == len(ALPHABET) == 2**BITS_PER_SYMBOL
    assert not set("ILOU") & set(ALPHABET)
    assert all(symbol.isascii() and (symbol.isdigit() or symbol.isupper()) for symbol in ALPHABET)


def test_entropy_is_at_least_80_bits_even_after_the_hint_is_shown() -> None:
    """19 random symbols of 5 bits; the 4-symbol hint gives away 3 of them and the check."""
    assert ENTROPY_BITS == RANDOM_SYMBOLS * BITS_PER_SYMBOL == 95
    assert SECRET_BITS_BEYOND_HINT >= 80
    assert ENTROPY_BYTES * 8 >= ENTROPY_BITS


@given(st.integers(0, 2**ENTROPY_BITS - 1))
def test_every_bit_of_entropy_reaches_the_code(number: int) -> None:
    """The random part of a code is exactly the top 95 bits of the entropy: none is lost."""
    data = (number << (ENTROPY_BYTES * 8 - ENTROPY_BITS)).to_bytes(ENTROPY_BYTES, "big")
    assert _random_part(RedemptionCode.from_entropy(data)) == number


@given(codes)
def test_parse_reads_back_what_display_shows(code: RedemptionCode) -> None:
    """parse(display(code)) is the code, for every code."""
    assert parse_code(code.display()) == code
    assert parse_code(code.symbols) == code


@given(codes, st.data())
def test_parse_ignores_case_dashes_and_spaces(code: RedemptionCode, data: st.DataObject) -> None:
    """However a person types it — lower case, no dashes, extra spaces — it is the same code."""
    typed = []
    for symbol in code.symbols:
        typed.append(symbol.lower() if data.draw(st.booleans()) else symbol)
        typed.append(data.draw(st.sampled_from(["", "", "-", " ", "--"])))
    assert parse_code(" " + "".join(typed) + " \n") == code


def test_display_groups_four_symbols() -> None:
    """Five groups of four, upper case, joined by dashes."""
    shown = RedemptionCode.from_entropy(bytes(range(ENTROPY_BYTES))).display()
    groups = shown.split("-")
    assert [len(group) for group in groups] == [4] * 5
    assert shown == shown.upper()


@given(codes)
def test_look_alike_letters_are_read_as_the_digits_they_resemble(code: RedemptionCode) -> None:
    """O is 0, I and L are 1: a code never contains them, so they can only be those digits."""
    typed = code.symbols.replace("0", "O").replace("1", "l")
    assert parse_code(typed) == code


@given(codes, st.integers(0, CODE_LENGTH - 1), st.sampled_from(ALPHABET))
def test_any_single_mistyped_symbol_is_caught(
    code: RedemptionCode, position: int, symbol: str
) -> None:
    """The check symbol catches every one-symbol typo."""
    if code.symbols[position] == symbol:
        return
    typo = code.symbols[:position] + symbol + code.symbols[position + 1 :]
    with pytest.raises(MalformedCode, match="typo"):
        parse_code(typo)


def test_most_swaps_of_neighbours_are_caught() -> None:
    """Luhn mod 32 catches a swap of two different neighbours for all but a few symbol pairs."""
    missed = total = 0
    for a in ALPHABET:
        for b in ALPHABET:
            if a == b:
                continue
            for tail in ("", "7"):  # the swap on either parity of position
                payload = f"{a}{b}{tail}"
                swapped = f"{b}{a}{tail}"
                total += 1
                missed += check_symbol(payload) == check_symbol(swapped)
    assert missed / total < 0.01


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("", "has 20 characters"),
        ("ABCD-EFGH-JKMN", "this one has 12"),
        ("ABCD-EFGH-JKMN-PQRS-TVWX-YZ", "this one has 22"),
        ("ABCD-EFGH-JKMN-PQRS-TVWU", "'U' never appears"),
        ("ABCD-EFGH-JKMN-PQRS-TVW!", "'!' never appears"),
        ("ABCD_EFGH_JKMN_PQRS_TVWX", "'_' never appears"),
        ("ABCD-EFGH-JKMN-PQRS-TVWß", "never appears"),
        ("A" * 500, "far longer"),
    ],
)
def test_malformed_text_is_refused_saying_why(typed: str, says: str) -> None:
    """Malformed input gets a clear message and the not-found answer of the contract."""
    with pytest.raises(MalformedCode, match=says) as caught:
        parse_code(typed)
    assert isinstance(caught.value, GiftNotFound)
    assert isinstance(caught.value, NotFound)
    assert caught.value.code == "gift_not_found"


def test_non_text_is_refused() -> None:
    """A number or None is not a code."""
    with pytest.raises(MalformedCode):
        parse_code(12345)  # type: ignore[arg-type]


def test_a_code_cannot_be_built_malformed() -> None:
    """The normal form is checked on construction too."""
    with pytest.raises(ValueError, match="well-formed"):
        RedemptionCode("0" * CODE_LENGTH + "0")
    good = RedemptionCode.from_entropy(b"\xff" * ENTROPY_BYTES)
    with pytest.raises(ValueError, match="well-formed"):
        RedemptionCode(good.symbols.lower())


def test_generate_asks_the_random_source_for_the_entropy() -> None:
    """A code is drawn from the injected source, which must give what was asked."""
    asked: list[int] = []

    def source(n: int) -> bytes:
        asked.append(n)
        return bytes([0xFF] * n)

    code = RedemptionCode.generate(source)
    assert asked == [ENTROPY_BYTES]
    assert code.symbols[:RANDOM_SYMBOLS] == "Z" * RANDOM_SYMBOLS
    with pytest.raises(ValueError, match="gave 4 bytes"):
        RedemptionCode.generate(lambda n: b"1234")
    with pytest.raises(ValueError, match="needs 12 bytes"):
        RedemptionCode.from_entropy(b"short")


@given(codes)
def test_repr_never_shows_the_code(code: RedemptionCode) -> None:
    """Logging a code by accident reveals only its hint."""
    assert code.symbols[:-4] not in repr(code)
    assert code.hint in repr(code)


@given(codes, codes)
def test_digest_identifies_the_code_without_revealing_it(
    one: RedemptionCode, other: RedemptionCode
) -> None:
    """Equal codes have equal digests, different codes different ones; no symbols leak."""
    assert len(one.digest) == 64
    assert int(one.digest, 16) >= 0
    assert (one.digest == other.digest) == (one == other)
    assert one.digest != hashlib.sha256(one.symbols.encode()).hexdigest()  # domain-separated
    assert parse_code(one.display().lower()).digest == one.digest


def test_hint_and_masked_form() -> None:
    """The hint is the last four symbols; the masked form keeps the code's shape."""
    code = RedemptionCode.from_entropy(bytes(range(1, ENTROPY_BYTES + 1)))
    assert code.hint == code.symbols[-4:]
    assert masked(code.hint) == f"****-****-****-****-{code.hint}"


def test_gift_codes_are_derived_from_the_secret_and_the_intent() -> None:
    """The same secret and intent always give the same code; change either and it changes."""
    code = RedemptionCode.for_gift(SECRET, "pi_123")
    assert RedemptionCode.for_gift(SECRET, "pi_123") == code
    assert RedemptionCode.for_gift(SECRET, "pi_124") != code
    assert RedemptionCode.for_gift(CodeSecret.derived_from("another secret"), "pi_123") != code
    assert parse_code(code.display()) == code
    with pytest.raises(ValueError, match="payment intent"):
        RedemptionCode.for_gift(SECRET, "")


def test_code_secret_is_never_shown_and_must_be_long() -> None:
    """The secret hides itself in reprs and refuses short keys."""
    assert "secret-of-the-server" not in repr(SECRET)
    assert SECRET.key.hex() not in repr(SECRET)
    with pytest.raises(ValueError, match="32 bytes"):
        CodeSecret(b"short")
    with pytest.raises(ValueError, match="empty"):
        CodeSecret.derived_from("")


def _operator_record(expires_at: datetime | None = None) -> tuple[RedemptionCode, CodeRecord]:
    code = RedemptionCode.generate(secrets.token_bytes)
    return code, CodeRecord.issued(code, 50_000, "launch giveaway", T0, expires_at)


def test_an_issued_code_is_stored_by_digest_and_hint_only() -> None:
    """The record holds the digest and the hint, never the code."""
    code, record = _operator_record()
    assert record.digest == code.digest
    assert record.hint == code.hint
    assert code.symbols not in repr(record)
    assert record.state(T0) is CodeState.UNREDEEMED


def test_redeeming_credits_the_redeemer_once_under_the_codes_key() -> None:
    """A redemption names the redeemer, the tokens and the code's one ledger key."""
    code, record = _operator_record()
    redemption = record.redeem("bob", T0 + timedelta(days=1))
    assert redemption.user_id == "bob"
    assert redemption.tokens == 50_000
    assert redemption.key == redemption_key(code.digest) == f"redeem:{code.digest[:32]}"
    assert redemption.record.redeemed_by == "bob"
    assert redemption.record.state(T0 + timedelta(days=1)) is CodeState.REDEEMED
    assert code.symbols not in redemption.reason
    assert code.hint in redemption.reason


def test_a_redeemed_code_cannot_be_redeemed_again() -> None:
    """The second redemption, by anyone, is refused with the contract's 409 code."""
    _, record = _operator_record()
    redeemed = record.redeem("bob", T0).record
    with pytest.raises(GiftAlreadyRedeemed, match="by you") as by_same:
        redeemed.redeem("bob", T0)
    with pytest.raises(GiftAlreadyRedeemed, match="someone else"):
        redeemed.redeem("carol", T0)
    assert by_same.value.code == "gift_already_redeemed"


def test_an_expired_code_is_not_found() -> None:
    """After its expiry a code answers like an unknown one; before it, it redeems."""
    _, record = _operator_record(expires_at=T0 + timedelta(days=30))
    assert record.redeem("bob", T0 + timedelta(days=29)).tokens == 50_000
    with pytest.raises(GiftNotFound, match="expired") as caught:
        record.redeem("bob", T0 + timedelta(days=30))
    assert caught.value.code == "gift_not_found"
    assert record.state(T0 + timedelta(days=30)) is CodeState.EXPIRED


def test_a_void_gift_cannot_be_redeemed() -> None:
    """A gift whose payment was refunded or disputed first answers gift_void."""
    code = RedemptionCode.for_gift(SECRET, "pi_9")
    record = CodeRecord.gift(code, "pi_9", "alice", 500_000, T0)
    assert record.kind is CodeKind.GIFT
    void = attrs.evolve(record, void_reason="payment refunded")
    assert void.state(T0) is CodeState.VOID
    with pytest.raises(GiftVoid, match="refunded") as caught:
        void.redeem("bob", T0)
    assert caught.value.code == "gift_void"


def test_void_is_said_even_after_an_expiry() -> None:
    """The refund or dispute explains more to the holder than "not found" would."""
    gift = CodeRecord.gift(RedemptionCode.for_gift(SECRET, "pi_2"), "pi_2", "alice", 10, T0)
    void = attrs.evolve(gift, expires_at=T0 + timedelta(days=1), void_reason="refunded")
    assert void.state(T0 + timedelta(days=2)) is CodeState.VOID


def test_redeemed_wins_over_void_and_expired() -> None:
    """A redemption happened; later facts do not change what the code's state says."""
    _, record = _operator_record(expires_at=T0 + timedelta(days=1))
    redeemed = record.redeem("bob", T0).record
    assert redeemed.state(T0 + timedelta(days=2)) is CodeState.REDEEMED
    gift = CodeRecord.gift(RedemptionCode.for_gift(SECRET, "pi_1"), "pi_1", "alice", 10, T0)
    later = attrs.evolve(gift.redeem("bob", T0).record, void_reason="refunded")
    assert later.state(T0) is CodeState.REDEEMED


@pytest.mark.parametrize("tokens", [0, -5, MAX_CODE_TOKENS + 1, 1.5, True, "100"])
def test_a_code_is_worth_a_sensible_whole_number_of_tokens(tokens: object) -> None:
    """Absurd token counts are refused with a clear message."""
    code = RedemptionCode.generate(secrets.token_bytes)
    with pytest.raises(UserError, match="tokens"):
        CodeRecord.issued(code, tokens, "why", T0)  # type: ignore[arg-type]


def test_issuing_needs_a_reason_and_a_future_expiry() -> None:
    """The audit trail says why; an expiry in the past would make a dead code."""
    code = RedemptionCode.generate(secrets.token_bytes)
    with pytest.raises(UserError, match="reason"):
        CodeRecord.issued(code, 10, "  ", T0)
    with pytest.raises(UserError, match="not in the future"):
        CodeRecord.issued(code, 10, "why", T0, expires_at=T0)


def test_records_keep_their_invariants() -> None:
    """Gifts belong to a payment; only gifts can be void; a redemption has a time."""
    code = RedemptionCode.generate(secrets.token_bytes)
    with pytest.raises(ValueError, match="payment intent"):
        CodeRecord(code.digest, code.hint, CodeKind.GIFT, 10, T0)
    with pytest.raises(ValueError, match="only a gift"):
        CodeRecord(code.digest, code.hint, CodeKind.OPERATOR, 10, T0, void_reason="x")
    with pytest.raises(ValueError, match="go together"):
        CodeRecord(code.digest, code.hint, CodeKind.OPERATOR, 10, T0, redeemed_by="bob")
    with pytest.raises(ValueError, match="digest"):
        CodeRecord(code.symbols, code.hint, CodeKind.OPERATOR, 10, T0)
    with pytest.raises(ValueError, match="hint"):
        CodeRecord(code.digest, "IIII", CodeKind.OPERATOR, 10, T0)


def test_issue_codes_gives_distinct_codes_with_their_records() -> None:
    """K codes, all different, each with the record that stores it."""
    issued = issue_codes(secrets.token_bytes, 50, 1_000, "meetup", T0)
    assert len({code for code, _ in issued}) == 50
    assert all(record.digest == code.digest for code, record in issued)
    assert all(record.tokens == 1_000 and record.reason == "meetup" for _, record in issued)


@pytest.mark.parametrize("count", [0, -1, 10_001, 2.0])
def test_issue_codes_refuses_absurd_counts(count: object) -> None:
    """Between 1 and 10 000 codes per call."""
    with pytest.raises(UserError, match="codes at a time"):
        issue_codes(secrets.token_bytes, count, 10, "why", T0)  # type: ignore[arg-type]


def test_issue_codes_refuses_a_source_that_repeats_itself() -> None:
    """A broken random source is caught rather than issuing the same code twice."""
    with pytest.raises(ValueError, match="repeats"):
        issue_codes(bytes, 2, 10, "why", T0)
