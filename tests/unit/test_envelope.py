"""The message envelope: what is refused and what is tolerated."""

from __future__ import annotations

import json

import pytest

from libs.infra import kafka


def envelope() -> kafka.Envelope:
    return kafka.Envelope(type="job.dispatch", producer="node-1", payload={"job_id": "j"})


def test_encode_decode_is_lossless():
    original = envelope()
    assert kafka.decode(kafka.encode(original)) == original


def test_unknown_fields_from_a_newer_writer_are_ignored():
    original = envelope()
    document = json.loads(kafka.encode(original))
    document["added_later"] = {"x": 1}
    assert kafka.decode(json.dumps(document).encode()) == original


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "empty message"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"envelope": 2, "type": "x"}', "unsupported envelope version 2"),
        (b'{"type": "x"}', "unsupported envelope version None"),
        (
            b'{"envelope": 1, "type": "", "producer": "p", "payload": {}}',
            "invalid envelope fields: type",
        ),
        (
            b'{"envelope": 1, "type": "t", "producer": "p", "payload": {}, '
            b'"produced_at": "2026-01-01T00:00:00"}',
            "invalid envelope fields: produced_at",
        ),
    ],
)
def test_malformed_messages_are_refused_with_a_reason(raw, reason):
    with pytest.raises(kafka.MalformedMessage, match=reason):
        kafka.decode(raw)
