"""Exact per-request call counts of the product, in every thread: ``python -m bench.callcount``.

py-spy (``bench.profile``) says where the time goes but samples; this says how
often things happen. The server runs under ``cProfile`` in every thread (the
event loop, the worker threads FastAPI hands blocking work to, the SQLite
writer) and merges the counts when it shuts down; this module sends it a known
number of webhooks (or checkout requests) and divides.

The counts include the server's start-up (migrations, one health check), a
fixed handful of calls that vanishes in the per-request figure at a few
thousand requests. cProfile counts each resumption of a coroutine as a call,
so only plain functions are listed. Timings under cProfile are inflated and
are not reported; the time shares are ``bench.profile``'s job.
"""

from __future__ import annotations

import argparse
import cProfile
import marshal
import pstats
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# What is counted: (label, where, function name) as cProfile keys them. ``where`` is the
# end of the file's path, "~" for built-ins (C functions and methods), or "<attrs" for the
# ``__init__`` methods attrs generates.
_EXECUTE = "<method 'execute' of 'sqlite3.Connection' objects>"
_ANYIO = "anyio/_backends/_asyncio.py"
WATCHED: tuple[tuple[str, str, str], ...] = (
    ("SQL statements (Connection.execute)", "~", _EXECUTE),
    ("write transactions from threads (SqliteDatabase.transact)", "sqlite/engine.py", "transact"),
    (
        "loop write transactions (transact_async; start and resume each count)",
        "sqlite/engine.py",
        "transact_async",
    ),
    ("group commits (SqliteDatabase._commit)", "sqlite/engine.py", "_commit"),
    ("reads outside the writer (SqliteDatabase.read)", "sqlite/engine.py", "read"),
    ("worker-thread hops (anyio WorkerThread._report_result)", _ANYIO, "_report_result"),
    ("signature checks (WebhookSignature.verify_header)", "stripe/_webhook.py", "verify_header"),
    ("HMAC-SHA256 computations (hmac.new)", "hmac.py", "new"),
    ("JSON parses (json.loads)", "json/__init__.py", "loads"),
    ("JSON encodes (json.dumps)", "json/__init__.py", "dumps"),
    ("Stripe objects built (StripeObject.__init__)", "stripe/_stripe_object.py", "__init__"),
    ("pydantic models built (BaseModel.__init__)", "pydantic/main.py", "__init__"),
    ("attrs objects built (generated __init__)", "<attrs", "__init__"),
    ("attrs.evolve", "attr/", "evolve"),
    ("datetime.isoformat", "~", "<method 'isoformat' of 'datetime.datetime' objects>"),
    ("datetime.fromisoformat", "~", "<built-in method fromisoformat of type object>"),
    ("log records made (Logger.makeRecord)", "logging/__init__.py", "makeRecord"),
    ("log lines written (StreamHandler.emit)", "logging/__init__.py", "emit"),
    ("uuid4", "uuid.py", "uuid4"),
    ("Starlette Headers built (Headers.__init__)", "starlette/datastructures.py", "__init__"),
)


ALL_CALLS = "function calls, every thread (Python and C)"
LOOP_CALLS = "function calls on the event-loop thread"
LABELS = (*(label for label, _, _ in WATCHED), ALL_CALLS, LOOP_CALLS)


class CallCounter:
    """cProfile in every thread that calls ``begin_thread()`` (``bench.servers`` arranges it)."""

    def __init__(self) -> None:
        self._profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def begin_thread(self) -> None:
        """Count the calling thread's calls from now on."""
        profile = cProfile.Profile()
        with self._lock:
            self._profiles.append(profile)
        profile.enable()

    def dump(self, path: Path) -> None:
        """Stop counting here and write every thread's counts, merged, as pstats data.

        The first thread to begin (the server's main thread, which runs the event
        loop) is also written alone, to ``loop_dump(path)``.
        """
        threading.setprofile(None)
        sys.setprofile(None)
        with self._lock:
            profiles = list(self._profiles)
        pstats.Stats(profiles[0]).dump_stats(str(loop_dump(path)))
        stats = pstats.Stats(profiles[0])
        for profile in profiles[1:]:
            stats.add(profile)
        stats.dump_stats(str(path))


def loop_dump(path: Path) -> Path:
    """Where ``CallCounter.dump(path)`` writes the event-loop thread's counts alone."""
    return path.with_suffix(".loop" + path.suffix)


def all_calls(stats_file: Path) -> int:
    """Every function call in a dump, Python and C alike."""
    with stats_file.open("rb") as dump:
        raw: dict[tuple[str, int, str], Any] = marshal.load(dump)
    return sum(calls for _, calls, *_rest in raw.values())


def _matches(key: tuple[str, int, str], where: str, name: str) -> bool:
    filename, _, function = key
    if function != name:
        return False
    if where == "~":
        return filename == "~"
    if where.startswith("<"):
        return filename.startswith(where)
    return filename.endswith(where) or (where.endswith("/") and f"/{where}" in filename)


def counts(stats_file: Path) -> dict[str, int]:
    """Calls of every ``WATCHED`` function in a dump (primitive and recursive calls alike)."""
    with stats_file.open("rb") as dump:
        raw: dict[tuple[str, int, str], Any] = marshal.load(dump)
    found = dict.fromkeys((label for label, _, _ in WATCHED), 0)
    for key, (_, calls, *_rest) in raw.items():
        for label, suffix, name in WATCHED:
            if _matches(key, suffix, name):
                found[label] += calls
    return found


def top_calls(stats_file: Path, requests: int, limit: int = 25) -> list[tuple[float, str]]:
    """The most-called functions, per request."""
    with stats_file.open("rb") as dump:
        raw: dict[tuple[str, int, str], Any] = marshal.load(dump)
    ranked = sorted(raw.items(), key=lambda item: -item[1][1])[:limit]
    return [(v[1] / requests, f"{_short(k[0])}:{k[2]}") for k, v in ranked]


def _short(path: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


@dataclass(frozen=True)
class Counted:
    """Per-request counts of one server kind under one scenario."""

    kind: str
    requests: int
    per_request: dict[str, float]
    top: list[tuple[float, str]]


def count(kind: str, factory: Callable[[], Callable[[int], bytes]], requests: int) -> Counted:
    """Serve ``kind`` under the call counter, send ``requests`` requests, divide."""
    from bench.load import run_load  # noqa: PLC0415 -- bench.web imports the servers' deps
    from bench.web import HOST, LOAD_CPU, pin_to, running_server  # noqa: PLC0415

    pin_to(LOAD_CPU)
    with tempfile.TemporaryDirectory(prefix="buytokens-count-") as tmp:
        directory = Path(tmp)
        dump = directory / "calls.pstats"
        with running_server(kind, directory, count_calls=dump) as server:
            result = run_load(
                HOST,
                server.port,
                factory(),
                clients=8,
                seconds=3600.0,
                warmup=0.0,
                prebuilt=requests,
                limit=requests,
            )
        answered = result.requests
        found = counts(dump)
        found[ALL_CALLS] = all_calls(dump)
        found[LOOP_CALLS] = all_calls(loop_dump(dump))
        return Counted(
            kind,
            answered,
            {label: n / answered for label, n in found.items()},
            top_calls(loop_dump(dump), answered),
        )


def main(argv: list[str] | None = None) -> None:
    from bench.web import checkout_requests, webhook_requests  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--scenario", choices=("webhook", "checkout"), default="webhook")
    parser.add_argument(
        "--top", action="store_true", help="also list the event-loop thread's most-called functions"
    )
    args = parser.parse_args(argv)
    if args.scenario == "webhook":
        kinds = ("app", "floor", "ceiling")
        factory: Callable[[], Callable[[int], bytes]] = lambda: webhook_requests("count")  # noqa: E731
    else:
        kinds = ("app-memory-gateway", "floor", "ceiling")
        factory = checkout_requests
    results = [count(kind, factory, args.requests) for kind in kinds]
    width = max(len(label) for label in LABELS)
    print(f"calls per request, {args.scenario}, {args.requests} requests, 8 clients")
    print(f"{'':{width}}  " + "  ".join(f"{r.kind:>8}" for r in results))
    for label in LABELS:
        print(f"{label:{width}}  " + "  ".join(f"{r.per_request[label]:8.2f}" for r in results))
    if args.top:
        for result in results:
            print(f"\nmost-called functions per request on the event-loop thread, {result.kind}:")
            for per_request, name in result.top:
                print(f"  {per_request:8.1f}  {name}")


if __name__ == "__main__":
    main()
