"""Request bodies (strict: `libs.contracts.schemas.StrictModel`) and responses of the job service.

Every key is camelCase (`nextRunAt`, `timeoutSeconds`: `libs.contracts.schemas.camel`); request
bodies also accept the Python field names (`next_run_at`). A job's `payload` and `schedule` are
checked by the service (against the job's type, and by `libs.scheduling.schedule` with the
database's clock), so that their errors name the field and come with the others; the OpenAPI
document still describes them fully.
"""

from __future__ import annotations

import unicodedata
import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    field_validator,
)

from job_service import repository, schedules
from libs.contracts import schemas
from libs.scheduling import backoff, job_types, misfire
from libs.scheduling.states import ExecutionStatus, JobStatus
from libs.security import webhook_secrets
from libs.store import models

NAME_MAX = 200
DESCRIPTION_MAX = 2000
LABELS_MAX = 32
LABEL_KEY = r"^[a-z0-9][a-z0-9._/-]{0,62}$"
LABEL_VALUE_MAX = 200
BATCH_MAX = 1000
PREVIEW_MAX = 100
TYPE_NAME_MAX = 100
ROTATION_GRACE_MAX_S = 7 * 24 * 3600  # a week
ROTATION_GRACE_DEFAULT_S = 24 * 3600  # a day
JOB_IDS_MAX = 100  # `jobId` filters of one executions list

_API = schemas.CAMEL_CASE
_EXAMPLE_TIME = "2030-01-01T09:00:00Z"
_EXAMPLE_ID = "0b7f3c52-52f4-4a8e-9a57-4e1c6f4b8a10"
_EXAMPLE_OWNER = "5d0c2e6a-7a55-4d3c-8f0e-2f7c9d1b6e21"


def _examples(*examples: dict[str, Any]) -> ConfigDict:
    return _API | ConfigDict(json_schema_extra={"examples": list(examples)})


def _printable(value: str) -> str:
    """A name shown to people: trimmed, not blank, no control characters (no forged lines)."""
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("must not contain control characters")
    return value


def _json_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object")
    return value


Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX), AfterValidator(_printable)]
Description = Annotated[str, Field(max_length=DESCRIPTION_MAX)]
LabelKey = Annotated[str, Field(pattern=LABEL_KEY)]
LabelValue = Annotated[str, Field(max_length=LABEL_VALUE_MAX, pattern=r"^[^\x00-\x1f\x7f]*$")]
Labels = Annotated[dict[LabelKey, LabelValue], Field(max_length=LABELS_MAX)]
TypeName = Annotated[str, Field(min_length=1, max_length=TYPE_NAME_MAX)]
# Checked against the job's type by the service; documented as any of the built-in payloads.
PayloadInput = Annotated[
    dict[str, Any],
    PlainValidator(
        _json_object,
        json_schema_input_type=job_types.HttpPayload
        | job_types.KafkaPayload
        | job_types.LogPayload,
    ),
]
# Checked by `job_service.schedules` (with the database's clock); documented as the schedule.
ScheduleInput = Annotated[
    dict[str, Any], PlainValidator(_json_object, json_schema_input_type=schedules.ApiSchedule)
]


# A date-time in a query string: with a UTC offset (a `+` percent-encoded as %2B), in UTC.
QueryTime = schemas.UtcDateTime
GraceSeconds = Annotated[int, Field(ge=0, le=86400)]
TimeoutSeconds = Annotated[int, Field(ge=1, le=86400)]

_SCHEDULE_EXAMPLE = {"kind": "cron", "expression": "0 2 * * *", "timezone": "Europe/London"}
_PAYLOAD_EXAMPLE = {"url": "https://example.com/hooks/nightly-report", "method": "POST"}


class RetryPolicy(schemas.StrictModel):
    """Attempts of one occurrence: retry `n` (from 1) waits up to
    `initialBackoffSeconds * multiplier ** (n - 1)`, at most `maxBackoffSeconds` (with jitter);
    after `maxAttempts` attempts the occurrence has failed for good (dead letter)."""

    model_config = _examples(
        {"maxAttempts": 5, "initialBackoffSeconds": 2, "multiplier": 2, "maxBackoffSeconds": 600}
    )

    max_attempts: Annotated[int, Field(ge=1, le=100)] = backoff.DEFAULT.max_attempts
    initial_backoff_s: Annotated[float, Field(ge=0.1, le=3600)] = backoff.DEFAULT.initial_backoff_s
    multiplier: Annotated[float, Field(ge=1, le=10)] = backoff.DEFAULT.multiplier
    max_backoff_s: Annotated[float, Field(ge=0.1, le=86400)] = backoff.DEFAULT.max_backoff_s

    @field_validator("max_backoff_s")
    @classmethod
    def _not_below_initial(cls, value: float, info: ValidationInfo) -> float:
        initial = info.data.get("initial_backoff_s")
        if initial is not None and value < initial:
            raise ValueError("must not be less than initialBackoffSeconds")
        return value

    def stored(self) -> dict[str, Any]:
        """The form `jobs.retry_policy` holds (field names, as `libs.scheduling.backoff` reads
        them)."""
        return self.model_dump(by_alias=False)


# --- Requests ----------------------------------------------------------------------------------


class JobCreate(schemas.StrictModel):
    """A new job. `payload` must match the schema of `type` (see GET /v1/job-types)."""

    model_config = _examples(
        {
            "name": "nightly report",
            "description": "Posts the nightly report to the reporting service.",
            "labels": {"team": "billing", "env": "prod"},
            "type": "http",
            "payload": _PAYLOAD_EXAMPLE,
            "schedule": _SCHEDULE_EXAMPLE,
            "retryPolicy": {"maxAttempts": 5},
            "misfirePolicy": "run_once",
            "misfireGraceSeconds": 300,
            "timeoutSeconds": 120,
        }
    )

    name: Name
    description: Description | None = None
    labels: Labels = Field(default_factory=dict)
    type: TypeName
    payload: PayloadInput
    schedule: ScheduleInput
    retry_policy: RetryPolicy = Field(default_factory=RetryPolicy)
    misfire_policy: misfire.MisfirePolicy = misfire.MisfirePolicy.RUN_ONCE
    misfire_grace_s: GraceSeconds = 60
    timeout_s: TimeoutSeconds = 300


class JobBatchCreate(schemas.StrictModel):
    """Up to 1000 jobs, each validated on its own: the valid ones are created together."""

    model_config = _examples(
        {
            "jobs": [
                {
                    "name": "report for tenant 1",
                    "type": "log",
                    "payload": {"message": "tenant 1"},
                    "schedule": _SCHEDULE_EXAMPLE,
                },
                {
                    "name": "report for tenant 2",
                    "type": "log",
                    "payload": {"message": "tenant 2"},
                    "schedule": {"kind": "fixed_rate", "intervalSeconds": 3600},
                },
            ]
        }
    )

    # Each item is validated as a JobCreate by the service, so that one bad item is reported
    # with its index instead of refusing the whole batch.
    jobs: Annotated[
        list[Annotated[Any, PlainValidator(lambda v: v, json_schema_input_type=JobCreate)]],
        Field(min_length=1, max_length=BATCH_MAX),
    ]

    # Replaces StrictModel's check (same name): each item gets it when it is validated, so a
    # NaN in one item refuses that item, not the batch.
    @field_validator("*", mode="before")
    @classmethod
    def _clean(cls, value: Any) -> Any:
        return value


class JobPatch(schemas.StrictModel):
    """The fields to change; the others keep their value. `description: null` removes the
    description; `labels` replaces all labels. A `payload` is checked against the job's type.
    A new `schedule` moves the next run of a SCHEDULED, PAUSED or FAILED job to the new
    schedule's first occurrence (a FAILED job stays FAILED: resume it to run it there); a
    RUNNING job takes it from its next occurrence on."""

    model_config = _examples(
        {"name": "nightly report (v2)", "schedule": {"kind": "cron", "expression": "30 2 * * *"}},
        {"description": None, "labels": {"team": "billing"}, "timeoutSeconds": 600},
    )

    name: Name | None = None
    description: Description | None = None
    labels: Labels | None = None
    payload: PayloadInput | None = None
    schedule: ScheduleInput | None = None
    retry_policy: RetryPolicy | None = None
    misfire_policy: misfire.MisfirePolicy | None = None
    misfire_grace_s: GraceSeconds | None = None
    timeout_s: TimeoutSeconds | None = None

    @field_validator(
        "name",
        "labels",
        "payload",
        "schedule",
        "retry_policy",
        "misfire_policy",
        "misfire_grace_s",
        "timeout_s",
    )
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Runs only for a value the client sent (defaults are not validated): null is refused
        # for every field but the description, which it removes.
        if value is None:
            raise ValueError("must not be null")
        return value


class WebhookSecretRotation(schemas.StrictModel):
    """How long the current secret keeps signing after the rotation (a second signature
    beside the new secret's), so that receivers can switch; 0 stops it within the executors'
    half-minute cache."""

    model_config = _examples({"graceSeconds": ROTATION_GRACE_DEFAULT_S}, {"graceSeconds": 0})

    grace_s: Annotated[int, Field(ge=0, le=ROTATION_GRACE_MAX_S)] = ROTATION_GRACE_DEFAULT_S


class SchedulePreviewRequest(schemas.StrictModel):
    """A schedule to try out: its next fire times from now, without creating a job."""

    model_config = _examples({"schedule": _SCHEDULE_EXAMPLE, "count": 5})

    schedule: ScheduleInput
    count: Annotated[int, Field(ge=1, le=PREVIEW_MAX)] = 10


# --- Responses -----------------------------------------------------------------------------------

_JOB_EXAMPLE: dict[str, Any] = {
    "id": _EXAMPLE_ID,
    "ownerId": _EXAMPLE_OWNER,
    "name": "nightly report",
    "description": "Posts the nightly report to the reporting service.",
    "labels": {"team": "billing", "env": "prod"},
    "type": "http",
    "payload": {
        "url": "https://example.com/hooks/nightly-report",
        "method": "POST",
        "headers": {},
        "body": None,
        "bodyText": None,
        "timeoutSeconds": 30.0,
        "expectedStatus": ["2xx"],
    },
    "schedule": {
        "kind": "cron",
        "expression": "0 2 * * *",
        "timezone": "Europe/London",
        "startAt": None,
        "endAt": None,
        "maxRuns": None,
    },
    "retryPolicy": {
        "maxAttempts": 5,
        "initialBackoffSeconds": 1.0,
        "multiplier": 2.0,
        "maxBackoffSeconds": 300.0,
    },
    "misfirePolicy": "run_once",
    "misfireGraceSeconds": 300,
    "timeoutSeconds": 120,
    "status": "SCHEDULED",
    "statusReason": None,
    "pauseAfterRun": False,
    "nextRunAt": "2030-01-02T02:00:00Z",
    "lastRunAt": None,
    "lastFinishedAt": None,
    "runCount": 0,
    "attempt": 1,
    "version": 1,
    "createdAt": _EXAMPLE_TIME,
    "updatedAt": _EXAMPLE_TIME,
}
# Paused by the platform: its target answered 410 Gone to the occurrence still pending.
_PAUSED_JOB_EXAMPLE: dict[str, Any] = {
    **_JOB_EXAMPLE,
    "status": "PAUSED",
    "statusReason": "target answered 410 Gone",
    "nextRunAt": "2030-01-05T02:00:00Z",
    "lastRunAt": "2030-01-05T02:00:00.150000Z",
    "lastFinishedAt": "2030-01-05T02:00:00.410000Z",
    "runCount": 3,
    "updatedAt": "2030-01-05T02:00:00.410000Z",
}

_DEAD_LETTER_EXAMPLE: dict[str, Any] = {
    "id": "3c6e8a1b-2d4f-4e9a-b7c5-1a2b3c4d5e6f",
    "jobId": _EXAMPLE_ID,
    "executionId": "9a1d3f5e-8c2b-4d7a-a6e4-3b9c1f2d5e70",
    "reason": "retries_exhausted",
    "error": "HTTP 503 from example.com",
    "attempts": 5,
    "payload": {"message": "tenant 1", "level": "info"},
    "createdAt": "2030-01-02T02:10:00Z",
    "replayedAt": None,
    "jobDeleted": False,
}


class Job(BaseModel):
    model_config = _examples(_JOB_EXAMPLE, _PAUSED_JOB_EXAMPLE)

    id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    description: str | None
    labels: dict[str, str]
    type: str
    payload: dict[str, Any]
    schedule: schedules.ApiSchedule
    retry_policy: RetryPolicy
    misfire_policy: misfire.MisfirePolicy
    misfire_grace_s: int
    timeout_s: int
    status: JobStatus
    # Why the platform put the job in its status on its own, such as "target answered 410
    # Gone" for an http job it paused; null otherwise. Cleared when a person changes the
    # status (resume, pause, cancel); editing the job keeps it, as the job stays paused.
    status_reason: str | None
    # True while the job runs an occurrence requested when it was PAUSED (`:run`): it is
    # PAUSED again, at its next occurrence, when that run ends; a resume clears it.
    pause_after_run: bool
    # When the next occurrence is due; null when there is none (paused without a pending
    # occurrence, finished, cancelled). A PAUSED or FAILED job's is the occurrence a resume
    # starts from.
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_finished_at: datetime | None
    run_count: int
    # The attempt of the current occurrence (1 for a first try).
    attempt: int
    # The job's version, also its ETag: send it back in If-Match to change the job.
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, job: models.Job) -> Job:
        return cls(
            id=job.id,
            owner_id=job.owner_id,
            name=job.name,
            description=job.description,
            labels=job.labels,
            type=job.type,
            payload=job.payload,
            schedule=schedules.shown(job.schedule),
            retry_policy=RetryPolicy.model_validate(job.retry_policy),
            misfire_policy=misfire.MisfirePolicy(job.misfire_policy),
            misfire_grace_s=job.misfire_grace_s,
            timeout_s=job.timeout_s,
            status=JobStatus(job.status),
            status_reason=job.status_reason,
            pause_after_run=job.pause_after_run,
            next_run_at=job.next_run_at,
            last_run_at=job.last_run_at,
            last_finished_at=job.last_finished_at,
            run_count=job.run_count,
            attempt=job.attempt,
            version=job.version,
            created_at=job.created_at,
            updated_at=job.updated_at,
        )


class JobPage(BaseModel):
    model_config = _examples({"items": [_JOB_EXAMPLE], "nextCursor": "WyJjcmVhdGVkQXQiLCIyMDMwIl0"})

    items: list[Job]
    # Pass as `cursor` to get the next page; null on the last page.
    next_cursor: str | None


class FieldError(BaseModel):
    model_config = ConfigDict(extra="allow")

    field: str
    message: str
    code: str


class Problem(BaseModel):
    """An RFC 9457 problem document (`application/problem+json`). Validation failures list
    each field in `errors`; other problems may carry extension members."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "https://scheduler.dev/problems/job-not-found",
                    "title": "No such job",
                    "status": 404,
                    "instance": "/v1/jobs/0b7f3c52-52f4-4a8e-9a57-4e1c6f4b8a10",
                }
            ]
        },
    )

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None


class BatchItemResult(BaseModel):
    """The outcome of one item: 201 with the job, or 422 with the problem; a replayed batch
    (`Idempotency-Key`) answers 409 with the problem for an item whose job has been deleted
    since."""

    model_config = _examples({"index": 0, "status": 201, "job": _JOB_EXAMPLE, "problem": None})

    index: int
    status: int
    job: Job | None = None
    problem: Problem | None = None


class JobBatchResult(BaseModel):
    model_config = _examples(
        {
            "created": 1,
            "failed": 1,
            "results": [
                {"index": 0, "status": 201, "job": _JOB_EXAMPLE, "problem": None},
                {
                    "index": 1,
                    "status": 422,
                    "job": None,
                    "problem": {
                        "type": "https://scheduler.dev/problems/validation-failed",
                        "title": "The request is not valid",
                        "status": 422,
                        "detail": "body.jobs.1.name: String should have at least 1 character",
                        "instance": None,
                        "errors": [
                            {
                                "field": "body.jobs.1.name",
                                "message": "String should have at least 1 character",
                                "code": "string_too_short",
                            }
                        ],
                    },
                },
            ],
        }
    )

    # Items answered 201, and the others (refused, or replayed with their job deleted since).
    created: int
    failed: int
    # One per item, in the order of the request.
    results: list[BatchItemResult]


def _duration_s(started_at: datetime | None, finished_at: datetime | None) -> float | None:
    """Seconds from start to finish, to the millisecond; None unless both happened."""
    if started_at is None or finished_at is None:
        return None
    return round((finished_at - started_at).total_seconds(), 3)


class Execution(BaseModel):
    """One attempt of one occurrence of a job, with what a list across jobs shows of the job."""

    model_config = _examples(
        {
            "id": "9a1d3f5e-8c2b-4d7a-a6e4-3b9c1f2d5e70",
            "jobId": _EXAMPLE_ID,
            "jobName": "nightly report",
            "jobType": "http",
            "jobDeleted": False,
            "scheduledFor": "2030-01-02T02:00:00Z",
            "attempt": 1,
            "status": "SUCCEEDED",
            "worker": "executor-1",
            "dispatchedAt": "2030-01-02T02:00:00.120000Z",
            "startedAt": "2030-01-02T02:00:00.180000Z",
            "finishedAt": "2030-01-02T02:00:01.020000Z",
            "durationSeconds": 0.84,
            "errorKind": None,
            "error": None,
            "createdAt": "2030-01-02T02:00:00.120000Z",
        }
    )

    id: uuid.UUID
    job_id: uuid.UUID
    job_name: str
    job_type: str
    # The job was deleted: its definition is gone (GET /v1/jobs/{jobId} answers 404), its
    # history stays.
    job_deleted: bool
    # The occurrence's nominal fire time; its attempts share it.
    scheduled_for: datetime
    attempt: int
    status: ExecutionStatus
    worker: str | None
    dispatched_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    # `finishedAt - startedAt` in seconds, to the millisecond; null until the attempt has
    # finished, and for one that never started (LOST before an executor claimed it). For a
    # LOST attempt it lasts until the loss was noticed.
    duration_s: float | None
    error_kind: str | None
    error: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: repository.ExecutionRow) -> Execution:
        execution = row.execution
        return cls(
            id=execution.id,
            job_id=execution.job_id,
            job_name=row.job_name,
            job_type=row.job_type,
            job_deleted=row.job_deleted,
            scheduled_for=execution.scheduled_for,
            attempt=execution.attempt,
            status=ExecutionStatus(execution.status),
            worker=execution.worker,
            dispatched_at=execution.dispatched_at,
            started_at=execution.started_at,
            finished_at=execution.finished_at,
            duration_s=_duration_s(execution.started_at, execution.finished_at),
            error_kind=execution.error_kind,
            error=execution.error,
            created_at=execution.created_at,
        )


class ExecutionPage(BaseModel):
    model_config = _examples({"items": [], "nextCursor": None})

    items: list[Execution]
    next_cursor: str | None


class DeadLetter(BaseModel):
    model_config = _examples(_DEAD_LETTER_EXAMPLE)

    id: uuid.UUID
    job_id: uuid.UUID
    execution_id: uuid.UUID | None
    reason: str
    error: str | None
    attempts: int
    # The payload as it was when the occurrence was given up on.
    payload: dict[str, Any]
    created_at: datetime
    replayed_at: datetime | None
    # The job was deleted (its dead letters stay listed; a replay is refused).
    job_deleted: bool

    @classmethod
    def of(cls, row: models.DeadLetter, *, job_deleted: bool) -> DeadLetter:
        return cls(
            id=row.id,
            job_id=row.job_id,
            execution_id=row.execution_id,
            reason=row.reason,
            error=row.error,
            attempts=row.attempts,
            payload=row.payload,
            created_at=row.created_at,
            replayed_at=row.replayed_at,
            job_deleted=job_deleted,
        )


class DeadLetterPage(BaseModel):
    model_config = _examples({"items": [_DEAD_LETTER_EXAMPLE], "nextCursor": None})

    items: list[DeadLetter]
    next_cursor: str | None


class DeadLetterReplay(BaseModel):
    """The dead letter, now marked replayed, and its job, now due."""

    model_config = _examples({"deadLetter": _DEAD_LETTER_EXAMPLE, "job": _JOB_EXAMPLE})

    dead_letter: DeadLetter
    job: Job


class SchedulePreview(BaseModel):
    model_config = _examples(
        {"fireTimes": ["2030-01-02T02:00:00Z", "2030-01-03T02:00:00Z", "2030-01-04T02:00:00Z"]}
    )

    # Fire times in UTC, earliest first; fewer than asked when the schedule ends sooner.
    fire_times: list[datetime]


class JobType(BaseModel):
    model_config = _examples({"name": "log", "payloadSchema": {"type": "object"}})

    name: str
    # JSON Schema of the payload a job of this type takes.
    payload_schema: dict[str, Any]


class JobTypeList(BaseModel):
    model_config = _examples({"items": [{"name": "log", "payloadSchema": {"type": "object"}}]})

    items: list[JobType]


class Node(BaseModel):
    """A scheduler or executor process, from its heartbeats."""

    model_config = _examples(
        {
            "nodeId": "sched-1-4242-a1b2c3",
            "service": "scheduler_service",
            "hostname": "sched-1",
            "pid": 4242,
            "version": "0.1.0",
            "startedAt": "2026-11-22T09:00:00Z",
            "lastHeartbeatAt": "2026-11-22T09:15:02Z",
            "up": True,
        }
    )

    node_id: str
    service: str
    hostname: str
    pid: int
    version: str
    started_at: datetime
    last_heartbeat_at: datetime
    # False when no heartbeat arrived for longer than the service's `node.down.after.s`.
    up: bool


class NodeList(BaseModel):
    model_config = _examples({"items": []})

    items: list[Node]


class WebhookSecret(BaseModel):
    """The caller's Standard Webhooks signing secret: the executor signs every request of the
    caller's `http` jobs with it (`webhook-signature`); docs/webhooks.md shows how a receiver
    verifies one."""

    model_config = _examples(
        {
            "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "createdAt": "2026-11-22T09:00:00Z",
            "rotatedAt": "2030-01-01T09:00:00Z",
            "previousValidUntil": "2030-01-02T09:00:00Z",
        }
    )

    # `whsec_` and the base64 of the HMAC-SHA256 key.
    secret: str
    created_at: datetime
    # When the secret was last rotated; null if never.
    rotated_at: datetime | None
    # Until when the secret before the last rotation still signs too (a second signature);
    # null when requests carry only this secret's signature.
    previous_valid_until: datetime | None

    @classmethod
    def of(cls, view: webhook_secrets.SecretView) -> WebhookSecret:
        return cls(
            secret=view.secret,
            created_at=view.created_at,
            rotated_at=view.rotated_at,
            previous_valid_until=view.previous_valid_until,
        )
