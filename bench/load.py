"""A small closed-loop HTTP/1.1 load generator on raw asyncio sockets.

Each of ``clients`` connections sends one request, waits for the whole answer,
and sends the next (keep-alive), so latency is measured per request and the
offered load adapts to the server: nothing queues inside the generator. Requests
are built by a ``factory(i)`` that returns the request's bytes; the first
``prebuilt`` are built before the clock starts so that signing payloads does not
count against the server.

The generator is deliberately thin (no HTTP library on the hot path) and reports
its own CPU use: when it approaches 100 % of its core it, not the server, is the
limit, and the caller says so. Run it pinned to a core the server does not use.

Given the server's process id, it also reads the server's CPU time and context
switches (``bench.procstat``) at the start and at the end of the measured
window, so a result says what the server spent per request answered.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from bench import procstat

RequestFactory = Callable[[int], bytes]


@dataclass
class LoadResult:
    """What one timed run measured."""

    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    generator_cpu: float = 0.0  # CPU seconds the generator itself used in the window
    server: procstat.Usage | None = None  # what the server spent in the window, when watched

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def failures(self) -> int:
        """Answers outside 2xx."""
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    @property
    def generator_busy(self) -> float:
        """Share of one core the generator used; near 1.0 means it was the bottleneck."""
        return self.generator_cpu / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """Latency percentile in seconds (``p`` in 0..100)."""
        if not self.latencies:
            return float("nan")
        if len(self.latencies) == 1:
            return self.latencies[0]
        return statistics.quantiles(self.latencies, n=1000, method="inclusive")[
            min(998, max(0, round(p * 10) - 1))
        ]


def http_request(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    """The bytes of one HTTP/1.1 keep-alive request."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One response's status and body (Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, _, header_block = head.partition(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    length = None
    chunked = False
    for line in header_block.split(b"\r\n"):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return status, b"".join(parts)
            parts.append(await reader.readexactly(size + 2))
            parts[-1] = parts[-1][:-2]
    return status, (await reader.readexactly(length) if length else b"")


class _Requests:
    """Request ``i`` for a shared counter: prebuilt ones first, then built on demand.

    With a ``limit``, None once that many requests have been handed out.
    """

    def __init__(self, factory: RequestFactory, prebuilt: int, limit: int | None = None) -> None:
        self._factory = factory
        self._ready = [factory(i) for i in range(prebuilt)]
        self._counter = itertools.count()
        self._limit = limit

    def next(self) -> bytes | None:
        i = next(self._counter)
        if self._limit is not None and i >= self._limit:
            return None
        return self._ready[i] if i < len(self._ready) else self._factory(i)


async def _client(
    host: str,
    port: int,
    requests: _Requests,
    warm_until: float,
    stop_at: float,
    result: LoadResult,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            started = time.perf_counter()
            request = requests.next() if started < stop_at else None
            if request is None:
                return
            writer.write(request)
            status, _ = await read_response(reader)
            finished = time.perf_counter()
            if started >= warm_until:
                result.latencies.append(finished - started)
                result.statuses[status] += 1
    finally:
        writer.close()


async def run_load_async(
    host: str,
    port: int,
    factory: RequestFactory,
    *,
    clients: int = 8,
    seconds: float = 5.0,
    warmup: float = 1.0,
    prebuilt: int = 0,
    server_pid: int | None = None,
    limit: int | None = None,
) -> LoadResult:
    """Drive ``clients`` keep-alive connections for ``warmup + seconds``; measure the last part.

    Only requests *started* after the warm-up count; the window ends when the
    last client finishes its last request. With ``server_pid``, the server's CPU
    use over that same window is in ``result.server``. With ``limit``, the run
    also ends once that many requests have been sent.
    """
    requests = _Requests(factory, prebuilt, limit)
    start = time.perf_counter()
    warm_until = start + warmup
    stop_at = warm_until + seconds
    result = LoadResult(seconds=seconds)
    cpu_task = asyncio.create_task(_cpu_at(warm_until, server_pid))
    await asyncio.gather(
        *(_client(host, port, requests, warm_until, stop_at, result) for _ in range(clients))
    )
    server_after = procstat.snapshot(server_pid) if server_pid is not None else None
    cpu_start, server_before = await cpu_task
    result.seconds = time.perf_counter() - warm_until
    result.generator_cpu = time.process_time() - cpu_start
    if server_pid is not None and server_before is not None and server_after is not None:
        result.server = procstat.usage(server_before, server_after)
    return result


async def _cpu_at(moment: float, server_pid: int | None) -> tuple[float, procstat.Snapshot | None]:
    await asyncio.sleep(max(0.0, moment - time.perf_counter()))
    server = procstat.snapshot(server_pid) if server_pid is not None else None
    return time.process_time(), server


def run_load(
    host: str, port: int, factory: RequestFactory, **options: float | int | None
) -> LoadResult:
    """``run_load_async`` on a fresh event loop."""
    return asyncio.run(run_load_async(host, port, factory, **options))  # type: ignore[arg-type]
