"""Catching up with the provider: applying the events a webhook never delivered.

Webhooks can be lost for good (an endpoint down for longer than the provider
retries, an endpoint that was never registered, a proxy that answered for us).
Reconciling lists the provider's own record of events for a window and applies
each one through the same idempotent path as the webhook, so an event that was
already applied decides nothing and running it twice, or while webhooks arrive,
is safe.

Calling style (see ``buytokens.services``): ``reconcile(deps, since)`` with a
``ReconcileDependencies``.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta

import attrs

from buytokens.domain.checkout import ReceivedEvent
from buytokens.domain.crediting import Disposition
from buytokens.domain.errors import BuyTokensError, UserError
from buytokens.ports.payments import EventHistory, PaymentGateway
from buytokens.services.crediting import CreditingDependencies
from buytokens.services.webhooks import apply_received_event

# The caller computes ``since`` from the clock a moment before we read it again;
# without some allowance a window of exactly the provider's history would be refused.
_CLOCK_ALLOWANCE = timedelta(minutes=1)


class ReconcileWindowTooLong(UserError):
    """The window starts before the oldest event the provider still keeps."""

    code = "reconcile_window_too_long"


class ReconcileOutcome(enum.StrEnum):
    """What became of one listed event."""

    APPLIED = "applied"  # it changed a purchase: the webhook had not done it
    DUPLICATE = "duplicate"  # already applied (by a webhook, the return page or a prior run)
    IGNORED = "ignored"  # nothing to act on
    NEEDS_REVIEW = "needs_review"  # genuine but inconsistent: stored, flagged, nothing credited
    FAILED = "failed"  # could not be applied now; a later run will try again


_OUTCOME_OF = {
    Disposition.APPLIED: ReconcileOutcome.APPLIED,
    Disposition.DUPLICATE: ReconcileOutcome.DUPLICATE,
    Disposition.IGNORED: ReconcileOutcome.IGNORED,
    Disposition.NEEDS_REVIEW: ReconcileOutcome.NEEDS_REVIEW,
}


@attrs.frozen
class ReconcileDependencies:
    """What reconciling needs: the gateway that lists events, how far back it lists them
    (the provider's fact, given by the composition root), and applying them."""

    gateway: PaymentGateway
    events: CreditingDependencies
    history: EventHistory


@attrs.frozen
class ReconciledEvent:
    """One listed event and what reconciling did with it."""

    event_id: str
    type: str
    created_at: datetime
    payment_intent_id: str | None
    outcome: ReconcileOutcome
    reason: str = ""


@attrs.frozen
class ReconcileReport:
    """Every event listed for the window, oldest first, with its outcome."""

    since: datetime
    events: tuple[ReconciledEvent, ...]

    @property
    def found(self) -> int:
        """How many events the provider listed."""
        return len(self.events)

    @property
    def applied(self) -> int:
        """Events that changed something: the ones webhooks had missed."""
        return self.count(ReconcileOutcome.APPLIED)

    @property
    def duplicates(self) -> int:
        """Events that had already been applied."""
        return self.count(ReconcileOutcome.DUPLICATE)

    @property
    def ignored(self) -> int:
        """Events with nothing to act on."""
        return self.count(ReconcileOutcome.IGNORED)

    @property
    def needs_review(self) -> tuple[ReconciledEvent, ...]:
        """Events this run flagged for an operator, with the reason."""
        return self.having(ReconcileOutcome.NEEDS_REVIEW)

    @property
    def failed(self) -> tuple[ReconciledEvent, ...]:
        """Events that could not be applied, with the reason."""
        return self.having(ReconcileOutcome.FAILED)

    @property
    def complete(self) -> bool:
        """True when nothing failed and nothing new awaits an operator."""
        return not self.failed and not self.needs_review

    def count(self, outcome: ReconcileOutcome) -> int:
        """How many events came to ``outcome``."""
        return len(self.having(outcome))

    def having(self, outcome: ReconcileOutcome) -> tuple[ReconciledEvent, ...]:
        """The events that came to ``outcome``, oldest first."""
        return tuple(event for event in self.events if event.outcome is outcome)


def reconcile(deps: ReconcileDependencies, since: datetime) -> ReconcileReport:
    """Apply every provider event created at or after ``since`` that has not been applied yet.

    Each event goes through ``apply_payment_event``, the webhook's own idempotent
    path, and is journalled like a delivery. An event that fails is reported and
    the rest still run; a rerun picks the failed ones up again.

    Raises ``ReconcileWindowTooLong`` for a window starting before the provider's
    event history (``deps.history``), ``UserError`` for one starting in the future, and the
    gateway's errors (``GatewayUnavailable``, ``GatewayRejected``...) when the
    events cannot be listed at all; then nothing has been applied.
    """
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    now = deps.events.clock.now()
    history = deps.history
    if since < now - history.window - _CLOCK_ALLOWANCE:
        raise ReconcileWindowTooLong(
            f"cannot reconcile since {since:%Y-%m-%d %H:%M} UTC: {history.provider} keeps "
            f"events for {history.window.days} days only, so the window must start after "
            f"{now - history.window:%Y-%m-%d %H:%M} UTC"
        )
    if since > now:
        raise UserError(f"cannot reconcile since {since:%Y-%m-%d %H:%M} UTC: it is in the future")
    listed = list(deps.gateway.events_since(since))
    return ReconcileReport(
        since, tuple(_reconcile_one(deps.events, received) for received in listed)
    )


def _reconcile_one(deps: CreditingDependencies, received: ReceivedEvent) -> ReconciledEvent:
    event = received.payment_event
    pi = None if event is None else event.payment_intent_id

    def outcome(kind: ReconcileOutcome, reason: str = "") -> ReconciledEvent:
        return ReconciledEvent(
            received.event_id, received.type, received.created_at, pi, kind, reason
        )

    try:
        applied = apply_received_event(deps, received)
    except BuyTokensError as exc:
        return outcome(ReconcileOutcome.FAILED, str(exc))
    return outcome(_OUTCOME_OF[applied.disposition], applied.reason)
