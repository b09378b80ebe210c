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


def _cpu_seconds(stat_path: Path) -> float:
    text = stat_path.read_text()
    # The command name in parentheses may contain spaces; the fields after it do not.
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / _TICK


def _switches(status_path: Path) -> tuple[int, int]:
    voluntary = involuntary = 0
    for line in status_path.read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            voluntary = int(line.split()[1])
        elif line.startswith("nonvoluntary_ctxt_switches:"):
            involuntary = int(line.split()[1])
    return voluntary, involuntary


@dataclass(frozen=True)
class Snapshot:
    """One reading of a process."""

    cpu: float  # user + system seconds of the whole process
    threads: dict[int, float] = field(default_factory=dict)  # tid -> CPU seconds
    switches: dict[int, tuple[int, int]] = field(default_factory=dict)  # tid -> (vol, invol)


def snapshot(pid: int) -> Snapshot:
    """Read ``pid`` now; threads that exit while it is read are skipped."""
    root = Path(f"/proc/{pid}")
    cpu = _cpu_seconds(root / "stat")
    threads: dict[int, float] = {}
    switches: dict[int, tuple[int, int]] = {}
    for task in (root / "task").iterdir():
        try:
            threads[int(task.name)] = _cpu_seconds(task / "stat")
            switches[int(task.name)] = _switches(task / "status")
        except (OSError, ValueError):
            continue
    return Snapshot(cpu, threads, switches)


@dataclass
class Usage:
    """What a process spent between two snapshots."""

    cpu: float = 0.0  # seconds, all threads
    main_thread_cpu: float = 0.0  # seconds on the thread whose id is the pid (the event loop)
    voluntary: int = 0  # context switches of the threads alive at the end
    involuntary: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.cpu + other.cpu,
            self.main_thread_cpu + other.main_thread_cpu,
            self.voluntary + other.voluntary,
            self.involuntary + other.involuntary,
        )

    @property
    def other_threads_cpu(self) -> float:
        return self.cpu - self.main_thread_cpu


def usage(pid: int, before: Snapshot, after: Snapshot) -> Usage:
    """``after - before``; a thread born in between counts from zero."""
    voluntary = involuntary = 0
    for tid, (vol, invol) in after.switches.items():
        vol0, invol0 = before.switches.get(tid, (0, 0))
        voluntary += vol - vol0
        involuntary += invol - invol0
    main = after.threads.get(pid, 0.0) - before.threads.get(pid, 0.0)
    return Usage(after.cpu - before.cpu, main, voluntary, involuntary)
