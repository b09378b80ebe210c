"""The seed's crediting beside ours on mongomock: cost and document size as purchases grow.

The seed kept one ``Balance`` document per user with a ``processedPayments``
array, and credited with one ``findOneAndUpdate`` filtered on
``processedPayments: {$ne: <intent>}`` that ``$push``-ed the intent and
``$inc``-remented ``tokenCredits``. That is exactly once per intent, but the
filter scans the array and the document carries every intent ever paid, so
both the cost of a purchase and the document grow with the user's history
(and MongoDB caps a document at 16 MiB). Ours keeps the balance document to
a fixed shape and puts history in one document per ledger entry.

Both run on ``connect_mongo("mongomock://...")``, one user, the same purchases;
each checkpoint times the ``window`` purchases that end at it. mongomock has no
real indexes: it scans a whole collection for every look-up that MongoDB answers
from an index, so ours (one ledger document per change) would be timed on
mongomock's scans. Between checkpoints the bench therefore moves ours' settled
purchases and ledger entries out of the collections (the adapter never reads
them again when crediting new intents); the balance document is never touched.
Ours also reports its collection operations per purchase, which is what a real
MongoDB pays for, each an indexed single-document operation.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import bson

from bench.crediting import PACKAGE, T0, _events
from bench.table import Row, at_most
from buytokens.adapters.memory import FixedClock
from buytokens.adapters.mongo.connection import BALANCES, PURCHASES, TRANSACTIONS, connect_mongo
from buytokens.adapters.mongo.store import MongoBalanceRepository
from buytokens.domain.catalogue import DEFAULT_CATALOGUE
from buytokens.services.crediting import CreditingDependencies, apply_payment_event

USER = "user0"
_OPERATIONS = frozenset(
    {"find", "find_one", "insert_one", "update_one", "find_one_and_update", "delete_one"}
)


class _Counting:
    """A database whose collections count the operations called on them."""

    def __init__(self, database: Any) -> None:
        self._database = database
        self.operations = 0

    @property
    def name(self) -> str:
        return str(self._database.name)

    def get_collection(self, name: str) -> Any:
        collection = self._database.get_collection(name)
        database = self

        class Counted:
            def __getattr__(self, attribute: str) -> Any:
                if attribute in _OPERATIONS:
                    database.operations += 1
                return getattr(collection, attribute)

        return Counted()


def _archive(database: Any) -> None:
    """Move settled purchases and applied entries out of ours' collections."""
    database.get_collection(TRANSACTIONS).delete_many({"buytokens.state": "applied"})
    database.get_collection(PURCHASES).delete_many({"pending": []})


def seed_credit(balances: object, user_id: str, payment_intent_id: str, tokens: int) -> bool:
    """The seed's one-statement credit; False when the intent was already processed."""
    updated = balances.find_one_and_update(  # type: ignore[attr-defined]
        {"user": user_id, "processedPayments": {"$ne": payment_intent_id}},
        {"$push": {"processedPayments": payment_intent_id}, "$inc": {"tokenCredits": tokens}},
    )
    return updated is not None


def growth(
    checkpoints: Sequence[int], window: int
) -> dict[str, dict[int, tuple[float, int, float]]]:
    """Per checkpoint and approach: ms per purchase over the window ending there, BSON bytes
    of the user's balance document, and collection operations per purchase."""
    events = _events(max(checkpoints), users=1, prefix="seed")
    seed_db = connect_mongo("mongomock://x/seed")
    seed_balances = seed_db.get_collection(BALANCES)
    seed_balances.insert_one({"user": USER, "tokenCredits": 0, "processedPayments": []})
    ours_db = connect_mongo("mongomock://x/ours")
    counted = _Counting(ours_db)
    clock = FixedClock(T0)
    ours = MongoBalanceRepository(counted, clock)

    def seed_batch(batch: Sequence[object]) -> float:
        start = time.perf_counter()
        for event in batch:
            seed_credit(seed_balances, USER, event.payment_intent_id, PACKAGE.tokens)  # type: ignore[attr-defined]
        return time.perf_counter() - start

    def ours_batch(batch: Sequence[object]) -> float:
        start = time.perf_counter()
        for event in batch:
            apply_payment_event(CreditingDependencies(ours, DEFAULT_CATALOGUE, clock), event)  # type: ignore[arg-type]
        return time.perf_counter() - start

    result: dict[str, dict[int, tuple[float, int, float]]] = {"seed": {}, "ours": {}}
    done = 0
    for checkpoint in sorted(checkpoints):
        for start in range(done, checkpoint - window, window):
            batch = events[start : min(start + window, checkpoint - window)]
            seed_batch(batch)
            ours_batch(batch)
            _archive(ours_db)
        timed = events[checkpoint - window : checkpoint]
        seed_ms = seed_batch(timed) / window * 1e3
        before = counted.operations
        ours_ms = ours_batch(timed) / window * 1e3
        operations = (counted.operations - before) / window
        done = checkpoint
        seed_doc = seed_balances.find_one({"user": USER})
        ours_doc = ours_db.get_collection(BALANCES).find_one({"user": USER})
        result["seed"][checkpoint] = (seed_ms, len(bson.encode(seed_doc)), 1.0)
        result["ours"][checkpoint] = (ours_ms, len(bson.encode(ours_doc)), operations)
        _archive(ours_db)
    assert seed_doc["tokenCredits"] == ours.balance(USER) == max(checkpoints) * PACKAGE.tokens
    return result


def rows(quick: bool) -> list[Row]:
    """P3 on mongomock, and the seed's approach beside ours, as table rows."""
    checkpoints, window = ((500, 1_000, 2_000), 100) if quick else ((1_000, 5_000, 10_000), 200)
    measured = growth(checkpoints, window)
    first, last = checkpoints[0], checkpoints[-1]
    ours, seed = measured["ours"], measured["seed"]
    cost = ours[last][0] / ours[first][0]
    ops = ours[last][2] / ours[first][2]
    size = ours[last][1] / ours[first][1]
    seed_cost = seed[last][0] / seed[first][0]
    seed_size = seed[last][1] / seed[first][1]
    sizes = ", ".join(f"{seed[c][1] / 1024:.0f} KiB" for c in checkpoints)
    return [
        Row(
            f"P3 purchase {last - window + 1}-{last} vs {first - window + 1}-{first}, "
            "one user (mongomock)",
            f"{ours[last][0]:.2f} ms vs {ours[first][0]:.2f} ms per purchase",
            cost,
            *at_most(cost, 1.2),
        ),
        Row(
            f"P3 Mongo operations per purchase at {last} vs {first}",
            f"{ours[last][2]:.1f} vs {ours[first][2]:.1f}",
            ops,
            *at_most(ops, 1.0),
        ),
        Row(
            f"P3 bytes per user after {last} vs {first} purchases (Mongo balance document)",
            f"{ours[last][1]} B vs {ours[first][1]} B",
            size,
            *at_most(size, 1.1),
        ),
        Row(
            f"seed: purchase {last - window + 1}-{last} vs {first - window + 1}-{first} "
            "(processedPayments $ne+$push)",
            f"{seed[last][0]:.2f} ms vs {seed[first][0]:.2f} ms per purchase",
            seed_cost,
        ),
        Row(
            f"seed: balance document after {' / '.join(map(str, checkpoints))} purchases",
            sizes,
            seed_size,
        ),
        Row(
            f"seed vs ours: balance document after {last} purchases",
            f"{seed[last][1]} B vs {ours[last][1]} B",
            seed[last][1] / ours[last][1],
        ),
    ]
