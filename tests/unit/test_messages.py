"""The `job.dispatch` message: a lossless round trip through the envelope codec, tolerance of
fields added later, and refusal of other types, unknown versions and invalid fields."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from libs.contracts import messages
from libs.infra import kafka


def dispatch(**changes) -> messages.DispatchMessage:
    scheduled = datetime(2026, 11, 22, 16, 0, tzinfo=UTC)
    fields = {
        "execution_id": uuid.uuid4(),
        "job_id": uuid.uuid4(),
        "owner_id": uuid.uuid4(),
        "lease_version": 3,
        "type": "log",
        "payload": {"message": "x", "nested": [1, 2.5, None]},
        "scheduled_for": scheduled,
        "attempt": 2,
        "deadline": scheduled + timedelta(seconds=120),
        "timeout_s": 30,
        "trace_id": messages.new_trace_id(),
        **changes,
    }
    return messages.DispatchMessage(**fields)


def round_trip(envelope: kafka.Envelope) -> kafka.Envelope:
    return kafka.decode(kafka.encode(envelope))


def test_a_dispatch_survives_the_envelope_codec_unchanged():
    message = dispatch()
    envelope = messages.dispatch_envelope(message, producer="scheduler-1")
    assert (envelope.type, envelope.version) == ("job.dispatch", 1)
    assert messages.parse_dispatch(round_trip(envelope)) == message


def test_fields_added_by_a_newer_writer_are_ignored():
    message = dispatch()
    envelope = messages.dispatch_envelope(message, producer="scheduler-1")
    document = json.loads(kafka.encode(envelope))
    document["payload"]["priority"] = "high"
    assert messages.parse_dispatch(kafka.decode(json.dumps(document).encode())) == message


def test_another_message_type_is_refused():
    envelope = kafka.Envelope(type="job.outcome", producer="p", payload={})
    with pytest.raises(messages.UnsupportedMessage, match="not a dispatch"):
        messages.parse_dispatch(envelope)


def test_an_unknown_version_is_refused():
    envelope = messages.dispatch_envelope(dispatch(), producer="p").model_copy(
        update={"version": 2}
    )
    with pytest.raises(
        messages.UnsupportedMessage, match=re.escape("unsupported job.dispatch version 2")
    ):
        messages.parse_dispatch(round_trip(envelope))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"attempt": 0}, "attempt"),
        ({"lease_version": -1}, "lease_version"),
        ({"scheduled_for": "2026-11-22T16:00:00"}, "scheduled_for"),  # no UTC offset
        ({"execution_id": "not-a-uuid"}, "execution_id"),
        ({"timeout_s": 0}, "timeout_s"),
    ],
)
def test_invalid_fields_are_named(change, field):
    payload = dispatch().model_dump(mode="json") | change
    envelope = kafka.Envelope(type="job.dispatch", version=1, producer="p", payload=payload)
    with pytest.raises(
        kafka.MalformedMessage, match=re.escape(f"invalid job.dispatch fields: {field}")
    ):
        messages.parse_dispatch(envelope)


def test_a_missing_field_is_named():
    payload = dispatch().model_dump(mode="json")
    del payload["deadline"]
    envelope = kafka.Envelope(type="job.dispatch", version=1, producer="p", payload=payload)
    with pytest.raises(kafka.MalformedMessage, match="deadline"):
        messages.parse_dispatch(envelope)


def test_a_dispatch_encoded_in_one_pass_is_the_envelopes_json():
    message = dispatch()
    one_pass = messages.encode_dispatch(message, producer="scheduler-1")
    decoded = kafka.decode(one_pass)
    envelope = messages.dispatch_envelope(message, producer="scheduler-1").model_copy(
        update={"id": decoded.id, "produced_at": decoded.produced_at}
    )
    assert one_pass == kafka.encode(envelope)
    assert messages.parse_dispatch(decoded) == message


def two_steps(raw):
    try:
        return messages.parse_dispatch(kafka.decode(raw))
    except kafka.MalformedMessage as exc:
        return type(exc), str(exc)


def one_pass(raw):
    try:
        return messages.decode_dispatch(raw)
    except kafka.MalformedMessage as exc:
        return type(exc), str(exc)


def changed(path, value):
    document = json.loads(messages.encode_dispatch(dispatch(), producer="p"))
    *parents, name = path
    target = document
    for parent in parents:
        target = target[parent]
    if value is ...:
        del target[name]
    else:
        target[name] = value
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    "raw",
    [
        messages.encode_dispatch(dispatch(), producer="p"),
        None,
        b"",
        b"\xff\xfe",
        b"[1]",
        b'{"envelope": 1}',
        changed(["envelope"], ...),
        changed(["envelope"], 2),
        changed(["envelope"], True),
        changed(["envelope"], 1.0),
        changed(["version"], ...),
        changed(["version"], 2),
        changed(["version"], "1"),
        changed(["type"], "job.outcome"),
        changed(["producer"], ""),
        changed(["produced_at"], "2026-01-01T00:00:00"),
        changed(["id"], "x"),
        changed(["added_later"], {"x": 1}),
        changed(["payload"], []),
        changed(["payload", "attempt"], 0),
        changed(["payload", "attempt"], "2"),
        changed(["payload", "deadline"], ...),
        changed(["payload", "scheduled_for"], "2026-11-22T16:00:00"),
        changed(["payload", "trace_id"], "x" * 65),
        changed(["payload", "priority"], "high"),
        changed(["payload", "payload"], {"big": 10**30, "tiny": 5e-324, "text": "é\u2028"}),
    ],
)
def test_a_dispatch_decoded_in_one_pass_is_what_the_two_steps_give(raw):
    assert one_pass(raw) == two_steps(raw)
