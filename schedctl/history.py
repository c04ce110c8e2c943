"""`schedctl executions ...` and `schedctl dead-letters ...`: what ran, and what was given up
on; and the list options every list command shares."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from schedctl import jobspec, output, session, views
from schedctl.output import Format, OutputOption
from scheduler_client import models

Limit = Annotated[
    int | None, typer.Option(metavar="N", help="Items per page (the API's default: 50).")
]
All = Annotated[bool, typer.Option("--all", help="Follow the pages: list every one.")]
Cursor = Annotated[
    str | None, typer.Option(metavar="CURSOR", help="Start at this page (a previous nextCursor).")
]
ExecutionStatuses = Annotated[
    list[models.ExecutionStatus] | None,
    typer.Option(
        "--status", help="Only executions in this state (repeatable).", case_sensitive=False
    ),
]
Since = Annotated[
    str | None,
    typer.Option(
        metavar="TIME", help="Only those created at or after: a time, or a duration ago (1h)."
    ),
]
Until = Annotated[
    str | None,
    typer.Option(metavar="TIME", help="Only those created before: a time, or a duration ago."),
]


def show_list(
    group: Any,
    fmt: Format,
    view: Callable[[Any], Any],
    noun: str,
    *,
    every: bool,
    limit: int | None,
    cursor: str | None,
    **filters: Any,
) -> None:
    """A list of the library's `group` (`api.jobs`...): one page, or with `every` all of them
    (`iterate`), pages of `limit` items, as a table or JSON."""
    if every:
        output.emit(list(group.iterate(**filters, limit=limit)), fmt, view)
    else:
        output.emit_page(group.list(**filters, limit=limit, cursor=cursor), fmt, view, noun)


def execution_filters(
    status: list[models.ExecutionStatus] | None, since: str | None, until: str | None
) -> dict[str, Any]:
    """The library's filters of an executions list, from the flags."""
    now = datetime.now(UTC)
    return {
        "status": [s.value for s in status or []] or None,
        "created_after": jobspec.since(since, "--since", now=now) if since else None,
        "created_before": jobspec.since(until, "--until", now=now) if until else None,
    }


# --- Executions ----------------------------------------------------------------------------------

executions_app = typer.Typer(help="What ran: one execution per attempt.", no_args_is_help=True)


@executions_app.command("list")
def list_executions(
    job: Annotated[
        list[str] | None, typer.Option("--job", metavar="ID", help="Only this job's (repeatable).")
    ] = None,
    status: ExecutionStatuses = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = None,
    all_: All = False,
    cursor: Cursor = None,
    fmt: OutputOption = Format.TABLE,
) -> None:
    """List the executions of your jobs (an admin's: everyone's), newest first.

    Examples:

      schedctl executions list --since 1h
      schedctl executions list --status failed --status timed_out --job 0b7e...
    """
    filters = {"job_id": job or None, **execution_filters(status, since, until)}
    with session.connect() as api:
        show_list(api.executions, fmt, views.executions, "executions", every=all_, limit=limit,
                  cursor=cursor, **filters)  # fmt: skip


@executions_app.command("get")
def get_execution(
    execution_id: Annotated[
        str, typer.Argument(metavar="ID", help="The execution's id.", show_default=False)
    ],
    fmt: OutputOption = Format.TABLE,
) -> None:
    """Show one execution: its timings, worker and error.

    Example:

      schedctl executions get 5f3a...
    """
    with session.connect() as api:
        found = api.executions.get(execution_id)
    output.emit(found, fmt, views.execution)


# --- Dead letters --------------------------------------------------------------------------------

dead_letters_app = typer.Typer(
    help="Occurrences given up on (retries exhausted, or a permanent failure).",
    no_args_is_help=True,
)


@dead_letters_app.command("list")
def list_dead_letters(
    job: Annotated[str | None, typer.Option("--job", metavar="ID", help="Only this job's.")] = None,
    replayed: Annotated[
        bool | None,
        typer.Option(
            "--replayed/--not-replayed",
            help="Only those replayed already / not yet.",
            show_default=False,
        ),
    ] = None,
    limit: Limit = None,
    all_: All = False,
    cursor: Cursor = None,
    fmt: OutputOption = Format.TABLE,
) -> None:
    """List the dead letters of your jobs (an admin's: everyone's), newest first.

    Examples:

      schedctl dead-letters list --not-replayed
      schedctl dead-letters list --job 0b7e... -o json
    """
    with session.connect() as api:
        show_list(api.dead_letters, fmt, views.dead_letters, "dead letters", every=all_,
                  limit=limit, cursor=cursor, job_id=job, replayed=replayed)  # fmt: skip


@dead_letters_app.command("replay")
def replay(
    dead_letter_id: Annotated[
        str, typer.Argument(metavar="ID", help="The dead letter's id.", show_default=False)
    ],
    fmt: OutputOption = Format.TABLE,
) -> None:
    """Run a dead letter's job again now, with its current payload and attempts from 1 (fix
    the job first with 'schedctl jobs edit' if it can never work as it is).

    Example:

      schedctl dead-letters replay 9c1d...
    """
    with session.connect() as api:
        answer = api.dead_letters.replay(dead_letter_id)
    if fmt is Format.JSON:
        output.print_json(answer)
        return
    print(f"Replayed: {views.job_line(answer.job)}")
