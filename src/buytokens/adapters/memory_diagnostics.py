"""In-memory stand-ins for what ``buytokens doctor`` inspects, for tests and embedding."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from buytokens.domain.errors import BuyTokensError
from buytokens.ports.diagnostics import MongoState, PaymentServer, SqliteState, WebhookEndpoint


class FixedStoreInspector:
    """``StoreInspector`` that reports the state it was given."""

    def __init__(self, state: SqliteState | MongoState) -> None:
        self.state = state

    def inspect(self) -> SqliteState | MongoState:
        """The state given at construction."""
        return self.state


class MemoryPaymentAccount:
    """``PaymentAccount`` holding its answers: a server kind, endpoints, and optional errors
    that ``verify_key`` and ``webhook_endpoints`` raise instead of answering."""

    def __init__(
        self,
        server: PaymentServer = PaymentServer.STRIPE,
        endpoints: Iterable[WebhookEndpoint] = (),
        *,
        key_error: BuyTokensError | None = None,
        endpoints_error: BuyTokensError | None = None,
    ) -> None:
        self._server = server
        self.endpoints = list(endpoints)
        self._key_error = key_error
        self._endpoints_error = endpoints_error

    def server(self) -> PaymentServer:
        """The server kind given at construction."""
        return self._server

    def verify_key(self) -> None:
        """Raise the configured key error, if any."""
        if self._key_error is not None:
            raise self._key_error

    def webhook_endpoints(self) -> Sequence[WebhookEndpoint]:
        """The registered endpoints, or the configured error."""
        if self._endpoints_error is not None:
            raise self._endpoints_error
        return tuple(self.endpoints)
