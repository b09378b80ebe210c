"""The one error tree of buytokens.

Subclasses are split by how the caller must react: tell the user, retry later,
or alert the operator. Adapters translate vendor exceptions into these with
``raise ... from`` so that nothing vendor-specific crosses a port.
"""

from __future__ import annotations


class BuyTokensError(Exception):
    """Root of every error this library raises on purpose."""

    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class UserError(BuyTokensError):
    """The request cannot succeed as sent; tell the user why."""

    code = "bad_request"


class InvalidMoney(UserError):
    """An amount or currency is not a valid integer minor-unit money value."""

    code = "invalid_money"


class InvalidAdjustment(UserError):
    """An operator's balance adjustment is out of bounds or badly described."""

    code = "invalid_adjustment"


class InvalidUserId(InvalidAdjustment):
    """A user id is not a string, is empty, or is too long or not printable."""

    code = "invalid_user_id"


class UnknownPackage(UserError):
    """No package in the catalogue has the requested id."""

    code = "unknown_package"


class UnsupportedPaymentMethod(UserError):
    """The payment method is not offered for this catalogue."""

    code = "unsupported_payment_method"


class PaymentDeclined(UserError):
    """The payment provider declined the payment; the message is the bank's reason."""

    code = "payment_declined"


class NotFound(UserError):
    """The thing asked for does not exist, or does not belong to the caller."""

    code = "not_found"


class IdempotencyConflict(UserError):
    """An idempotency key was reused for a different request."""

    code = "idempotency_conflict"


class InvalidCatalogue(BuyTokensError):
    """A catalogue definition breaks an invariant; ``field`` names the culprit."""

    code = "invalid_catalogue"

    def __init__(self, reason: str, *, field: str, source: str | None = None) -> None:
        where = field if source is None else f"catalogue {source}: {field}"
        super().__init__(f"{where}: {reason}")
        self.reason = reason
        self.field = field
        self.source = source

    def in_source(self, source: str) -> InvalidCatalogue:
        """The same problem, said of the named file."""
        return InvalidCatalogue(self.reason, field=self.field, source=source)


class InvalidWebhook(BuyTokensError):
    """A webhook delivery is not genuine (bad, missing or stale signature, or unparsable)."""

    code = "invalid_webhook"


class RetryableError(BuyTokensError):
    """A transient failure: the same call may succeed later, after ``retry_after`` seconds."""

    code = "temporarily_unavailable"
    retry_after: int = 5


class ConcurrentUpdate(RetryableError):
    """Another writer changed the record first; re-read and decide again."""

    code = "concurrent_update"


class StoreUnavailable(RetryableError):
    """The store could not be reached or did not confirm a durable write."""

    code = "store_unavailable"


class ChangeNotApplied(RetryableError):
    """A balance change failed and is certainly not applied, now or later; retrying is safe."""

    code = "not_applied"


class OutcomeUnknown(StoreUnavailable):
    """The store failed mid-write and could not say whether the write took effect.

    ``retry_key`` is the idempotency key under which retrying finishes the write once.
    """

    code = "outcome_unknown"

    def __init__(self, message: str, *, retry_key: str) -> None:
        super().__init__(message)
        self.retry_key = retry_key


class GatewayUnavailable(RetryableError):
    """The payment provider could not be reached or asked us to slow down."""

    code = "gateway_unavailable"


class GatewayBusy(GatewayUnavailable):
    """Every slot for calls to the payment provider is taken; nothing was sent."""

    code = "gateway_busy"
    retry_after = 2


class GatewayTimeout(GatewayUnavailable):
    """The payment provider did not answer within the time budget of one request."""

    code = "gateway_timeout"


class OperatorError(BuyTokensError):
    """Misconfiguration or a broken invariant that a human must look at."""

    code = "operator_error"


class ConfigurationError(OperatorError):
    """A required setting is missing or malformed."""

    code = "configuration_error"


class GatewayRejected(OperatorError):
    """The payment provider refused our request (authentication, invalid parameters)."""

    code = "gateway_rejected"


class StoreCorrupted(OperatorError):
    """Stored data breaks an invariant the store relies on (e.g. duplicate balances)."""

    code = "store_corrupted"


class InvalidPromoCode(UserError):
    """A promo code cannot be used for this checkout; ``reason`` says which rule refused it."""

    code = "invalid_promo_code"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class InvalidPromoDefinition(UserError):
    """An operator's promo code definition breaks a rule (e.g. 0 % off, an unknown package)."""

    code = "invalid_promo_definition"


class GiftNotFound(NotFound):
    """No redeemable code matches: never issued, or expired."""

    code = "gift_not_found"


class MalformedCode(GiftNotFound):
    """The text cannot be a code at all (wrong length, a character codes never use, a typo).

    It is a GiftNotFound, so that a client sees one answer for every code that is
    not there, with a message saying what is wrong with what was typed.
    """


class GiftAlreadyRedeemed(UserError):
    """The code was redeemed before; a code credits tokens once."""

    code = "gift_already_redeemed"


class GiftVoid(UserError):
    """The gift's payment was refunded or disputed before anyone redeemed it."""

    code = "gift_void"
