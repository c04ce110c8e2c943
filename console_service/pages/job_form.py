"""Creating and changing a job: `/jobs/new` and `/jobs/{id}/edit` (scope `jobs:write`).

One form for both. Its fields are plain strings (`FIELDS`), read back as typed when an
answer re-renders the form, so nothing typed is lost on an error. The schedule has one
fieldset per kind, all sent without JavaScript (only the chosen kind's are read); with it,
console.js shows the chosen kind's alone. Every date and time is typed on the wall clock of
the form's time zone and sent as an instant.

- Preview: htmx posts the form to `/jobs/schedule-preview` as the schedule changes and gets
  the next five fire times (`schedules.preview`), plus the schedule fields' error slots
  (out of band), so the server's own message stands beside the field at fault. The
  "Preview" button posts the whole form for the same list without JavaScript.
- Create: `jobs.create` with the form's `Idempotency-Key` (new at each rendering, so a double
  submit makes one job), then to `/jobs/{id}`.
- Edit: `jobs.update` with `If-Match` = the version the form was loaded at. When someone
  changed the job meanwhile (412), the form comes back with the user's values, what the job
  holds now where it differs, and its version in the form: saving again overwrites it.
"""

from __future__ import annotations

import json
import uuid
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from console_service import pages, rendering
from libs.scheduling import schedule as schedule_lib
from libs.security import scopes
from scheduler_client import errors as api_errors
from scheduler_client import models

router = APIRouter(include_in_schema=False)
PAGES = pages.PageGroup(router=router)
PREVIEW_COUNT = 5
MAX_FIELD_LENGTH = 100_000
PREVIEW_PATH = "/jobs/schedule-preview"

KINDS = (
    ("cron", "Cron"),
    ("fixed_rate", "Fixed rate"),
    ("fixed_delay", "Fixed delay"),
    ("calendar", "Calendar interval"),
    ("once", "One time"),
)
UNITS = ("days", "weeks", "months", "years")
MISFIRE_POLICIES = (
    ("run_once", "Run once"),
    ("skip", "Skip them"),
    ("run_all", "Run each one"),
)

# The form's fields, with the label a person reads (in messages and the conflict table).
LABELS = {
    "name": "Name",
    "description": "Description",
    "labels": "Labels",
    "type": "Type",
    "schedule_kind": "Schedule kind",
    "cron_expression": "Cron expression",
    "rate_interval": "Interval (seconds)",
    "rate_anchor": "Anchor",
    "delay_seconds": "Delay (seconds)",
    "calendar_every": "Every",
    "calendar_unit": "Unit",
    "calendar_anchor": "Anchor",
    "once_at": "At",
    "timezone": "Time zone",
    "start_at": "Start",
    "end_at": "End",
    "max_runs": "Maximum runs",
    "misfire_policy": "Misfire policy",
    "misfire_grace": "Misfire grace (seconds)",
    "timeout": "Timeout (seconds)",
    "retry_max_attempts": "Maximum attempts",
    "retry_initial_backoff": "First backoff (seconds)",
    "retry_multiplier": "Backoff multiplier",
    "retry_max_backoff": "Longest backoff (seconds)",
    "payload": "Payload",
}
FIELDS = tuple(LABELS)
# The fields of each kind's fieldset; the common ones follow them.
KIND_FIELDS = {
    "cron": ("cron_expression",),
    "fixed_rate": ("rate_interval", "rate_anchor"),
    "fixed_delay": ("delay_seconds",),
    "calendar": ("calendar_every", "calendar_unit", "calendar_anchor"),
    "once": ("once_at",),
}
COMMON_SCHEDULE_FIELDS = ("timezone", "start_at", "end_at", "max_runs")
SCHEDULE_FIELDS = ("schedule_kind", *(f for fs in KIND_FIELDS.values() for f in fs))
SCHEDULE_FIELDS += COMMON_SCHEDULE_FIELDS
# Without these a kind has no schedule: the preview waits for them rather than complain.
REQUIRED_FIELDS = frozenset({"cron_expression", "rate_interval", "delay_seconds", "calendar_every"})
DATETIME_FIELDS = frozenset({"rate_anchor", "calendar_anchor", "once_at", "start_at", "end_at"})
# The API's schedule members (camelCase) and the form field of each, per kind.
_SCHEDULE_MEMBERS = {
    "kind": "schedule_kind",
    "expression": "cron_expression",
    "intervalSeconds": "rate_interval",
    "delaySeconds": "delay_seconds",
    "every": "calendar_every",
    "unit": "calendar_unit",
    "at": "once_at",
    "timezone": "timezone",
    "startAt": "start_at",
    "endAt": "end_at",
    "maxRuns": "max_runs",
}
_JOB_MEMBERS = {
    "name": "name",
    "description": "description",
    "labels": "labels",
    "type": "type",
    "misfirePolicy": "misfire_policy",
    "misfireGraceSeconds": "misfire_grace",
    "timeoutSeconds": "timeout",
}
_RETRY_MEMBERS = {
    "maxAttempts": "retry_max_attempts",
    "initialBackoffSeconds": "retry_initial_backoff",
    "multiplier": "retry_multiplier",
    "maxBackoffSeconds": "retry_max_backoff",
}
# A new job's form: the API's defaults written out, so that what is sent is what is seen.
NEW_JOB = {
    "schedule_kind": "cron",
    "calendar_unit": "days",
    "calendar_every": "1",
    "timezone": "UTC",
    "misfire_policy": "run_once",
    "misfire_grace": "60",
    "timeout": "300",
    "retry_max_attempts": "3",
    "retry_initial_backoff": "1",
    "retry_multiplier": "2",
    "retry_max_backoff": "300",
    "payload": "{}",
}

Values = dict[str, str]
Errors = dict[str, str]


@cache
def time_zones() -> list[str]:
    """The IANA zones the platform accepts, for the time zone picker."""
    return sorted(zoneinfo.available_timezones() - schedule_lib.NOT_ZONES)


# --- from the form to the API ------------------------------------------------------------------


async def _values(request: Request) -> Values:
    form = await request.form()
    values = {}
    for name in FIELDS:
        value = form.get(name)
        values[name] = value[:MAX_FIELD_LENGTH] if isinstance(value, str) else ""
    return values


def _form_value(form: Mapping[str, Any], name: str, limit: int = 200) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def _zone(values: Values) -> zoneinfo.ZoneInfo:
    """The form's zone, to read its wall-clock times in (UTC while it is not a known zone:
    the API then says what is wrong with it)."""
    name = values.get("timezone", "").strip()
    if name in time_zones():
        return zoneinfo.ZoneInfo(name)
    return zoneinfo.ZoneInfo("UTC")


def _number(text: str) -> int | float | str:
    """A number typed into a field, or the text itself for the API to refuse in its words."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _instant(text: str, zone: zoneinfo.ZoneInfo) -> str:
    """A `datetime-local` value on `zone`'s wall clock, as an instant with its offset."""
    wall = datetime.fromisoformat(text)
    if wall.tzinfo is None:
        wall = wall.replace(tzinfo=zone)
    return wall.isoformat()


def schedule_of(values: Values) -> tuple[dict[str, Any], Errors]:
    """The API's schedule for the form's values, and what the form itself finds wrong."""
    kind = values.get("schedule_kind", "")
    found: Errors = {}
    zone = _zone(values)
    members = dict(_SCHEDULE_MEMBERS)
    members["anchor"] = "rate_anchor" if kind == "fixed_rate" else "calendar_anchor"
    used = {"schedule_kind", *KIND_FIELDS.get(kind, ()), *COMMON_SCHEDULE_FIELDS}
    schedule: dict[str, Any] = {}
    for api, field in members.items():
        if field not in used:
            continue
        text = values.get(field, "").strip()
        if not text:
            continue
        if field in DATETIME_FIELDS:
            try:
                schedule[api] = _instant(text, zone)
            except ValueError:
                found[field] = "is not a date and time (YYYY-MM-DDTHH:MM)"
        elif api in ("intervalSeconds", "delaySeconds", "every", "maxRuns"):
            schedule[api] = _number(text)
        else:
            schedule[api] = text
    return schedule, found


def _labels(text: str) -> tuple[dict[str, str], str | None]:
    labels = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, colon, value = line.partition(":")
        if not colon or not key.strip():
            return {}, f"line {number}: write each label as key:value"
        labels[key.strip()] = value.strip()
    return labels, None


def _payload(text: str) -> tuple[Any, str | None]:
    try:
        return json.loads(text or "{}"), None
    except json.JSONDecodeError as exc:
        return None, (
            f"is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}. "
            'Write an object such as {"message": "hello"}.'
        )


def body_of(values: Values, *, creating: bool) -> tuple[dict[str, Any], Errors]:
    """The API's job (to create) or changes (to a job), and what the form finds wrong."""
    schedule, found = schedule_of(values)
    body: dict[str, Any] = {"name": values["name"].strip(), "schedule": schedule}
    description = values["description"].strip()
    if description or not creating:
        body["description"] = description or None
    labels, labels_error = _labels(values["labels"])
    if labels_error:
        found["labels"] = labels_error
    if labels or not creating:
        body["labels"] = labels
    if creating:
        body["type"] = values["type"]
    payload, payload_error = _payload(values["payload"])
    if payload_error:
        found["payload"] = payload_error
    body["payload"] = payload
    if values["misfire_policy"]:
        body["misfirePolicy"] = values["misfire_policy"]
    for api, field in (("misfireGraceSeconds", "misfire_grace"), ("timeoutSeconds", "timeout")):
        if values[field].strip():
            body[api] = _number(values[field].strip())
    retry = {
        api: _number(values[field].strip())
        for api, field in _RETRY_MEMBERS.items()
        if values[field].strip()
    }
    if retry:
        body["retryPolicy"] = retry
    return body, found


# --- from the API to the form ------------------------------------------------------------------


def _wall(instant: datetime | None, zone: zoneinfo.ZoneInfo) -> str:
    if instant is None:
        return ""
    return instant.astimezone(zone).replace(tzinfo=None).isoformat(timespec="minutes")


def _text(number: float | int | None) -> str:
    if number is None:
        return ""
    if isinstance(number, float) and number.is_integer():
        return str(int(number))
    return str(number)


def values_of(job: models.Job) -> Values:
    """The form's values for `job` as it is."""
    values = {name: "" for name in FIELDS}
    raw = job.schedule
    schedule = raw if isinstance(raw, dict) else raw.model_dump(by_alias=False)
    zone_name = schedule.get("timezone") or "UTC"
    zone = zoneinfo.ZoneInfo(zone_name) if zone_name in time_zones() else zoneinfo.ZoneInfo("UTC")
    kind = schedule.get("kind", "")

    def instant(name: str) -> str:
        value = schedule.get(name)
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return _wall(value, zone)

    values.update(
        name=job.name,
        description=job.description or "",
        labels="\n".join(f"{key}: {value}" for key, value in sorted(job.labels.items())),
        type=job.type,
        schedule_kind=kind,
        cron_expression=schedule.get("expression") or "",
        rate_interval=_text(schedule.get("interval_s")),
        rate_anchor=instant("anchor") if kind == "fixed_rate" else "",
        delay_seconds=_text(schedule.get("delay_s")),
        calendar_every=_text(schedule.get("every")),
        calendar_unit=schedule.get("unit") or "days",
        calendar_anchor=instant("anchor") if kind == "calendar" else "",
        once_at=instant("at"),
        timezone=zone_name,
        start_at=instant("start_at"),
        end_at=instant("end_at"),
        max_runs=_text(schedule.get("max_runs")),
        misfire_policy=str(job.misfire_policy),
        misfire_grace=_text(job.misfire_grace_s),
        timeout=_text(job.timeout_s),
        retry_max_attempts=_text(job.retry_policy.max_attempts),
        retry_initial_backoff=_text(job.retry_policy.initial_backoff_s),
        retry_multiplier=_text(job.retry_policy.multiplier),
        retry_max_backoff=_text(job.retry_policy.max_backoff_s),
        payload=json.dumps(job.payload, indent=2, ensure_ascii=False),
    )
    return values


def _canonical(field: str, text: str) -> Any:
    """A field's value as compared: JSON as data, labels as a mapping, numbers as numbers."""
    text = text.strip()
    if field == "payload":
        payload, error = _payload(text)
        return text if error else payload
    if field == "labels":
        return _labels(text)[0]
    number = _number(text)
    return number if not isinstance(number, str) else text


def differences(yours: Values, now: Values) -> list[tuple[str, str, str]]:
    """(label, now, yours) of each field the job holds otherwise than the form."""
    kind = now["schedule_kind"]
    shown = [f for f in FIELDS if f not in SCHEDULE_FIELDS or f in KIND_FIELDS.get(kind, ())]
    shown += [f for f in SCHEDULE_FIELDS if f in COMMON_SCHEDULE_FIELDS or f == "schedule_kind"]
    if yours["schedule_kind"] != kind:
        shown += KIND_FIELDS.get(yours["schedule_kind"], ())
    found = []
    for field in FIELDS:
        if field in shown and _canonical(field, yours[field]) != _canonical(field, now[field]):
            found.append((LABELS[field], now[field] or "(empty)", yours[field] or "(empty)"))
    return found


def form_errors(exc: api_errors.ApiError, kind: str) -> tuple[Errors, list[str]]:
    """The API's complaints by form field, and those that name no field of the form (shown
    above it). Payload errors keep the API's name for the field (`payload.url: ...`)."""
    found: Errors = {}
    others: list[str] = []

    def add(field: str, message: str) -> None:
        if field in found:
            found[field] += f"; {message}"
        else:
            found[field] = message

    for error in exc.errors:
        name = error.field.removeprefix("body.")
        head, _, rest = name.partition(".")
        member = rest.split(".", 1)[0]
        if head == "payload":
            add("payload", f"{name}: {error.message}")
        elif head == "schedule" and member == "anchor":
            add("rate_anchor" if kind == "fixed_rate" else "calendar_anchor", error.message)
        elif head == "schedule" and member in _SCHEDULE_MEMBERS:
            add(_SCHEDULE_MEMBERS[member], error.message)
        elif head == "schedule":
            add("schedule", error.message)
        elif head == "retryPolicy" and member in _RETRY_MEMBERS:
            add(_RETRY_MEMBERS[member], error.message)
        elif head == "retryPolicy":
            add("retry_max_attempts", error.message)
        elif head in _JOB_MEMBERS:
            add(_JOB_MEMBERS[head], error.message)
        else:
            others.append(f"{error.field}: {error.message}")
    if not exc.errors:
        others.append(rendering.message(exc))
    return found, others


# --- rendering -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    """What the preview region shows: fire times, or why there are none."""

    times: Sequence[tuple[str, str, str]] = ()  # (ISO instant, in the zone, in UTC or "")
    zone: str = "UTC"
    message: str | None = None
    errors: Mapping[str, str] | None = None


def _schema_fields(schema: Mapping[str, Any]) -> list[dict[str, str]]:
    """The fields a payload schema takes, for the help beside the payload editor."""
    required = set(schema.get("required", ()))
    fields = []
    for name, spec in schema.get("properties", {}).items():
        if "enum" in spec:
            kind = " | ".join(json.dumps(value) for value in spec["enum"])
        elif "type" in spec:
            kind = spec["type"]
        elif "anyOf" in spec:
            kind = " or ".join(str(s.get("type", "any JSON")) for s in spec["anyOf"])
        else:
            kind = "any JSON"
        default = json.dumps(spec["default"]) if "default" in spec else ""
        fields.append(
            {"name": name, "type": kind, "required": name in required, "default": default}
        )
    return fields


def _type_help(job_types: Sequence[models.JobType]) -> list[dict[str, Any]]:
    help_ = []
    for job_type in job_types:
        schema = job_type.payload_schema
        examples = schema.get("examples") or []
        help_.append(
            {
                "name": job_type.name,
                "description": schema.get("description", ""),
                "fields": _schema_fields(schema),
                "example": json.dumps(examples[0], indent=2) if examples else "",
            }
        )
    return help_


async def _preview(api: pages.Api, values: Values) -> Preview:
    """The next fire times of the form's schedule, or the reason there are none."""
    kind = values.get("schedule_kind", "")
    if kind not in KIND_FIELDS:
        return Preview(message="Choose the kind of schedule.")
    missing = [f for f in KIND_FIELDS[kind] if f in REQUIRED_FIELDS and not values[f].strip()]
    if missing:
        return Preview(message=f"Fill in {LABELS[missing[0]].lower()} to see the next runs.")
    schedule, found = schedule_of(values)
    if found:
        return Preview(message="Fix the schedule to see its next runs.", errors=found)
    try:
        answer = await api.call(
            lambda client: client.schedules.preview(schedule, count=PREVIEW_COUNT)
        )
    except api_errors.InvalidRequest as exc:
        errors, others = form_errors(exc, kind)
        general = errors.pop("schedule", None)
        text = "; ".join(filter(None, [general, *others]))
        return Preview(message=text or "Fix the schedule to see its next runs.", errors=errors)
    zone = _zone(values)
    in_utc = zone.key == "UTC"
    times = [
        (
            t.isoformat(),
            t.astimezone(zone).strftime("%a %Y-%m-%d %H:%M:%S %Z"),
            "" if in_utc else t.astimezone(UTC).strftime("%H:%M UTC"),
        )
        for t in answer.fire_times
    ]
    if not times:
        return Preview(message="This schedule does not fire again.")
    return Preview(times=times, zone=zone.key)


async def _render(
    request: Request,
    api: pages.Api,
    values: Values,
    *,
    job: models.Job | None = None,
    version: int | None = None,
    errors: Errors | None = None,
    alerts: Sequence[str] = (),
    conflict: Mapping[str, Any] | None = None,
    preview: Preview | None = None,
    status: int = 200,
) -> HTMLResponse:
    job_types = await api.call(lambda client: client.job_types.list())
    if preview is None:
        preview = await _preview(api, values)
    all_errors = {**(preview.errors or {}), **(errors or {})}
    return rendering.render(
        request,
        "jobs/form.html",
        {
            "job": job,
            "values": values,
            "errors": all_errors,
            "alerts": list(alerts),
            "conflict": conflict,
            "preview": preview,
            "version": version,
            "idempotency_key": str(uuid.uuid4()),
            "action": f"/jobs/{job.id}/edit" if job else "/jobs/new",
            "type_options": [(t.name, t.name) for t in job_types],
            "type_help": _type_help([t for t in job_types if not job or t.name == job.type]),
            "kinds": KINDS,
            "schedule_fields": SCHEDULE_FIELDS,
            "unit_options": [(unit, unit) for unit in UNITS],
            "misfire_policies": MISFIRE_POLICIES,
            "time_zones": time_zones(),
            "preview_path": PREVIEW_PATH,
        },
        status=status,
    )


# --- routes --------------------------------------------------------------------------------------

WRITE = [pages.requires(scopes.JOBS_WRITE)]


@router.get("/jobs/new", dependencies=WRITE)
async def new_job(request: Request, api: pages.Api) -> HTMLResponse:
    values = {name: "" for name in FIELDS} | NEW_JOB
    job_types = await api.call(lambda client: client.job_types.list())
    if job_types:
        values["type"] = job_types[0].name
    return await _render(request, api, values)


@router.post("/jobs/new", dependencies=WRITE)
async def create_job(request: Request, api: pages.Api) -> Response:
    values = await _values(request)
    form = await request.form()
    if _form_value(form, "action") == "preview":
        return await _render(request, api, values)
    body, found = body_of(values, creating=True)
    if found:
        return await _render(request, api, values, errors=found, status=422)
    key = _form_value(form, "idempotency_key") or None
    try:
        job = await api.call(lambda client: client.jobs.create(body, idempotency_key=key))
    except api_errors.InvalidRequest as exc:
        errors, others = form_errors(exc, values["schedule_kind"])
        return await _render(request, api, values, errors=errors, alerts=others, status=422)
    except (api_errors.Conflict, api_errors.PayloadTooLarge) as exc:
        return await _render(
            request, api, values, alerts=[rendering.message(exc)], status=exc.status
        )
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.get("/jobs/{job_id}/edit", dependencies=WRITE)
async def edit_job(request: Request, api: pages.Api, job_id: uuid.UUID) -> HTMLResponse:
    job = await api.call(lambda client: client.jobs.get(job_id))
    return await _render(request, api, values_of(job), job=job, version=job.version)


@router.post("/jobs/{job_id}/edit", dependencies=WRITE)
async def update_job(request: Request, api: pages.Api, job_id: uuid.UUID) -> Response:
    values = await _values(request)
    form = await request.form()
    try:
        version = int(_form_value(form, "version"))
    except ValueError:
        version = None
    if version is None or _form_value(form, "action") == "preview":
        job = await api.call(lambda client: client.jobs.get(job_id))
        values["type"] = job.type
        return await _render(request, api, values, job=job, version=version or job.version)
    body, found = body_of(values, creating=False)
    if found:
        job = await api.call(lambda client: client.jobs.get(job_id))
        values["type"] = job.type
        return await _render(request, api, values, job=job, version=version, errors=found)
    try:
        job = await api.call(lambda client: client.jobs.update(job_id, body, if_match=version))
    except api_errors.PreconditionFailed:
        current = await api.call(lambda client: client.jobs.get(job_id))
        values["type"] = current.type
        conflict = {
            "version": current.version,
            "yours": version,
            "differences": differences(values, values_of(current)),
        }
        return await _render(
            request,
            api,
            values,
            job=current,
            version=current.version,
            conflict=conflict,
            status=409,
        )
    except (api_errors.InvalidRequest, api_errors.Conflict, api_errors.PayloadTooLarge) as exc:
        job = await api.call(lambda client: client.jobs.get(job_id))
        values["type"] = job.type
        errors, others = form_errors(exc, values["schedule_kind"])
        return await _render(
            request,
            api,
            values,
            job=job,
            version=version,
            errors=errors,
            alerts=others,
            status=exc.status,
        )
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.post(PREVIEW_PATH, dependencies=WRITE)
async def schedule_preview(request: Request, api: pages.Api) -> HTMLResponse:
    """The preview region of the form being edited (htmx), with the schedule fields' error
    slots out of band."""
    values = await _values(request)
    preview = await _preview(api, values)
    return rendering.render(
        request,
        "jobs/_preview.html",
        {
            "preview": preview,
            "errors": dict(preview.errors or {}),
            "schedule_fields": SCHEDULE_FIELDS,
            "out_of_band": True,
        },
    )
