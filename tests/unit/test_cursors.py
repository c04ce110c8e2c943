"""The keyset cursor codec the listings share: what round-trips and what is refused."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import pytest

from libs.contracts import cursors

ROW = uuid.UUID("0b7e3f9a-2c4d-4e5f-8a6b-7c8d9e0f1a2b")
AT = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


def raw(document: object) -> str:
    text = json.dumps(document, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


def test_a_position_round_trips_with_and_without_an_order():
    assert cursors.decode(cursors.encode(AT, ROW)) == (AT, ROW)
    assert cursors.decode(cursors.encode(AT, ROW, order="createdAt"), order="createdAt") == (
        AT,
        ROW,
    )
    assert cursors.decode(cursors.encode(None, ROW, order="nextRunAt"), order="nextRunAt") == (
        None,
        ROW,
    )
    assert cursors.decode_timed(cursors.encode(AT, ROW)) == (AT, ROW)


def test_the_text_is_unpadded_base64url_json_the_order_first():
    assert cursors.encode(AT, ROW) == raw([AT.isoformat(), str(ROW)])
    assert cursors.encode(AT, ROW, order="newest") == raw(["newest", AT.isoformat(), str(ROW)])
    assert "=" not in cursors.encode(AT, ROW)
    assert len(cursors.encode(AT, ROW, order="createdAt")) <= cursors.MAX_LENGTH


@pytest.mark.parametrize(
    ("cursor", "order"),
    [
        (cursors.encode(AT, ROW, order="createdAt"), "nextRunAt"),  # another order's
        (cursors.encode(AT, ROW, order="createdAt"), None),  # an ordered one where none is
        (cursors.encode(AT, ROW), "createdAt"),  # an unordered one where one is
        (raw(["createdAt", "2026-03-01T12:30:00", str(ROW)]), "createdAt"),  # no time zone
        (raw(["createdAt", 5, str(ROW)]), "createdAt"),
        (raw(["createdAt", AT.isoformat(), 5]), "createdAt"),
        (raw(["createdAt", AT.isoformat(), "not-a-uuid"]), "createdAt"),
        (raw({"a": 1}), None),
        ("%%%", None),
        ("", None),
    ],
)
def test_anything_else_is_refused(cursor, order):
    with pytest.raises(cursors.Malformed):
        cursors.decode(cursor, order=order)


def test_a_listing_whose_rows_all_have_a_time_refuses_a_cursor_without_one():
    with pytest.raises(cursors.Malformed):
        cursors.decode_timed(cursors.encode(None, ROW))
    with pytest.raises(cursors.Malformed):
        cursors.decode_timed(raw(["", str(ROW)]))
