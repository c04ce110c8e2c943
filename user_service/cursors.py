"""Opaque cursors for keyset pagination over `(created_at, id)`.

A cursor is the position of the last row of a page, base64url-encoded JSON. It is opaque to
clients (they pass it back unchanged) but not secret: it only says where a list they may read
anyway left off, so it is not signed. A value that does not decode is refused, never guessed at.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime

Position = tuple[datetime, uuid.UUID]
MAX_LENGTH = 200  # a real cursor is about 90 characters


class Malformed(ValueError):
    """The text is not a cursor this module wrote."""


def encode(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(row_id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(cursor: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = json.loads(raw)
        if not isinstance(created_at, str) or not isinstance(row_id, str):
            raise Malformed
        position = (datetime.fromisoformat(created_at), uuid.UUID(row_id))
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise Malformed from exc
    if position[0].tzinfo is None:
        raise Malformed
    return position
