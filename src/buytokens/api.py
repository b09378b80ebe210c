"""The library's front door: open a deployment, call its use cases, close it.

``BuyTokens`` is what another Python service holds instead of the web app: the
same stores, the same Stripe wiring and the same idempotent crediting path, as
methods with typed results. The names exported by ``buytokens`` are the public
API (``docs/LIBRARY.md`` says what may change between versions); everything
else in the package is internal.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import attrs

from buytokens import api_codes
from buytokens.adapters.stripe_events import translate_event
from buytokens.adapters.system import SystemClock, UuidIdSource
from buytokens.api_codes import CodeListing, GiftCode, PromoCode, PromoPreview, RedeemedCode
from buytokens.api_values import (
    EventOutcome,
    History,
    PaymentIntent,
    PaymentStatus,
    StripeSettings,
    purchase_record,
    unset_if_blank,
)
from buytokens.domain.catalogue import Catalogue, PaymentMethod
from buytokens.domain.checkout import ReceivedEvent
from buytokens.domain.codes import CodeSecret
from buytokens.domain.errors import ConfigurationError, NotFound, OperatorError, UserError
from buytokens.domain.ledger import LedgerEntry, check_user_id
from buytokens.domain.money import Money
from buytokens.domain.users import canonical_user_id
from buytokens.entrypoints.composition import (
    Stores,
    UseCaseDependencies,
    build_catalogue,
    build_code_desk,
    build_code_secret,
    build_gateway,
    build_promo_desk,
    build_stores,
    build_use_cases,
    open_catalogue,
    open_gateway,
    open_stores,
)
from buytokens.entrypoints.settings import Settings
from buytokens.ports.clock import Clock
from buytokens.ports.payments import PaymentGateway
from buytokens.services import buying, codes, promos
from buytokens.services.admin import grant_tokens
from buytokens.services.codes import CodeDesk
from buytokens.services.crediting import Applied
from buytokens.services.gifts import GiftCodes, gift_code_of
from buytokens.services.promos import PromoDesk
from buytokens.services.reconciliation import ReconcileReport, reconcile
from buytokens.services.webhooks import apply_received_event

_KEY_NAME = "Idempotency-Key"
"""How errors name ``idempotency_key``: as the HTTP API's clients know it, in the same words."""

MAX_HISTORY = 1000
"""The most rows of each kind ``BuyTokens.history`` returns."""

MAX_CODES_LISTED = 10_000
"""The most codes ``BuyTokens.list_codes`` returns (as ``buytokens codes list --limit``)."""


class BuyTokens:
    """One deployment of buytokens: its catalogue, its store and its Stripe account.

    ``store`` is ``memory://`` (nothing survives the process: tests, demos), a
    SQLite file path (or ``sqlite://PATH``; created when missing), or a MongoDB URI
    (``mongodb://``, ``mongodb+srv://``; ``mongomock://`` for tests) holding
    LibreChat's ``balances`` and ``transactions``. Reach Stripe with ``stripe``, or
    pass any ``gateway`` (``buytokens.testing.InMemoryPaymentGateway`` in tests),
    not both. ``catalogue`` is a ``Catalogue``, a TOML or JSON file, or None for
    the default packages. ``clock`` defaults to the system clock. ``code_secret``
    is the secret gift codes are derived from (``BUYTOKENS_CODE_SECRET`` of a
    ``buytokens serve`` on the same store, so that both show the same codes);
    without it nothing can be bought as a gift, and redemption codes still work.

    Open one per process and share it between threads; every method blocks on
    the store or Stripe, so call it from a worker thread in async code. Close it
    (or use it as a context manager) to release the store; a closed instance
    raises ``OperatorError``. Errors are ``BuyTokensError`` subclasses: a
    ``UserError`` means the request cannot succeed as sent, a ``RetryableError``
    that the same call may succeed later, an ``OperatorError`` that a human must
    fix the configuration or data.
    """

    def __init__(
        self,
        store: str | os.PathLike[str] = "memory://",
        *,
        stripe: StripeSettings | None = None,
        gateway: PaymentGateway | None = None,
        catalogue: Catalogue | str | os.PathLike[str] | None = None,
        clock: Clock | None = None,
        code_secret: str | None = None,
    ) -> None:
        if stripe is not None and gateway is not None:
            raise ConfigurationError("pass either stripe settings or a gateway, not both")
        if code_secret is not None and not isinstance(code_secret, str):
            raise ConfigurationError("code_secret must be a string")
        secret = unset_if_blank(code_secret)
        clock = clock or SystemClock()
        stripe = stripe or StripeSettings()
        if gateway is None:
            gateway = open_gateway(
                stripe.secret_key,
                stripe.webhook_secret,
                api_base=stripe.api_base,
                api_version=stripe.api_version,
                clock=clock,
            )
        self._attach(
            open_catalogue(catalogue),
            gateway,
            clock,
            lambda: open_stores(store, clock),
            None if secret is None else CodeSecret.derived_from(secret),
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BuyTokens:
        """Open the deployment the environment describes, exactly as ``buytokens serve`` does.

        Reads ``MONGODB_URI``, ``BUYTOKENS_SQLITE_PATH``, ``BUYTOKENS_CATALOGUE``,
        the ``STRIPE_*`` variables and, for gift codes, ``BUYTOKENS_CODE_SECRET`` or
        else ``JWT_SECRET`` (``os.environ`` when ``environ`` is None); neither secret
        is required.
        """
        settings = Settings.from_env(environ)
        clock = SystemClock()
        self = cls.__new__(cls)
        self._attach(
            build_catalogue(settings),
            build_gateway(settings, clock),
            clock,
            lambda: build_stores(settings, clock),
            build_code_secret(settings),
        )
        return self

    def _attach(
        self,
        catalogue: Catalogue,
        gateway: PaymentGateway,
        clock: Clock,
        open_stores: Callable[[], Stores],
        code_secret: CodeSecret | None,
    ) -> None:
        # The stores are opened last: nothing is left open when the rest is misconfigured.
        stores = open_stores()
        self._close_store = stores.close
        self._clock = clock
        gifts = None if code_secret is None else GiftCodes(code_secret, stores.codes)
        self._live: _Deployment | None = _Deployment(
            build_use_cases(catalogue, stores, gateway, clock, UuidIdSource(), gifts),
            build_code_desk(stores, clock),
            build_promo_desk(stores, catalogue, clock),
            gifts,
        )

    @property
    def _deployment(self) -> _Deployment:
        if self._live is None:
            raise OperatorError("this BuyTokens has been closed", code="closed")
        return self._live

    @property
    def _use_cases(self) -> UseCaseDependencies:
        return self._deployment.use_cases

    # -- the catalogue --------------------------------------------------------

    @property
    def catalogue(self) -> Catalogue:
        """The packages on sale, in one currency, in display order."""
        return self._use_cases.catalogue

    @property
    def payment_methods(self) -> tuple[PaymentMethod, ...]:
        """The payment methods that can pay in the catalogue's currency."""
        return self._use_cases.buying.payment_methods

    # -- buying ---------------------------------------------------------------

    def create_payment_intent(
        self,
        user_id: str,
        package_id: str,
        payment_method: str = "card",
        *,
        idempotency_key: str | None = None,
        email: str | None = None,
        gift: bool = False,
        promo_code: str | None = None,
    ) -> PaymentIntent:
        """Create a Stripe payment intent for a catalogue package, priced on the server only.

        The intent's metadata names ``user_id`` and ``package_id``; its success
        credits the package's tokens to that user once. With ``idempotency_key``
        the same user and key always get the same intent back, and the key reused
        for another package, method, gift flag or promo code raises
        ``IdempotencyConflict``. Raises ``UnknownPackage``,
        ``UnsupportedPaymentMethod``, ``PaymentDeclined``, ``GatewayUnavailable``
        (retry) and ``ConfigurationError`` (no secret key).

        With ``promo_code`` (any case) the intent charges the discounted price, as
        the HTTP API's ``promoCode`` does, after holding one use of the code;
        ``InvalidPromoCode`` says why a code is refused (its ``reason``: unknown,
        expired, disabled, used_up, not_for_package, already_used). With ``gift``
        the paid purchase credits no one: its code (``gift_code``) credits whoever
        redeems it; ``UserError`` (``gifts_unavailable``) without a ``code_secret``.
        """
        if type(gift) is not bool:
            raise UserError(f"gift must be True or False, got {gift!r}", code="invalid_gift")
        try:
            created = buying.create_payment_intent(
                self._use_cases.buying,
                _user(user_id),
                package_id,
                payment_method,
                idempotency_key=idempotency_key,
                email=email,
                gift=gift,
                promo_code=promo_code,
            )
        except buying.IDEMPOTENCY_KEY_ERRORS as exc:
            raise exc.naming(_KEY_NAME) from exc
        snapshot = created.snapshot
        return PaymentIntent(
            snapshot.id,
            snapshot.client_secret,
            created.amount,
            snapshot.status,
            snapshot.next_action,
            created.discount,
        )

    def handle_webhook(self, payload: bytes | str, signature_header: str | None) -> EventOutcome:
        """Verify one webhook delivery and apply it; returns only once the outcome is durable.

        Pass the raw request body, unparsed, and the ``Stripe-Signature`` header.
        Answer Stripe 2xx after this returns, whatever the outcome (duplicates,
        ignored types and purchases flagged for review included): a 2xx stops
        Stripe's retries, and nothing is lost once this has returned. Raises
        ``InvalidWebhook`` (answer 400) for a missing, forged or stale signature or
        a body that is not an event, and ``RetryableError`` (answer 5xx so that
        Stripe retries) when the store cannot confirm the write. However often,
        in whatever order and however concurrently an event arrives, each payment
        intent credits its package at most once.
        """
        raw = payload.encode("utf-8") if isinstance(payload, str) else payload
        if not isinstance(raw, bytes | bytearray):
            raise UserError("the webhook payload must be the raw request body (bytes)")
        webhooks = self._use_cases.webhooks
        received = webhooks.gateway.parse_webhook(bytes(raw), signature_header)
        return self._apply(received)

    def apply_stripe_event(self, event: Mapping[str, Any]) -> EventOutcome:
        """Apply a Stripe event that is already verified, e.g. one taken from a queue.

        ``event`` is the event's JSON as a dict (``json.loads`` of a webhook body).
        The caller vouches that it is genuine: its signature was checked (by
        ``handle_webhook``'s caller or a gateway in front) or it was fetched from
        Stripe's API. An unverified event could credit tokens nobody paid for.
        Same guarantees as ``handle_webhook``: exactly-once crediting, and the
        outcome is durable when this returns, so acknowledge the queue message
        only then. Raises ``InvalidWebhook`` when ``event`` is not a Stripe event.
        """
        return self._apply(translate_event(event))

    def _apply(self, received: ReceivedEvent) -> EventOutcome:
        applied: Applied = apply_received_event(self._use_cases.events, received)
        payment = received.payment_event
        return EventOutcome(
            received.event_id,
            received.type,
            applied.disposition,
            None if payment is None else payment.payment_intent_id,
            None if applied.purchase is None else applied.purchase.status,
            applied.entries,
            applied.reason,
        )

    def check_payment_intent(self, user_id: str, payment_intent_id: str) -> PaymentStatus:
        """The return-page check: fetch the intent from Stripe and apply it as a webhook would.

        Crediting stays exactly-once, so this may run alongside the webhook. Only
        the purchaser may look: another user's intent raises ``NotFound``, as an
        unknown one does.
        """
        check = buying.check_payment_intent(
            self._use_cases.checking, _user(user_id), payment_intent_id
        )
        return PaymentStatus(check.status, check.token_credits)

    # -- balances -------------------------------------------------------------

    def balance(self, user_id: str) -> int:
        """The user's token credits; 0 for a user never seen."""
        return self._use_cases.store.balance(_user(user_id))

    def history(self, user_id: str, *, limit: int = 50) -> History:
        """The user's latest purchases and ledger entries, at most ``limit`` of each."""
        user = _user(user_id)
        if type(limit) is not int or not 0 < limit <= MAX_HISTORY:
            raise UserError(f"limit must be a whole number from 1 to {MAX_HISTORY}")
        store = self._use_cases.store
        return History(
            tuple(purchase_record(p) for p in store.purchases(user, limit)),
            tuple(store.ledger(user, limit)),
        )

    def grant(
        self, user_id: str, tokens: int, *, reason: str, key: str | None = None
    ) -> LedgerEntry:
        """Add tokens to a user's balance, or deduct them (negative), with a reason on the ledger.

        A deduction never takes a balance below zero: what it could not take is the
        entry's ``shortfall``. With ``key``, repeating the call grants once and
        returns the first entry. The change is durable when this returns.
        """
        if type(tokens) is not int:
            raise UserError(f"tokens must be a whole number, got {tokens!r}")
        if not isinstance(reason, str):
            raise UserError("a reason is required for the audit trail")
        return grant_tokens(self._use_cases.granting, _user(user_id), tokens, reason, key=key)

    def reconcile(self, since: datetime | timedelta = timedelta(days=3)) -> ReconcileReport:
        """Apply the Stripe events since then (a time, or how long ago) that webhooks missed.

        Every event goes through the webhook's own exactly-once path, so running
        this while webhooks arrive, or twice, is safe. An event that fails is in
        the report's ``failed`` and a later run tries it again; ``complete`` is
        False when something failed or awaits an operator. Stripe keeps events for
        30 days; an older window raises ``UserError``. A naive ``since`` is taken as UTC.
        """
        use_cases = self._use_cases
        start = self._clock.now() - since if isinstance(since, timedelta) else since
        if not isinstance(start, datetime):
            raise UserError("since must be a datetime or a timedelta")
        return reconcile(
            use_cases.reconciling, start if start.tzinfo else start.replace(tzinfo=UTC)
        )

    # -- promo codes (``buytokens promo``) ------------------------------------

    def create_promo(
        self,
        code: str,
        *,
        percent_off: int | None = None,
        amount_off: Money | None = None,
        packages: Iterable[str] | None = None,
        max_redemptions: int | None = None,
        per_user: int = 1,
        expires: datetime | None = None,
    ) -> PromoCode:
        """Define a promo code, as ``buytokens promo create`` does; buyers type it in any case.

        Give exactly one of ``percent_off`` (1-100) and ``amount_off`` (in the
        catalogue's currency). ``packages`` limits it to those package ids,
        ``max_redemptions`` to that many paid uses in all, ``per_user`` to that
        many per buyer; ``expires`` is a datetime (UTC when it names no zone).
        Raises ``InvalidPromoDefinition`` for a code that breaks a rule or exists.
        """
        desk = self._deployment.promos
        promo = promos.create_promo(
            desk,
            code,
            percent_off=percent_off,
            amount_off=amount_off,
            package_ids=api_codes.package_ids(packages),
            max_redemptions=max_redemptions,
            per_user=per_user,
            expires_at=api_codes.moment(expires, "expires"),
        )
        return api_codes.promo_code(promos.listing_of(desk, promo))

    def list_promos(self) -> tuple[PromoCode, ...]:
        """Every promo code, newest first, with its paid uses and live holds."""
        return tuple(map(api_codes.promo_code, promos.list_promos(self._deployment.promos)))

    def disable_promo(self, code: str) -> PromoCode:
        """Refuse the code from now on; purchases already made, and checkouts already
        holding it, keep their price. Idempotent; ``NotFound`` for an unknown code."""
        desk = self._deployment.promos
        return api_codes.promo_code(promos.listing_of(desk, promos.disable_promo(desk, code)))

    def preview_promo(self, code: str, package_id: str) -> PromoPreview:
        """The price of a package with a promo code (any case), before paying.

        Raises ``InvalidPromoCode`` (unknown, expired, disabled, not for this
        package) or ``UnknownPackage``. The limits are decided when a checkout
        holds a use, for whichever buyer, so a code may still be used up then.
        """
        return api_codes.promo_preview(
            promos.preview_promo(self._deployment.promos, code, package_id)
        )

    # -- gift and redemption codes (``buytokens codes``) ----------------------

    def create_codes(
        self, tokens: int, count: int, *, reason: str, expires: datetime | None = None
    ) -> tuple[str, ...]:
        """Issue ``count`` codes worth ``tokens`` each, as ``buytokens codes create`` does.

        The codes (``XXXX-XXXX-XXXX-XXXX-XXXX``) are returned this once: only their
        digests are stored. ``expires`` is a future datetime (UTC when it names no
        zone). Raises ``UserError`` for tokens outside 1 to 10**12, a count
        outside 1 to 10 000, an empty or over-long reason, or a past expiry.
        """
        issued = codes.create_codes(
            self._deployment.codes, tokens, count, reason, api_codes.moment(expires, "expires")
        )
        return tuple(code.display() for code in issued)

    def list_codes(self, *, unredeemed: bool = False, limit: int = 1000) -> tuple[CodeListing, ...]:
        """Redemption and gift codes, newest first, at most ``limit``, each with its state;
        with ``unredeemed`` only those that can be redeemed now. Never a code itself."""
        if type(unredeemed) is not bool:
            raise UserError(f"unredeemed must be True or False, got {unredeemed!r}")
        if type(limit) is not int or not 0 < limit <= MAX_CODES_LISTED:
            raise UserError(f"limit must be a whole number from 1 to {MAX_CODES_LISTED:,}")
        desk = self._deployment.codes
        records = codes.list_codes(desk, unredeemed_only=unredeemed, limit=limit)
        now = desk.clock.now()
        return tuple(api_codes.code_listing(record, now) for record in records)

    def redeem_code(self, user_id: str, code: str) -> RedeemedCode:
        """Credit a redemption or gift code's tokens to ``user_id``, once for the code, as
        ``POST /api/custom/gifts/redeem`` does; the code in any case, dashes optional.

        Raises ``GiftNotFound`` (unknown or expired; ``MalformedCode``, one of them,
        says what is wrong with the text), ``GiftAlreadyRedeemed`` (by anyone,
        this user included), ``GiftVoid`` (the gift's payment was refunded or
        disputed first). After ``StoreUnavailable`` the code is this user's:
        redeeming it again finishes the credit, once. Unlike the HTTP route this
        does not limit attempts: limit them per user where users type codes.
        """
        return api_codes.redeemed_code(
            codes.redeem_code(self._deployment.codes, _user(user_id), code)
        )

    def gift_code(self, user_id: str, payment_intent_id: str) -> GiftCode:
        """The code of a paid gift, for its buyer only, as the purchase list shows it.

        Another user's purchase, or an unknown one, raises ``NotFound``; a purchase
        that is no gift ``UserError`` (``not_a_gift``); a gift not paid (or
        awaiting review) ``UserError`` (``gift_not_paid``); and a deployment
        without a ``code_secret`` ``ConfigurationError``.
        """
        user = _user(user_id)
        deployment = self._deployment
        purchase = None
        if isinstance(payment_intent_id, str) and payment_intent_id:
            purchase = deployment.use_cases.store.get_purchase(payment_intent_id)
        if purchase is None or purchase.user_id != user:
            raise NotFound(f"no payment intent {payment_intent_id!r}")
        if not purchase.gift:
            raise UserError(f"{payment_intent_id} is not a gift purchase", code="not_a_gift")
        if deployment.gifts is None:
            raise ConfigurationError(
                "gift codes need a code secret: open BuyTokens with code_secret= "
                "(BUYTOKENS_CODE_SECRET of the server that sold the gift)",
                code="gifts_unavailable",
            )
        view = gift_code_of(deployment.gifts, purchase)
        if view is None:
            raise UserError(
                f"this gift has no code to show: its purchase is {purchase.status.value} "
                "(a gift's code is shown once its payment succeeded)",
                code="gift_not_paid",
            )
        return api_codes.gift_code(payment_intent_id, view)

    # -- lifetime -------------------------------------------------------------

    def close(self) -> None:
        """Release the store (finishing queued writes); later calls raise. Idempotent."""
        if self._live is None:
            return
        self._live = None
        self._close_store()

    def __enter__(self) -> BuyTokens:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        # Never the store URI: a MongoDB URI may carry a password.
        return f"<BuyTokens {'closed' if self._live is None else 'open'}>"


@attrs.frozen
class _Deployment:
    use_cases: UseCaseDependencies
    codes: CodeDesk
    promos: PromoDesk
    gifts: GiftCodes | None


def _user(user_id: str) -> str:
    # As the web app's sign-in does: the domain's check, then the id's one spelling.
    return canonical_user_id(check_user_id(user_id))
