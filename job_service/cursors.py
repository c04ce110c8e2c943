"""Opaque cursors for keyset pagination: the position of the last row of a page.

A cursor is base64url-encoded JSON `[order, time, id]`: the order it was issued for (a cursor
of one order means nothing in another, and is refused there), the row's sort time (null for a
job with no next run, which sorts last) and its id. Opaque to clients but not secret: it only
says where a list they may read anyway left off, so it is not signed. Anything that does not
decode is refused, never guessed at.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime

Position = tuple[datetime | None, uuid.UUID]
MAX_LENGTH = 200  # a real cursor is about 110 characters


class Malformed(ValueError):
    """The text is not a cursor this module wrote for that order."""


def encode(order: str, time: datetime | None, row_id: uuid.UUID) -> str:
    raw = json.dumps(
        [order, time.isoformat() if time else None, str(row_id)], separators=(",", ":")
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(cursor: str, order: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        issued_for, time, row_id = json.loads(raw)
        if issued_for != order or not isinstance(row_id, str):
            raise Malformed
        if time is not None and not isinstance(time, str):
            raise Malformed
        position = (datetime.fromisoformat(time) if time else None, uuid.UUID(row_id))
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise Malformed from exc
    if position[0] is not None and position[0].tzinfo is None:
        raise Malformed
    return position
