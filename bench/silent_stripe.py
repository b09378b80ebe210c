"""A Stripe that hangs: a loopback TCP server that accepts every connection and never answers.

The hanging-Stripe benchmark row and tests point `STRIPE_API_BASE` at it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class SilentServer:
    """Accepts connections on 127.0.0.1, reads nothing, answers nothing; counts connections.

    Use it as a context manager; leaving closes every connection it holds, so
    whoever still waits on one sees it reset.
    """

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        with self._lock:
            return len(self._accepted)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        self._listener.close()
        self._thread.join(timeout=5)
        with self._lock:
            for connection in self._accepted:
                connection.close()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # the listener was closed
                return
            with self._lock:
                self._accepted.append(connection)
