"""User ids: one spelling per user, whichever store holds them.

LibreChat's user ids are MongoDB ObjectIds, which are case-insensitive hex: an
upper- and a lower-case spelling name the same user (and the same LibreChat
balance document). Every id is kept in its canonical form so that a ledger,
a purchase list and a balance never disagree about who a user is.
"""

from __future__ import annotations

import re

_OBJECT_ID = re.compile(r"[0-9a-fA-F]{24}")


def is_object_id(user_id: str) -> bool:
    """True when ``user_id`` is 24 hex digits, as LibreChat's ObjectId user ids are."""
    return _OBJECT_ID.fullmatch(user_id) is not None


def canonical_user_id(user_id: str) -> str:
    """The one spelling of ``user_id``: lower-case hex for an ObjectId, otherwise unchanged."""
    if isinstance(user_id, str) and is_object_id(user_id):
        return user_id.lower()
    return user_id


def canonical_optional_user_id(user_id: str | None) -> str | None:
    """``canonical_user_id`` for an id that may be unknown (None)."""
    return None if user_id is None else canonical_user_id(user_id)
