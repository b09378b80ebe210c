"""Where the product's time goes under P1 and P2 load: py-spy samples of the server.

``python -m bench.profile [--seconds 8] [--scenario webhook|checkout]`` starts the
product exactly as ``bench.web`` does, drives it with the same load, and lets
``py-spy record --gil`` sample the server process (only the thread holding the
GIL, so the shares are shares of the CPU the interpreter spent; waiting on
fsync is not in them). It prints the hottest functions by own time and by
inclusive time, as a share of all samples, and keeps the raw collapsed stacks
(``--keep DIR``) for a flame graph.

Needs ``py-spy`` (``.venv/bin/pip install py-spy``) and permission to attach to
a process the user started (``kernel.yama.ptrace_scope`` 0 or 1).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench.load import run_load
from bench.web import (
    HOST,
    LOAD_CPU,
    checkout_requests,
    pin_to,
    running_server,
    webhook_requests,
)

SCENARIOS = {
    "webhook": ("app", lambda: webhook_requests("profile")),
    "checkout": ("app-memory-gateway", checkout_requests),
}


def py_spy() -> str:
    """The py-spy executable next to this interpreter, or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    return found


def record(scenario: str, seconds: float, directory: Path, *, gil_only: bool = True) -> Path:
    """Sample the product under ``scenario``'s load; return the collapsed stacks file."""
    kind, requests = SCENARIOS[scenario]
    pin_to(LOAD_CPU)
    output = directory / f"{scenario}.collapsed"
    server_dir = directory / scenario
    server_dir.mkdir()
    with running_server(kind, server_dir) as server:
        # Warm the server up before sampling starts.
        run_load(HOST, server.port, requests(), clients=8, seconds=1.0, warmup=0.0)
        sampler = subprocess.Popen(
            [
                py_spy(),
                "record",
                "--pid",
                str(server.pid),
                *(["--gil"] if gil_only else []),
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
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def summarise(collapsed: Path, top: int = 20) -> str:
    """The hottest functions by own and by inclusive samples, as shares of the total."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";")]
        # py-spy's first frame names the process and thread, not code.
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{total} samples", "", "own time:"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    lines += ["", "inclusive time:"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in inclusive.most_common(top * 2)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), action="append")
    parser.add_argument("--keep", type=Path, help="copy the collapsed stacks here")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument(
        "--all-threads",
        action="store_true",
        help="sample every thread not waiting in the kernel, not only the GIL holder",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="buytokens-profile-") as tmp:
        for scenario in args.scenario or sorted(SCENARIOS):
            collapsed = record(scenario, args.seconds, Path(tmp), gil_only=not args.all_threads)
            print(f"== {scenario}: {SCENARIOS[scenario][0]} under 8 clients, {args.seconds} s")
            print(summarise(collapsed, args.top))
            print()
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(collapsed, args.keep / collapsed.name)


if __name__ == "__main__":
    main()
