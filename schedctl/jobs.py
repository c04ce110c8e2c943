"""`schedctl jobs ...`: create, list, read, change, run and delete jobs."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import typer

from schedctl import history, jobspec, output, session, views
from schedctl.output import Format, OutputOption, UsageProblem
from scheduler_client import errors, models

app = typer.Typer(help="Create, list, change and run jobs.", no_args_is_help=True)

JobId = Annotated[str, typer.Argument(metavar="ID", help="The job's id.", show_default=False)]

File = Annotated[
    str | None,
    typer.Option(
        "--file",
        "-f",
        metavar="PATH",
        help="A job document, or a list of them, JSON or YAML ('-': standard input).",
    ),
]
# The flags `create` and `edit` share.
Name = Annotated[str | None, typer.Option(metavar="NAME", help="The job's name.")]
Description = Annotated[
    str | None, typer.Option(metavar="TEXT", help="A description ('' removes it).")
]
Cron = Annotated[
    str | None,
    typer.Option(
        metavar="EXPR", help="Run on a cron schedule: 5 fields, or Quartz's 6-7 with seconds first."
    ),
]
Tz = Annotated[
    str | None, typer.Option(metavar="ZONE", help="The schedule's IANA time zone (default UTC).")
]
Every = Annotated[
    str | None,
    typer.Option(metavar="SECONDS", help="Run at a fixed rate: every SECONDS (or 90s, 15m, 2h)."),
]
Delay = Annotated[
    str | None,
    typer.Option(metavar="SECONDS", help="Run with a fixed delay: SECONDS after each run ends."),
]
At = Annotated[
    str | None,
    typer.Option(
        metavar="TIME", help="Run once: 'now', '+15m', or an ISO time (without offset: in --tz)."
    ),
]
HttpUrl = Annotated[
    str | None, typer.Option(metavar="URL", help="An http job's URL (implies --type http).")
]
HttpMethod = Annotated[
    str | None, typer.Option(metavar="METHOD", help="An http job's method (default POST).")
]
Header = Annotated[
    list[str] | None,
    typer.Option("--header", metavar="K:V", help="A request header 'Name: value' (repeatable)."),
]
Body = Annotated[
    str | None, typer.Option(metavar="JSON", help="An http job's request body, as JSON.")
]
Payload = Annotated[
    str | None,
    typer.Option(metavar="JSON", help="The whole payload as a JSON object (any job type)."),
]
Label = Annotated[
    list[str] | None, typer.Option("--label", metavar="K=V", help="A label (repeatable).")
]
MaxAttempts = Annotated[
    int | None,
    typer.Option(metavar="N", help="Attempts per occurrence before a dead letter (default 3)."),
]
Timeout = Annotated[
    str | None,
    typer.Option(metavar="SECONDS", help="Longest a run may take (or 30s, 5m; default 5m)."),
]


class JobSort(StrEnum):
    CREATED_AT = "createdAt"
    NEXT_RUN_AT = "nextRunAt"


def _flags(
    *, name, description, type_, cron, tz, every, delay, at, http_url, http_method, header,
    body, payload, label, max_attempts, timeout,
) -> jobspec.JobFlags:  # fmt: skip
    return jobspec.JobFlags(
        name=name, description=description, type=type_,
        schedule=jobspec.ScheduleFlags(cron=cron, tz=tz, every=every, delay=delay, at=at),
        http_url=http_url, http_method=http_method, headers=header or (), body=body,
        payload=payload, labels=label or (), max_attempts=max_attempts, timeout=timeout,
    )  # fmt: skip


def _base(file: str | None) -> dict | None:
    return jobspec.read_document(file, sys.stdin) if file is not None else None


@app.command("create")
def create(
    file: File = None,
    name: Name = None,
    description: Description = None,
    type_: Annotated[
        str | None, typer.Option("--type", help="The job type (see 'schedctl job-types').")
    ] = None,
    cron: Cron = None,
    tz: Tz = None,
    every: Every = None,
    delay: Delay = None,
    at: At = None,
    http_url: HttpUrl = None,
    http_method: HttpMethod = None,
    header: Header = None,
    body: Body = None,
    payload: Payload = None,
    label: Label = None,
    max_attempts: MaxAttempts = None,
    timeout: Timeout = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(help="Retrying with the same key answers the job created the first time."),
    ] = None,
    fmt: OutputOption = Format.TABLE,
) -> None:
    """Create a job from flags, or from a JSON or YAML document (flags override its fields).

    A file holding a list of jobs (a JSON array, a YAML sequence) creates them all in one
    request, each judged on its own: one line per job says what it created or why it was
    refused, naming the field by the job's index (jobs[2].schedule.expression). The valid
    ones are created even when others are refused; then the exit status is 1.

    Examples:

      schedctl jobs create --name ping --http-url https://example.com/h --every 5m
      schedctl jobs create --name report --type log --payload '{"message": "hi"}' \\
          --cron '30 1 * * *' --tz Europe/London --label team=ops
      schedctl jobs create --name once --http-url https://example.com/x --at +10m
      schedctl jobs create --file job.yaml
      schedctl jobs create --file jobs.yaml --idempotency-key nightly-2026-05-01
    """
    flags = _flags(
        name=name, description=description, type_=type_, cron=cron, tz=tz, every=every,
        delay=delay, at=at, http_url=http_url, http_method=http_method, header=header,
        body=body, payload=payload, label=label, max_attempts=max_attempts, timeout=timeout,
    )  # fmt: skip
    base = jobspec.read_jobs(file, sys.stdin) if file is not None else None
    if isinstance(base, list):
        if flags != jobspec.JobFlags():
            raise UsageProblem(f"{file} holds a list of jobs: give each its fields there, "
                               "not with flags (--name, --cron...)")  # fmt: skip
        _create_many(base, idempotency_key, fmt)
        return
    document = jobspec.new_job(flags, now=datetime.now(UTC), base=base)
    with session.connect() as api:
        job = api.jobs.create(document, idempotency_key=idempotency_key)
    output.emit(job, fmt, views.job)


def _create_many(documents: list[dict], idempotency_key: str | None, fmt: Format) -> None:
    with session.connect() as api:
        result = api.jobs.create_many(documents, idempotency_key=idempotency_key)
    if fmt is Format.JSON:
        output.print_json(result)
    else:
        output.show(views.batch(result))
    if result.failed:
        output.fail(batch_summary(result.created, result.failed))


def batch_summary(created: int, failed: int) -> str:
    """What a batch with refused jobs did, in a line."""
    if not created:
        return "the job was refused" if failed == 1 else f"all {failed} jobs were refused"
    others = "the other one was" if created == 1 else f"the other {created} were"
    return f"{failed} of {created + failed} jobs refused; {others} created"


@app.command("list")
def list_jobs(
    status: Annotated[
        list[models.JobStatus] | None,
        typer.Option(
            "--status", help="Only jobs in this state (repeatable).", case_sensitive=False
        ),
    ] = None,
    type_: Annotated[str | None, typer.Option("--type", help="Only jobs of this type.")] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", help="Only jobs with key=value (repeatable).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Only jobs whose name starts with this.")] = None,
    owner: Annotated[
        str | None, typer.Option(help="Only this account's jobs (its id; for admins).")
    ] = None,
    sort: Annotated[
        JobSort, typer.Option(help="createdAt: oldest first; nextRunAt: soonest first.")
    ] = JobSort.CREATED_AT,
    limit: history.Limit = None,
    all_: history.All = False,
    cursor: history.Cursor = None,
    fmt: OutputOption = Format.TABLE,
) -> None:
    """List your jobs (an admin's: everyone's), a page at a time.

    Examples:

      schedctl jobs list
      schedctl jobs list --status paused --status failed --label team=ops
      schedctl jobs list --sort nextRunAt --all -o json
    """
    labels = [f"{key}:{value}" for key, value in jobspec.pairs(label or [], "=", "--label").items()]
    filters = {
        "status": [s.value for s in status or []] or None,
        "type": type_,
        "label": labels or None,
        "name": name,
        "owner_id": owner,
        "sort": sort.value,
    }
    with session.connect() as api:
        history.show_list(api.jobs, fmt, views.jobs, "jobs", every=all_, limit=limit,
                          cursor=cursor, **filters)  # fmt: skip


@app.command("get")
def get(job_id: JobId, fmt: OutputOption = Format.TABLE) -> None:
    """Show a job.

    Example:

      schedctl jobs get 0b7e...
    """
    with session.connect() as api:
        job = api.jobs.get(job_id)
    output.emit(job, fmt, views.job)


@app.command("edit")
def edit(
    job_id: JobId,
    file: Annotated[
        str | None,
        typer.Option(
            "--file", "-f", metavar="PATH", help="The fields to change, JSON or YAML ('-': stdin)."
        ),
    ] = None,
    name: Name = None,
    description: Description = None,
    cron: Cron = None,
    tz: Tz = None,
    every: Every = None,
    delay: Delay = None,
    at: At = None,
    http_url: HttpUrl = None,
    http_method: HttpMethod = None,
    header: Header = None,
    body: Body = None,
    payload: Payload = None,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", metavar="K=V", help="Add or set a label (repeatable)."),
    ] = None,
    max_attempts: MaxAttempts = None,
    timeout: Timeout = None,
    version: Annotated[
        int | None,
        typer.Option(metavar="N", help="Change the job only if it is still at this version."),
    ] = None,
    fmt: OutputOption = Format.TABLE,
) -> None:
    """Change some of a job's fields, at the version just read (or --version).

    If the job changed meanwhile, nothing is changed and the command fails naming the job's
    current version. A payload, schedule or retry policy given in part keeps the rest of the
    current one (--tz alone moves the current schedule to another zone).

    Examples:

      schedctl jobs edit 0b7e... --cron '0 6 * * 1-5' --tz Europe/Paris
      schedctl jobs edit 0b7e... --http-url https://example.com/new-hook --version 3
      schedctl jobs edit 0b7e... --file changes.yaml
    """
    flags = _flags(
        name=name, description=description, type_=None, cron=cron, tz=tz, every=every,
        delay=delay, at=at, http_url=http_url, http_method=http_method, header=header,
        body=body, payload=payload, label=label, max_attempts=max_attempts, timeout=timeout,
    )  # fmt: skip
    base = _base(file)
    with session.connect() as api:
        current = api.jobs.get(job_id)
        changes = jobspec.job_changes(
            flags, output.document(current), now=datetime.now(UTC), base=base
        )
        expected = version if version is not None else current.version
        try:
            job = api.jobs.update(job_id, changes, if_match=expected)
        except errors.StaleVersion as exc:
            now_at = exc.current_version if exc.current_version is not None else "another"
            output.fail(
                f"job {job_id} changed: it is at version {now_at}, not {expected}; "
                f"nothing was changed (see 'schedctl jobs get {job_id}', then retry)"
            )
    output.emit(job, fmt, views.job)


def _action(name: str, summary: str, example: str) -> None:
    def command(job_id: JobId, fmt: OutputOption = Format.TABLE) -> None:
        with session.connect() as api:
            job = getattr(api.jobs, name)(job_id)
        output.emit(job, fmt, views.job_line)

    command.__doc__ = f"{summary}\n\nExample:\n\n  schedctl jobs {name} {example}\n"
    app.command(name)(command)


_action("pause", "Pause a job: it does not run until resumed.", "0b7e...")
_action("resume", "Resume a paused (or failed) job on its schedule.", "0b7e...")
_action("cancel", "Cancel a job for good (it stays readable; it cannot run again).", "0b7e...")
_action(
    "run",
    "Run a job now, once, beside its schedule (a paused job stays paused after that run).",
    "0b7e...",
)


@app.command("delete")
def delete(
    job_id: JobId,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    fmt: OutputOption = Format.TABLE,
) -> None:
    """Delete a job (its executions and dead letters stay listed).

    Example:

      schedctl jobs delete 0b7e... --yes
    """
    if not yes:
        if not sys.stdin.isatty():
            raise UsageProblem("not deleted: confirm with --yes (standard input is no terminal)")
        if not typer.confirm(f"Delete job {job_id}?", err=True):
            raise UsageProblem("not deleted")
    with session.connect() as api:
        api.jobs.delete(job_id)
    if fmt is Format.TABLE:
        print(f"Deleted job {job_id}.")


@app.command("executions")
def executions(
    job_id: JobId,
    status: history.ExecutionStatuses = None,
    since: history.Since = None,
    until: history.Until = None,
    limit: history.Limit = None,
    all_: history.All = False,
    cursor: history.Cursor = None,
    fmt: OutputOption = Format.TABLE,
) -> None:
    """List a job's executions (one per attempt), newest first.

    Examples:

      schedctl jobs executions 0b7e...
      schedctl jobs executions 0b7e... --status failed --since 1d
    """
    filters = history.execution_filters(status, since, until)
    with session.connect() as api:
        if all_:
            found = list(api.executions.iterate(job_id=job_id, **filters, limit=limit))
            output.emit(found, fmt, views.executions)
            return
        page = api.jobs.executions(job_id, **filters, limit=limit, cursor=cursor)
    output.emit_page(page, fmt, views.executions, "executions")
