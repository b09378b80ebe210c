"""In-process crediting benchmarks: the core against a raw loop, and cost against history size.

Run ``python -m bench.crediting`` (or ``bench/run``). Ratios, not absolute timings,
are the result: each pair is measured side by side in the same run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.table import Row, at_most, render
from buytokens.adapters.memory import FixedClock, InMemoryBalanceRepository
from buytokens.adapters.sqlite.store import SqliteBalanceRepository
from buytokens.domain.catalogue import DEFAULT_CATALOGUE
from buytokens.domain.events import PaymentSucceeded
from buytokens.ports.balances import BalanceRepository
from buytokens.services.crediting import CreditingDependencies, apply_payment_event

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PACKAGE = DEFAULT_CATALOGUE.get("package_500k")


def _events(count: int, users: int, prefix: str = "pi") -> list[PaymentSucceeded]:
    return [
        PaymentSucceeded(
            f"evt_{prefix}_{i}", f"{prefix}_{i}", PACKAGE.price, f"user{i % users}", PACKAGE.id, T0
        )
        for i in range(count)
    ]


def raw_loop(events: Sequence[PaymentSucceeded]) -> dict[str, int]:
    """The least crediting can be: a set of seen intents and a dict of balances."""
    balances: dict[str, int] = {}
    seen: set[str] = set()
    for event in events:
        if event.payment_intent_id in seen:
            continue
        seen.add(event.payment_intent_id)
        user = event.user_id or ""
        balances[user] = balances.get(user, 0) + PACKAGE.tokens
    return balances


def core_loop(events: Sequence[PaymentSucceeded]) -> InMemoryBalanceRepository:
    """The real use case over the in-memory adapters."""
    clock = FixedClock(T0)
    store = InMemoryBalanceRepository(clock)
    for event in events:
        apply_payment_event(CreditingDependencies(store, DEFAULT_CATALOGUE, clock), event)
    return store


def _best_of(runs: int, work: Callable[[], object]) -> float:
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        timings.append(time.perf_counter() - start)
    return min(timings)


def bench_core_vs_raw(count: int, runs: int) -> dict[str, float]:
    """P4: events per second of the core with memory adapters, as a share of the raw loop."""
    events = _events(count, users=100)
    events += events[: count // 10]  # a tenth redelivered, as Stripe does
    raw = _best_of(runs, lambda: raw_loop(events))
    core = _best_of(runs, lambda: core_loop(events))
    expected, store = raw_loop(events), core_loop(events)
    assert expected == {user: store.balance(user) for user in expected}
    return {
        "raw_us": raw / len(events) * 1e6,
        "core_us": core / len(events) * 1e6,
        "ratio": raw / core,
    }


def _apply_all(store: BalanceRepository, events: Sequence[PaymentSucceeded]) -> float:
    clock = FixedClock(T0)
    start = time.perf_counter()
    for event in events:
        apply_payment_event(CreditingDependencies(store, DEFAULT_CATALOGUE, clock), event)
    return time.perf_counter() - start


def bench_history_growth(
    total: int, window: int, store_factory: Callable[[Path], BalanceRepository]
) -> dict[str, float]:
    """P3: cost of purchases ``total-window+1 .. total`` against ``1 .. window`` for one user."""
    events = _events(total, users=1)
    with tempfile.TemporaryDirectory() as directory:
        store = store_factory(Path(directory))
        first = _apply_all(store, events[:window])
        _apply_all(store, events[window : total - window])
        last = _apply_all(store, events[total - window :])
        assert store.balance("user0") == total * PACKAGE.tokens
        return {
            "first_ms": first / window * 1e3,
            "last_ms": last / window * 1e3,
            "ratio": last / first,
        }


def sqlite_store(directory: Path) -> BalanceRepository:
    """The embedded store with its durable defaults."""
    return SqliteBalanceRepository(directory / "bench.sqlite3", FixedClock(T0))


def sqlite_bytes_per_user(purchases: Sequence[int]) -> dict[int, int]:
    """P3: bytes of one user's ``balances`` row after each count of ``purchases``.

    The row's payload as ``dbstat`` reports it (the record and its header). The
    Mongo balance document is measured beside the seed's, in ``bench.seed``.
    """
    sizes: dict[int, int] = {}
    events = _events(max(purchases), users=1)
    with tempfile.TemporaryDirectory() as directory:
        store = SqliteBalanceRepository(Path(directory) / "size.sqlite3", FixedClock(T0))
        done = 0
        for count in sorted(purchases):
            _apply_all(store, events[done:count])
            done = count
            row = store.database.read(
                "SELECT payload FROM dbstat WHERE name = 'balances' AND pagetype = 'leaf'", ()
            )
            sizes[count] = int(row[0][0])
        store.close()
    return sizes


def rows(quick: bool) -> list[Row]:
    """P4 and P3 as table rows."""
    count, runs = (5_000, 2) if quick else (50_000, 5)
    total, window = (2_000, 200) if quick else (10_000, 1_000)
    p4 = bench_core_vs_raw(count, runs)
    result = [
        Row(
            f"P4 core vs raw dict+set loop (memory, best of {runs}; reported, goal retired)",
            f"{p4['core_us']:.1f} us vs {p4['raw_us']:.2f} us per event",
            p4["ratio"],
        )
    ]
    p3 = bench_history_growth(total, window, sqlite_store)
    result.append(
        Row(
            f"P3 purchase {total - window + 1}-{total} vs 1-{window}, one user (SQLite)",
            f"{p3['last_ms']:.2f} ms vs {p3['first_ms']:.2f} ms per purchase",
            p3["ratio"],
            *at_most(p3["ratio"], 1.2),
        )
    )
    checkpoints = (total // 10, total)
    sizes = sqlite_bytes_per_user(checkpoints)
    small, large = (sizes[c] for c in checkpoints)
    result.append(
        Row(
            f"P3 bytes per user after {checkpoints[1]} vs {checkpoints[0]} purchases (SQLite row)",
            f"{large} B vs {small} B",
            large / small,
            *at_most(large / small, 1.1),
        )
    )
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller runs, for a smoke check")
    args = parser.parse_args(argv)
    print(render(rows(args.quick)))
    print("P3: every SQLite commit fsync'd.")


if __name__ == "__main__":
    main()
