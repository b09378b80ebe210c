"""PromoCodes in MongoDB: ``buytokens_promo_codes`` (``_id`` = code) and
``buytokens_promo_uses`` (``_id`` = checkout id).

A live use (held or paid) carries ``live: true``; two unique indexes with
``partialFilterExpression`` on it keep ``(code, ticket)`` (only where a ticket
exists) and ``(code, userId, userTicket)`` unique among live uses, so a write
that would share a ticket fails with a duplicate key. Every write is one insert,
or one update filtered on the whole previous document, which a single mongod
applies atomically. A released use whose intent the sweeper still has to cancel
carries ``cancelPending: true`` (absent otherwise), found through a partial
index. Times are fixed-width UTC text, sortable.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError, PyMongoError

from buytokens.adapters.mongo.codec import (
    optional_time_text,
    parse_optional_time,
    parse_time,
    time_text,
)
from buytokens.adapters.mongo.connection import MongoDatabase
from buytokens.domain.errors import StoreCorrupted, StoreUnavailable, UserError
from buytokens.domain.money import Money
from buytokens.domain.promo_uses import PromoUse, UseState
from buytokens.domain.promotions import AmountOff, PercentOff, PromoCode

PROMO_CODES = "buytokens_promo_codes"
PROMO_USES = "buytokens_promo_uses"


class MongoPromoCodes:
    """PromoCodes in two collections of LibreChat's database; creates their indexes."""

    def __init__(self, database: MongoDatabase) -> None:
        self._codes = database.get_collection(PROMO_CODES)
        self._uses = database.get_collection(PROMO_USES)
        with _guard():
            self._codes.create_index([("createdAt", -1)], name="buytokens_promo_codes_by_created")
            self._uses.create_index(
                [("code", 1), ("ticket", 1)],
                name="buytokens_promo_uses_ticket",
                unique=True,
                partialFilterExpression={"live": True, "ticket": {"$exists": True}},
            )
            self._uses.create_index(
                [("code", 1), ("userId", 1), ("userTicket", 1)],
                name="buytokens_promo_uses_user_ticket",
                unique=True,
                partialFilterExpression={"live": True},
            )
            self._uses.create_index([("code", 1), ("live", 1)], name="buytokens_promo_uses_live")
            self._uses.create_index(
                [("cancelPending", 1)],
                name="buytokens_promo_uses_cancel_pending",
                partialFilterExpression={"cancelPending": True},
            )

    def create(self, promo: PromoCode) -> bool:
        with _guard():
            try:
                self._codes.insert_one(_code_document(promo))
            except DuplicateKeyError:
                return False
        return True

    def get(self, code: str) -> PromoCode | None:
        with _guard():
            doc = self._codes.find_one({"_id": code})
        return None if doc is None else _code(doc)

    def codes(self) -> Sequence[PromoCode]:
        with _guard():
            docs = list(self._codes.find({}, sort=[("createdAt", -1), ("_id", -1)]))
        return [_code(doc) for doc in docs]

    def disable(self, code: str) -> bool:
        with _guard():
            result = self._codes.update_one({"_id": code}, {"$set": {"disabled": True}})
        return bool(result.matched_count == 1)

    def live_uses(self, code: str) -> Sequence[PromoUse]:
        with _guard():
            docs = list(self._uses.find({"code": code, "live": True}))
        return [_use(doc) for doc in docs]

    def find_use(self, checkout_id: str) -> PromoUse | None:
        with _guard():
            doc = self._uses.find_one({"_id": checkout_id})
        return None if doc is None else _use(doc)

    def write_use(self, use: PromoUse, previous: PromoUse | None) -> bool:
        doc = _use_document(use)
        with _guard():
            try:
                if previous is None:
                    self._uses.insert_one(doc)
                    return True
                result = self._uses.replace_one(_filter(previous), doc)
            except DuplicateKeyError:
                return False
        return bool(result.matched_count == 1)

    def retire(self, stale: PromoUse, now: datetime, *, intent_canceled: bool = False) -> bool:
        if stale.state is not UseState.HELD or now < stale.held_until:
            return False
        retired = stale.released(cancel_pending=not intent_canceled)
        with _guard():
            result = self._uses.replace_one(_filter(stale), _use_document(retired))
        return bool(result.matched_count == 1)

    def pending_cancels(self) -> Sequence[PromoUse]:
        with _guard():
            docs = list(self._uses.find({"cancelPending": True}))
        return [_use(doc) for doc in docs]

    def release(self, checkout_id: str) -> PromoUse | None:
        with _guard():
            doc = self._uses.find_one_and_update(
                {"_id": checkout_id, "state": UseState.HELD.value},
                {
                    "$set": {"state": UseState.RELEASED.value},
                    "$unset": {"live": "", "ticket": "", "userTicket": ""},
                },
                return_document=True,
            )
        return None if doc is None else _use(doc)

    def attach_intent(self, checkout_id: str, payment_intent_id: str) -> None:
        with _guard():
            self._uses.update_one(
                {"_id": checkout_id, "state": UseState.HELD.value},
                {"$set": {"paymentIntentId": payment_intent_id}},
            )


@contextmanager
def _guard() -> Iterator[None]:
    try:
        yield
    except (StoreCorrupted, DuplicateKeyError):
        raise
    except PyMongoError as exc:
        raise StoreUnavailable(f"MongoDB failed on the promo codes: {exc}") from exc


def _code_document(p: PromoCode) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": p.code,
        "packageIds": None if p.package_ids is None else sorted(p.package_ids),
        "maxRedemptions": p.max_redemptions,
        "perUser": p.per_user,
        "expiresAt": optional_time_text(p.expires_at),
        "createdAt": time_text(p.created_at),
        "disabled": p.disabled,
    }
    if isinstance(p.discount, PercentOff):
        doc["percentOff"] = p.discount.percent
    else:
        doc["amountOff"] = p.discount.amount.amount
        doc["currency"] = p.discount.amount.currency
    return doc


def _code(doc: Mapping[str, Any]) -> PromoCode:
    try:
        discount = (
            PercentOff(int(doc["percentOff"]))
            if "percentOff" in doc
            else AmountOff(Money(int(doc["amountOff"]), str(doc["currency"])))
        )
        packages = doc.get("packageIds")
        limit = doc.get("maxRedemptions")
        return PromoCode(
            code=str(doc["_id"]),
            discount=discount,
            created_at=parse_time(doc["createdAt"]),
            package_ids=None if packages is None else [str(p) for p in packages],
            max_redemptions=None if limit is None else int(limit),
            per_user=int(doc["perUser"]),
            expires_at=parse_optional_time(doc.get("expiresAt")),
            disabled=bool(doc.get("disabled", False)),
        )
    except (KeyError, TypeError, ValueError, UserError) as exc:
        raise StoreCorrupted(f"promo code {doc.get('_id')!r} is unreadable: {exc!r}") from exc


def _use_document(u: PromoUse) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": u.checkout_id,
        "code": u.code,
        "userId": u.user_id,
        "state": u.state.value,
        "heldUntil": time_text(u.held_until),
        "paymentIntentId": u.payment_intent_id,
    }
    if u.state is not UseState.RELEASED:
        doc["live"] = True
        doc["userTicket"] = u.user_ticket
        if u.ticket is not None:
            doc["ticket"] = u.ticket
    if u.cancel_pending:
        doc["cancelPending"] = True
    return doc


def _filter(u: PromoUse) -> dict[str, Any]:
    """Matches exactly the stored document of ``u`` (absent fields must be absent)."""
    return {
        "live": None,
        "ticket": None,
        "userTicket": None,
        "cancelPending": None,
        **_use_document(u),
    }


def _use(doc: Mapping[str, Any]) -> PromoUse:
    try:
        ticket = doc.get("ticket")
        user_ticket = doc.get("userTicket")
        return PromoUse(
            code=str(doc["code"]),
            checkout_id=str(doc["_id"]),
            user_id=str(doc["userId"]),
            state=UseState(doc["state"]),
            held_until=parse_time(doc["heldUntil"]),
            ticket=None if ticket is None else int(ticket),
            user_ticket=None if user_ticket is None else int(user_ticket),
            payment_intent_id=doc.get("paymentIntentId"),
            cancel_pending=bool(doc.get("cancelPending", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreCorrupted(f"promo use {doc.get('_id')!r} is unreadable: {exc!r}") from exc
