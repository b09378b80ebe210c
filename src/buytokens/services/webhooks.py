"""Webhooks: receiving a provider's signed delivery, and applying a verified provider event.

Calling style (see ``buytokens.services``): ``receive_webhook(deps, payload,
signature)`` with a ``WebhookDependencies``; ``apply_received_event(deps,
received)`` with an ``EventDependencies``, for events verified elsewhere (a
reconciliation run, a queue).
"""

from __future__ import annotations

import attrs

from buytokens.domain.checkout import ReceivedEvent
from buytokens.domain.crediting import Disposition
from buytokens.ports.checkout import EventJournal
from buytokens.ports.payments import PaymentGateway
from buytokens.services.crediting import Applied, CreditingDependencies, apply_payment_event


@attrs.frozen
class EventDependencies:
    """What applying a verified provider event needs: the crediting path and the event journal."""

    crediting: CreditingDependencies
    journal: EventJournal


@attrs.frozen
class WebhookDependencies:
    """What receiving a webhook needs: the gateway that verifies it, and applying events."""

    gateway: PaymentGateway
    events: EventDependencies


def receive_webhook(
    deps: WebhookDependencies, payload: bytes, signature_header: str | None
) -> Applied:
    """Verify, apply and journal one webhook delivery.

    Raises InvalidWebhook for anything not genuinely from the provider; a genuine
    event we do not act on comes back IGNORED. Returns only once the outcome is
    durably stored.
    """
    return apply_received_event(deps.events, deps.gateway.parse_webhook(payload, signature_header))


def apply_received_event(deps: EventDependencies, received: ReceivedEvent) -> Applied:
    """Apply a verified provider event through the idempotent path and journal its delivery.

    A delivery that changes a purchase is journalled in the same commit; one that
    changes nothing (a duplicate, an ignored type) is journalled on its own.
    """
    if received.payment_event is None:
        applied = Applied(Disposition.IGNORED, None, reason=f"{received.type} is not acted on")
    else:
        applied = apply_payment_event(deps.crediting, received.payment_event, received=received)
    if not applied.journalled:
        deps.journal.record(received, applied.disposition.value, deps.crediting.clock.now())
    return applied
