"""The payment gateway backed by Stripe, through the official SDK's ``StripeClient``."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import stripe
from stripe.params import EventListParams, PaymentIntentCreateParams

from buytokens.adapters.stripe_events import (
    HANDLED_EVENT_TYPES,
    SIGNATURE_TOLERANCE_SECONDS,
    parse_signed_event,
    snapshot_intent,
    translate_event,
)
from buytokens.adapters.stripe_methods import DEFAULT_PAYMENT_METHODS, offered_payment_methods
from buytokens.adapters.stripe_server import (
    PROBE_TIMEOUT,
    display_api_base,
    is_stripe_api_base,
    probe_localstripe,
)
from buytokens.domain.catalogue import PaymentMethod, require_payment_method
from buytokens.domain.checkout import CancelOutcome, IntentRequest, IntentSnapshot, ReceivedEvent
from buytokens.domain.errors import (
    ConfigurationError,
    GatewayRejected,
    GatewayTimeout,
    GatewayUnavailable,
    InvalidWebhook,
    NotFound,
    PaymentDeclined,
)
from buytokens.ports.clock import Clock
from buytokens.ports.payments import EventHistory

_log = logging.getLogger(__name__)

IDEMPOTENCY_KEY_PREFIX = "buytokens-pi-"
"""Prefix of the Idempotency-Key sent when creating a purchase's payment intent."""

STRIPE_EVENT_HISTORY = EventHistory("Stripe", timedelta(days=30))
"""Stripe lists the events of the last 30 days only."""

_INTENT_ID = re.compile(r"^pi_[A-Za-z0-9]+$")

_UNCANCELABLE = frozenset({"succeeded", "processing"})
"""Statuses in which an intent cannot be canceled: its payment stands."""

# From this API version on, Stripe takes ``allowed_payment_method_types``; from
# 2026-09-30 it refuses the older ``payment_method_types`` on create.
_ALLOWED_METHOD_TYPES_SINCE = "2026-07-29"


DEFAULT_BUDGET = 8.0
"""Seconds one call to Stripe may take, retries included: well under a browser's patience."""

DEFAULT_NETWORK_RETRIES = 1
"""Retries of a call that failed on the network, within its budget."""


def attempt_timeout(budget: float, max_network_retries: int) -> float:
    """The socket timeout of each attempt, so that all attempts and the SDK's back-off
    sleeps between them fit in ``budget`` seconds."""
    if max_network_retries < 0:
        raise ConfigurationError("the number of Stripe retries cannot be negative")
    # The SDK sleeps at most this long before retry n (jitter only shortens it).
    backoff: float = sum(
        min(stripe.HTTPClient.INITIAL_DELAY * 2 ** (n - 1), stripe.HTTPClient.MAX_DELAY)
        for n in range(1, max_network_retries + 1)
    )
    share = (budget - backoff) / (max_network_retries + 1)
    if share < _MIN_ATTEMPT:
        raise ConfigurationError(
            f"a Stripe budget of {budget:g} s leaves under {_MIN_ATTEMPT:g} s per attempt "
            f"for {max_network_retries} retries"
        )
    return share


_MIN_ATTEMPT = 0.2


def idempotency_key(purchase_id: str) -> str:
    """The Idempotency-Key under which a purchase's payment intent is created."""
    return IDEMPOTENCY_KEY_PREFIX + purchase_id


@contextmanager
def translated_stripe_errors(action: str) -> Iterator[None]:
    """Turn any ``stripe`` error raised inside the block into this library's error tree.

    ``action`` completes the sentence "Stripe could not ..." in the messages. Stripe's
    own text is kept for declines (it is written for the customer) and refused
    requests (it names the offending parameter), never for authentication
    failures, whose text quotes part of the key.
    """
    try:
        yield
    except stripe.CardError as exc:
        raise PaymentDeclined(exc.user_message or "The payment was declined.") from exc
    except stripe.APIConnectionError as exc:
        if _timed_out(exc):
            raise GatewayTimeout(
                f"Stripe could not {action}: it did not answer within the time allowed"
            ) from exc
        raise GatewayUnavailable(f"Stripe could not {action}: it is unreachable or busy") from exc
    except stripe.RateLimitError as exc:
        raise GatewayUnavailable(f"Stripe could not {action}: it is unreachable or busy") from exc
    except stripe.SignatureVerificationError as exc:
        raise InvalidWebhook("the Stripe-Signature header is missing, forged or stale") from exc
    except (stripe.AuthenticationError, stripe.PermissionError) as exc:
        # Stripe echoes part of the key in these messages; keep them out.
        raise GatewayRejected(
            f"Stripe refused to {action}: the secret key is invalid or lacks permission"
        ) from exc
    except (stripe.InvalidRequestError, stripe.IdempotencyError) as exc:
        raise GatewayRejected(f"Stripe refused to {action}: {_describe(exc)}") from exc
    except stripe.StripeError as exc:
        status = exc.http_status
        if status is None or status >= 500:
            raise GatewayUnavailable(
                f"Stripe could not {action}: server error {status or 'without status'}"
            ) from exc
        raise GatewayRejected(f"Stripe refused to {action}: {_describe(exc)}") from exc


def _timed_out(exc: stripe.APIConnectionError) -> bool:
    # The SDK raises its connection error from the HTTP library's own exception;
    # requests, httpx and urllib all name their timeouts so.
    cause = exc.__cause__
    return isinstance(cause, TimeoutError) or "Timeout" in type(cause).__name__


def _describe(exc: stripe.StripeError) -> str:
    parts = [exc.user_message or type(exc).__name__]
    if exc.code:
        parts.append(f"code {exc.code}")
    if exc.http_status:
        parts.append(f"HTTP {exc.http_status}")
    return ", ".join(parts)


class StripePaymentGateway:
    """``PaymentGateway`` over Stripe's HTTP API.

    ``webhook_secret`` None makes every webhook fail verification (fail closed).
    ``api_base`` points the client elsewhere, e.g. at a localstripe on loopback.
    ``api_version`` pins the Stripe API version (default: the SDK's own); versions
    before 2026-07-29 restrict the intent's method with ``payment_method_types``,
    later ones with ``allowed_payment_method_types``.
    ``budget`` bounds one call in seconds, ``max_network_retries`` included: each
    attempt may take its share of what the SDK's back-off sleeps leave
    (``attempt_timeout``), so a Stripe that accepts connections and never answers
    costs at most ``budget`` and ``max_network_retries + 1`` connections per call.
    ``http_client`` replaces the SDK's requests-based client (then the attempt
    timeout is that client's business).
    ``localstripe`` says whether ``api_base`` is localstripe, which refuses
    ``allowed_payment_method_types`` and ``receipt_email`` whatever the version:
    None (the default) asks the server once, before the first intent is created,
    when ``api_base`` is not Stripe's own host.
    """

    def __init__(
        self,
        secret_key: str,
        webhook_secret: str | None,
        *,
        api_base: str | None = None,
        api_version: str | None = None,
        budget: float = DEFAULT_BUDGET,
        max_network_retries: int = DEFAULT_NETWORK_RETRIES,
        payment_methods: Iterable[PaymentMethod] = DEFAULT_PAYMENT_METHODS,
        http_client: stripe.HTTPClient | None = None,
        clock: Clock | None = None,
        signature_tolerance: int = SIGNATURE_TOLERANCE_SECONDS,
        localstripe: bool | None = None,
    ) -> None:
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base.rstrip("/")} if api_base is not None else None,
            stripe_version=api_version,
            max_network_retries=max_network_retries,
            http_client=http_client
            or stripe.RequestsClient(timeout=attempt_timeout(budget, max_network_retries)),
        )
        self._webhook_secret = webhook_secret
        self._payment_methods = tuple(payment_methods)
        self._clock = clock
        self._tolerance = signature_tolerance
        version = api_version or stripe.api_version
        self._methods_param = (
            "allowed_payment_method_types"
            if version[:10] >= _ALLOWED_METHOD_TYPES_SINCE
            else "payment_method_types"
        )
        self._api_base = api_base
        self._localstripe = False if is_stripe_api_base(api_base) else localstripe
        # The one-time probe of a base that is not Stripe's spends part of the first
        # call's budget, not a budget of its own.
        self._probe_timeout = min(PROBE_TIMEOUT, budget / 4)

    def __repr__(self) -> str:
        # Spelled out so that no key can ever reach a log through a repr.
        return f"{type(self).__name__}(methods={[m.value for m in self._payment_methods]})"

    def create_payment_intent(self, request: IntentRequest) -> IntentSnapshot:
        """Create the intent for the package's price; the purchase id keys Stripe's idempotency.

        Raises ``UnsupportedPaymentMethod`` before calling Stripe when the method is
        not enabled or cannot pay in the package's currency.
        """
        price = request.amount
        offered = offered_payment_methods(price.currency, self._payment_methods)
        method = require_payment_method(request.method.value, price.currency, offered)
        localstripe = self._is_localstripe()
        params: dict[str, Any] = {
            "amount": price.amount,
            "currency": price.currency,
            "payment_method_types" if localstripe else self._methods_param: [method.value],
            "metadata": {
                "userId": request.user_id,
                "packageId": request.package.id,
                "tokens": str(request.package.tokens),
                "purchaseId": request.purchase_id,
            },
        }
        if request.gift:
            params["metadata"]["gift"] = "true"
        if request.promo_code is not None:
            params["metadata"]["promoCode"] = request.promo_code
            params["metadata"]["discountAmount"] = str(request.discount)
        if request.receipt_email and not localstripe:
            params["receipt_email"] = request.receipt_email
        if method is PaymentMethod.WECHAT_PAY:
            # Without a client, Stripe cannot tell the page which QR flow to show.
            params["payment_method_options"] = {"wechat_pay": {"client": "web"}}
        with translated_stripe_errors("create a payment intent"):
            intent = self._client.v1.payment_intents.create(
                cast(PaymentIntentCreateParams, params),
                {"idempotency_key": idempotency_key(request.purchase_id)},
            )
        return self._snapshot(intent.to_dict())

    def retrieve_payment_intent(self, payment_intent_id: str) -> IntentSnapshot:
        """The intent as Stripe has it now; ``NotFound`` for an id Stripe does not know."""
        if not _INTENT_ID.match(payment_intent_id):
            # Never let an arbitrary string become part of a request path.
            raise NotFound(f"no payment intent {payment_intent_id!r}")
        with translated_stripe_errors("retrieve a payment intent"):
            try:
                intent = self._client.v1.payment_intents.retrieve(payment_intent_id)
            except stripe.InvalidRequestError as exc:
                if exc.code == "resource_missing" or exc.http_status == 404:
                    raise NotFound(f"no payment intent {payment_intent_id!r}") from exc
                raise
        return self._snapshot(intent.to_dict())

    def cancel_payment_intent(self, payment_intent_id: str) -> CancelOutcome:
        """Cancel the intent; ``TOO_LATE`` when it succeeded or is processing.

        Stripe refuses to cancel an intent that is canceled, succeeded or processing
        (``payment_intent_unexpected_state``) and names the intent in its refusal;
        a server that does not (localstripe) is asked for the intent's status,
        one more call.
        """
        if not _INTENT_ID.match(payment_intent_id):
            raise NotFound(f"no payment intent {payment_intent_id!r}")
        with translated_stripe_errors("cancel a payment intent"):
            try:
                self._client.v1.payment_intents.cancel(payment_intent_id)
            except stripe.InvalidRequestError as exc:
                if exc.code == "resource_missing" or exc.http_status == 404:
                    raise NotFound(f"no payment intent {payment_intent_id!r}") from exc
                named = exc.error.payment_intent if exc.error is not None else None
                status = (
                    named.status
                    if named is not None
                    else self._client.v1.payment_intents.retrieve(payment_intent_id).status
                )
                if status == "canceled":
                    return CancelOutcome.CANCELED
                if status in _UNCANCELABLE:
                    return CancelOutcome.TOO_LATE
                raise
        return CancelOutcome.CANCELED

    def parse_webhook(self, payload: bytes, signature_header: str | None) -> ReceivedEvent:
        """Verify the signature over the raw bytes (SDK check, 300 s tolerance) and translate."""
        return parse_signed_event(
            payload, signature_header, self._webhook_secret, tolerance=self._tolerance
        )

    def events_since(self, since: datetime) -> Iterator[ReceivedEvent]:
        """Stripe's events of the types we act on, created at or after ``since``, oldest first.

        Stripe keeps events for 30 days. The whole window is read before the first
        event is returned, so a network failure surfaces as ``GatewayUnavailable``
        here rather than half-way through the caller's loop.
        """
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        # Filtered here rather than with ``types[]``: localstripe rejects that parameter.
        params: EventListParams = {"created": {"gte": math.floor(since.timestamp())}, "limit": 100}
        with translated_stripe_errors("list events"):
            page = self._client.v1.events.list(params)
            raw = [
                event.to_dict()
                for event in page.auto_paging_iter()
                if event.type in HANDLED_EVENT_TYPES
            ]
        # Stripe lists newest first; a stable sort after reversing keeps same-second
        # events in the order they happened.
        raw.reverse()
        raw.sort(key=_created)
        received = []
        for event in raw:
            try:
                received.append(translate_event(event))
            except InvalidWebhook as exc:
                raise GatewayRejected("Stripe listed something that is not an event") from exc
        return iter(received)

    def _is_localstripe(self) -> bool:
        if self._localstripe is None and self._api_base is not None:
            # Unanswered probes are asked again: the create that follows fails on its own.
            found = probe_localstripe(self._api_base, timeout=self._probe_timeout)
            if found:
                _log.warning(
                    "STRIPE_API_BASE %s is localstripe: payment intents are created in its "
                    "2017-08-15 API (payment_method_types, no receipt_email)",
                    display_api_base(self._api_base),
                )
            self._localstripe = found
        return bool(self._localstripe)

    def _snapshot(self, intent: Mapping[str, Any]) -> IntentSnapshot:
        try:
            return snapshot_intent(intent, self._now())
        except ValueError as exc:
            raise GatewayRejected(
                "Stripe answered with something that is not a payment intent"
            ) from exc

    def _now(self) -> datetime:
        return self._clock.now() if self._clock is not None else datetime.now(UTC)


def _created(event: Mapping[str, Any]) -> int:
    created = event.get("created")
    return created if type(created) is int else 0
