"""A Stripe that hangs: a loopback TCP server that accepts every connection and never answers.

The hanging-Stripe benchmark row and tests point `STRIPE_API_BASE` at it.
"""

from __future__ import annotations

import selectors
import socket
import threading
from types import TracebackType


class SilentServer:
    """Accepts connections on 127.0.0.1, reads what comes, answers nothing.

    Counts every connection it accepted (``connections``) and the most it held
    open at once (``peak``): a client that gives up closes its end, and that
    close is seen before any later connection is counted. Use it as a context
    manager; leaving closes every connection it still holds, so whoever still
    waits on one sees it reset.
    """

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._connections = 0
        self._open = 0
        self._peak = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        with self._lock:
            return self._connections

    @property
    def peak(self) -> int:
        """The most connections open at the same time so far."""
        with self._lock:
            return self._peak

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            try:
                while not self._stopping.is_set():
                    ready = [key.fileobj for key, _ in selector.select(timeout=0.05)]
                    # Closes first: a client that gave up on one connection before
                    # opening the next never counts as holding both.
                    for sock in ready:
                        if sock is not self._listener and isinstance(sock, socket.socket):
                            self._read(selector, sock)
                    if self._listener in ready:
                        self._accept(selector)
            finally:
                for key in list(selector.get_map().values()):
                    if isinstance(key.fileobj, socket.socket):
                        key.fileobj.close()

    def _accept(self, selector: selectors.BaseSelector) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except BlockingIOError:
                return
            connection.setblocking(False)
            selector.register(connection, selectors.EVENT_READ)
            with self._lock:
                self._connections += 1
                self._open += 1
                self._peak = max(self._peak, self._open)

    def _read(self, selector: selectors.BaseSelector, connection: socket.socket) -> None:
        try:
            data = connection.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            selector.unregister(connection)
            connection.close()
            with self._lock:
                self._open -= 1
