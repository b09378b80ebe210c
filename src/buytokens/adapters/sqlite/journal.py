"""The webhook events' audit trail in the SQLite file, one row per event id."""

from __future__ import annotations

from datetime import datetime

from buytokens.adapters.sqlite.engine import SqliteDatabase
from buytokens.domain.checkout import Delivery, ReceivedEvent

RECORD_EVENT = (
    "INSERT INTO webhook_events (event_id, type, payment_intent_id, disposition, "
    "first_received_at, last_received_at, deliveries) VALUES (?, ?, ?, ?, ?, ?, 1) "
    "ON CONFLICT (event_id) DO UPDATE SET deliveries = deliveries + 1, "
    "last_received_at = excluded.last_received_at, disposition = excluded.disposition"
)


def delivery_row(delivery: Delivery) -> tuple[object, ...]:
    at = delivery.received_at.isoformat()
    return (
        delivery.event_id,
        delivery.event_type,
        delivery.payment_intent_id,
        delivery.disposition,
        at,
        at,
    )


class SqliteEventJournal:
    """EventJournal in the same SQLite file, one row per event id."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    def record(self, event: ReceivedEvent, disposition: str, at: datetime) -> None:
        params = delivery_row(Delivery.of(event, disposition, at))
        with self._db.guarded():
            self._db.transact(lambda conn: conn.execute(RECORD_EVENT, params))

    def deliveries(self, event_id: str) -> tuple[str, int] | None:
        """The last disposition and the number of deliveries of one event."""
        rows = self._db.read(
            "SELECT disposition, deliveries FROM webhook_events WHERE event_id = ?", (event_id,)
        )
        return (str(rows[0][0]), int(rows[0][1])) if rows else None
