"""The jobs pages: the caller's jobs (an admin's: everyone's), and one job with its actions.

- `GET /jobs`: a page of jobs, filtered by status (several), type, label (`key:value`) and
  name prefix, sorted by creation or next run, with each job's schedule in words and the
  outcome of its last execution (one executions call for the whole page). The filters are a
  GET form; htmx swaps the table in place, and the table refreshes itself with the same
  filters. Cursor links keep the filters.
- `GET /jobs/{id}`: the job's definition, its schedule in words, its next 10 fire times, its
  recent executions (refreshed by htmx from `GET /jobs/{id}/executions`) and the actions its
  status and the account's scopes allow.
- Actions are POST forms carrying the CSRF token and the version shown (`If-Match`): a job
  changed since the page was loaded is explained, never changed blindly. Cancel and delete
  ask first: `GET /jobs/{id}/cancel` and `/delete` are confirmation pages (with JavaScript,
  a `<dialog>` on the job's page holds the same form). After an action the browser is sent
  back to the job (or, once deleted, to the list) with a notice.

Notices are fixed texts chosen by key (`?notice=paused`), so that no link can make a page say
something else; the job form redirects with `created` and `saved`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from console_service import errors, pages, platform_api, rendering, sessions
from console_service.describe import schedule_in_words
from libs.security import scopes
from scheduler_client import AsyncClient, models
from scheduler_client import errors as api_errors

router = APIRouter(include_in_schema=False)
PAGES = pages.PageGroup(
    router=router, nav=(pages.NavLink("Jobs", "/jobs", order=10, scope=scopes.JOBS_READ),)
)
PAGE_SIZE = 25
# Executions read for the list's "last run" column: the newest of each job on the page is
# among them unless other jobs of the page ran far more often since.
LAST_EXECUTIONS = 200
RECENT_EXECUTIONS = 10
FIRE_TIMES = 10
STATUSES = tuple(models.JobStatus)
SORTS = {"createdAt": "Oldest first", "nextRunAt": "Next run soonest"}
FILTER_MAX_LENGTH = 200
ERROR_SUMMARY_LENGTH = 160

NOTICES = {
    "created": "The job was created.",
    "saved": "The job was saved.",
    "run": "The job will run now; its execution appears below when it starts.",
    "paused": "The job is paused: it does not run until it is resumed.",
    "resumed": "The job is back on its schedule.",
    "cancelled": "The job is cancelled: it will not run again.",
    "deleted": "The job was deleted. Its executions stay in the history.",
}
Notice = Annotated[str | None, Query(max_length=20)]
Filter = Annotated[str | None, Query(max_length=FILTER_MAX_LENGTH)]
Version = Annotated[int, Form(ge=1)]


# --- the list ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    statuses: tuple[str, ...] = ()
    type: str | None = None
    label: str | None = None
    name: str | None = None
    sort: str = "createdAt"

    def query(self, cursor: str | None = None) -> str:
        """These filters (and `cursor`) as a query string, the defaults left out."""
        pairs: list[tuple[str, str]] = [("status", s) for s in self.statuses]
        pairs += [(k, v) for k, v in (("type", self.type), ("label", self.label)) if v]
        if self.name:
            pairs.append(("name", self.name))
        if self.sort != "createdAt":
            pairs.append(("sort", self.sort))
        if cursor:
            pairs.append(("cursor", cursor))
        return urlencode(pairs)

    @property
    def active(self) -> bool:
        return bool(self.statuses or self.type or self.label or self.name)


def _filters(
    status: Sequence[str] | None, type: str | None, label: str | None, name: str | None, sort: str
) -> Filters:
    return Filters(
        statuses=tuple(s for s in STATUSES if s in set(status or ())),
        type=(type or "").strip() or None,
        label=(label or "").strip() or None,
        name=name or None,
        sort=sort if sort in SORTS else "createdAt",
    )


def _label_error(label: str | None) -> str | None:
    if label is None:
        return None
    key, colon, _value = label.partition(":")
    if not colon or not key:
        return "Write a label as key:value, for example team:billing."
    return None


def _last_executions(executions: Sequence[models.Execution]) -> dict[uuid.UUID, models.Execution]:
    """The newest execution of each job among `executions` (which come newest first)."""
    last: dict[uuid.UUID, models.Execution] = {}
    for execution in executions:
        last.setdefault(execution.job_id, execution)
    return last


@router.get("/jobs", dependencies=[pages.requires(scopes.JOBS_READ)])
async def list_jobs(
    request: Request,
    api: pages.Api,
    status: Annotated[list[str] | None, Query(max_length=20)] = None,
    type: Filter = None,
    label: Filter = None,
    name: Filter = None,
    sort: Annotated[str, Query(max_length=20)] = "createdAt",
    cursor: pages.Cursor = None,
    notice: Notice = None,
) -> HTMLResponse:
    filters = _filters(status, type, label, name, sort)
    filter_error = _label_error(filters.label)

    async def read(client: AsyncClient) -> tuple[Any, dict[uuid.UUID, models.Execution], list]:
        types = [] if rendering.is_htmx(request) else await client.job_types.list()
        if filter_error:
            return None, {}, list(types)
        page = await client.jobs.list(
            status=list(filters.statuses) or None,
            type=filters.type,
            label=filters.label,
            name=filters.name,
            sort=filters.sort,  # one of SORTS
            limit=PAGE_SIZE,
            cursor=cursor,
        )
        last = {}
        if page.items:
            executions = await client.executions.list(
                job_id=[job.id for job in page.items], limit=LAST_EXECUTIONS
            )
            last = _last_executions(executions.items)
        return page, last, list(types)

    try:
        page, last, types = await api.call(read)
    except api_errors.InvalidRequest as exc:  # a filter the API refuses (too long a label...)
        page, last, types, filter_error = None, {}, [], _refusal(exc)
    return rendering.render(
        request,
        "jobs/list.html",
        {
            "jobs": page.items if page else [],
            "next_cursor": page.next_cursor if page else None,
            "cursor": cursor,
            "filters": filters,
            "filter_error": filter_error,
            "statuses": STATUSES,
            "sorts": SORTS,
            "types": sorted({t.name for t in types} | ({filters.type} if filters.type else set())),
            "last": last,
            "in_words": schedule_in_words,
            "notice": NOTICES.get(notice or ""),
        },
        fragment="jobs/_table.html",
    )


def _refusal(exc: api_errors.ApiError) -> str:
    fields = rendering.field_errors(exc)
    return "; ".join(f"{name}: {text}" for name, text in fields.items()) or rendering.message(exc)


# --- one job -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actions:
    """What the job's status allows and the account's scopes permit."""

    run: bool
    pause: bool
    resume: bool
    cancel: bool
    edit: bool
    delete: bool

    @classmethod
    def of(cls, job: models.Job, signed_in: sessions.SignedIn) -> Actions:
        status = job.status
        write = signed_in.can(scopes.JOBS_WRITE)
        live = status not in (models.JobStatus.COMPLETED, models.JobStatus.CANCELLED)
        return cls(
            run=signed_in.can(scopes.JOBS_RUN)
            and status
            in (models.JobStatus.SCHEDULED, models.JobStatus.PAUSED, models.JobStatus.FAILED),
            pause=write and status in (models.JobStatus.SCHEDULED, models.JobStatus.RUNNING),
            resume=write
            and (
                status in (models.JobStatus.PAUSED, models.JobStatus.FAILED) or job.pause_after_run
            ),
            cancel=write and live and status != models.JobStatus.FAILED,
            edit=write and live,
            delete=write,
        )

    @property
    def any(self) -> bool:
        return any((self.run, self.pause, self.resume, self.cancel, self.edit, self.delete))


@dataclass(frozen=True)
class Detail:
    job: models.Job
    fire_times: list[Any]
    fire_times_note: str | None
    executions: list[models.Execution]


async def _read_detail(client: AsyncClient, job_id: uuid.UUID) -> Detail:
    job = await client.jobs.get(job_id)
    fire_times: list[Any] = []
    note = None
    if job.status in (models.JobStatus.COMPLETED, models.JobStatus.CANCELLED):
        note = f"A {job.status} job does not run again."
    else:
        try:
            fire_times = list(
                (await client.schedules.preview(job.schedule, count=FIRE_TIMES)).fire_times
            )
        except api_errors.InvalidRequest as exc:  # a one-time job whose time has passed...
            note = f"No upcoming fire times: {_refusal(exc)}"
        if not fire_times and note is None:
            note = "The schedule has no fire time left."
    executions = await client.jobs.executions(job_id, limit=RECENT_EXECUTIONS)
    return Detail(job, fire_times, note, list(executions.items))


async def _job_or_404(api: platform_api.Api, operation: Any) -> Any:
    """`operation`'s answer; the "not found" page when the job does not exist for the caller
    (another user's job is as absent as a deleted one)."""
    try:
        return await api.call(operation)
    except api_errors.JobNotFound as exc:
        raise errors.PageNotFound("job") from exc


@router.get("/jobs/{job_id:uuid}", dependencies=[pages.requires(scopes.JOBS_READ)])
async def job_detail(
    request: Request, job_id: uuid.UUID, api: pages.Api, me: pages.SignedIn, notice: Notice = None
) -> HTMLResponse:
    detail: Detail = await _job_or_404(api, lambda c: _read_detail(c, job_id))
    return rendering.render(
        request,
        "jobs/detail.html",
        {
            "job": detail.job,
            "schedule_words": schedule_in_words(detail.job.schedule),
            "schedule_json": json.dumps(models.body(detail.job.schedule), indent=2),
            "payload_json": json.dumps(detail.job.payload, indent=2, ensure_ascii=False),
            "fire_times": detail.fire_times,
            "fire_times_note": detail.fire_times_note,
            "executions": detail.executions,
            "actions": Actions.of(detail.job, me),
            "confirmations": CONFIRM,
            "notice": NOTICES.get(notice or ""),
            "error_summary": _error_summary,
        },
    )


@router.get("/jobs/{job_id:uuid}/executions", dependencies=[pages.requires(scopes.JOBS_READ)])
async def job_executions(request: Request, job_id: uuid.UUID, api: pages.Api) -> HTMLResponse:
    """The job's recent executions: the part of its page htmx refreshes (a page of its own
    without JavaScript)."""
    job, executions = await _job_or_404(
        api,
        lambda c: _job_and_executions(c, job_id),
    )
    return rendering.render(
        request,
        "jobs/executions.html",
        {"job": job, "executions": executions, "error_summary": _error_summary},
        fragment="jobs/_executions.html",
    )


async def _job_and_executions(
    client: AsyncClient, job_id: uuid.UUID
) -> tuple[models.Job, list[models.Execution]]:
    job = await client.jobs.get(job_id)
    executions = await client.jobs.executions(job_id, limit=RECENT_EXECUTIONS)
    return job, list(executions.items)


def _error_summary(execution: models.Execution) -> str:
    text = " ".join(part for part in (execution.error_kind, execution.error) if part)
    text = " ".join(text.split())
    if len(text) > ERROR_SUMMARY_LENGTH:
        text = text[: ERROR_SUMMARY_LENGTH - 1] + "…"
    return text


# --- actions -----------------------------------------------------------------------------------

Action = Literal["run", "pause", "resume", "cancel", "delete"]
# The notice after each action, and the words of its confirmation page.
_DONE: dict[str, str] = {
    "run": "run",
    "pause": "paused",
    "resume": "resumed",
    "cancel": "cancelled",
    "delete": "deleted",
}
CONFIRM = {
    "cancel": {
        "title": "Cancel this job?",
        "text": "A cancelled job never runs again and cannot be resumed, edited or run. "
        "Its history stays.",
        "button": "Cancel the job",
    },
    "delete": {
        "title": "Delete this job?",
        "text": "The job is cancelled and removed from the list; its executions stay in the "
        "history. This cannot be undone.",
        "button": "Delete the job",
    },
}


async def _act(
    request: Request, api: platform_api.Api, job_id: uuid.UUID, action: Action, version: int
) -> Response:
    async def operation(client: AsyncClient) -> object:
        method = {
            "run": client.jobs.run,
            "pause": client.jobs.pause,
            "resume": client.jobs.resume,
            "cancel": client.jobs.cancel,
            "delete": client.jobs.delete,
        }[action]
        return await method(job_id, if_match=version)

    here = f"/jobs/{job_id}"
    try:
        await _job_or_404(api, operation)
    except api_errors.StaleVersion:
        return _refused(
            request,
            here,
            "The job changed since you loaded this page",
            "Someone (or the platform) changed this job after you opened its page, so nothing "
            "was done. Reload the job to see it as it is now, then choose again.",
        )
    except api_errors.Conflict as exc:  # the job's status no longer allows it
        return _refused(request, here, "Not possible now", rendering.message(exc))
    target = "/jobs" if action == "delete" else here
    return RedirectResponse(f"{target}?notice={_DONE[action]}", status_code=303)


def _refused(request: Request, job_path: str, title: str, text: str) -> HTMLResponse:
    return rendering.render(
        request,
        "jobs/refused.html",
        {"title": title, "message": text, "job_path": job_path},
        status=409,
    )


def _action_route(action: Action, scope: str) -> None:
    async def act(
        request: Request, job_id: uuid.UUID, api: pages.Api, version: Version
    ) -> Response:
        return await _act(request, api, job_id, action, version)

    router.add_api_route(
        f"/jobs/{{job_id:uuid}}/{action}",
        act,
        methods=["POST"],
        dependencies=[pages.requires(scope)],
        name=f"job_{action}",
    )


for _action, _scope in (
    ("run", scopes.JOBS_RUN),
    ("pause", scopes.JOBS_WRITE),
    ("resume", scopes.JOBS_WRITE),
    ("cancel", scopes.JOBS_WRITE),
    ("delete", scopes.JOBS_WRITE),
):
    _action_route(_action, _scope)


def _confirm_route(action: Action) -> None:
    async def confirm(request: Request, job_id: uuid.UUID, api: pages.Api) -> HTMLResponse:
        job: models.Job = await _job_or_404(api, lambda c: c.jobs.get(job_id))
        return rendering.render(
            request, "jobs/confirm.html", {"job": job, "action": action, **CONFIRM[action]}
        )

    router.add_api_route(
        f"/jobs/{{job_id:uuid}}/{action}",
        confirm,
        methods=["GET"],
        dependencies=[pages.requires(scopes.JOBS_WRITE)],
        name=f"job_{action}_confirm",
    )


# The confirmation pages of cancel and delete, for a browser without JavaScript.
_confirm_route("cancel")
_confirm_route("delete")
