"""Sell token packages through Stripe and credit them exactly once.

The names in ``__all__`` are the public API, versioned by semantic versioning
(``docs/LIBRARY.md``): open a deployment with ``BuyTokens`` and call its use
cases. ``buytokens.testing`` holds the in-memory stand-ins for tests. Every
other module under ``buytokens`` is internal and may change in any release.
"""

from buytokens._version import __version__
from buytokens.api import BuyTokens
from buytokens.api_codes import CodeListing, GiftCode, PromoCode, PromoPreview, RedeemedCode
from buytokens.api_values import (
    EventOutcome,
    History,
    PaymentIntent,
    PaymentStatus,
    PurchaseRecord,
    StripeSettings,
)
from buytokens.domain.catalogue import Catalogue, PaymentMethod, TokenPackage
from buytokens.domain.codes import CodeKind, CodeState
from buytokens.domain.crediting import Disposition
from buytokens.domain.errors import (
    BuyTokensError,
    ConcurrentUpdate,
    ConfigurationError,
    GatewayRejected,
    GatewayUnavailable,
    GiftAlreadyRedeemed,
    GiftNotFound,
    GiftVoid,
    IdempotencyConflict,
    InvalidAdjustment,
    InvalidCatalogue,
    InvalidMoney,
    InvalidPromoCode,
    InvalidPromoDefinition,
    InvalidUserId,
    InvalidWebhook,
    MalformedCode,
    NotFound,
    OperatorError,
    PaymentDeclined,
    RetryableError,
    StoreCorrupted,
    StoreUnavailable,
    UnknownPackage,
    UnsupportedPaymentMethod,
    UserError,
)
from buytokens.domain.ledger import EntryKind, LedgerEntry
from buytokens.domain.money import Money
from buytokens.domain.purchases import PurchaseStatus
from buytokens.ports.clock import Clock
from buytokens.services.reconciliation import ReconciledEvent, ReconcileOutcome, ReconcileReport

__all__ = [
    "BuyTokens",
    "BuyTokensError",
    "Catalogue",
    "Clock",
    "CodeKind",
    "CodeListing",
    "CodeState",
    "ConcurrentUpdate",
    "ConfigurationError",
    "Disposition",
    "EntryKind",
    "EventOutcome",
    "GatewayRejected",
    "GatewayUnavailable",
    "GiftAlreadyRedeemed",
    "GiftCode",
    "GiftNotFound",
    "GiftVoid",
    "History",
    "IdempotencyConflict",
    "InvalidAdjustment",
    "InvalidCatalogue",
    "InvalidMoney",
    "InvalidPromoCode",
    "InvalidPromoDefinition",
    "InvalidUserId",
    "InvalidWebhook",
    "LedgerEntry",
    "MalformedCode",
    "Money",
    "NotFound",
    "OperatorError",
    "PaymentDeclined",
    "PaymentIntent",
    "PaymentMethod",
    "PaymentStatus",
    "PromoCode",
    "PromoPreview",
    "PurchaseRecord",
    "PurchaseStatus",
    "ReconcileOutcome",
    "ReconcileReport",
    "ReconciledEvent",
    "RedeemedCode",
    "RetryableError",
    "StoreCorrupted",
    "StoreUnavailable",
    "StripeSettings",
    "TokenPackage",
    "UnknownPackage",
    "UnsupportedPaymentMethod",
    "UserError",
    "__version__",
]
