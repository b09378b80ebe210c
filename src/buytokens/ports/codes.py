"""The store of redemption codes: digests and their states, never the codes themselves."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from buytokens.domain.codes import CodeRecord


class RedemptionCodes(Protocol):
    """Keeps one ``CodeRecord`` per code digest, and who redeemed it.

    Redeeming is two writes: ``claim`` (the commit point: at most one user ever
    claims a code) and, once the redeemer's credit is on the ledger,
    ``mark_credited``. A code claimed but not yet credited is listed by
    ``uncredited`` so that a finishing pass can complete it. A gift's record is
    only its index: who redeemed it, when, and whether it is void or pending live
    on its purchase (``CodeRecord.with_purchase``) and are never stored here.

    Every method raises ``StoreUnavailable`` when the store cannot be reached or
    cannot confirm a durable write; a write may then have taken effect or not,
    and repeating it is safe.
    """

    def add(self, records: Sequence[CodeRecord]) -> None:
        """Store new, unredeemed codes, all in one go where the store has transactions.

        Raises ``StoreCorrupted`` if a digest is already stored (with 95 random bits,
        only a broken random source repeats one). Where the store has no
        transactions, a failure can leave part of the batch stored: codes nobody was
        shown, which nobody can redeem.
        """
        ...

    def index_gift(self, record: CodeRecord) -> None:
        """Store a gift's index record (digest → payment intent) unless it is stored already.

        Repeating it is a no-op, also concurrently. The record is never claimed: a
        gift is redeemed through its purchase. Raises ``StoreCorrupted`` if the
        digest is stored for anything but this gift's intent.
        """
        ...

    def find(self, digest: str) -> CodeRecord | None:
        """The record of the code with this digest, or None."""
        ...

    def claim(self, digest: str, user_id: str, at: datetime) -> bool:
        """Mark the code redeemed by ``user_id`` at ``at``, only if nobody redeemed it yet.

        Returns True when this call claimed it, False when the code is unknown or
        was already claimed (by anyone: read it to learn by whom). Of any number of
        concurrent claims of one code, exactly one returns True.
        """
        ...

    def mark_credited(self, digest: str) -> None:
        """Note that the redeemer's credit is on the ledger; repeating it is a no-op."""
        ...

    def codes(self, *, unredeemed_only: bool = False, limit: int = 1000) -> Sequence[CodeRecord]:
        """Stored records, newest first, at most ``limit``; with ``unredeemed_only`` only
        those nobody has claimed (expired ones included: expiry depends on the time;
        gifts all included: their state is their purchase's)."""
        ...

    def uncredited(self, limit: int = 100) -> Sequence[CodeRecord]:
        """Claimed codes whose credit is not marked yet, longest waiting first, at most
        ``limit``."""
        ...
