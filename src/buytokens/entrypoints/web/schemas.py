"""Request and response shapes of the HTTP API (CONTRACT.md), as pydantic models."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    """What went wrong, for programs (``code``) and for people (``message``)."""

    code: str = Field(examples=["unknown_package"])
    message: str


class ErrorResponse(BaseModel):
    """Every error answer."""

    success: Literal[False] = False
    error: ErrorBody


class PackageOut(BaseModel):
    """One package on sale; amounts in minor units of the catalogue currency."""

    id: str
    label: str
    tokens: int
    amount: int
    originalAmount: int  # noqa: N815 - the contract's field name
    discountPercent: int  # noqa: N815
    popular: bool


class PackagesResponse(BaseModel):
    """The catalogue."""

    success: Literal[True] = True
    currency: str
    exponent: int = Field(
        description="decimal places of the currency's minor unit as Stripe counts them "
        "(2 for cny and isk, 0 for jpy): amount / 10**exponent is the price",
        examples=[2],
    )
    packages: list[PackageOut]


class CreateIntentRequest(_Strict):
    """What to buy and how; prices, token counts and user ids are never accepted here."""

    packageId: str = Field(min_length=1, max_length=64)  # noqa: N815
    paymentMethod: str = Field(min_length=1, max_length=32)  # noqa: N815
    gift: StrictBool = Field(
        default=False,
        description="buy the package as a gift: the purchase becomes a gift code, "
        "shown in the buyer's purchase list, instead of a credit",
    )
    promoCode: str | None = Field(  # noqa: N815
        default=None,
        min_length=1,
        max_length=64,
        description="a promo code (any case): the intent charges the discounted price",
    )


class CreateIntentResponse(BaseModel):
    """A payment intent for Stripe.js to confirm."""

    success: Literal[True] = True
    clientSecret: str  # noqa: N815
    amount: int
    currency: str
    exponent: int  # decimal places of the currency's minor unit, as Stripe counts them
    paymentIntentId: str  # noqa: N815
    status: str
    discountAmount: int | None = Field(  # noqa: N815
        default=None,
        description="what the promo code took off the package's price, in minor units "
        "(only with a promo code); amount is the discounted price",
    )


class PromoPreviewResponse(BaseModel):
    """A package's price with a promo code, before paying; amounts in minor units."""

    success: Literal[True] = True
    code: str  # the code's normal (upper-case) form
    packageId: str  # noqa: N815
    amount: int  # the discounted price
    originalAmount: int  # noqa: N815
    discountAmount: int  # noqa: N815
    currency: str


class IntentStatusResponse(BaseModel):
    """Where a purchase stands after checking with Stripe, and the balance now."""

    success: Literal[True] = True
    status: str
    tokenCredits: int  # noqa: N815


class PaymentMethodsResponse(BaseModel):
    """The payment methods offered for the catalogue's currency."""

    success: Literal[True] = True
    paymentMethods: list[str]  # noqa: N815


class BalanceResponse(BaseModel):
    """The caller's token credits."""

    success: Literal[True] = True
    tokenCredits: int  # noqa: N815


class PurchaseOut(BaseModel):
    """One of the caller's purchases."""

    paymentIntentId: str  # noqa: N815
    packageId: str | None  # noqa: N815
    tokens: int
    amount: int | None
    currency: str | None
    exponent: int | None  # decimal places of the currency's minor unit, as Stripe counts them
    status: str
    createdAt: str  # noqa: N815
    giftCode: str | None = Field(  # noqa: N815
        default=None,
        description="a paid gift's code, for its buyer only (absent for other purchases)",
    )
    giftRedeemed: bool | None = Field(  # noqa: N815
        default=None, description="whether someone redeemed the gift's code (gifts only)"
    )


class PurchasesResponse(BaseModel):
    """The caller's purchases, newest first."""

    success: Literal[True] = True
    purchases: list[PurchaseOut]


class RedeemRequest(_Strict):
    """A redemption or gift code as typed: any case, dashes and spaces optional."""

    code: str = Field(min_length=1, max_length=256, examples=["7KQ2-M9XD-4RTB-HN0C-WZ5F"])


class RedeemResponse(BaseModel):
    """A code redeemed: the tokens it credited and the caller's balance now."""

    success: Literal[True] = True
    tokens: int
    tokenCredits: int  # noqa: N815


class WebhookResponse(BaseModel):
    """Stripe only reads the status code; the body helps whoever reads the logs."""

    success: Literal[True] = True
    received: bool = True
    outcome: str


class HealthResponse(BaseModel):
    """Liveness."""

    status: Literal["ok"] = "ok"
