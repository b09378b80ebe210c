"""Where the product's CPU goes under P1 and P2 load: py-spy samples of the server.

``python -m bench.profile [--seconds 8] [--scenario webhook|checkout] [--kind app]``
starts a server exactly as ``bench.web`` does, drives it with the same load, and
samples every thread of it with ``py-spy record --native --idle``. Each sample
is then sorted by its innermost named native frame:

* **waiting**: blocked on a lock, a condition, the GIL or ``epoll`` (idle worker
  threads, the event loop between events, a worker waiting for the SQLite
  writer); dropped;
* **disk**: inside ``fdatasync``/``fsync``; counted apart, it is no CPU;
* **CPU**: everything else; these are the samples summarised, so the shares are
  shares of the CPU the server spent (threads runnable but waiting for a core
  count too, for the product and the baselines alike).

It prints the CPU by thread, by package and by function (own and inclusive
time), and keeps the raw stacks (``--keep DIR``) for a flame graph. ``--gil``
samples only the GIL holder instead (py-spy's ``--gil``).

py-spy can miss threads: on the 2-vCPU machine of docs/PERFORMANCE.md it saw
the worker threads and the SQLite writer almost only while they waited, though
``/proc`` charged them a third of the CPU. ``--perf`` samples with Linux
``perf`` instead (``cpu-clock``, every thread, user and kernel): it cannot name
Python functions on 3.11, but it charges every on-CPU sample to a thread and a
library (the interpreter, SQLite, OpenSSL, the kernel) and a C symbol, which
is what the threads the Python sampler misses need.

Needs ``py-spy`` (``.venv/bin/pip install py-spy``, or the ``bench`` extra) and
permission to attach to a process the user started.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.load import RequestFactory, run_load
from bench.web import (
    HOST,
    LOAD_CPU,
    checkout_requests,
    pin_to,
    running_server,
    webhook_requests,
)

SCENARIOS: dict[str, tuple[str, Callable[[], RequestFactory]]] = {
    "webhook": ("app", lambda: webhook_requests("profile")),
    "checkout": ("app-memory-gateway", checkout_requests),
}

# Innermost named native frames that mean the thread is not running.
WAITS = frozenset(
    {
        "PyThread_acquire_lock_timed",
        "lock_PyThread_acquire_lock",
        "pthread_cond_timedwait",
        "pthread_cond_wait",
        "pthread_mutex_lock",
        "take_gil",
        "epoll_wait",
        "poll",
        "select",
        "sem_wait",
        "sem_timedwait",
        "sem_clockwait",
        "futex_wait",
        "nanosleep",
        "clock_nanosleep",
    }
)
DISK = frozenset({"fdatasync", "fsync"})
_ADDRESS = re.compile(r"0x[0-9a-f]+ \(")


def py_spy() -> str:
    """The py-spy executable next to this interpreter, or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    return found


def record(
    kind: str,
    requests: Callable[[], RequestFactory],
    seconds: float,
    directory: Path,
    *,
    gil_only: bool = False,
) -> Path:
    """Sample server ``kind`` under load; return the raw stacks file."""
    pin_to(LOAD_CPU)
    output = directory / f"{kind}.collapsed"
    server_dir = directory / kind
    server_dir.mkdir()
    mode = ["--gil"] if gil_only else ["--native", "--idle", "--threads"]
    with running_server(kind, server_dir) as server:
        # Warm the server up before sampling starts.
        run_load(HOST, server.port, requests(), clients=8, seconds=1.0, warmup=0.0)
        sampler = subprocess.Popen(
            [
                py_spy(),
                "record",
                "--pid",
                str(server.pid),
                *mode,
                "--rate",
                "250",
                "--duration",
                str(int(seconds)),
                "--format",
                "raw",
                "--output",
                str(output),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        run_load(HOST, server.port, requests(), clients=8, seconds=seconds + 1, warmup=0.0)
        _, errors = sampler.communicate(timeout=60)
        if sampler.returncode != 0:
            raise SystemExit(f"py-spy failed: {errors.decode(errors='replace').strip()}")
    return output


def _frame_name(frame: str) -> str:
    """``function (path:line)`` as ``function (module-ish path)`` without the line."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0].rstrip(")")
    for marker in ("site-packages/", "/src/", "/lib/python3.11/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def _is_python(frame: str) -> bool:
    return ".py:" in frame or "<frozen" in frame or "<string>" in frame


def _package(frame: str) -> str:
    """Who owns a Python frame: ``buytokens/<layer>``, a third-party package, or the stdlib."""
    _, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    if "/src/buytokens/" in path:
        parts = path.split("/src/buytokens/", 1)[1].split("/")
        return "buytokens/" + "/".join(parts[:-1] or parts)
    if "/bench/" in path:
        return "bench"
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/")[0].removesuffix(".py")
    if "/lib/python3" in path:
        module = path.split("/lib/python3", 1)[1].split("/", 2)[1]
        return "stdlib " + module.removesuffix(".py")
    return path or frame


def _thread_kind(frame: str) -> str:
    name = frame.split(":", 1)[1].strip() if ":" in frame else frame
    return "sqlite writer" if name.startswith("sqlite-writer") else name


@dataclass
class Profile:
    """Samples of one server, sorted into CPU, disk and waiting."""

    cpu: int = 0
    disk: int = 0
    waiting: int = 0
    threads: Counter[str] = field(default_factory=Counter)
    own: Counter[str] = field(default_factory=Counter)
    own_native: Counter[str] = field(default_factory=Counter)
    packages: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)


def classify(collapsed: Path) -> Profile:
    """Sort every sample; summarise the CPU ones."""
    profile = Profile()
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = next((f for f in frames if f.startswith("thread ")), "thread: ?")
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        named = [f for f in frames if not _ADDRESS.match(f)]
        innermost = named[-1].split(" (", 1)[0] if named else "?"
        if innermost in WAITS:
            profile.waiting += count
            continue
        if innermost in DISK:
            profile.disk += count
            continue
        python = [f for f in frames if _is_python(f)]
        if not python:
            continue
        profile.cpu += count
        profile.threads[_thread_kind(thread)] += count
        profile.own[_frame_name(python[-1])] += count
        if named and not _is_python(named[-1]):
            profile.own_native[f"{innermost} under {_frame_name(python[-1])}"] += count
        profile.packages[_package(python[-1])] += count
        for frame in {_frame_name(f) for f in python}:
            profile.inclusive[frame] += count
    return profile


def summarise(collapsed: Path, top: int = 20) -> str:
    """CPU by thread, package and function, as shares of the CPU samples."""
    p = classify(collapsed)
    total = p.cpu or 1

    def table(title: str, counter: Counter[str], n: int) -> list[str]:
        return ["", title, *(f"  {c / total:6.1%}  {name}" for name, c in counter.most_common(n))]

    lines = [f"{p.cpu} CPU samples; {p.disk} in fdatasync/fsync; {p.waiting} waiting (dropped)"]
    lines += table("CPU by thread:", p.threads, top)
    lines += table("own CPU by package (innermost Python frame):", p.packages, top)
    lines += table("own CPU by function (innermost Python frame):", p.own, top)
    lines += table("own CPU in native code, by caller:", p.own_native, top)
    lines += table("inclusive CPU:", p.inclusive, top * 2)
    return "\n".join(lines)


def record_perf(
    kind: str, requests: Callable[[], RequestFactory], seconds: float, directory: Path
) -> Path:
    """``perf record`` every thread of server ``kind`` under load; return the data file."""
    if shutil.which("perf") is None:
        raise SystemExit("perf is not installed")
    pin_to(LOAD_CPU)
    output = directory / f"{kind}.perf"
    server_dir = directory / kind
    server_dir.mkdir()
    with running_server(kind, server_dir) as server:
        run_load(HOST, server.port, requests(), clients=8, seconds=1.0, warmup=0.0)
        sampler = subprocess.Popen(
            [
                *("perf", "record", "-q", "-e", "cpu-clock", "-F", "997"),
                *("-p", str(server.pid), "-o", str(output), "--", "sleep", str(int(seconds))),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        run_load(HOST, server.port, requests(), clients=8, seconds=seconds + 1, warmup=0.0)
        _, errors = sampler.communicate(timeout=60)
        if sampler.returncode != 0:
            raise SystemExit(f"perf failed: {errors.decode(errors='replace').strip()}")
    return output


def summarise_perf(data: Path, top: int = 20) -> str:
    """On-CPU samples by thread, by thread and library, and by thread and C symbol."""
    lines = []
    for title, keys in (
        ("CPU by thread:", "comm"),
        ("CPU by thread and library:", "comm,dso"),
        ("CPU by thread and symbol:", "comm,sym"),
    ):
        report = subprocess.run(
            ["perf", "report", "-i", str(data), "--stdio", "--no-children", "--sort", keys],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rows = [r.strip() for r in report.splitlines() if r.strip() and not r.startswith("#")]
        lines += ["", title, *(f"  {r}" for r in rows[:top])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), action="append")
    parser.add_argument("--kind", help="the server to sample (default: the scenario's app)")
    parser.add_argument("--keep", type=Path, help="copy the raw stacks here")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--gil", action="store_true", help="sample only the GIL holder")
    parser.add_argument("--perf", action="store_true", help="sample with Linux perf instead")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="buytokens-profile-") as tmp:
        for scenario in args.scenario or sorted(SCENARIOS):
            kind, requests = SCENARIOS[scenario]
            kind = args.kind or kind
            directory = Path(tmp) / scenario
            directory.mkdir()
            if args.perf:
                data = record_perf(kind, requests, args.seconds, directory)
                print(f"== {scenario}: {kind} under 8 clients, {args.seconds} s, perf cpu-clock")
                print(summarise_perf(data, args.top))
                if args.keep:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    shutil.copy(data, args.keep / f"{scenario}-{kind}.perf")
                continue
            collapsed = record(kind, requests, args.seconds, directory, gil_only=args.gil)
            print(f"== {scenario}: {kind} under 8 clients, {args.seconds} s")
            print(summarise(collapsed, args.top))
            print()
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(collapsed, args.keep / f"{scenario}-{kind}.collapsed")


if __name__ == "__main__":
    main()
