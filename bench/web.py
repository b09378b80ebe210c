"""P1 and P2: the product's HTTP throughput and latency beside the ceiling and the durable floor.

Every app runs in its own ``uvicorn`` process (``bench.servers``: one worker, the
options of ``buytokens serve``) pinned to CPU 0; the load generator
(``bench.load``, 8 keep-alive clients) runs in this process pinned to CPU 1. The
apps take turns, round after round, on identical request bytes, so slow drift of
the machine hits all of them alike. Throughput is the median over rounds;
latency percentiles pool every round's requests.

P1 sends signed ``payment_intent.succeeded`` webhooks, each for a new payment
intent (unique purchases), to the product on the SQLite store: the whole event
as Stripe sends it (``bench/fixtures/payment_intent_succeeded.json``, about
2.5 KB of indented JSON). P2 creates payment intents with a bearer JWT, the
product using the in-memory Stripe twin.

Besides requests per second and latency, every round reads the server's CPU
time from ``/proc`` (``bench.procstat``): CPU seconds per request answered is
the figure that decides throughput wherever CPU, not the disk, is scarce.

The durability pass runs the product and the floor once more under ``strace``
(only ``fsync``/``fdatasync`` are traced, so the rest runs at full speed, and
nothing of it is in the timed rounds), kills each server with SIGKILL, and
counts what is on disk against what was answered 2xx.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from bench import procstat
from bench.baselines import CHECKOUT_PATH, WEBHOOK_PATH
from bench.load import LoadResult, RequestFactory, http_request, run_load
from bench.servers import JWT_SECRET, WEBHOOK_SECRET
from bench.table import Row, at_least, at_most
from buytokens.adapters.stripe_events import sign_payload
from buytokens.domain.catalogue import DEFAULT_CATALOGUE

HOST = "127.0.0.1"
SERVER_CPU = 0
LOAD_CPU = 1
USERS = 64
PACKAGE = DEFAULT_CATALOGUE.get("package_500k")
ROOT = Path(__file__).resolve().parent.parent
EVENT_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "payment_intent_succeeded.json"
CLIENTS = 8
ASYNCIO_H11 = "asyncio-h11"
UVLOOP_HTTPTOOLS = "uvloop-httptools"


@dataclass
class Measured:
    """One app's results over every round of a scenario."""

    kind: str
    rounds: list[LoadResult]

    @property
    def throughput(self) -> float:
        return statistics.median(r.throughput for r in self.rounds)

    def percentile(self, p: float) -> float:
        pooled = LoadResult(seconds=1.0)
        for result in self.rounds:
            pooled.latencies.extend(result.latencies)
        return pooled.percentile(p)

    @property
    def failures(self) -> int:
        return sum(r.failures for r in self.rounds)

    @property
    def generator_busy(self) -> float:
        return max(r.generator_busy for r in self.rounds)

    @property
    def server(self) -> procstat.Usage:
        """What the server spent over every round's window, summed."""
        total = procstat.Usage()
        for result in self.rounds:
            total += result.server or procstat.Usage()
        return total

    @property
    def answered(self) -> int:
        return sum(r.requests for r in self.rounds)

    @property
    def cpu_per_request(self) -> float:
        """Server CPU seconds (user + system, all threads) per request answered."""
        return self.server.cpu / self.answered if self.answered else float("nan")

    @property
    def kernel_cpu_per_request(self) -> float:
        """The part of ``cpu_per_request`` spent in the kernel (syscalls, wake-ups, fsync)."""
        return self.server.system / self.answered if self.answered else float("nan")

    def thread_cpu_per_request(self, kind: str) -> float:
        """CPU per request of one kind of thread (``bench.procstat.thread_kind``)."""
        spent = self.server.by_thread.get(kind, 0.0)
        return spent / self.answered if self.answered else float("nan")

    @property
    def switches_per_request(self) -> float:
        """Voluntary context switches of the server's threads per request answered."""
        return self.server.voluntary / self.answered if self.answered else float("nan")


def pin_to(cpu: int) -> None:
    """Pin the calling process to ``cpu`` when the machine has it (no-op otherwise)."""
    if hasattr(os, "sched_setaffinity") and cpu in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {cpu})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_until_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Block until ``GET /healthz`` answers, or fail if the server exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        try:
            with socket.create_connection((HOST, port), timeout=1) as sock:
                sock.sendall(http_request("GET", "/healthz") + b"")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not answer within {timeout} s")


@dataclass(frozen=True)
class Server:
    """A running server process (``pid`` is the Python server's, under any wrapper)."""

    port: int
    pid: int


@contextmanager
def running_server(
    kind: str,
    directory: Path,
    *,
    stack: str = ASYNCIO_H11,
    count_calls: Path | None = None,
    options: Sequence[str] = (),
    wrapper: Sequence[str] = (),
) -> Iterator[Server]:
    """Serve ``kind`` (see ``bench.servers``) pinned to the server CPU.

    ``options`` go to ``bench.servers`` as they are. ``wrapper`` is a command line the
    server runs under (``strace ...``); the yielded pid is then the wrapper's child, the
    server itself.
    """
    port = free_port()
    log = (directory / f"{kind}.log").open("wb")
    command = [
        *wrapper,
        sys.executable,
        "-m",
        "bench.servers",
        kind,
        "--port",
        str(port),
        "--dir",
        str(directory),
        "--stack",
        stack,
    ]
    if count_calls is not None:
        command += ["--count-calls", str(count_calls)]
    command += options
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: pin_to(SERVER_CPU),  # noqa: PLW1509 -- no threads started yet
    )
    try:
        wait_until_listening(port, process)
        yield Server(port, _child_of(process.pid) if wrapper else process.pid)
    finally:
        stop(process)
        log.close()


def _child_of(pid: int) -> int:
    """The only child process of ``pid``."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    if len(children) != 1:
        raise RuntimeError(f"expected one child of {pid}, found {children}")
    return int(children[0])


def stop(process: subprocess.Popen[bytes]) -> None:
    """Ask a server to shut down; kill it if it has not within 30 s."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _event_template() -> str:
    """The fixture as Stripe sends it (2-space indented JSON), with the varying values marked."""
    event = json.loads(EVENT_FIXTURE.read_text())
    intent = event["data"]["object"]
    event.update(id="@EVENT@", created=0)
    event["request"]["id"] = "@REQUEST@"
    intent.update(
        id="@INTENT@",
        client_secret="@INTENT@_secret_q8PcXbN4s2LkT7vRwY1mZ0aJd",
        latest_charge="@CHARGE@",
        amount=PACKAGE.price.amount,
        amount_received=PACKAGE.price.amount,
        currency=PACKAGE.price.currency,
        created=0,
    )
    intent["metadata"].update(userId="@USER@", packageId=PACKAGE.id, tokens=str(PACKAGE.tokens))
    return json.dumps(event, indent=2).replace('"created": 0', '"created": @CREATED@')


_TEMPLATE = _event_template()


def succeeded_event(event_id: str, intent_id: str, user_id: str, created: int) -> dict[str, Any]:
    """``succeeded_payload``'s event as a dict, to change before sending."""
    event: dict[str, Any] = json.loads(succeeded_payload(event_id, intent_id, user_id, created))
    return event


def succeeded_payload(event_id: str, intent_id: str, user_id: str, created: int) -> bytes:
    """The body of a ``payment_intent.succeeded`` event for one package_500k purchase.

    The whole event as Stripe's current API sends it (the full PaymentIntent,
    indented), from ``bench/fixtures/payment_intent_succeeded.json``.
    """
    return (
        _TEMPLATE.replace("@EVENT@", event_id)
        .replace("@INTENT@", intent_id)
        .replace("@CHARGE@", "ch" + intent_id[2:])
        .replace("@REQUEST@", "req" + event_id[3:])
        .replace("@USER@", user_id)
        .replace("@CREATED@", str(created))
        .encode()
    )


def signed_webhook(payload: bytes, secret: str = WEBHOOK_SECRET) -> bytes:
    """The request Stripe would send with the event ``payload``."""
    headers = {
        "Content-Type": "application/json",
        "Stripe-Signature": sign_payload(payload, secret),
    }
    return http_request("POST", WEBHOOK_PATH, payload, headers)


def event_bytes() -> int:
    """The size of one webhook body of the benchmark."""
    return len(
        succeeded_payload("evt_3RzBench00000000000000", "pi_3RzBench00000000000000", "u0", 0)
    )


def webhook_requests(prefix: str) -> RequestFactory:
    """Request ``i``: a signed success event for a new intent of user ``i mod USERS``."""
    created = int(time.time())

    def build(i: int) -> bytes:
        return signed_webhook(
            succeeded_payload(f"evt_{prefix}_{i}", f"pi_{prefix}_{i}", f"user{i % USERS}", created)
        )

    return build


def bearer_token(user_id: str, secret: str = JWT_SECRET) -> str:
    """A LibreChat-style access token valid for an hour."""
    return jwt.encode({"id": user_id, "exp": int(time.time()) + 3600}, secret, algorithm="HS256")


def checkout_requests() -> RequestFactory:
    """Request ``i``: user ``i mod USERS`` creates a card payment intent for package_500k."""
    body = json.dumps({"packageId": PACKAGE.id, "paymentMethod": "card"}).encode()
    prepared = [
        http_request(
            "POST",
            CHECKOUT_PATH,
            body,
            {"Content-Type": "application/json", "Authorization": f"Bearer {bearer_token(u)}"},
        )
        for u in (f"user{n}" for n in range(USERS))
    ]
    return lambda i: prepared[i % USERS]


@dataclass(frozen=True)
class Contender:
    """One app of a comparison: its label in the results, its server kind, its uvicorn stack,
    and options for ``bench.servers``."""

    label: str
    kind: str
    stack: str = ASYNCIO_H11
    options: tuple[str, ...] = ()


def compare(
    contenders: Sequence[Contender],
    requests_for: Callable[[str], RequestFactory],
    *,
    rounds: int,
    seconds: float,
    warmup: float,
    clients: int = CLIENTS,
) -> dict[str, Measured]:
    """Measure each contender in turn, ``rounds`` times, on the same requests."""
    pin_to(LOAD_CPU)
    results = {c.label: Measured(c.label, []) for c in contenders}
    with servers(contenders) as running:
        for number in range(rounds):
            for contender in contenders:
                server = running[contender.label]
                result = run_load(
                    HOST,
                    server.port,
                    requests_for(f"{contender.label}{number}"),
                    clients=clients,
                    seconds=seconds,
                    warmup=warmup,
                    prebuilt=int(2500 * (seconds + warmup)),
                    server_pid=server.pid if procstat.available() else None,
                )
                results[contender.label].rounds.append(result)
    return results


@contextmanager
def servers(contenders: Sequence[Contender]) -> Iterator[dict[str, Server]]:
    """Every contender running at once, each on a fresh directory."""
    with tempfile.TemporaryDirectory(prefix="buytokens-bench-") as tmp, ExitStack() as stack:
        started = {}
        for contender in contenders:
            directory = Path(tmp) / contender.label
            directory.mkdir()
            started[contender.label] = stack.enter_context(
                running_server(
                    contender.kind, directory, stack=contender.stack, options=contender.options
                )
            )
        yield started


def _trio(kind: str, stack: str = ASYNCIO_H11, suffix: str = "") -> list[Contender]:
    return [
        Contender(f"ceiling{suffix}", "ceiling", stack),
        Contender(f"floor{suffix}", "floor", stack),
        Contender(f"app{suffix}", kind, stack),
    ]


def bench_webhooks(
    rounds: int, seconds: float, warmup: float, *, both_stacks: bool = False
) -> dict[str, Measured]:
    """P1: unique signed purchases, 8 clients, one worker (on both uvicorn stacks if asked)."""
    contenders = _trio("app")
    if both_stacks:
        contenders += _trio("app", UVLOOP_HTTPTOOLS, "+uvloop")
    return compare(contenders, webhook_requests, rounds=rounds, seconds=seconds, warmup=warmup)


def bench_checkout(
    rounds: int, seconds: float, warmup: float, *, both_stacks: bool = False
) -> dict[str, Measured]:
    """P2: create-payment-intent with the in-memory Stripe twin, 8 clients, one worker."""
    contenders = _trio("app-memory-gateway")
    if both_stacks:
        contenders += _trio("app-memory-gateway", UVLOOP_HTTPTOOLS, "+uvloop")
    return compare(
        contenders,
        lambda _prefix: checkout_requests(),
        rounds=rounds,
        seconds=seconds,
        warmup=warmup,
    )


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f}"


def _scenario_rows(
    name: str,
    measured: dict[str, Measured],
    *,
    throughput_goal: float,
    cpu_goal: float | None,
    suffix: str = "",
    stack_note: str = "",
) -> list[Row]:
    app, floor = measured[f"app{suffix}"], measured[f"floor{suffix}"]
    ceiling = measured[f"ceiling{suffix}"]
    name = f"{name}{stack_note}"
    share_of_floor = app.throughput / floor.throughput
    share_of_ceiling = app.throughput / ceiling.throughput
    p99 = app.percentile(99) / floor.percentile(99)
    p50 = app.percentile(50) / floor.percentile(50)
    failures = app.failures + floor.failures + ceiling.failures
    busy = max(m.generator_busy for m in (app, floor, ceiling))
    rows = [
        Row(
            f"{name} throughput, app vs durable floor",
            f"{app.throughput:.0f} vs {floor.throughput:.0f} req/s",
            share_of_floor,
            *at_least(share_of_floor, throughput_goal),
        ),
        Row(
            f"{name} throughput, app vs ceiling (bare endpoint)",
            f"{app.throughput:.0f} vs {ceiling.throughput:.0f} req/s",
            share_of_ceiling,
        ),
        Row(
            f"{name} p99 latency, app vs durable floor",
            f"{app.percentile(99) * 1e3:.1f} vs {floor.percentile(99) * 1e3:.1f} ms",
            p99,
            *at_most(p99, 1.5),
        ),
        Row(
            f"{name} p50 latency, app vs durable floor",
            f"{app.percentile(50) * 1e3:.1f} vs {floor.percentile(50) * 1e3:.1f} ms",
            p50,
        ),
    ]
    if procstat.available():
        rows += _cpu_rows(name, app, floor, ceiling, cpu_goal)
    rows.append(
        Row(
            f"{name} non-2xx answers (all three apps) / load generator CPU",
            f"{failures} / {busy:.0%} of its core at most",
            float(failures),
            "0 failures",
            failures == 0,
        )
    )
    return rows


def _cpu_rows(
    name: str, app: Measured, floor: Measured, ceiling: Measured, cpu_goal: float | None
) -> list[Row]:
    cpu = app.cpu_per_request / floor.cpu_per_request
    floor_share = floor.cpu_per_request / ceiling.cpu_per_request
    loop = app.thread_cpu_per_request("event loop") / floor.thread_cpu_per_request("event loop")
    off_loop = ("worker threads", "writer thread", "other threads")
    app_off = sum(app.thread_cpu_per_request(kind) for kind in off_loop)
    floor_off = sum(floor.thread_cpu_per_request(kind) for kind in off_loop)
    switches = app.switches_per_request / floor.switches_per_request

    def threads(m: Measured) -> str:
        return "/".join(_us(m.thread_cpu_per_request(kind)) for kind in off_loop[:2])

    return [
        Row(
            f"{name} server CPU per request, app vs durable floor",
            f"{_us(app.cpu_per_request)} vs {_us(floor.cpu_per_request)} us "
            f"(kernel {_us(app.kernel_cpu_per_request)} vs {_us(floor.kernel_cpu_per_request)})",
            cpu,
            *(at_most(cpu, cpu_goal) if cpu_goal is not None else ()),
        ),
        Row(
            f"{name} server CPU per request, durable floor vs ceiling",
            f"{_us(floor.cpu_per_request)} vs {_us(ceiling.cpu_per_request)} us "
            f"(kernel {_us(floor.kernel_cpu_per_request)} vs "
            f"{_us(ceiling.kernel_cpu_per_request)})",
            floor_share,
        ),
        Row(
            f"{name} event-loop thread CPU per request, app vs floor",
            f"{_us(app.thread_cpu_per_request('event loop'))} vs "
            f"{_us(floor.thread_cpu_per_request('event loop'))} us",
            loop,
        ),
        Row(
            f"{name} other threads' CPU per request (workers/writer), app vs floor",
            f"{_us(app_off)} ({threads(app)}) vs {_us(floor_off)} ({threads(floor)}) us",
            app_off / floor_off if floor_off else float("nan"),
        ),
        Row(
            f"{name} voluntary context switches per request, app vs floor",
            f"{app.switches_per_request:.1f} vs {floor.switches_per_request:.1f}",
            switches,
        ),
    ]


def _stack_rows(name: str, measured: dict[str, Measured]) -> list[Row]:
    """What uvloop + httptools change for each app, side by side in the same rounds."""
    rows = []
    for label in ("app", "floor", "ceiling"):
        base, fast = measured[label], measured[f"{label}+uvloop"]
        gain = fast.throughput / base.throughput
        cpu = ""
        if procstat.available():
            cpu = f", {_us(fast.cpu_per_request)} vs {_us(base.cpu_per_request)} us CPU"
        rows.append(
            Row(
                f"{name} uvloop+httptools vs asyncio+h11, {label}",
                f"{fast.throughput:.0f} vs {base.throughput:.0f} req/s{cpu}",
                gain,
            )
        )
    return rows


# -- durability ---------------------------------------------------------------


@dataclass(frozen=True)
class Durability:
    """One server's durability pass."""

    answered: int  # 2xx answers to new purchases
    on_disk: int  # purchases credited in the file after SIGKILL
    wal_syncs: int  # fsync/fdatasync calls on the WAL file while serving


_STRACE = ("strace", "-f", "-qq", "-y", "--seccomp-bpf", "-e", "trace=fsync,fdatasync")
_CREDITED = {
    "app": "SELECT COUNT(*) FROM purchases WHERE tokens_credited > 0",
    "floor": "SELECT COUNT(*) FROM payments",
}


def strace_available() -> bool:
    return procstat.available() and shutil.which("strace") is not None


def durability_pass(kind: str, seconds: float) -> Durability:
    """Serve ``kind`` under strace, send ``seconds`` of new purchases, SIGKILL it, count."""
    pin_to(LOAD_CPU)
    with tempfile.TemporaryDirectory(prefix="buytokens-durability-") as tmp:
        directory = Path(tmp)
        trace = directory / "fsyncs.txt"
        with running_server(
            kind, directory, wrapper=(*_STRACE, "-e", "signal=none", "-o", str(trace))
        ) as server:
            result = run_load(
                HOST,
                server.port,
                webhook_requests(f"durable{kind}"),
                clients=CLIENTS,
                seconds=seconds,
                warmup=0.0,
                prebuilt=int(2500 * seconds),
            )
            # No goodbye: whatever was answered must already be in the file.
            os.kill(server.pid, signal.SIGKILL)
        answered = sum(n for status, n in result.statuses.items() if 200 <= status < 300)
        database = directory / f"{kind}.sqlite3"
        with sqlite3.connect(database) as conn:
            on_disk = int(conn.execute(_CREDITED[kind]).fetchone()[0])
        syncs = sum(
            1
            for line in trace.read_text().splitlines()
            if "sync(" in line and f"{database.name}-wal>" in line and "= 0" in line
        )
        return Durability(answered, on_disk, syncs)


def _durability_rows(seconds: float) -> list[Row]:
    app, floor = durability_pass("app", seconds), durability_pass("floor", seconds)
    kept = app.on_disk / app.answered if app.answered else 0.0
    covered = app.wal_syncs / (app.answered / CLIENTS) if app.answered else 0.0

    def per_sync(d: Durability) -> str:
        return f"{d.answered / d.wal_syncs:.1f}" if d.wal_syncs else "inf"

    return [
        Row(
            "P1 durability: credits on disk after SIGKILL vs 2xx answered, app",
            f"{app.on_disk} of {app.answered} (floor: {floor.on_disk} of {floor.answered})",
            kept,
            *at_least(kept, 1.0),
        ),
        Row(
            f"P1 durability: WAL fsyncs vs credits / {CLIENTS} clients in flight, app",
            f"{app.wal_syncs} for {app.answered}, {per_sync(app)} credits per fsync "
            f"(floor: {floor.wal_syncs} for {floor.answered}, {per_sync(floor)})",
            covered,
            *at_least(covered, 1.0),
        ),
    ]


def rows(quick: bool, *, uvicorn_standard: bool = False) -> list[Row]:
    """P1 and P2 as table rows; with ``uvicorn_standard`` also both on uvloop + httptools."""
    rounds, seconds, warmup = (1, 2.0, 0.5) if quick else (3, 5.0, 1.0)
    size = f" ({event_bytes() / 1000:.1f} kB events)"
    p1 = bench_webhooks(rounds, seconds, warmup, both_stacks=uvicorn_standard)
    p2 = bench_checkout(rounds, seconds, warmup, both_stacks=uvicorn_standard)
    table = _scenario_rows(f"P1 webhook{size}", p1, throughput_goal=1.0, cpu_goal=1.5)
    if strace_available():
        table += _durability_rows(1.0 if quick else 3.0)
    table += _scenario_rows("P2 create-intent", p2, throughput_goal=0.9, cpu_goal=None)
    if uvicorn_standard:
        uv = " on uvloop+httptools"
        table += _scenario_rows(
            "P1 webhook", p1, throughput_goal=1.0, cpu_goal=1.5, suffix="+uvloop", stack_note=uv
        )
        table += _stack_rows("P1", p1)
        table += _scenario_rows(
            "P2 create-intent",
            p2,
            throughput_goal=0.9,
            cpu_goal=None,
            suffix="+uvloop",
            stack_note=uv,
        )
        table += _stack_rows("P2", p2)
    return table
