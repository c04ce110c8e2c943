"""The platform's request bodies and answers as pydantic models.

Python names are snake_case, the JSON names camelCase (`camel`: `next_run_at` is `nextRunAt`,
`timeout_s` is `timeoutSeconds`, as the services write them). Two rules keep an older client
working with a newer server and still catch a caller's typo:

- answers are read with `ANSWER` as validation context: members the client does not know are
  ignored, and an enum value it does not know is kept as a plain string;
- a model built by a caller refuses a field it does not know (a misspelt `timezon` would
  otherwise be dropped without a word, and the job would run in UTC).

Request bodies are sent with the fields the caller set and no others (`body`), so every field
left out takes the server's default, and `JobPatch(description=None)` removes a description.
Optional fields of request-only models default to None, meaning "the server's default".
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator
from pydantic_core import to_jsonable_python

ANSWER = {"answer": True}  # validation context of answers (see the module docstring)


def camel(name: str) -> str:
    """The JSON name of a field: camelCase, with the unit suffix `_s` spelled out
    (`timeout_s` -> `timeoutSeconds`, `next_run_at` -> `nextRunAt`)."""
    if name.endswith("_s"):
        name = name[:-2] + "_seconds"
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class Model(BaseModel):
    """Base of every model: camelCase on the wire, Python names or aliases accepted."""

    model_config = ConfigDict(
        alias_generator=camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
        # A refused value is not echoed in the error: it may be a password or a token.
        hide_input_in_errors=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _known_fields_only(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, Mapping) or (info.context or {}).get("answer"):
            return data
        if cls.model_config.get("extra") == "allow":
            return data
        known = {n for name, f in cls.model_fields.items() for n in (name, f.alias) if n}
        unknown = sorted(str(key) for key in data if key not in known)
        if unknown:
            raise ValueError(f"unknown field(s) of {cls.__name__}: {', '.join(unknown)}")
        return data


def body(value: BaseModel | Mapping[str, Any]) -> Any:
    """A request body as JSON values: a model's fields the caller set (camelCase), or a
    mapping as it is (datetimes and UUIDs as strings), for the server to judge."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return to_jsonable_python(value)


T = TypeVar("T")
# An enum field of an answer: the enum member, or the string itself when a newer server sends a
# value this client does not know.
_OPEN = Field(union_mode="left_to_right")
# A `StrEnum` member compares equal to its string, so `job.status == "PAUSED"` holds either way.


class JobStatus(StrEnum):
    SCHEDULED = "SCHEDULED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class ExecutionStatus(StrEnum):
    DISPATCHED = "DISPATCHED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    LOST = "LOST"


class MisfirePolicy(StrEnum):
    RUN_ONCE = "run_once"
    SKIP = "skip"
    RUN_ALL = "run_all"


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


# --- Pages ---------------------------------------------------------------------------------------


class Page(Model, Generic[T]):
    """One page of a list; pass `next_cursor` as `cursor` for the next (None: the last page)."""

    items: list[T]
    next_cursor: str | None


class ItemList(Model, Generic[T]):
    """A list answered whole (job types, nodes)."""

    items: list[T]


# --- Schedules -----------------------------------------------------------------------------------


class _Schedule(Model):
    timezone: str = "UTC"  # IANA name; cron and calendar schedules run on its wall clock
    start_at: datetime | None = None
    end_at: datetime | None = None
    max_runs: int | None = None

    def model_post_init(self, context: Any) -> None:
        # The tag is sent even when left at its default: the server needs it to tell the kinds.
        self.model_fields_set.add("kind")


class OnceSchedule(_Schedule):
    kind: Literal["once"] = "once"
    at: datetime | None = None  # None: now


class CronSchedule(_Schedule):
    """5 fields, or Quartz style with seconds first and an optional year."""

    kind: Literal["cron"] = "cron"
    expression: str


class FixedRateSchedule(_Schedule):
    kind: Literal["fixed_rate"] = "fixed_rate"
    interval_s: int
    anchor: datetime | None = None


class FixedDelaySchedule(_Schedule):
    kind: Literal["fixed_delay"] = "fixed_delay"
    delay_s: int


class CalendarSchedule(_Schedule):
    kind: Literal["calendar"] = "calendar"
    every: int
    unit: Literal["days", "weeks", "months", "years"]
    anchor: datetime | None = None


Schedule = Annotated[
    OnceSchedule | CronSchedule | FixedRateSchedule | FixedDelaySchedule | CalendarSchedule,
    Field(discriminator="kind"),
]
# A schedule as a job holds it: a dict when a newer server answers a kind this client lacks.
AnySchedule = Annotated[Schedule | dict[str, Any], _OPEN]


# --- Jobs ----------------------------------------------------------------------------------------


class RetryPolicy(Model):
    """Retry `n` waits up to `initial_backoff_s * multiplier ** (n - 1)`, at most
    `max_backoff_s`; after `max_attempts` the occurrence is a dead letter."""

    max_attempts: int = 3
    initial_backoff_s: float = 1.0
    multiplier: float = 2.0
    max_backoff_s: float = 300.0


class HttpPayload(Model):
    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] | None = None
    headers: dict[str, str] | None = None
    body: Any = None  # sent as JSON
    body_text: str | None = None  # sent as it is
    timeout_s: float | None = None
    expected_status: list[str] | None = None  # e.g. ["2xx", "304"]


class KafkaPayload(Model):
    topic: str
    key: str | None = None
    value: Any
    headers: dict[str, str] | None = None


class LogPayload(Model):
    message: str
    level: Literal["debug", "info", "warning", "error"] | None = None


Payload = HttpPayload | KafkaPayload | LogPayload


class JobCreate(Model):
    """A new job. `payload` must match the schema of `type` (`client.job_types.list()`)."""

    name: str
    description: str | None = None
    labels: dict[str, str] | None = None
    type: str
    payload: Payload | dict[str, Any]
    schedule: Schedule | dict[str, Any]
    retry_policy: RetryPolicy | None = None
    misfire_policy: MisfirePolicy | None = None
    misfire_grace_s: int | None = None
    timeout_s: int | None = None


class JobPatch(Model):
    """The fields to change; `description=None` removes the description."""

    name: str | None = None
    description: str | None = None
    labels: dict[str, str] | None = None
    payload: Payload | dict[str, Any] | None = None
    schedule: Schedule | dict[str, Any] | None = None
    retry_policy: RetryPolicy | None = None
    misfire_policy: MisfirePolicy | None = None
    misfire_grace_s: int | None = None
    timeout_s: int | None = None


class JobBatchCreate(Model):
    jobs: list[JobCreate | dict[str, Any]]


class Job(Model):
    id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    description: str | None
    labels: dict[str, str]
    type: str
    payload: dict[str, Any]
    schedule: AnySchedule
    retry_policy: RetryPolicy
    misfire_policy: Annotated[MisfirePolicy | str, _OPEN]
    misfire_grace_s: int
    timeout_s: int
    status: Annotated[JobStatus | str, _OPEN]
    status_reason: str | None  # why the platform itself set the status (e.g. 410 Gone)
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_finished_at: datetime | None
    run_count: int
    attempt: int
    version: int  # send it back as `if_match` to change the job
    created_at: datetime
    updated_at: datetime


class FieldError(Model):
    model_config = ConfigDict(extra="allow")

    field: str  # e.g. "body.schedule.expression"
    message: str
    code: str


class Problem(Model):
    """An RFC 9457 problem document; extension members are kept as extra fields."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None


class BatchItemResult(Model):
    """One item of a batch: status 201 with the job, or 422 with the problem."""

    index: int
    status: int
    job: Job | None = None
    problem: Problem | None = None


class JobBatchResult(Model):
    created: int
    failed: int
    results: list[BatchItemResult]


# --- Executions, dead letters, tools -------------------------------------------------------------


class Execution(Model):
    id: uuid.UUID
    job_id: uuid.UUID
    job_name: str
    job_type: str
    job_deleted: bool
    scheduled_for: datetime
    attempt: int
    status: Annotated[ExecutionStatus | str, _OPEN]
    worker: str | None
    dispatched_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    error_kind: str | None
    error: str | None
    created_at: datetime


class DeadLetter(Model):
    id: uuid.UUID
    job_id: uuid.UUID
    execution_id: uuid.UUID | None
    reason: str
    error: str | None
    attempts: int
    payload: dict[str, Any]
    created_at: datetime
    replayed_at: datetime | None
    job_deleted: bool


class DeadLetterReplay(Model):
    dead_letter: DeadLetter
    job: Job


class SchedulePreviewRequest(Model):
    schedule: Schedule | dict[str, Any]
    count: int | None = None


class SchedulePreview(Model):
    fire_times: list[datetime]


class JobType(Model):
    name: str
    payload_schema: dict[str, Any]


class Node(Model):
    node_id: str
    service: str
    hostname: str
    pid: int
    version: str
    started_at: datetime
    last_heartbeat_at: datetime
    up: bool


class WebhookSecret(Model):
    secret: str = Field(repr=False)
    created_at: datetime
    rotated_at: datetime | None
    previous_valid_until: datetime | None


class WebhookSecretRotation(Model):
    grace_s: int | None = None


# --- Users and service accounts ------------------------------------------------------------------


class Registration(Model):
    email: str
    password: str = Field(repr=False)
    display_name: str


class RegistrationAccepted(Model):
    email: str  # normalised: the name to log in with


class ProfileUpdate(Model):
    display_name: str


class PasswordChange(Model):
    current_password: str = Field(repr=False)
    new_password: str = Field(repr=False)


class RoleUpdate(Model):
    role: Role


class User(Model):
    id: uuid.UUID
    email: str
    display_name: str | None
    role: Annotated[Role | str, _OPEN]
    created_at: datetime
    disabled: bool
    locked_until: datetime | None  # while failed logins lock the account


class ServiceAccountCreation(Model):
    name: str
    scopes: list[str]


class ServiceAccount(Model):
    id: uuid.UUID
    client_id: str
    name: str
    scopes: list[str]
    created_at: datetime
    created_by: uuid.UUID | None
    secret_rotated_at: datetime | None
    disabled: bool


class ServiceAccountWithSecret(ServiceAccount):
    client_secret: str = Field(repr=False)  # in this answer only


# --- OAuth (RFC 6749 and RFC 8414 name these members in snake_case) ------------------------------


class _OAuthModel(Model):
    model_config = ConfigDict(alias_generator=None)


class TokenResponse(_OAuthModel):
    access_token: str = Field(repr=False)
    token_type: str = "Bearer"  # noqa: S105 (the scheme's name)
    expires_in: int
    scope: str
    refresh_token: str | None = Field(default=None, repr=False)


class ServerMetadata(_OAuthModel):
    issuer: str
    token_endpoint: str
    revocation_endpoint: str
    jwks_uri: str
    grant_types_supported: list[str]
    scopes_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    revocation_endpoint_auth_methods_supported: list[str]
