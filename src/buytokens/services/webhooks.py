"""Webhooks: receiving a provider's signed delivery, and applying a verified provider event.

Calling style (see ``buytokens.services``): ``receive_webhook(deps, payload,
signature)`` with a ``WebhookDependencies``; ``apply_received_event(deps,
received)`` with a ``CreditingDependencies``, for events verified elsewhere (a
reconciliation run, a queue).
"""

from __future__ import annotations

import attrs

from buytokens.domain.checkout import Delivery, ReceivedEvent
from buytokens.domain.crediting import Disposition
from buytokens.ports.balances import AwaitableTransactions, BalanceRepository
from buytokens.ports.payments import PaymentGateway
from buytokens.services.crediting import (
    Applied,
    CreditingDependencies,
    apply_payment_event,
    apply_payment_event_awaiting,
)


@attrs.frozen
class WebhookDependencies:
    """What receiving a webhook needs: the gateway that verifies it, and applying events."""

    gateway: PaymentGateway
    events: CreditingDependencies


def receive_webhook(
    deps: WebhookDependencies, payload: bytes, signature_header: str | None
) -> Applied:
    """Verify, apply and journal one webhook delivery.

    Raises InvalidWebhook for anything not genuinely from the provider; a genuine
    event we do not act on comes back IGNORED. Returns only once the outcome is
    durably stored.
    """
    return apply_received_event(deps.events, deps.gateway.parse_webhook(payload, signature_header))


def apply_received_event(deps: CreditingDependencies, received: ReceivedEvent) -> Applied:
    """Apply a verified provider event through the idempotent path and journal its delivery.

    The delivery is journalled by the store write of its outcome (see
    ``apply_payment_event``); an event we do not act on is journalled alone.
    """
    if received.payment_event is None:
        ignored = Delivery.of(received, Disposition.IGNORED.value, deps.clock.now())
        deps.store.record_delivery(ignored)
        return Applied(Disposition.IGNORED, None, reason=f"{received.type} is not acted on")
    return apply_payment_event(deps, received.payment_event, received=received)


async def receive_webhook_awaiting(
    deps: WebhookDependencies,
    store: AwaitableTransactions,
    payload: bytes,
    signature_header: str | None,
) -> Applied:
    """``receive_webhook`` for an event loop, on a store that transacts awaitably.

    ``store`` is ``deps.events.store`` seen as ``AwaitableTransactions``. The
    signature check and the parse run on the caller's loop; the read, the
    decision and the write run in one store transaction, awaited; the answer
    follows its durable commit, as ``receive_webhook``'s does.
    """
    received = deps.gateway.parse_webhook(payload, signature_header)
    events = deps.events
    if received.payment_event is None:
        ignored = Delivery.of(received, Disposition.IGNORED.value, events.clock.now())

        def journal(tx: BalanceRepository) -> None:
            tx.record_delivery(ignored)

        await store.atomically(journal)
        return Applied(Disposition.IGNORED, None, reason=f"{received.type} is not acted on")
    return await apply_payment_event_awaiting(
        events, store, received.payment_event, received=received
    )
