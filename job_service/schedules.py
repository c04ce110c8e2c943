"""Schedules as the API writes them: `libs.scheduling.schedule`'s models with camelCase keys.

`libs.scheduling.schedule` owns the models and the math; its field names (`start_at`, `interval_s`)
are also the form stored in `jobs.schedule`, which the scheduler and executor read back with
`schedule.load`. The API shows and accepts the same fields in camelCase
(`startAt`, `intervalSeconds`); the subclasses here only add those aliases.

A request's schedule is validated here rather than by FastAPI, so that an error names
`body.schedule.<field>` whatever the kind (a discriminated union would put the kind in the
path) and is reported together with the payload's errors.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from job_service import errors, repository
from libs.contracts import schemas
from libs.scheduling import schedule


class OnceSchedule(schedule.Once):
    """Once, at `at` (default: now)."""

    model_config = schemas.CAMEL_CASE | ConfigDict(
        json_schema_extra={"examples": [{"kind": "once", "at": "2030-01-01T09:00:00Z"}]}
    )


class CronSchedule(schedule.Cron):
    """A cron expression on the wall clock of `timezone`: 5 fields, or Quartz style with
    seconds first and an optional year (6 or 7 fields; `?`, `L`, `L-n`, `W`, `LW`, `#`). An
    expression whose hour is `*` or `*/n` fires in both passes of an hour repeated when clocks go
    back; one at a fixed hour fires once."""

    model_config = schemas.CAMEL_CASE | ConfigDict(
        json_schema_extra={
            "examples": [{"kind": "cron", "expression": "0 9 * * 1-5", "timezone": "Europe/Paris"}]
        }
    )


class FixedRateSchedule(schedule.FixedRate):
    """Every `intervalSeconds` from `anchor` (default: `startAt`, else now), never drifting."""

    model_config = schemas.CAMEL_CASE | ConfigDict(
        json_schema_extra={"examples": [{"kind": "fixed_rate", "intervalSeconds": 300}]}
    )


class FixedDelaySchedule(schedule.FixedDelay):
    """`delaySeconds` after the previous run finished."""

    model_config = schemas.CAMEL_CASE | ConfigDict(
        json_schema_extra={"examples": [{"kind": "fixed_delay", "delaySeconds": 60}]}
    )


class CalendarSchedule(schedule.Calendar):
    """Every `every` days, weeks, months or years from `anchor`, keeping its wall-clock time in
    `timezone` across DST changes (the 31st becomes the last day of a shorter month, 29 February
    the 28th in other years)."""

    model_config = schemas.CAMEL_CASE | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kind": "calendar",
                    "every": 1,
                    "unit": "months",
                    "anchor": "2030-01-31T08:00:00Z",
                    "timezone": "America/New_York",
                }
            ]
        }
    )


ApiSchedule = Annotated[
    OnceSchedule | CronSchedule | FixedRateSchedule | FixedDelaySchedule | CalendarSchedule,
    Field(discriminator="kind"),
]
API_SCHEDULE: TypeAdapter[ApiSchedule] = TypeAdapter(ApiSchedule)
KINDS = frozenset(("once", "cron", "fixed_rate", "fixed_delay", "calendar"))


def _field(prefix: str, dotted: str) -> str:
    return ".".join([prefix, *(schemas.camel(part) for part in dotted.split(".") if part)])


def parse(raw: Any, prefix: str) -> schedule.Schedule:
    """`raw` (a request's schedule object, camelCase or field names) as a `libs.scheduling.schedule`
    model; `errors.InvalidRequest` naming `<prefix>.<field>` otherwise."""
    try:
        api = API_SCHEDULE.validate_python(raw)
    except ValidationError as exc:
        found = []
        for error in exc.errors(include_url=False, include_input=False):
            location = [str(part) for part in error["loc"]]
            if location and location[0] in KINDS:  # the union's tag, not a field
                location = location[1:]
            if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
                location = ["kind"]
            found.append((".".join([prefix, *location]), error["msg"], error["type"]))
        raise errors.InvalidRequest(found) from None
    return schedule.SCHEDULE_ADAPTER.validate_python(api.model_dump(by_alias=False))


def plan(
    raw: Any, now: datetime, prefix: str, *, runs: int = 0
) -> tuple[schedule.Schedule, datetime]:
    """The normalised schedule and its first occurrence at or after `now`.

    `runs`: occurrences the job has made already, which count against `maxRuns`. A schedule
    with no occurrence left is refused (a job that would never run is a mistake, not a job).
    """
    parsed = parse(raw, prefix)
    try:
        normalised = schedule.normalise(parsed, now)
    except schedule.InvalidSchedule as exc:
        field = exc.field.removeprefix("schedule")
        raise errors.InvalidRequest.field(_field(prefix, field), str(exc), "schedule") from None
    if normalised.max_runs is not None and runs >= normalised.max_runs:
        raise errors.InvalidRequest.field(
            f"{prefix}.maxRuns", f"the job has run {runs} times already", "schedule"
        )
    first = schedule.first_fire(normalised, now)
    if first is None:
        raise errors.InvalidRequest.field(prefix, "the schedule never fires", "schedule")
    return normalised, first


async def preview(session: AsyncSession, raw: Any, count: int) -> list[datetime]:
    """The next `count` fire times of the schedule `raw` (a request's), from the database's
    now, as a job created now would run them."""
    now = await repository.database_now(session)
    normalised, _ = plan(raw, now, "body.schedule")
    return schedule.preview(normalised, now, count)


def stored(value: schedule.Schedule) -> dict[str, Any]:
    """The form `jobs.schedule` holds: `libs.scheduling.schedule`'s field names, JSON values."""
    return schedule.SCHEDULE_ADAPTER.dump_python(value, mode="json")


def shown(value: dict[str, Any]) -> ApiSchedule:
    """A stored schedule as the API shows it."""
    return API_SCHEDULE.validate_python(value)
