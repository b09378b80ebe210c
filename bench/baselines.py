"""The two reference apps every HTTP measurement is compared with.

* **Ceiling**: a bare FastAPI endpoint that reads the body and answers 200. No
  app built on this framework and this server can be faster, so the app's share
  of it says how much of the framework's own budget the product uses.
* **Durable floor**: the least an honest webhook handler must do. It checks the
  Stripe signature (with the SDK, as the product does), parses the JSON, and in
  one SQLite transaction (WAL, ``synchronous=FULL``) does an
  ``INSERT OR IGNORE`` of the payment and, when that inserted a row, the balance
  update. Its checkout twin verifies the bearer JWT (PyJWT), parses the JSON and
  inserts the pending intent in one such transaction. Nothing else: no ledger,
  no purchase state, no journal, no request log.

Both answer on the product's own paths, so the load generator sends identical
bytes to the ceiling, the floor and the product.

Two more steps between them, for taking the CPU cost apart (``bench.decompose``):
**ceiling + hop** is the bare endpoint that also hands a no-op to a worker
thread (``run_in_threadpool``), as the floor and the product do for their
blocking work; **ceiling + two hops** has that worker hand the no-op on to one
dedicated thread through a queue and wait for it, as the product's SQLite
writer is reached.
"""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
import uuid
from pathlib import Path

import jwt
import stripe
from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

WEBHOOK_PATH = "/api/custom/stripe/webhook"
CHECKOUT_PATH = "/api/custom/stripe/create-payment-intent"
PACKAGE_TOKENS = {"package_100k": 100_000, "package_500k": 500_000}
_OK = b'{"success":true}'


def ceiling_app() -> FastAPI:
    """A bare endpoint per path: read the body, answer 200."""
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(_OK, media_type="application/json")

    @app.post(WEBHOOK_PATH)
    @app.post(CHECKOUT_PATH)
    async def bare(request: Request) -> Response:
        await request.body()
        return Response(_OK, media_type="application/json")

    return app


class _Handoff:
    """One thread that answers whatever is queued to it, as the product's SQLite writer does."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[threading.Event] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="handoff", daemon=True).start()

    def _serve(self) -> None:
        while True:
            self._queue.get().set()

    def call(self) -> None:
        done = threading.Event()
        self._queue.put(done)
        done.wait()


def _nothing() -> None:
    return None


def hop_app(*, two_hops: bool = False) -> FastAPI:
    """The bare endpoint plus one worker-thread hop (and, with ``two_hops``, a second)."""
    app = FastAPI()
    work = _Handoff().call if two_hops else _nothing

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(_OK, media_type="application/json")

    @app.post(WEBHOOK_PATH)
    @app.post(CHECKOUT_PATH)
    async def hop(request: Request) -> Response:
        await request.body()
        await run_in_threadpool(work)
        return Response(_OK, media_type="application/json")

    return app


class _FloorStore:
    """One SQLite file, a connection per thread, each write one durable transaction."""

    def __init__(self, path: Path) -> None:
        self._path = str(path)
        self._local = threading.local()
        conn = self._connection()
        conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS payments (
                payment_intent_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, tokens INTEGER NOT NULL
            );
            CREATE TABLE IF NOT EXISTS balances (
                user_id TEXT PRIMARY KEY, token_credits INTEGER NOT NULL
            );
            CREATE TABLE IF NOT EXISTS intents (
                payment_intent_id TEXT PRIMARY KEY, user_id TEXT NOT NULL,
                package_id TEXT NOT NULL
            );
            """
        )

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            self._local.conn = conn
        return conn

    def credit_once(self, payment_intent_id: str, user_id: str, tokens: int) -> bool:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            inserted = conn.execute(
                "INSERT OR IGNORE INTO payments VALUES (?, ?, ?)",
                (payment_intent_id, user_id, tokens),
            ).rowcount
            if inserted:
                conn.execute(
                    "INSERT INTO balances VALUES (?, ?) ON CONFLICT (user_id) "
                    "DO UPDATE SET token_credits = token_credits + excluded.token_credits",
                    (user_id, tokens),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return bool(inserted)

    def add_intent(self, payment_intent_id: str, user_id: str, package_id: str) -> None:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT OR IGNORE INTO intents VALUES (?, ?, ?)",
                (payment_intent_id, user_id, package_id),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def floor_app(database: Path, webhook_secret: str, jwt_secret: str) -> FastAPI:
    """The durable floor: signature, JSON, one transaction."""
    app = FastAPI()
    store = _FloorStore(database)

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(_OK, media_type="application/json")

    @app.post(WEBHOOK_PATH)
    async def webhook(request: Request) -> Response:
        payload = await request.body()
        try:
            stripe.WebhookSignature.verify_header(
                payload, request.headers.get("stripe-signature"), webhook_secret, 300
            )
            intent = json.loads(payload)["data"]["object"]
            metadata = intent["metadata"]
            tokens = PACKAGE_TOKENS[metadata["packageId"]]
        except (stripe.SignatureVerificationError, ValueError, KeyError):
            return Response(status_code=400)
        await run_in_threadpool(store.credit_once, intent["id"], metadata["userId"], tokens)
        return Response(_OK, media_type="application/json")

    @app.post(CHECKOUT_PATH)
    async def checkout(request: Request) -> Response:
        payload = await request.body()
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        try:
            claims = jwt.decode(
                token, jwt_secret, algorithms=["HS256"], options={"require": ["exp"]}
            )
            package_id = json.loads(payload)["packageId"]
        except (jwt.InvalidTokenError, ValueError, KeyError):
            return Response(status_code=400)
        if scheme.lower() != "bearer" or package_id not in PACKAGE_TOKENS:
            return Response(status_code=400)
        intent_id = f"pi_{uuid.uuid4().hex}"
        await run_in_threadpool(store.add_intent, intent_id, claims["id"], package_id)
        body = {"success": True, "paymentIntentId": intent_id, "clientSecret": f"{intent_id}_s"}
        return Response(json.dumps(body).encode(), media_type="application/json")

    return app
