"""Checkout idempotency keys in MongoDB, shared by every replica."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError, PyMongoError

from buytokens.adapters.mongo.connection import MongoDatabase
from buytokens.domain.errors import StoreUnavailable
from buytokens.ports.checkout import KeyReservation

CHECKOUT_KEYS = "buytokens_checkout_keys"


class MongoCheckoutKeys:
    """CheckoutKeys in one collection; a unique index on (user, key) makes reserving atomic."""

    def __init__(self, database: MongoDatabase) -> None:
        self._keys = database.get_collection(CHECKOUT_KEYS)
        try:
            self._keys.create_index(
                [("user", ASCENDING), ("key", ASCENDING)], unique=True, name="one_per_user_key"
            )
        except PyMongoError as exc:
            raise StoreUnavailable(f"cannot prepare {CHECKOUT_KEYS}: {exc}") from exc

    def reserve(
        self, user_id: str, key: str, fingerprint: str, at: datetime
    ) -> KeyReservation | None:
        document = {
            "user": user_id,
            "key": key,
            "fingerprint": fingerprint,
            "reservedAt": at.isoformat(),
            "paymentIntentId": None,
        }
        try:
            self._keys.insert_one(document)
            return None
        except DuplicateKeyError:
            existing: dict[str, Any] | None = self._keys.find_one({"user": user_id, "key": key})
        except PyMongoError as exc:
            raise StoreUnavailable(f"cannot reserve an idempotency key: {exc}") from exc
        if existing is None:  # released between our insert and read: the caller may retry
            raise StoreUnavailable("idempotency key changed while it was being read; retry")
        return KeyReservation(
            existing["fingerprint"],
            datetime.fromisoformat(existing["reservedAt"]),
            existing.get("paymentIntentId"),
        )

    def complete(self, user_id: str, key: str, payment_intent_id: str) -> None:
        try:
            self._keys.update_one(
                {"user": user_id, "key": key}, {"$set": {"paymentIntentId": payment_intent_id}}
            )
        except PyMongoError as exc:
            raise StoreUnavailable(f"cannot complete an idempotency key: {exc}") from exc

    def release(self, user_id: str, key: str) -> None:
        try:
            self._keys.delete_one({"user": user_id, "key": key, "paymentIntentId": None})
        except PyMongoError as exc:
            raise StoreUnavailable(f"cannot release an idempotency key: {exc}") from exc
