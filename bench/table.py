"""The one table every benchmark contributes rows to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One measured ratio: what, the two numbers behind it, the ratio, the goal and the verdict.

    ``met`` is None for rows reported without a goal.
    """

    measure: str
    detail: str
    ratio: float
    goal: str = ""
    met: bool | None = None

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISSED", None: ""}[self.met]


def at_least(ratio: float, goal: float) -> tuple[str, bool]:
    return f">= {goal:.2f}x", ratio >= goal


def at_most(ratio: float, goal: float) -> tuple[str, bool]:
    return f"<= {goal:.2f}x", ratio <= goal


def render(rows: Sequence[Row]) -> str:
    """A fixed-width text table."""
    headers = ("measure", "measured", "ratio", "goal", "")
    cells = [(r.measure, r.detail, f"{r.ratio:.2f}x", r.goal, r.verdict) for r in rows]
    widths = [max(len(str(c[i])) for c in [headers, *cells]) for i in range(len(headers))]
    lines = []
    for number, cell in enumerate([headers, *cells]):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(cell, widths, strict=True)).rstrip())
        if number == 0:
            lines.append("  ".join("-" * w for w in widths).rstrip())
    return "\n".join(lines)
