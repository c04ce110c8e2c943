"""Opaque cursors for keyset pagination: the position of the last row of a page.

A cursor is base64url-encoded JSON (unpadded): `[time, id]`, the row's sort time and its id,
preceded by the order it was issued for when a listing has several (`[order, time, id]`: a
cursor of one order means nothing in another, and is refused there). The time is null for a
row without one (a job with no next run, which sorts last); `decode_timed` refuses that in a
listing whose rows always have one. Opaque to clients (they pass it back unchanged) but not
secret: it only says where a list they may read anyway left off, so it is not signed. Anything
that does not decode is refused, never guessed at.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime

Position = tuple[datetime | None, uuid.UUID]
TimedPosition = tuple[datetime, uuid.UUID]
MAX_LENGTH = 200  # a real cursor is at most about 110 characters


class Malformed(ValueError):
    """The text is not a cursor this module wrote (for that order, if any)."""


def encode(time: datetime | None, row_id: uuid.UUID, *, order: str | None = None) -> str:
    fields = [time.isoformat() if time else None, str(row_id)]
    if order is not None:
        fields.insert(0, order)
    raw = json.dumps(fields, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(cursor: str, *, order: str | None = None) -> Position:
    """The position `cursor` names; `Malformed` unless it was issued for `order`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        if order is None:
            time, row_id = json.loads(raw)
        else:
            issued_for, time, row_id = json.loads(raw)
            if issued_for != order:
                raise Malformed
        if not isinstance(row_id, str):
            raise Malformed
        if time is not None and not isinstance(time, str):
            raise Malformed
        position = (datetime.fromisoformat(time) if time else None, uuid.UUID(row_id))
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise Malformed from exc
    if position[0] is not None and position[0].tzinfo is None:
        raise Malformed
    return position


def decode_timed(cursor: str, *, order: str | None = None) -> TimedPosition:
    """`decode`, for a listing whose rows all have a time: a cursor without one is refused."""
    time, row_id = decode(cursor, order=order)
    if time is None:
        raise Malformed
    return time, row_id
