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
