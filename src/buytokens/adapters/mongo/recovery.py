"""Finishing what interrupted writes left: the recovery pass of the write sequence.

``recover()`` runs the same finishing for every purchase with ``pending``
changes, every pending entry and every marker; it runs at start-up and, under
``serve``, periodically. Reads of a user's balance, purchases or ledger first
finish that user's pending purchases, so a purchase never reads as succeeded
before its tokens are in the balance.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import attrs

from buytokens.adapters.mongo.codec import (
    CANCELLED,
    PENDING,
    bson_time,
    inflight,
    is_adjustment,
)
from buytokens.adapters.mongo.writes import MongoWrites

_log = logging.getLogger(__name__)

# A pending adjustment older than this has lost its caller: recovery cancels it.
ADJUSTMENT_GRACE = timedelta(minutes=5)


@attrs.frozen
class RecoveryReport:
    """What one ``recover()`` pass finished."""

    purchases: int = 0
    entries: int = 0
    markers: int = 0
    cancelled: int = 0  # adjustments abandoned by their caller before they reached the balance

    @property
    def total(self) -> int:
        """Everything finished, 0 when the store was already consistent."""
        return self.purchases + self.entries + self.markers + self.cancelled


def recover(writes: MongoWrites, grace: timedelta = ADJUSTMENT_GRACE) -> RecoveryReport:
    """Finish every purchase, entry and marker a crash left unfinished; idempotent.

    A pending adjustment older than ``grace`` is cancelled unless the balance
    already shows it. Safe to run while other writers are active: finishing the
    same work twice applies it once. The driver's errors are the caller's to translate.
    """
    purchases = list(
        writes.purchases.find({"pendingSince": {"$exists": True}}, sort=[("pendingSince", 1)])
    )
    for doc in purchases:
        writes.finish_purchase(doc)
    entries = list(writes.transactions.find({"buytokens.state": PENDING}, sort=[("_id", 1)]))
    finished = cancelled = 0
    abandoned_before = writes.clock.now() - grace
    for entry in entries:
        if not is_adjustment(entry):
            writes.settle(entry)
            finished += 1
        elif bson_time(entry["createdAt"]) <= abandoned_before:
            # Its caller gave up long ago and was told so: never apply it now.
            settled = writes.settle(entry, cancel=True)
            if settled["buytokens"]["state"] == CANCELLED:
                cancelled += 1
            else:
                finished += 1
    balances = list(writes.balances.find({"buytokens.inflight.key": {"$exists": True}}))
    markers = 0
    for balance in balances:
        for marker in inflight(balance):
            writes.finish_marker(balance["_id"], marker)
            markers += 1
    report = RecoveryReport(len(purchases), finished, markers, cancelled)
    if report.total:
        _log.warning("recovered unfinished writes: %s", report)
    return report
