"""What ``buytokens doctor`` reports: one finding per check, and the summary."""

from __future__ import annotations

import enum

import attrs

DASHBOARD_KEYS = "the Stripe Dashboard, Developers → API keys"
DASHBOARD_WEBHOOKS = "the Stripe Dashboard, Developers → Webhooks"


class Status(enum.Enum):
    """How a check came out."""

    OK = "ok"
    NOTE = "note"  # worth knowing; nothing to fix
    WARNING = "warning"  # probably wrong: look at it
    PROBLEM = "problem"  # wrong: fix it


@attrs.frozen
class Finding:
    """One check's outcome, in plain words."""

    status: Status
    subject: str
    message: str

    def line(self) -> str:
        """The finding as the one line the command prints."""
        return f"{self.status.value:<8} {self.subject}: {self.message}"


@attrs.frozen
class DoctorReport:
    """Every finding, in the order the checks ran."""

    findings: tuple[Finding, ...]

    @property
    def ready(self) -> bool:
        """True when nothing is a problem or a warning (notes are fine)."""
        return all(f.status in (Status.OK, Status.NOTE) for f in self.findings)

    def lines(self) -> list[str]:
        """One line per finding, then a summary."""
        problems = sum(f.status is Status.PROBLEM for f in self.findings)
        warnings = sum(f.status is Status.WARNING for f in self.findings)
        if self.ready:
            summary = "buytokens is set up: nothing to fix."
        else:
            counts = [plural(problems, "problem"), plural(warnings, "warning")]
            summary = (
                f"{', '.join(c for c in counts if c)}: fix what the lines above say, "
                "then run `buytokens doctor` again."
            )
        return [f.line() for f in self.findings] + [summary]


def plural(count: int, noun: str) -> str:
    """``count`` and ``noun``, in the plural unless the count is one."""
    if count == 0:
        return ""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def ok(subject: str, message: str) -> Finding:
    """An ``OK`` finding."""
    return Finding(Status.OK, subject, message)


def note(subject: str, message: str) -> Finding:
    """A ``NOTE`` finding."""
    return Finding(Status.NOTE, subject, message)


def warning(subject: str, message: str) -> Finding:
    """A ``WARNING`` finding."""
    return Finding(Status.WARNING, subject, message)


def problem(subject: str, message: str) -> Finding:
    """A ``PROBLEM`` finding."""
    return Finding(Status.PROBLEM, subject, message)
