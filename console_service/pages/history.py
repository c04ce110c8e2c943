"""What ran and what was given up on: the executions of the caller's jobs (an admin's:
everyone's), one execution in full, and the dead letters, which an account with `jobs:run`
can replay (after a confirmation: a page without JavaScript, a `<dialog>` with it).

The executions list filters by job, status and creation time (the form's times are UTC), keeps
its filters across pages, and refreshes its table every few seconds with htmx. A dead letter
names its job and occurrence through its execution (the dead letter itself holds neither).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from console_service import errors, pages, platform_api, rendering
from libs.security import scopes
from scheduler_client import AsyncClient, models
from scheduler_client import errors as api_errors

router = APIRouter(include_in_schema=False)
PAGES = pages.PageGroup(
    router=router,
    nav=(
        pages.NavLink("Executions", "/executions", order=20, scope=scopes.JOBS_READ),
        pages.NavLink("Dead letters", "/dead-letters", order=30, scope=scopes.JOBS_READ),
    ),
)
PAGE_SIZE = 25
JOB_CHOICES = 100  # the jobs offered by the job filter: the caller's first page of them
ERROR_SUMMARY_LENGTH = 80
REFRESH_SECONDS = 5
STATUSES = tuple(status.value for status in models.ExecutionStatus)
# The datetime-local inputs' value, read as UTC: minutes, seconds optional.
TIME_MAX_LENGTH = 32
FilterText = Annotated[str, Query(max_length=TIME_MAX_LENGTH)]
JobFilter = Annotated[str, Query(max_length=64)]
# Why the dead letters page is shown, by its `notice`: fixed texts, as the sign-in page's.
NOTICES = {
    "replayed": "Replayed: the job is due now and runs again, with attempts counted from 1.",
}


def _time(value: str, name: str, problems: dict[str, str]) -> datetime | None:
    """A datetime-local value as a UTC time; a complaint in `problems` when it is not one."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        problems[name] = "Enter a date and time, such as 2030-01-31T14:30."
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _job_id(value: str, problems: dict[str, str]) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        problems["job"] = "Choose a job from the list."
        return None


def _id_or_404(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise errors.PageNotFound(value) from exc


def _href(path: str, query: Mapping[str, Any]) -> str:
    """`path` with the query's non-empty values (lists repeated)."""
    pairs = [
        (name, item)
        for name, value in query.items()
        for item in (value if isinstance(value, list | tuple) else [value])
        if item not in (None, "")
    ]
    return f"{path}?{urlencode(pairs)}" if pairs else path


def duration(seconds: float | None) -> str:
    """A duration for people: 0.042 s, 3.2 s, 4 min 5 s, 2 h 3 min."""
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{seconds:.3f} s".replace(".000 s", " s")
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


async def _job_choices(api: platform_api.Api) -> Sequence[models.Job]:
    page = await api.call(lambda client: client.jobs.list(limit=JOB_CHOICES))
    return page.items


# --- Executions ----------------------------------------------------------------------------------


@router.get("/executions", dependencies=[pages.requires(scopes.JOBS_READ)])
async def list_executions(
    request: Request,
    api: pages.Api,
    job: JobFilter = "",
    status: Annotated[list[str] | None, Query()] = None,
    after: FilterText = "",
    before: FilterText = "",
    cursor: pages.Cursor = None,
) -> HTMLResponse:
    problems: dict[str, str] = {}
    job_id = _job_id(job, problems)
    chosen = [value for value in STATUSES if value in (status or ())]
    created_after = _time(after, "after", problems)
    created_before = _time(before, "before", problems)
    if created_after and created_before and created_after >= created_before:
        problems["before"] = "Must be later than “created after”."
    filters = {"job": job, "status": chosen, "after": after, "before": before}
    executions: Sequence[models.Execution] = []
    next_cursor = None
    if not problems:
        try:
            page = await api.call(
                lambda client: client.executions.list(
                    job_id=job_id,
                    status=chosen or None,
                    created_after=created_after,
                    created_before=created_before,
                    limit=PAGE_SIZE,
                    cursor=cursor,
                )
            )
            executions, next_cursor = page.items, page.next_cursor
        except api_errors.InvalidRequest as exc:
            fields = rendering.field_errors(exc)
            names = {"jobId": "job", "createdAfter": "after", "createdBefore": "before"}
            problems = {names.get(k.removeprefix("query."), "form"): v for k, v in fields.items()}
            problems.setdefault("form", rendering.message(exc))
    is_fragment = rendering.is_htmx(request)
    context = {
        "executions": executions,
        "filters": filters,
        "statuses": STATUSES,
        "problems": problems,
        "cursor": cursor,
        "here": _href("/executions", {**filters, "cursor": cursor}),
        "first_href": _href("/executions", filters) if cursor else None,
        "next_href": _href("/executions", {**filters, "cursor": next_cursor})
        if next_cursor
        else None,
        "jobs": [] if is_fragment else await _job_choices(api),
        "duration": duration,
        "summary_length": ERROR_SUMMARY_LENGTH,
        "refresh_seconds": REFRESH_SECONDS,
    }
    return rendering.render(
        request,
        "history/executions.html",
        context,
        status=400 if problems else 200,
        fragment="history/_executions.html",
    )


@router.get("/executions/{execution_id}", dependencies=[pages.requires(scopes.JOBS_READ)])
async def show_execution(request: Request, api: pages.Api, execution_id: str) -> HTMLResponse:
    wanted = _id_or_404(execution_id)
    execution = await api.call(lambda client: client.executions.get(wanted))
    return rendering.render(
        request, "history/execution.html", {"execution": execution, "duration": duration}
    )


# --- Dead letters --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Letter:
    """A dead letter with what its execution tells of it: its job's name and occurrence."""

    letter: models.DeadLetter
    job_name: str | None
    occurrence: datetime | None

    @property
    def replayable(self) -> bool:
        return self.letter.replayed_at is None and not self.letter.job_deleted


async def _with_executions(
    client: AsyncClient, letters: Sequence[models.DeadLetter], names: Mapping[uuid.UUID, str]
) -> list[Letter]:
    """The letters with their executions' job names and occurrences (fetched together; a
    letter without an execution gets its job's name from `names`, when there)."""

    async def execution_of(letter: models.DeadLetter) -> models.Execution | None:
        if letter.execution_id is None:
            return None
        try:
            return await client.executions.get(letter.execution_id)
        except api_errors.NotFound:
            return None

    found = await asyncio.gather(*(execution_of(letter) for letter in letters))
    return [
        Letter(
            letter=letter,
            job_name=execution.job_name if execution else names.get(letter.job_id),
            occurrence=execution.scheduled_for if execution else None,
        )
        for letter, execution in zip(letters, found, strict=True)
    ]


def _replayed_filter(value: str) -> bool | None:
    return {"yes": True, "no": False}.get(value)


async def _dead_letters_page(
    request: Request,
    api: pages.Api,
    signed_in: pages.SignedIn,
    *,
    job: str = "",
    replayed: str = "",
    cursor: str | None = None,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    problems: dict[str, str] = {}
    job_id = _job_id(job, problems)
    jobs = await _job_choices(api)
    names = {choice.id: choice.name for choice in jobs}
    letters: list[Letter] = []
    next_cursor = None
    if not problems:

        async def read(client: AsyncClient) -> tuple[list[Letter], str | None]:
            page = await client.dead_letters.list(
                job_id=job_id, replayed=_replayed_filter(replayed), limit=PAGE_SIZE, cursor=cursor
            )
            return await _with_executions(client, page.items, names), page.next_cursor

        letters, next_cursor = await api.call(read)
    filters = {"job": job, "replayed": replayed if _replayed_filter(replayed) is not None else ""}
    context = {
        "letters": letters,
        "jobs": jobs,
        "filters": filters,
        "problems": problems,
        "cursor": cursor,
        "first_href": _href("/dead-letters", filters) if cursor else None,
        "next_href": _href("/dead-letters", {**filters, "cursor": next_cursor})
        if next_cursor
        else None,
        "can_replay": signed_in.can(scopes.JOBS_RUN),
        "notice": notice,
        "error": error,
        "summary_length": ERROR_SUMMARY_LENGTH,
    }
    return rendering.render(
        request, "history/dead_letters.html", context, status=400 if problems else status
    )


@router.get("/dead-letters", dependencies=[pages.requires(scopes.JOBS_READ)])
async def list_dead_letters(
    request: Request,
    api: pages.Api,
    signed_in: pages.SignedIn,
    job: JobFilter = "",
    replayed: Annotated[str, Query(max_length=3)] = "",
    cursor: pages.Cursor = None,
    notice: Annotated[str, Query(max_length=20)] = "",
) -> HTMLResponse:
    return await _dead_letters_page(
        request,
        api,
        signed_in,
        job=job,
        replayed=replayed,
        cursor=cursor,
        notice=NOTICES.get(notice),
    )


@router.get(
    "/dead-letters/{dead_letter_id}/replay",
    dependencies=[pages.requires(scopes.JOBS_READ), pages.requires(scopes.JOBS_RUN)],
)
async def confirm_replay(
    request: Request, api: pages.Api, dead_letter_id: str, job: JobFilter = ""
) -> HTMLResponse:
    """The confirmation without JavaScript: what will run, and the button that runs it."""
    wanted = _id_or_404(dead_letter_id)
    found: Letter | None = None
    job_id = _job_id(job, {})
    if job_id is not None:

        async def read(client: AsyncClient) -> Letter | None:
            page = await client.dead_letters.list(job_id=job_id, limit=JOB_CHOICES)
            letters = [letter for letter in page.items if letter.id == wanted]
            if not letters:
                return None
            try:
                names = {job_id: (await client.jobs.get(job_id)).name}
            except api_errors.NotFound:
                names = {}
            return (await _with_executions(client, letters, names))[0]

        found = await api.call(read)
    return rendering.render(
        request, "history/replay.html", {"dead_letter_id": wanted, "found": found}
    )


def _conflict_text(exc: api_errors.Conflict) -> str:
    if isinstance(exc, api_errors.AlreadyReplayed):
        return (
            "This dead letter was already replayed, so nothing was run again. To run the job "
            "once more, replay one of its newer dead letters or run the job now from its page."
        )
    if isinstance(exc, api_errors.JobStateConflict):
        current = exc.current_status
        if current in (None, "?") or "deleted" in (exc.detail or ""):
            return "Its job was deleted, so there is nothing to run again. Nothing was changed."
        return (
            f"The job is {current} now, and only a FAILED or SCHEDULED job can be replayed. "
            "Nothing was changed."
        )
    return f"The replay was refused: {rendering.message(exc)}"


@router.post(
    "/dead-letters/{dead_letter_id}/replay",
    dependencies=[pages.requires(scopes.JOBS_READ), pages.requires(scopes.JOBS_RUN)],
)
async def replay(
    request: Request, api: pages.Api, signed_in: pages.SignedIn, dead_letter_id: str
) -> Response:
    wanted = _id_or_404(dead_letter_id)
    try:
        await api.call(lambda client: client.dead_letters.replay(wanted))
    except api_errors.Conflict as exc:
        return await _dead_letters_page(
            request, api, signed_in, error=_conflict_text(exc), status=409
        )
    return RedirectResponse("/dead-letters?notice=replayed", status_code=303)
