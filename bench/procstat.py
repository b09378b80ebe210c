"""CPU time and context switches of another process, read from ``/proc`` (Linux only).

``snapshot(pid)`` reads the process's user+system CPU seconds (all its threads,
including those that have exited) and, per live thread, its CPU seconds and its
voluntary and involuntary context switches. The difference of two snapshots
taken around a measured window says what the server spent on it: a thread hop
(event loop to a worker thread, worker to the SQLite writer and back) shows up
as voluntary context switches, because the thread handing work over blocks
until the answer comes back.

Resolution is one clock tick (``SC_CLK_TCK``, usually 10 ms) per reading, far
below the seconds of CPU a measured window costs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def available() -> bool:
    """Whether this machine exposes ``/proc/<pid>/stat``."""
    return Path(f"/proc/{os.getpid()}/stat").exists()


def _cpu_seconds(stat_path: Path) -> tuple[float, float]:
    """User and system CPU seconds."""
    text = stat_path.read_text()
    # The command name in parentheses may contain spaces; the fields after it do not.
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return utime / _TICK, stime / _TICK


def _switches(status_path: Path) -> tuple[int, int]:
    voluntary = involuntary = 0
    for line in status_path.read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            voluntary = int(line.split()[1])
        elif line.startswith("nonvoluntary_ctxt_switches:"):
            involuntary = int(line.split()[1])
    return voluntary, involuntary


def thread_kind(pid: int, tid: int, comm: str) -> str:
    """What a server thread does, from its native name (``bench.servers`` sets them)."""
    if tid == pid:
        return "event loop"
    if comm.startswith("AnyIO"):
        return "worker threads"
    if comm.startswith(("sqlite-writer", "handoff")):
        return "writer thread"  # the product's SQLite writer, or its stand-in in hop_app
    return "other threads"


@dataclass(frozen=True)
class Snapshot:
    """One reading of a process."""

    user: float  # user seconds of the whole process
    system: float  # system (kernel) seconds of the whole process
    threads: dict[int, tuple[str, float]] = field(default_factory=dict)  # tid -> (kind, CPU s)
    switches: dict[int, tuple[int, int]] = field(default_factory=dict)  # tid -> (vol, invol)


def snapshot(pid: int) -> Snapshot:
    """Read ``pid`` now; threads that exit while it is read are skipped."""
    root = Path(f"/proc/{pid}")
    user, system = _cpu_seconds(root / "stat")
    threads: dict[int, tuple[str, float]] = {}
    switches: dict[int, tuple[int, int]] = {}
    for task in (root / "task").iterdir():
        try:
            tid = int(task.name)
            kind = thread_kind(pid, tid, (task / "comm").read_text().strip())
            threads[tid] = (kind, sum(_cpu_seconds(task / "stat")))
            switches[tid] = _switches(task / "status")
        except (OSError, ValueError):
            continue
    return Snapshot(user, system, threads, switches)


@dataclass
class Usage:
    """What a process spent between two snapshots.

    ``by_thread`` counts only threads alive at the end; what exited threads
    spent is in ``cpu`` alone.
    """

    cpu: float = 0.0  # user + system seconds, all threads
    system: float = 0.0  # the part of ``cpu`` spent in the kernel (syscalls, fsync, wake-ups)
    by_thread: dict[str, float] = field(default_factory=dict)  # thread kind -> CPU seconds
    voluntary: int = 0  # context switches of the threads alive at the end
    involuntary: int = 0

    def __add__(self, other: Usage) -> Usage:
        by_thread = dict(self.by_thread)
        for kind, seconds in other.by_thread.items():
            by_thread[kind] = by_thread.get(kind, 0.0) + seconds
        return Usage(
            self.cpu + other.cpu,
            self.system + other.system,
            by_thread,
            self.voluntary + other.voluntary,
            self.involuntary + other.involuntary,
        )


def usage(before: Snapshot, after: Snapshot) -> Usage:
    """``after - before``; a thread born in between counts from zero."""
    voluntary = involuntary = 0
    for tid, (vol, invol) in after.switches.items():
        vol0, invol0 = before.switches.get(tid, (0, 0))
        voluntary += vol - vol0
        involuntary += invol - invol0
    by_thread: dict[str, float] = {}
    for tid, (kind, seconds) in after.threads.items():
        spent = seconds - before.threads.get(tid, (kind, 0.0))[1]
        by_thread[kind] = by_thread.get(kind, 0.0) + spent
    cpu = after.user + after.system - before.user - before.system
    return Usage(cpu, after.system - before.system, by_thread, voluntary, involuntary)
