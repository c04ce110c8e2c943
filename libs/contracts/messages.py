"""The typed messages services exchange through Kafka, inside `libs.infra.kafka.Envelope`.

`job.dispatch`, version 1: one occurrence of a job for an executor to run, published by a
scheduler (key = job id, so one job's dispatches keep their order on one partition).

`job.dead_letter`, version 1: an occurrence given up on (permanent failure, or attempts
exhausted), published by an executor to the dead-letter topic after the dead letter is stored
(key = job id). The `dead_letters` table is the record; the topic lets other systems react.

Both topics are keyed by job id and partitioned as Kafka's default partitioner does (murmur2 of
the key, sign bit dropped, modulo the number of partitions: `libs.infra.kafka.partition_for`), so
another producer written with any Kafka client puts a job's messages on the same partition.

A payload model changes only by adding optional fields; readers ignore fields they do not know
(`extra="ignore"`). A change a reader must understand gets a new version number, and a reader
refuses a version it does not know (`UnsupportedMessage`) instead of guessing at it.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from libs.infra import kafka

DISPATCH_TYPE = "job.dispatch"
DEAD_LETTER_TYPE = "job.dead_letter"
DEAD_LETTER_VERSION = 1
DISPATCH_VERSION = 1
SUPPORTED_DISPATCH_VERSIONS = frozenset({DISPATCH_VERSION})


class UnsupportedMessage(kafka.MalformedMessage):
    """An envelope of another type, or of a version of its type this reader does not know."""


class DispatchMessage(BaseModel):
    """Version 1 of `job.dispatch`: everything an executor needs to run one attempt of one
    occurrence, and to record its outcome under the job's fencing token."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    execution_id: uuid.UUID
    job_id: uuid.UUID
    owner_id: uuid.UUID
    # The job's fencing token at this claim: an outcome is stored only while it is current.
    lease_version: int = Field(ge=0)
    # The strategy that runs it (registry key) and its payload, as stored on the job.
    type: str = Field(min_length=1)
    payload: dict[str, Any]
    # The occurrence's nominal fire time (not when it was dispatched).
    scheduled_for: AwareDatetime
    # When this attempt is to start (a retry's time, or the due time of a dispatch published
    # ahead of it): the executor holds it until then, by the database clock. None (a scheduler
    # that publishes nothing ahead): at once.
    due_at: AwareDatetime | None = None
    attempt: int = Field(ge=1)
    # When the scheduler's lease on the job expires; past it, lease recovery may hand the
    # occurrence to someone else, so an executor should not start it later than this.
    deadline: AwareDatetime
    timeout_s: int = Field(gt=0)
    # Correlates the logs of the scheduler, the broker hop and the executor for this attempt.
    trace_id: str = Field(min_length=1, max_length=64)


def new_trace_id() -> str:
    """A W3C-style trace id: 32 lower-case hex digits."""
    return uuid.uuid4().hex


def dispatch_envelope(message: DispatchMessage, *, producer: str) -> kafka.Envelope:
    """`message` wrapped in an envelope of type `job.dispatch`, version 1."""
    return kafka.Envelope(
        type=DISPATCH_TYPE,
        version=DISPATCH_VERSION,
        producer=producer,
        payload=message.model_dump(mode="json"),
    )


class _DispatchEnvelope(kafka.Envelope):
    """An envelope of `job.dispatch`, version 1, with its payload typed: encoded and decoded in
    one pass, where `kafka.Envelope` goes through a dict (the payload dumped, then checked as a
    dict, then validated again as a `DispatchMessage`). Its JSON is `kafka.Envelope`'s, field for
    field and in the same order."""

    envelope: Literal[1]  # required here: an envelope without it is refused (`kafka.decode`)
    type: Literal["job.dispatch"]  # type: ignore[assignment]
    version: Literal[1] = DISPATCH_VERSION  # type: ignore[assignment]
    payload: DispatchMessage  # type: ignore[assignment]


def encode_dispatch(message: DispatchMessage, *, producer: str) -> bytes:
    """`kafka.encode(dispatch_envelope(message, producer=producer))`, in one pass."""
    envelope = _DispatchEnvelope(
        envelope=kafka.ENVELOPE_VERSION, type=DISPATCH_TYPE, producer=producer, payload=message
    )
    return envelope.model_dump_json().encode()


def decode_dispatch(raw: bytes | None) -> DispatchMessage:
    """`parse_dispatch(kafka.decode(raw))`, in one pass over the JSON for a valid dispatch of a
    known version; anything else goes through those two, which say why it is refused."""
    if raw is not None:
        try:
            return _DispatchEnvelope.model_validate_json(raw).payload
        except ValidationError:
            pass
    return parse_dispatch(kafka.decode(raw))


def parse_dispatch(envelope: kafka.Envelope) -> DispatchMessage:
    """The dispatch an envelope carries.

    Raises `UnsupportedMessage` for another type or an unknown version, and
    `kafka.MalformedMessage` naming the fields when the payload does not validate.
    """
    if envelope.type != DISPATCH_TYPE:
        raise UnsupportedMessage(f"not a dispatch: type {envelope.type!r}")
    if envelope.version not in SUPPORTED_DISPATCH_VERSIONS:
        raise UnsupportedMessage(f"unsupported {DISPATCH_TYPE} version {envelope.version}")
    try:
        return DispatchMessage.model_validate(envelope.payload)
    except ValidationError as exc:
        fields = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors())
        raise kafka.MalformedMessage(f"invalid {DISPATCH_TYPE} fields: {fields}") from exc


class DeadLetterMessage(BaseModel):
    """Version 1 of `job.dead_letter`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    dead_letter_id: uuid.UUID
    job_id: uuid.UUID
    execution_id: uuid.UUID | None
    owner_id: uuid.UUID
    type: str
    # "permanent" (retrying cannot help) or "exhausted" (the last attempt failed).
    reason: str
    # The last attempt's error class (`error_kind`) and message.
    error_kind: str | None
    error: str | None
    attempts: int = Field(ge=1)
    scheduled_for: AwareDatetime
    payload: dict[str, Any]
    created_at: AwareDatetime


def dead_letter_envelope(message: DeadLetterMessage, *, producer: str) -> kafka.Envelope:
    return kafka.Envelope(
        type=DEAD_LETTER_TYPE,
        version=DEAD_LETTER_VERSION,
        producer=producer,
        payload=message.model_dump(mode="json"),
    )
