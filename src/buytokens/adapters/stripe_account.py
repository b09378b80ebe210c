"""The Stripe account as ``buytokens doctor`` sees it: which server, whether the key works,
which webhook endpoints are registered. Reads only."""

from __future__ import annotations

from collections.abc import Sequence

import stripe

from buytokens.adapters.stripe_gateway import translated_stripe_errors
from buytokens.adapters.stripe_server import is_stripe_api_base, probe_localstripe
from buytokens.ports.diagnostics import PaymentServer, WebhookEndpoint


class StripeAccount:
    """``PaymentAccount`` over Stripe's HTTP API (or whatever ``api_base`` points at).

    Requests are not retried and each waits ``timeout`` seconds at most: a check
    should say "unreachable" quickly rather than hang.
    """

    def __init__(
        self,
        secret_key: str,
        *,
        api_base: str | None = None,
        api_version: str | None = None,
        timeout: float = 10.0,
        probe_timeout: float = 3.0,
        http_client: stripe.HTTPClient | None = None,
    ) -> None:
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base.rstrip("/")} if api_base is not None else None,
            stripe_version=api_version,
            max_network_retries=0,
            http_client=http_client or stripe.RequestsClient(timeout=timeout),
        )
        self._api_base = api_base
        self._probe_timeout = probe_timeout

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"  # never the key

    def server(self) -> PaymentServer:
        """Stripe for Stripe's hosts (no request); otherwise ask the server what it is."""
        if self._api_base is None or is_stripe_api_base(self._api_base):
            return PaymentServer.STRIPE
        found = probe_localstripe(self._api_base, self._probe_timeout)
        if found is None:
            return PaymentServer.UNREACHABLE
        return PaymentServer.LOCALSTRIPE if found else PaymentServer.OTHER

    def verify_key(self) -> None:
        """List one payment intent: cheap, authenticated, and a permission checkout needs."""
        with translated_stripe_errors("accept the secret key"):
            self._client.v1.payment_intents.list({"limit": 1})

    def webhook_endpoints(self) -> Sequence[WebhookEndpoint]:
        """Every endpoint of the account, in Stripe's order."""
        with translated_stripe_errors("list the webhook endpoints"):
            page = self._client.v1.webhook_endpoints.list({"limit": 100})
            return tuple(
                WebhookEndpoint(
                    id=endpoint.id,
                    url=endpoint.url,
                    enabled=endpoint.status == "enabled",
                    events=frozenset(endpoint.enabled_events or ()),
                )
                for endpoint in page.auto_paging_iter()
            )
