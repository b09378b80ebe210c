"""The webhook events' audit trail in MongoDB: one document per provider event id."""

from __future__ import annotations

from typing import Any

from pymongo.errors import PyMongoError

from buytokens.adapters.mongo.connection import WEBHOOK_EVENTS, MongoDatabase
from buytokens.domain.checkout import Delivery
from buytokens.domain.errors import StoreUnavailable


def record_delivery(events: Any, delivery: Delivery) -> None:
    """Count one delivery of a provider event in the journal collection ``events``."""
    events.update_one(
        {"_id": delivery.event_id},
        {
            "$set": {
                "type": delivery.event_type,
                "paymentIntentId": delivery.payment_intent_id,
                "disposition": delivery.disposition,
                "lastReceivedAt": delivery.received_at,
            },
            "$setOnInsert": {"firstReceivedAt": delivery.received_at},
            "$inc": {"deliveries": 1},
        },
        upsert=True,
    )


class MongoEventJournal:
    """EventJournal: one document per Stripe event id, counting deliveries, written by the store."""

    def __init__(self, database: MongoDatabase) -> None:
        self._events = database.get_collection(WEBHOOK_EVENTS)

    def deliveries(self, event_id: str) -> tuple[str, int] | None:
        try:
            found: dict[str, Any] | None = self._events.find_one({"_id": event_id})
        except PyMongoError as exc:
            raise StoreUnavailable(f"cannot read webhook event: {exc}") from exc
        return None if found is None else (str(found["disposition"]), int(found["deliveries"]))
