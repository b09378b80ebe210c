"""Every benchmark, one table: ``python -m bench [--quick]`` (or ``bench/run``).

Each ratio compares two things measured side by side in this run on this
machine; see bench/README.md for what every row means.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import time

from bench import crediting, faults, seed, web
from bench.table import Row, render


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke check")
    parser.add_argument(
        "--uvicorn-standard",
        action="store_true",
        help="also run P1 and P2 with uvloop + httptools, for every app alike",
    )
    args = parser.parse_args(argv)
    if args.uvicorn_standard and not all(
        importlib.util.find_spec(module) for module in ("uvloop", "httptools")
    ):
        parser.error("--uvicorn-standard needs uvloop and httptools: pip install -e '.[bench]'")
    started = time.monotonic()
    print(f"# {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"# {cpu_name()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    rows: list[Row] = []
    print("# measuring HTTP ...", flush=True)
    rows += web.rows(args.quick, uvicorn_standard=args.uvicorn_standard)
    for name, part in (("Stripe hanging", faults), ("crediting", crediting), ("seed", seed)):
        print(f"# measuring {name} ...", flush=True)
        rows += part.rows(args.quick)
    print()
    print(render(rows))
    missed = [row.measure for row in rows if row.met is False]
    print()
    print(f"{len(rows)} rows in {time.monotonic() - started:.0f} s; goals missed: {len(missed)}")


if __name__ == "__main__":
    main()
