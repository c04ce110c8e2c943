"""What schedctl prints: every error of the client library as one line naming what went
wrong, Typer's usage errors as one line too, and tables people can read."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from schedctl import jobs, output, views
from scheduler_client import errors, models

TYPE = errors.TYPE_BASE
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def field_error(field: str, message: str) -> models.FieldError:
    return models.FieldError(field=field, message=message, code="value_error")


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (
            errors.InvalidRequest(
                status=422, type=TYPE + "validation-failed", title="The request is not valid",
                errors=[field_error("body.schedule.expression", "not a valid cron expression")],
            ),
            "schedule.expression: not a valid cron expression",
        ),
        (
            errors.InvalidRequest(
                status=422, type=TYPE + "validation-failed", title="The request is not valid",
                errors=[field_error("body.schedule.timezone", "Value error, unknown time zone"),
                        field_error("query.label", "must be key:value")],
            ),
            "schedule.timezone: unknown time zone; query.label: must be key:value",
        ),
        (
            errors.InvalidRequest(
                status=422, type=TYPE + "validation-failed", title="The request is not valid",
                errors=[field_error("body.jobs.12.schedule.expression", "not a valid cron"),
                        field_error("body.jobs.3", "Input should be an object")],
            ),
            "jobs[12].schedule.expression: not a valid cron; jobs[3]: Input should be an object",
        ),
        (
            errors.JobStateConflict(
                status=409, type=TYPE + "job-state-conflict",
                title="The job's state does not allow this", detail="a PAUSED job cannot be run",
            ),
            "the job's state does not allow this: a PAUSED job cannot be run",
        ),
        (
            errors.JobNotFound(status=404, type=TYPE + "job-not-found", title="No such job"),
            "no such job",
        ),
        (
            errors.PreconditionRequired(status=428, type=None, title="If-Match is required"),
            "If-Match is required",  # a name keeps its capital
        ),
        (
            errors.InvalidGrant(
                status=400, type=TYPE + "oauth/invalid-grant", title="invalid_grant",
                detail="the refresh token is not valid",
            ),
            "the session has ended (the refresh token is not valid); run 'schedctl login'",
        ),
        (
            errors.LoginLocked(
                status=429, type=TYPE + "oauth/login-locked", title="Too many failed logins",
                retry_after=42,
            ),
            "too many failed logins; try again in 42 s",
        ),
        (
            errors.ConnectionFailed("GET", "http://127.0.0.1:8000/v1/jobs?limit=5", "ConnectError"),
            "cannot reach http://127.0.0.1:8000 (ConnectError); is the platform running? Start "
            "it with 'make up', or log in with --url to name where it is",
        ),
    ],
)  # fmt: skip
def test_each_error_of_the_library_is_one_line_saying_what_went_wrong(error, line):
    assert output.describe(error) == line


def app_raising(error: Exception) -> typer.Typer:
    app = typer.Typer(cls=output.ClientGroup)

    @app.command("boom")
    def boom() -> None:
        raise error

    @app.command("strict")
    def strict(status: list[models.JobStatus] = typer.Option(..., "--status")) -> None:
        pass

    return app


@pytest.mark.parametrize(
    ("error", "stderr"),
    [
        (errors.JobNotFound(status=404, type=None, title="No such job"), "schedctl: no such job\n"),
        (output.UsageProblem("missing --name"), "schedctl: missing --name\n"),
    ],
)
def test_the_root_group_turns_errors_into_one_line_and_exit_status_1(error, stderr):
    result = CliRunner().invoke(app_raising(error), ["boom"])
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", stderr)


def test_a_usage_error_is_one_line_with_typers_exit_status_2():
    result = CliRunner().invoke(app_raising(ValueError()), ["strict", "--status", "bogus"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("schedctl: invalid value for '--status': 'bogus' is not one")
    assert result.stderr.rstrip().endswith("(see 'root strict --help')")


def test_an_error_the_client_does_not_know_is_not_swallowed():
    result = CliRunner().invoke(app_raising(ValueError("bug")), ["boom"])
    assert isinstance(result.exception, ValueError)


# --- Values and tables ---------------------------------------------------------------------------


def render(renderable) -> str:
    screen = Console(file=io.StringIO(), width=200, color_system=None)
    screen.print(renderable)
    return screen.file.getvalue()


def test_long_values_are_cut_to_one_line_with_an_ellipsis():
    assert output.clip("a\nb  c") == "a b c"
    assert output.clip("x" * 50, 10) == "x" * 9 + "…"
    assert output.clip(None) == output.clip("") == "-"


def test_times_are_local_with_their_zone(monkeypatch):
    monkeypatch.setenv("TZ", "Europe/Paris")
    import time

    time.tzset()
    try:
        assert output.when(AT) == "2026-03-01 13:00:00 CET"
        assert output.when(None) == "-"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize(
    ("total_s", "shown"),
    [(None, "-"), (0.084, "84ms"), (3, "3s"), (2.5, "2.5s"), (90, "1m30s"), (3600, "1h"),
     (90061, "1d1h")],
)  # fmt: skip
def test_durations_for_people(total_s, shown):
    assert views.duration(total_s) == shown


def job(**changes) -> models.Job:
    document = {
        "id": str(uuid.UUID(int=1)), "ownerId": str(uuid.UUID(int=2)),
        "name": "nightly report with a name longer than the column", "description": None,
        "labels": {"team": "ops"}, "type": "http", "payload": {"url": "https://example.com"},
        "schedule": {"kind": "cron", "expression": "30 1 * * *", "timezone": "Europe/London"},
        "retryPolicy": {"maxAttempts": 1}, "misfirePolicy": "run_once", "misfireGraceSeconds": 60,
        "timeoutSeconds": 300, "status": "PAUSED", "statusReason": "target answered 410 Gone",
        "pauseAfterRun": False,
        "nextRunAt": None, "lastRunAt": None, "lastFinishedAt": None, "runCount": 4,
        "attempt": 1, "version": 3, "createdAt": AT.isoformat(), "updatedAt": AT.isoformat(),
        **changes,
    }  # fmt: skip
    return models.Job.model_validate(document, context=models.ANSWER)


def test_a_jobs_table_shows_whole_ids_readable_statuses_and_cut_names():
    text = render(views.jobs([job()]))
    header, _, row = text.splitlines()[:3]
    assert header.split() == ["ID", "NAME", "TYPE", "STATUS", "SCHEDULE", "NEXT", "RUN", "RUNS"]
    assert row.startswith(str(uuid.UUID(int=1)))
    assert "nightly report with a name lo…" in row
    assert " PAUSED " in row and "cron 30 1 * * * Europe/London" in row
    assert row.rstrip().endswith(" 4")


def test_a_job_in_detail_says_why_the_platform_set_its_status():
    text = render(views.job(job()))
    assert "PAUSED (target answered 410 Gone)" in text
    (retries,) = [line.rstrip() for line in text.splitlines() if line.startswith("retries")]
    assert retries.endswith(" 1 attempt")
    assert '{"url":"https://example.com"}' in text


@pytest.mark.parametrize(
    ("schedule", "shown"),
    [
        ({"kind": "fixed_rate", "intervalSeconds": 900}, "every 15m"),
        ({"kind": "fixed_delay", "delaySeconds": 60}, "1m after each run"),
        ({"kind": "once", "at": "2026-05-01T09:00:00Z"}, "once at 2026-05-01T09:00:00Z"),
        ({"kind": "calendar", "every": 2, "unit": "weeks", "timezone": "Asia/Tokyo"},
         "every 2 weeks Asia/Tokyo"),
        ({"kind": "lunar", "phase": "full"}, "lunar"),  # a kind of a newer server
    ],
)  # fmt: skip
def test_schedules_in_a_few_words(schedule, shown):
    assert views.schedule(schedule) == shown


def test_json_is_the_apis_document_in_camel_case(capsys):
    output.print_json([job()])
    (document,) = json.loads(capsys.readouterr().out)
    assert document["nextRunAt"] is None and document["retryPolicy"]["maxAttempts"] == 1
    assert document["statusReason"] == "target answered 410 Gone"


def test_a_page_with_more_items_says_how_to_read_them(capsys):
    page = models.Page[models.Job](items=[job()], next_cursor="abc")
    output.emit_page(page, output.Format.TABLE, views.jobs, "jobs")
    captured = capsys.readouterr()
    assert str(uuid.UUID(int=1)) in captured.out
    assert "more jobs: --all lists every one, --cursor abc the next page" in captured.err
    output.emit_page(page, output.Format.JSON, views.jobs, "jobs")
    assert json.loads(capsys.readouterr().out)["nextCursor"] == "abc"


def test_a_batch_says_what_each_item_created_or_why_it_was_refused_by_index():
    result = models.JobBatchResult.model_validate(
        {"created": 1, "failed": 2, "results": [
            {"index": 0, "status": 201, "job": job(name="first").model_dump(mode="json")},
            {"index": 1, "status": 422, "problem": {
                "type": TYPE + "validation-failed", "title": "The request is not valid",
                "status": 422, "errors": [{"field": "body.jobs.1.name", "message": "too short",
                                           "code": "string_too_short"}]}},
            {"index": 2, "status": 422, "problem": {
                "type": TYPE + "job-type-unknown", "title": "Unknown job type", "status": 422,
                "detail": "no job type 'ftp'"}},
        ]},
        context=models.ANSWER,
    )  # fmt: skip

    assert render(views.batch(result)).splitlines() == [
        f"created  jobs[0]  {uuid.UUID(int=1)}  first",
        "refused  jobs[1].name: too short",
        "refused  jobs[2]: unknown job type: no job type 'ftp'",
    ]


@pytest.mark.parametrize(
    ("created", "failed", "line"),
    [
        (2, 1, "1 of 3 jobs refused; the other 2 were created"),
        (1, 2, "2 of 3 jobs refused; the other one was created"),
        (0, 1, "the job was refused"),
        (0, 3, "all 3 jobs were refused"),
    ],
)
def test_a_batch_with_refusals_ends_with_what_it_did(created, failed, line):
    assert jobs.batch_summary(created, failed) == line
