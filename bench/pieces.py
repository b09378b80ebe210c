"""Single-threaded prices of the pieces of one webhook: ``python -m bench.pieces``.

Each piece runs in a loop on this thread, best of five runs, with the P1
request's own bytes (the 2.4 kB fixture event, signed). No thread hops, no
load, no fsync unless the piece says so: what is printed is the CPU a piece
costs by itself, to price the changes ``docs/PERFORMANCE.md`` ranks. The
``process CPU`` column is ``time.process_time`` (every thread of this process),
the ``wall`` column the elapsed time; they differ where a piece waits on another
thread or on the disk.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import attrs
import stripe
from fastapi.responses import JSONResponse

from bench.servers import WEBHOOK_SECRET, product_settings
from bench.web import succeeded_payload
from buytokens.adapters.sqlite.engine import SqliteDatabase
from buytokens.adapters.sqlite.store import SqliteBalanceRepository
from buytokens.adapters.stripe_events import parse_signed_event, sign_payload, translate_event
from buytokens.adapters.system import SystemClock
from buytokens.domain.catalogue import DEFAULT_CATALOGUE
from buytokens.domain.checkout import ReceivedEvent
from buytokens.domain.crediting import decide
from buytokens.entrypoints.container import create_container
from buytokens.entrypoints.web.edge import RequestIds, request_line
from buytokens.entrypoints.web.schemas import WebhookResponse
from buytokens.entrypoints.web.webhook_route import WEBHOOK_PATH
from buytokens.services.crediting import (
    CreditingDependencies,
    apply_payment_event,
    apply_payment_event_awaiting,
)
from buytokens.services.webhooks import receive_webhook

NOW = datetime(2026, 12, 1, tzinfo=UTC)
T = TypeVar("T")


class _NoSync(sqlite3.Connection):
    """A connection that turns the store's ``synchronous = FULL`` off, to price the fsync."""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        if sql.replace(" ", "").upper() == "PRAGMASYNCHRONOUS=FULL":
            sql = "PRAGMA synchronous = OFF"
        return super().execute(sql, parameters)


def _noop(conn: sqlite3.Connection) -> None:
    return None


class _Inline(SqliteDatabase):
    """The store's database with each write run on the caller's thread: no writer, no batch."""

    def transact(self, work: Callable[[sqlite3.Connection], T]) -> T:
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def transact_async(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return self.transact(work)


def _run_inline(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (the awaited path on ``_Inline``) without a loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise RuntimeError("the coroutine suspended")


def _stores(directory: Path) -> list[tuple[str, SqliteBalanceRepository]]:
    def store(name: str, database: SqliteDatabase) -> tuple[str, SqliteBalanceRepository]:
        return name, SqliteBalanceRepository(database, SystemClock())

    return [
        store(
            "apply_payment_event, fsync'd (worker + writer, as served)",
            SqliteDatabase(directory / "full.sqlite3"),
        ),
        store(
            "apply_payment_event, synchronous=OFF (prices the fsync)",
            SqliteDatabase(directory / "off.sqlite3", connection_factory=_NoSync),
        ),
        store(
            "apply_payment_event, synchronous=OFF, on this thread (prices the hop)",
            _Inline(directory / "inline.sqlite3", connection_factory=_NoSync),
        ),
    ]


def _price(work: Callable[[int], object], count: int) -> tuple[float, float]:
    """Best-of-five (wall, process CPU) seconds per call of ``work(i)``."""
    best_wall = best_cpu = float("inf")
    for _ in range(5):
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(count):
            work(i)
        best_wall = min(best_wall, (time.perf_counter() - wall) / count)
        best_cpu = min(best_cpu, (time.process_time() - cpu) / count)
    return best_wall, best_cpu


def pieces(count: int) -> list[tuple[str, float, float]]:
    created = int(time.time())
    payloads = [
        succeeded_payload(f"evt_p_{i}", f"pi_p_{i}", f"user{i % 64}", created)
        for i in range(count * 5 + 1)
    ]
    headers = [sign_payload(p, WEBHOOK_SECRET) for p in payloads]
    parsed = json.loads(payloads[0])
    event = translate_event(parsed).payment_event
    assert event is not None
    log = logging.getLogger("bench.pieces")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    log.setLevel(logging.INFO)
    ids = RequestIds()
    line = {"event": "request", "request_id": uuid.uuid4().hex, "method": "POST",
            "path": "/api/custom/stripe/webhook", "status": 200, "ms": 3.1}  # fmt: skip
    results = [
        (
            "Stripe signature check (verify_header)",
            lambda i: stripe.WebhookSignature.verify_header(
                payloads[i], headers[i], WEBHOOK_SECRET, 300
            ),
        ),
        ("json.loads of the event", lambda i: json.loads(payloads[i])),
        ("translate_event (dict to domain event)", lambda i: translate_event(parsed)),
        (
            "parse_signed_event (check + parse + translate)",
            lambda i: parse_signed_event(payloads[i], headers[i], WEBHOOK_SECRET),
        ),
        (
            "decide (domain rules, new purchase)",
            lambda i: decide(None, event, DEFAULT_CATALOGUE, NOW, taken_back=0),
        ),
        ("request log line (json.dumps + Logger.info)", lambda i: log.info(json.dumps(line))),
        ("uuid4().hex (request id)", lambda i: uuid.uuid4().hex),
        (
            "request log line as HttpEdge builds it (request_line + Logger.info)",
            lambda i: log.info(request_line(line["request_id"], "POST", WEBHOOK_PATH, 200, 3.1)),
        ),
        ("request id as HttpEdge mints it (RequestIds.next)", lambda i: ids.next()),
        (
            "response (WebhookResponse + model_dump + JSONResponse)",
            lambda i: JSONResponse(WebhookResponse(outcome="applied").model_dump()),
        ),
        (
            "plain response bytes (a constant per outcome)",
            lambda i: JSONResponse.render(
                JSONResponse.__new__(JSONResponse), {"outcome": "applied"}
            ),
        ),
    ]
    priced = [(name, *_price(work, count)) for name, work in results]
    with tempfile.TemporaryDirectory() as tmp:
        container = create_container(product_settings(Path(tmp)))
        webhooks = container.webhooks()
        offset = [0]

        def webhook(i: int) -> object:
            offset[0] += 1
            return receive_webhook(webhooks, payloads[offset[0]], headers[offset[0]])

        priced.append(
            ("receive_webhook, one at a time (hop to writer + fsync)", *_price(webhook, count // 5))
        )
        received = [translate_event(json.loads(p)) for p in payloads]
        for name, store in _stores(Path(tmp)):
            serial = iter(range(10**9))

            def apply(
                i: int, store: SqliteBalanceRepository = store, serial: Iterator[int] = serial
            ) -> object:
                event = received[i % len(received)]
                assert event.payment_event is not None
                fresh = attrs.evolve(event.payment_event, payment_intent_id=f"pi_{next(serial)}")
                return apply_payment_event(
                    CreditingDependencies(store, DEFAULT_CATALOGUE, SystemClock()),
                    fresh,
                    received=event,
                )

            priced.append((name, *_price(apply, count // 5)))
            store.close()
        inline = SqliteBalanceRepository(
            _Inline(Path(tmp) / "awaited.sqlite3", connection_factory=_NoSync), SystemClock()
        )
        deps = CreditingDependencies(inline, DEFAULT_CATALOGUE, SystemClock())
        awaited_serial = iter(range(10**9))

        def awaited(i: int) -> object:
            event = received[i % len(received)]
            assert event.payment_event is not None
            fresh = attrs.evolve(
                event.payment_event, payment_intent_id=f"pi_{next(awaited_serial)}"
            )
            return _run_inline(apply_payment_event_awaiting(deps, inline, fresh, received=event))

        priced.append(
            (
                "apply_payment_event_awaiting, synchronous=OFF, on this thread "
                "(the writer's work per lone credit)",
                *_price(awaited, count // 5),
            )
        )
        inline.close()
        db = SqliteDatabase(Path(tmp) / "hop.sqlite3")
        priced.append(
            (
                "SqliteDatabase.transact(no-op): the writer hop alone",
                *_price(lambda i: db.transact(_noop), count),
            )
        )
        db.close()
        store = container.store()
        priced.append(
            (
                "get_purchase (SQLite read, absent)",
                *_price(lambda i: store.get_purchase(f"pi_missing_{i}"), count),
            )
        )
        container.stores().close()
    return priced


def wal_pages_per_credit(count: int) -> float:
    """Pages a lone credit writes to the WAL at its COMMIT (new intents, 64 users)."""
    created = int(time.time())
    with tempfile.TemporaryDirectory() as tmp:
        database = _Inline(Path(tmp) / "pages.sqlite3", connection_factory=_NoSync)
        store = SqliteBalanceRepository(database, SystemClock())
        deps = CreditingDependencies(store, DEFAULT_CATALOGUE, SystemClock())
        events = [
            translate_event(
                json.loads(succeeded_payload(f"evt_w_{i}", f"pi_w_{i}", f"user{i % 64}", created))
            )
            for i in range(2 * count)
        ]

        def credit(received: ReceivedEvent) -> None:
            assert received.payment_event is not None
            _run_inline(
                apply_payment_event_awaiting(deps, store, received.payment_event, received=received)
            )

        for received in events[:count]:  # the tables are past their first pages
            credit(received)
        conn = database.connection()
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        for received in events[count:]:
            credit(received)
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        wal = os.path.getsize(f"{database.path}-wal")
        store.close()
    return (wal - 32) / (page_size + 24) / count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args(argv)
    rows = pieces(args.count)
    width = max(len(name) for name, _, _ in rows)
    print(f"{'piece':{width}}  {'wall us':>8}  {'process CPU us':>14}")
    for name, wall, cpu in rows:
        print(f"{name:{width}}  {wall * 1e6:8.1f}  {cpu * 1e6:14.1f}")
    pages = wal_pages_per_credit(args.count)
    print(f"\npages written to the WAL per lone credit (each COMMIT its own): {pages:.1f}")


if __name__ == "__main__":
    main()
