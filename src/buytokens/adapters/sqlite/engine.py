"""One SQLite file for many threads and processes: its connections and group-committing writer.

Every write runs in a ``BEGIN IMMEDIATE`` transaction committed with
``synchronous=FULL`` in WAL mode, so a commit that returned is on disk: the
webhook's 2xx, which stops Stripe's retries, always follows a durable outcome.

Writes of one process go through one writer thread that commits whatever has
queued up meanwhile in a single transaction (group commit): each write runs in
its own savepoint, so one that fails leaves the others intact, and every caller
returns only once the shared COMMIT, one fsync for all of them, is on disk.
Other processes on the same file wait for SQLite's write lock as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar

from buytokens.adapters.sqlite.schema import migrate
from buytokens.domain.errors import StoreCorrupted, StoreUnavailable

T = TypeVar("T")

# Enough to share one fsync among every request a busy server has in flight.
MAX_BATCH = 64


class _Write(Generic[T]):
    """One queued write and, once its batch is committed, what came of it.

    A thread's write is awaited on ``done``; an event loop's on ``future``, which
    the writer completes on that loop (``call_soon_threadsafe``).
    """

    __slots__ = ("done", "error", "future", "loop", "result", "work")

    def __init__(
        self, work: Callable[[sqlite3.Connection], T], future: asyncio.Future[T] | None = None
    ) -> None:
        self.work = work
        self.future = future
        self.loop = None if future is None else future.get_loop()
        self.done = threading.Event() if future is None else None
        self.result: T | None = None
        self.error: BaseException | None = None


def _resolve(writes: list[_Write[Any]]) -> None:
    """Hand each write's outcome to its awaiting coroutine (on that coroutine's loop)."""
    for write in writes:
        future = write.future
        if future is None or future.done():  # the request went away; its write stands
            continue
        if write.error is not None:
            future.set_exception(write.error)
        else:
            future.set_result(write.result)


def _answer(batch: list[_Write[Any]]) -> None:
    """Wake every caller of a finished batch: threads one by one, each event loop once."""
    loops: dict[asyncio.AbstractEventLoop, list[_Write[Any]]] = {}
    for write in batch:
        if write.done is not None:
            write.done.set()
        elif write.loop is not None:
            loops.setdefault(write.loop, []).append(write)
    for loop, writes in loops.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody awaits these
            loop.call_soon_threadsafe(_resolve, writes)


class SqliteDatabase:
    """One SQLite file: a reading connection per thread, one group-committing writer.

    ``connection_factory`` is the ``sqlite3.Connection`` subclass to connect with
    (tracing and fault injection use it).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_ms: int = 10_000,
        connection_factory: type[sqlite3.Connection] = sqlite3.Connection,
    ) -> None:
        self.path = str(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._factory = connection_factory
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Write[Any] | list[_Write[Any]] | None] = queue.SimpleQueue()
        # Writes an event loop queued during its current iteration, handed over at its end.
        self._gathered: dict[asyncio.AbstractEventLoop, list[_Write[Any]]] = {}
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        conn = self.connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
            migrate(conn, self.path)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreUnavailable(f"cannot prepare SQLite store {self.path}: {exc}") from exc
            raise

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=self._busy_timeout_ms / 1000,
                factory=self._factory,
            )
            conn.row_factory = sqlite3.Row  # rows are read by column name
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open SQLite store {self.path}: {exc}") from exc
        with self._connections_lock:
            self._connections.append(conn)
        return conn

    def connection(self) -> sqlite3.Connection:
        """This thread's reading connection, opened on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Finish the queued writes, stop the writer and close every connection."""
        with self._writer_lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            self._queue.put(None)
            writer.join(timeout=60)
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def transact(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in a durable write transaction and return what it returned.

        ``work`` runs on the writer thread, inside its own savepoint of a
        transaction it may share with other callers'; whatever it raises comes back
        here, with its writes undone and theirs kept. This returns only after the
        COMMIT is on disk; if the commit fails, every write of the batch fails.
        """
        write = _Write(work)
        self._start_writer()
        self._queue.put(write)
        write.done.wait()  # type: ignore[union-attr]
        if write.error is not None:
            raise write.error
        return write.result  # type: ignore[return-value]

    async def transact_async(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``transact`` for a coroutine: awaits the durable COMMIT without blocking its loop.

        The same rules hold (``work`` on the writer thread, its own savepoint when
        the batch holds others, the answer only once the COMMIT is on disk); no
        thread waits for it, the writer completes a future on the caller's loop.
        If the awaiting task is cancelled, the write still runs, or has run.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        gathered = self._gathered.get(loop)
        if gathered is None:
            # The first write of this loop iteration: every other request the loop runs
            # in it joins this one, and the writer gets them all at once (one wake-up,
            # one batch) when the iteration's ready callbacks have run.
            gathered = self._gathered[loop] = []
            loop.call_soon(self._hand_over, loop)
        gathered.append(_Write(work, future))
        return await future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        writes = self._gathered.pop(loop, None)
        if writes:
            self._start_writer()
            self._queue.put(writes)

    def _start_writer(self) -> None:
        with self._writer_lock:
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_batches, name=f"sqlite-writer {self.path}", daemon=True
                )
                self._writer.start()

    def _write_batches(self) -> None:
        conn: sqlite3.Connection | None = None
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = first if isinstance(first, list) else [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                if isinstance(more, list):
                    batch.extend(more)
                else:
                    batch.append(more)
            try:
                conn = conn or self._open()
                self._commit(conn, batch)
            except BaseException as exc:  # the writer must outlive any batch
                for write in batch:
                    write.error = write.error or exc
            finally:
                _answer(batch)
            if stop:
                return

    @staticmethod
    def _commit(conn: sqlite3.Connection, batch: list[_Write[Any]]) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"SQLite store is busy: {exc}") from exc
        try:
            if len(batch) == 1:  # no savepoint: the transaction is this write's alone
                (write,) = batch
                write.result = write.work(conn)
                conn.execute("COMMIT")
                return
            for index, write in enumerate(batch):
                conn.execute(f"SAVEPOINT w{index}")
                try:
                    write.result = write.work(conn)
                except Exception as exc:  # handed back to that write's caller
                    conn.execute(f"ROLLBACK TO w{index}")
                    write.error = exc
                conn.execute(f"RELEASE w{index}")
            conn.execute("COMMIT")
        except BaseException as exc:
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except BaseException:  # noqa: S110 - the original failure is what callers need
                pass
            # Writes that had succeeded are lost with the transaction: they fail too.
            for write in batch:
                if write.error is None:
                    write.error = exc
                    write.result = None

    def read(self, sql: str, params: Sequence[object]) -> list[Any]:
        """Run one query outside any write transaction."""
        try:
            return self.connection().execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"SQLite read failed: {exc}") from exc

    @contextmanager
    def guarded(self) -> Iterator[None]:
        """Translate sqlite3 errors escaping a write into the store errors."""
        try:
            yield
        except sqlite3.IntegrityError as exc:
            raise StoreCorrupted(f"SQLite store rejected a write: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite write failed: {exc}") from exc
