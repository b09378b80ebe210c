"""Redemption codes: operator-issued and gift codes, their text form, and redeeming one.

A code is 19 random symbols of Crockford's base 32 (5 bits each, 95 bits in all)
followed by one check symbol, shown in five groups of four:
``7KQ2-M9XD-4RTB-HN0C-WZ5F``. The alphabet has no I, L, O or U, so nothing reads
as something else; typed O, I and L are taken for 0, 1 and 1 as Crockford
intends. The check symbol (Luhn mod 32) catches every single mistyped symbol
and most swaps of neighbours, so a typo is told apart from a wrong code.

A store never keeps a code, only its SHA-256 ``digest`` and a short ``hint``
(the last four symbols). The digest needs no key: with 95 random bits no one
can search for a preimage, and an unkeyed digest keeps operator codes valid
across secret rotations and restores on another server. The hint reveals three
random symbols and the check, which leaves 80 secret bits.

Gift codes are not random but derived, ``HMAC-SHA256(code secret, intent id)``,
so the buyer can be shown the code again without it ever being stored (see
docs/CODES.md).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import datetime

import attrs

from buytokens.domain.errors import (
    GiftAlreadyRedeemed,
    GiftNotFound,
    GiftVoid,
    MalformedCode,
    StoreCorrupted,
    UserError,
)
from buytokens.domain.purchases import Purchase

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base 32
BITS_PER_SYMBOL = 5
RANDOM_SYMBOLS = 19
ENTROPY_BITS = RANDOM_SYMBOLS * BITS_PER_SYMBOL
ENTROPY_BYTES = (ENTROPY_BITS + 7) // 8
CODE_LENGTH = RANDOM_SYMBOLS + 1  # and the check symbol
GROUP_SIZE = 4
HINT_LENGTH = 4
SECRET_BITS_BEYOND_HINT = (RANDOM_SYMBOLS - (HINT_LENGTH - 1)) * BITS_PER_SYMBOL
# LibreChat keeps tokenCredits in a JavaScript number: integers are exact up to 2**53 - 1.
MAX_CODE_TOKENS = 2**53 - 1
MAX_CODES_PER_BATCH = 10_000

_VALUES = {symbol: value for value, symbol in enumerate(ALPHABET)}
_ALIASES = {"O": "0", "I": "1", "L": "1"}
_SEPARATORS = frozenset("- ")
_MAX_INPUT = 64  # longer text is not a mistyped code; do not echo it
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_DIGEST_LABEL = b"buytokens-code:v1:"
_GIFT_LABEL = b"buytokens/gift-code/v1\x00"
_KEY_LABEL = b"buytokens/code-secret/v1"


def check_symbol(payload: str) -> str:
    """The Luhn mod 32 check symbol of ``payload`` (symbols of ALPHABET)."""
    total = 0
    for position, symbol in enumerate(reversed(payload)):
        addend = _VALUES[symbol] * (2 if position % 2 == 0 else 1)
        total += addend // 32 + addend % 32
    return ALPHABET[-total % 32]


def _well_formed(symbols: str) -> bool:
    return (
        len(symbols) == CODE_LENGTH
        and all(symbol in _VALUES for symbol in symbols)
        and check_symbol(symbols[:-1]) == symbols[-1]
    )


def _check_symbols(_instance: object, _attribute: object, value: str) -> None:
    if not isinstance(value, str) or not _well_formed(value):
        raise ValueError("not a well-formed code (length, alphabet or check symbol)")


@attrs.frozen(repr=False)
class RedemptionCode:
    """A code in its normal form: upper case, no dashes, check symbol last.

    Its repr shows only the hint, so that a code never lands in a log by accident.
    """

    symbols: str = attrs.field(validator=_check_symbols)

    @classmethod
    def from_entropy(cls, data: bytes) -> RedemptionCode:
        """The code whose random part is the first ENTROPY_BITS bits of ``data``."""
        if len(data) < ENTROPY_BYTES:
            raise ValueError(f"a code needs {ENTROPY_BYTES} bytes of entropy, got {len(data)}")
        number = int.from_bytes(data[:ENTROPY_BYTES], "big") >> (ENTROPY_BYTES * 8 - ENTROPY_BITS)
        payload = "".join(
            ALPHABET[(number >> (BITS_PER_SYMBOL * shift)) & 31]
            for shift in reversed(range(RANDOM_SYMBOLS))
        )
        return cls(payload + check_symbol(payload))

    @classmethod
    def generate(cls, random_bytes: Callable[[int], bytes]) -> RedemptionCode:
        """A fresh code from ``random_bytes(n)`` (e.g. ``secrets.token_bytes``)."""
        data = random_bytes(ENTROPY_BYTES)
        if len(data) != ENTROPY_BYTES:
            raise ValueError(f"the random source gave {len(data)} bytes, not {ENTROPY_BYTES}")
        return cls.from_entropy(data)

    @classmethod
    def for_gift(cls, secret: CodeSecret, payment_intent_id: str) -> RedemptionCode:
        """The one gift code of a payment intent: the same for the same secret and intent."""
        if not payment_intent_id:
            raise ValueError("a gift code needs the payment intent id")
        mac = hmac.new(secret.key, _GIFT_LABEL + payment_intent_id.encode(), hashlib.sha256)
        return cls.from_entropy(mac.digest())

    def display(self) -> str:
        """The grouped form shown to people, e.g. ``7KQ2-M9XD-4RTB-HN0C-WZ5F``."""
        return "-".join(
            self.symbols[start : start + GROUP_SIZE] for start in range(0, CODE_LENGTH, GROUP_SIZE)
        )

    @property
    def hint(self) -> str:
        """The last symbols: not secret, enough for a person to tell codes apart."""
        return self.symbols[-HINT_LENGTH:]

    @property
    def digest(self) -> str:
        """The hex SHA-256 under which a store keeps the code."""
        return code_digest(self.symbols)

    def __repr__(self) -> str:
        return f"RedemptionCode(hint={self.hint!r})"


def code_digest(normal_form: str) -> str:
    """The hex SHA-256 of a code's normal form (see RedemptionCode.digest)."""
    return hashlib.sha256(_DIGEST_LABEL + normal_form.encode()).hexdigest()


def masked(hint: str) -> str:
    """How a listing shows a code it may not reveal: only the hint, in its place."""
    groups = -(-CODE_LENGTH // GROUP_SIZE)
    return "-".join(["****"] * (groups - 1) + [hint.rjust(GROUP_SIZE, "*")])


def parse_code(text: str) -> RedemptionCode:
    """Read a code as a person typed it: any case, dashes and spaces anywhere.

    Raises MalformedCode, saying what is wrong, for text that cannot be a code.
    """
    if not isinstance(text, str):
        raise MalformedCode("a code is text")
    if len(text) > _MAX_INPUT:
        raise MalformedCode(f"a code has {CODE_LENGTH} characters; this text is far longer")
    symbols = []
    for character in text.strip():
        if character in _SEPARATORS:
            continue
        symbol = _ALIASES.get(character.upper(), character.upper())
        if symbol not in _VALUES:
            raise MalformedCode(
                f"{character!r} never appears in a code "
                "(codes use digits and the letters A-Z except I, L, O and U)"
            )
        symbols.append(symbol)
    if len(symbols) != CODE_LENGTH:
        raise MalformedCode(
            f"a code has {CODE_LENGTH} characters (dashes aside); this one has {len(symbols)}"
        )
    normal = "".join(symbols)
    if check_symbol(normal[:-1]) != normal[-1]:
        raise MalformedCode("this code has a typo: check each character and try again")
    return RedemptionCode(normal)


@attrs.frozen(repr=False)
class CodeSecret:
    """The server secret gift codes are derived from; never shown, never stored."""

    key: bytes = attrs.field()

    @key.validator
    def _long_enough(self, _attribute: object, value: bytes) -> None:
        if not isinstance(value, bytes) or len(value) < 32:
            raise ValueError("a code secret needs at least 32 bytes")

    @classmethod
    def derived_from(cls, secret: str) -> CodeSecret:
        """A code secret of its own, derived from another server secret (e.g. JWT_SECRET)."""
        if not secret:
            raise ValueError("cannot derive a code secret from an empty secret")
        return cls(hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest())

    def __repr__(self) -> str:
        return "CodeSecret(<hidden>)"


class CodeKind(enum.StrEnum):
    """Where a code came from."""

    OPERATOR = "operator"  # `buytokens codes create`
    GIFT = "gift"  # a paid gift purchase


class CodeState(enum.StrEnum):
    """Where a code stands, derived from its facts."""

    UNREDEEMED = "unredeemed"
    REDEEMED = "redeemed"
    VOID = "void"  # the gift's payment was refunded or disputed before redemption
    PENDING = "pending"  # a gift whose payment has not succeeded, or is held for review
    EXPIRED = "expired"


def redemption_key(digest: str) -> str:
    """The ledger key of a code's one and only credit."""
    return f"redeem:{digest[:32]}"


def _digest(_instance: object, _attribute: object, value: str) -> None:
    if not isinstance(value, str) or not _DIGEST.match(value):
        raise ValueError("digest must be 64 lower-case hex digits")


def _hint(_instance: object, _attribute: object, value: str) -> None:
    if (
        not isinstance(value, str)
        or len(value) != HINT_LENGTH
        or any(c not in _VALUES for c in value)
    ):
        raise ValueError(f"hint must be the last {HINT_LENGTH} symbols of a code")


def _tokens(_instance: object, _attribute: object, value: int) -> None:
    if type(value) is not int or not 0 < value <= MAX_CODE_TOKENS:
        raise UserError(
            f"a code is worth 1 to {MAX_CODE_TOKENS} tokens, got {value!r}", code="invalid_tokens"
        )


@attrs.frozen
class CodeRecord:
    """What a store keeps about one code: its digest, never the code itself.

    A gift's record in a store is only its index (digest → payment intent): its
    state lives on its purchase. ``with_purchase`` gives the record as the purchase
    has it: ``redeemed_by``/``redeemed_at``, ``void_reason`` (a refund or
    chargeback before redemption) and ``pending_reason`` (not paid, or held for
    review) are then views of the purchase, never stored (see docs/CODES.md).
    """

    digest: str = attrs.field(validator=_digest)
    hint: str = attrs.field(validator=_hint)
    kind: CodeKind
    tokens: int = attrs.field(validator=_tokens)
    created_at: datetime
    expires_at: datetime | None = None
    reason: str = ""
    payment_intent_id: str | None = None
    buyer_id: str | None = None
    redeemed_by: str | None = None
    redeemed_at: datetime | None = None
    void_reason: str | None = None
    credited: bool = False
    """The redeemer's credit is on the ledger (redeeming claims the code first, then credits)."""
    pending_reason: str | None = None
    """Why a gift cannot be redeemed yet: its payment has not succeeded, or is under review."""

    def __attrs_post_init__(self) -> None:
        if (self.redeemed_by is None) != (self.redeemed_at is None):
            raise ValueError("redeemed_by and redeemed_at go together")
        if self.credited and self.redeemed_by is None:
            raise ValueError("only a redeemed code can have been credited")
        if self.kind is CodeKind.GIFT and not (self.payment_intent_id and self.buyer_id):
            raise ValueError("a gift code belongs to a payment intent and its buyer")
        if self.kind is CodeKind.OPERATOR and (
            self.void_reason is not None or self.pending_reason is not None
        ):
            raise ValueError("only a gift is void or pending: an operator code has no payment")

    @classmethod
    def issued(
        cls,
        code: RedemptionCode,
        tokens: int,
        reason: str,
        at: datetime,
        expires_at: datetime | None = None,
    ) -> CodeRecord:
        """An operator's code worth ``tokens``, issued at ``at`` for ``reason``."""
        if not isinstance(reason, str) or not reason.strip():
            raise UserError("a reason is required for the audit trail")
        if expires_at is not None and expires_at <= at:
            raise UserError(
                f"the expiry {expires_at.isoformat()} is not in the future", code="invalid_expiry"
            )
        return cls(
            code.digest, code.hint, CodeKind.OPERATOR, tokens, at, expires_at, reason.strip()
        )

    @classmethod
    def gift(
        cls,
        code: RedemptionCode,
        payment_intent_id: str,
        buyer_id: str,
        tokens: int,
        at: datetime,
    ) -> CodeRecord:
        """The code of a gift purchase of ``tokens``, paid for by ``buyer_id``."""
        return cls(
            code.digest,
            code.hint,
            CodeKind.GIFT,
            tokens,
            at,
            payment_intent_id=payment_intent_id,
            buyer_id=buyer_id,
        )

    def with_purchase(self, purchase: Purchase | None) -> CodeRecord:
        """This gift's record as its purchase (None: not stored yet) has it now.

        Redeemed by whom and when, void and why, or pending while the payment has
        not succeeded or is held for review; unredeemed otherwise.
        """
        if self.kind is not CodeKind.GIFT:
            raise ValueError("only a gift's state lives on its purchase")
        if purchase is not None and purchase.payment_intent_id != self.payment_intent_id:
            raise ValueError("this purchase is not the gift's")
        if purchase is None or not purchase.gift or not purchase.succeeded:
            return attrs.evolve(
                self,
                redeemed_by=None,
                redeemed_at=None,
                credited=False,
                void_reason=None,
                pending_reason="its payment has not succeeded",
            )
        review = purchase.review_reason
        return attrs.evolve(
            self,
            redeemed_by=purchase.redeemed_by,
            redeemed_at=purchase.redeemed_at,
            # A gift's redemption and its credit are one purchase transition.
            credited=purchase.redeemed_by is not None,
            void_reason=purchase.void_reason,
            pending_reason=None if review is None else f"its payment is under review ({review})",
        )

    def state(self, now: datetime) -> CodeState:
        """Redeemed wins over everything (it happened); then void; then pending; then expired."""
        if self.redeemed_by is not None:
            return CodeState.REDEEMED
        if self.void_reason is not None:
            return CodeState.VOID
        if self.pending_reason is not None:
            return CodeState.PENDING
        if self.expires_at is not None and now >= self.expires_at:
            return CodeState.EXPIRED
        return CodeState.UNREDEEMED

    def redeem(self, user_id: str, now: datetime) -> Redemption:
        """Redeem the code for ``user_id``: the record as redeemed and the credit to make.

        Raises GiftAlreadyRedeemed, GiftVoid, or GiftNotFound for an expired code.
        """
        if not isinstance(user_id, str) or not user_id:
            raise ValueError("a redemption needs the redeemer's user id")
        state = self.state(now)
        if state is CodeState.REDEEMED:
            assert self.redeemed_at is not None
            who = "you" if self.redeemed_by == user_id else "someone else"
            raise GiftAlreadyRedeemed(
                f"this code was already redeemed by {who} on {self.redeemed_at:%Y-%m-%d}"
            )
        if state is CodeState.VOID:
            raise GiftVoid(f"this gift was withdrawn before it was redeemed ({self.void_reason})")
        if state is CodeState.PENDING:
            raise GiftNotFound(f"this gift cannot be redeemed yet: {self.pending_reason}")
        if state is CodeState.EXPIRED:
            raise GiftNotFound("no such code, or it has expired")
        redeemed = attrs.evolve(self, redeemed_by=user_id, redeemed_at=now)
        return Redemption(redeemed, redemption_key(self.digest), user_id, self.tokens)


def check_gift_index(record: CodeRecord) -> None:
    """Raise ValueError unless ``record`` is a new gift's index record."""
    if record.kind is not CodeKind.GIFT or record.redeemed_by is not None:
        raise ValueError("only a new gift's record is an index record")


def check_same_gift(stored: CodeRecord | None, record: CodeRecord) -> None:
    """Raise StoreCorrupted unless ``stored`` indexes the same gift as ``record``."""
    if stored is None or (stored.kind, stored.payment_intent_id) != (
        CodeKind.GIFT,
        record.payment_intent_id,
    ):
        raise StoreCorrupted("a code with this digest is stored for something else")


@attrs.frozen
class Redemption:
    """A code redeemed: the record to store (conditionally on it being unredeemed) and
    the credit of ``tokens`` to ``user_id`` under the ledger ``key``, once."""

    record: CodeRecord
    key: str
    user_id: str
    tokens: int

    @property
    def reason(self) -> str:
        """The ledger entry's reason: which code, by its hint only."""
        return f"redeemed {self.record.kind.value} code {masked(self.record.hint)}"


def issue_codes(
    random_bytes: Callable[[int], bytes],
    count: int,
    tokens: int,
    reason: str,
    at: datetime,
    expires_at: datetime | None = None,
) -> tuple[tuple[RedemptionCode, CodeRecord], ...]:
    """``count`` fresh operator codes worth ``tokens`` each, with the records to store.

    The codes are returned to be shown once; only the records may be kept.
    """
    if type(count) is not int or not 1 <= count <= MAX_CODES_PER_BATCH:
        raise UserError(
            f"issue 1 to {MAX_CODES_PER_BATCH} codes at a time, not {count!r}", code="invalid_count"
        )
    issued: list[tuple[RedemptionCode, CodeRecord]] = []
    seen: set[str] = set()
    while len(issued) < count:
        code = RedemptionCode.generate(random_bytes)
        if code.digest in seen:  # 2**-95 per pair with a real source: a broken one
            raise ValueError("the random source repeats itself")
        seen.add(code.digest)
        issued.append((code, CodeRecord.issued(code, tokens, reason, at, expires_at)))
    return tuple(issued)
