"""`schedctl schedules preview` and `schedctl job-types`: what a schedule does and which job
types the platform runs, before creating a job."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from schedctl import jobs, jobspec, output, session, views
from schedctl.output import Format, OutputOption, UsageProblem

app = typer.Typer(help="Try schedules out.", no_args_is_help=True)


@app.command("preview")
def preview(
    file: Annotated[
        str | None,
        typer.Option(
            "--file", "-f", help="A schedule, or a job with one, as JSON or YAML ('-': stdin)."
        ),
    ] = None,
    cron: jobs.Cron = None,
    tz: jobs.Tz = None,
    every: jobs.Every = None,
    delay: jobs.Delay = None,
    at: jobs.At = None,
    count: Annotated[
        int | None, typer.Option(help="How many fire times (the API's default: 10).")
    ] = None,
    fmt: OutputOption = Format.TABLE,
) -> None:
    """Show the next fire times of a schedule, without creating a job.

    Examples:

      schedctl schedules preview --cron '30 1 * * *' --tz Europe/London --count 5
      schedctl schedules preview --cron '0 0 18 LW * ?'
      schedctl schedules preview --file job.yaml
    """
    flags = jobspec.ScheduleFlags(cron=cron, tz=tz, every=every, delay=delay, at=at)
    spec = jobspec.schedule(flags, now=datetime.now(UTC))
    if spec is None:
        if file is None:
            raise UsageProblem("give a schedule: --cron, --every, --delay, --at or --file")
        document = jobspec.read_document(file, sys.stdin)
        spec = document.get("schedule", document)
        if tz is not None and isinstance(spec, dict):
            spec = {**spec, "timezone": tz}
    with session.connect() as api:
        answer = api.schedules.preview(spec, count=count)
    output.emit(answer, fmt, views.fire_times)


def job_types(fmt: OutputOption = Format.TABLE) -> None:
    """List the job types the platform runs, with their payload's fields.

    Examples:

      schedctl job-types
      schedctl job-types -o json
    """
    with session.connect() as api:
        found = api.job_types.list()
    output.emit(list(found), fmt, views.job_types)
