"""The library's front door: open a deployment, call its use cases, close it.

``BuyTokens`` is what another Python service holds instead of the web app: the
same stores, the same Stripe wiring and the same idempotent crediting path, as
methods with typed results. The names exported by ``buytokens`` are the public
API (``docs/LIBRARY.md`` says what may change between versions); everything
else in the package is internal.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import attrs

from buytokens.adapters.stripe_events import translate_event
from buytokens.adapters.system import SystemClock, UuidIdSource
from buytokens.domain.catalogue import Catalogue, PaymentMethod
from buytokens.domain.checkout import ReceivedEvent
from buytokens.domain.crediting import Disposition
from buytokens.domain.errors import ConfigurationError, OperatorError, UserError
from buytokens.domain.ledger import LedgerEntry
from buytokens.domain.money import Money
from buytokens.domain.purchases import Purchase, PurchaseStatus
from buytokens.entrypoints.composition import (
    Stores,
    UseCaseDependencies,
    build_catalogue,
    build_gateway,
    build_stores,
    build_use_cases,
    open_catalogue,
    open_gateway,
    open_stores,
)
from buytokens.entrypoints.settings import Settings
from buytokens.ports.clock import Clock
from buytokens.ports.payments import PaymentGateway
from buytokens.services import buying
from buytokens.services.admin import grant_tokens
from buytokens.services.crediting import Applied
from buytokens.services.reconciliation import ReconcileReport, reconcile
from buytokens.services.webhooks import apply_received_event

_KEY_NAME = "Idempotency-Key"
"""How errors name ``idempotency_key``: as the HTTP API's clients know it, in the same words."""

MAX_HISTORY = 1000
"""The most rows of each kind ``BuyTokens.history`` returns."""


def _unset_if_blank(value: str | None) -> str | None:
    return None if value is None or not value.strip() else value


@attrs.frozen(repr=False)
class StripeSettings:
    """How to reach Stripe; the secrets never appear in a repr or a log.

    Without ``secret_key`` payments are refused with ``ConfigurationError`` while
    webhooks still verify; without ``webhook_secret`` every webhook is refused
    with ``InvalidWebhook`` (fail closed). ``api_base`` points at another Stripe
    (e.g. a localstripe); ``api_version`` pins Stripe's API version. Blank values
    count as unset, as they do in the environment.
    """

    secret_key: str | None = attrs.field(default=None, converter=_unset_if_blank)
    webhook_secret: str | None = attrs.field(default=None, converter=_unset_if_blank)
    api_base: str | None = attrs.field(default=None, converter=_unset_if_blank)
    api_version: str | None = attrs.field(default=None, converter=_unset_if_blank)

    def __repr__(self) -> str:
        shown = {
            "secret_key": "set" if self.secret_key else "unset",
            "webhook_secret": "set" if self.webhook_secret else "unset",
        }
        return f"StripeSettings({shown}, api_base={self.api_base!r})"


@attrs.frozen
class PaymentIntent:
    """A payment intent for the buyer's browser to confirm with Stripe.js.

    ``status`` is Stripe's own (``requires_payment_method``, ``succeeded``...);
    ``next_action`` is what the browser must do next for redirect and QR methods.
    """

    id: str
    client_secret: str
    amount: Money
    status: str
    next_action: dict[str, object] | None = None


@attrs.frozen
class EventOutcome:
    """What one Stripe event came to, once it is durably stored.

    ``status`` is the purchase's status after the event (None when the event
    concerns no purchase); ``entries`` are the balance changes this event made
    (empty for a duplicate, an ignored event or one flagged for review).
    """

    event_id: str
    event_type: str
    disposition: Disposition
    payment_intent_id: str | None
    status: PurchaseStatus | None
    entries: tuple[LedgerEntry, ...] = ()
    reason: str = ""


@attrs.frozen
class PaymentStatus:
    """Where a purchase stands after checking its intent, and the buyer's balance."""

    status: PurchaseStatus
    token_credits: int


@attrs.frozen
class PurchaseRecord:
    """One purchase as its buyer and an operator see it.

    ``user_id``, ``package_id`` and ``price`` are None only for an intent first
    heard of through a refund or dispute, before its payment event arrived.
    ``review_reason`` says why a purchase awaits an operator (status ``needs_review``).
    """

    payment_intent_id: str
    user_id: str | None
    package_id: str | None
    tokens: int
    price: Money | None
    status: PurchaseStatus
    created_at: datetime
    updated_at: datetime
    review_reason: str | None = None


@attrs.frozen
class History:
    """A user's purchases and ledger entries, each newest first."""

    purchases: tuple[PurchaseRecord, ...]
    ledger: tuple[LedgerEntry, ...]


class BuyTokens:
    """One deployment of buytokens: its catalogue, its store and its Stripe account.

    ``store`` is ``memory://`` (nothing survives the process: tests, demos), a
    SQLite file path (or ``sqlite://PATH``; created when missing), or a MongoDB URI
    (``mongodb://``, ``mongodb+srv://``; ``mongomock://`` for tests) holding
    LibreChat's ``balances`` and ``transactions``. Reach Stripe with ``stripe``, or
    pass any ``gateway`` (``buytokens.testing.InMemoryPaymentGateway`` in tests),
    not both. ``catalogue`` is a ``Catalogue``, a TOML or JSON file, or None for
    the default packages. ``clock`` defaults to the system clock.

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
    ) -> None:
        if stripe is not None and gateway is not None:
            raise ConfigurationError("pass either stripe settings or a gateway, not both")
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
        self._attach(open_catalogue(catalogue), gateway, clock, lambda: open_stores(store, clock))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BuyTokens:
        """Open the deployment the environment describes, exactly as ``buytokens serve`` does.

        Reads ``MONGODB_URI``, ``BUYTOKENS_SQLITE_PATH``, ``BUYTOKENS_CATALOGUE`` and
        the ``STRIPE_*`` variables (``os.environ`` when ``environ`` is None);
        ``JWT_SECRET`` is not needed here.
        """
        settings = Settings.from_env(environ)
        clock = SystemClock()
        self = cls.__new__(cls)
        self._attach(
            build_catalogue(settings),
            build_gateway(settings, clock),
            clock,
            lambda: build_stores(settings, clock),
        )
        return self

    def _attach(
        self,
        catalogue: Catalogue,
        gateway: PaymentGateway,
        clock: Clock,
        open_stores: Callable[[], Stores],
    ) -> None:
        # The stores are opened last: nothing is left open when the rest is misconfigured.
        stores = open_stores()
        self._close_store = stores.close
        self._clock = clock
        self._live: UseCaseDependencies | None = build_use_cases(
            catalogue, stores, gateway, clock, UuidIdSource()
        )

    @property
    def _use_cases(self) -> UseCaseDependencies:
        if self._live is None:
            raise OperatorError("this BuyTokens has been closed", code="closed")
        return self._live

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
    ) -> PaymentIntent:
        """Create a Stripe payment intent for a catalogue package, priced from the catalogue only.

        The intent's metadata names ``user_id`` and ``package_id``; its success
        credits the package's tokens to that user once. With ``idempotency_key``
        the same user and key always get the same intent back, and the key reused
        for another package or method raises ``IdempotencyConflict``. Raises
        ``UnknownPackage``, ``UnsupportedPaymentMethod``, ``PaymentDeclined``,
        ``GatewayUnavailable`` (retry) and ``ConfigurationError`` (no secret key).
        """
        try:
            created = buying.create_payment_intent(
                self._use_cases.buying,
                _user(user_id),
                package_id,
                payment_method,
                idempotency_key=idempotency_key,
                email=email,
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
            tuple(_record(p) for p in store.purchases(user, limit)),
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


def _user(user_id: str) -> str:
    if not isinstance(user_id, str) or not user_id.strip() or not user_id.isprintable():
        raise UserError(f"user id must be a non-empty printable string, got {user_id!r}")
    return user_id


def _record(purchase: Purchase) -> PurchaseRecord:
    return PurchaseRecord(
        purchase.payment_intent_id,
        purchase.user_id,
        purchase.package_id,
        purchase.tokens,
        purchase.price,
        purchase.status,
        purchase.created_at,
        purchase.updated_at,
        purchase.review_reason,
    )
