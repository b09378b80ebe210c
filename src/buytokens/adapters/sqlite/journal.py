"""The webhook events' audit trail in the SQLite file, one row per event id."""

from __future__ import annotations

import sqlite3

from buytokens.adapters.sqlite.engine import SqliteDatabase
from buytokens.domain.checkout import Delivery

_RECORD_EVENT = (
    "INSERT INTO webhook_events (event_id, type, payment_intent_id, disposition, "
    "first_received_at, last_received_at, deliveries) "
    "VALUES (:event_id, :type, :payment_intent_id, :disposition, :at, :at, 1) "
    "ON CONFLICT (event_id) DO UPDATE SET deliveries = deliveries + 1, "
    "last_received_at = excluded.last_received_at, disposition = excluded.disposition"
)


def record_delivery(conn: sqlite3.Connection, delivery: Delivery) -> None:
    """Count one delivery of a provider event, inside the caller's write transaction."""
    conn.execute(
        _RECORD_EVENT,
        {
            "event_id": delivery.event_id,
            "type": delivery.event_type,
            "payment_intent_id": delivery.payment_intent_id,
            "disposition": delivery.disposition,
            "at": delivery.received_at.isoformat(),
        },
    )


class SqliteEventJournal:
    """EventJournal in the same SQLite file, one row per event id, written by the store."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    def deliveries(self, event_id: str) -> tuple[str, int] | None:
        """The last disposition and the number of deliveries of one event."""
        rows = self._db.read(
            "SELECT disposition, deliveries FROM webhook_events WHERE event_id = ?", (event_id,)
        )
        return (str(rows[0]["disposition"]), int(rows[0]["deliveries"])) if rows else None
