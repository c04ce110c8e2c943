"""The executor's `execution_finished` lines: one per execution the database recorded, batched
or not, saying what ran, how it ended and what became of its job, never its payload or the
text of its error. (None for an outcome the database refused: test_executor_delivery.py.)"""

from __future__ import annotations

import json
from collections import Counter

import structlog.testing
from executor_support import Target, attempt_under_way, platform
from scheduler_support import eventually, executions, job

from libs.scheduling.states import ExecutionStatus, JobStatus

FAST_RETRY = {"max_attempts": 3, "initial_backoff_s": 0.2, "multiplier": 2, "max_backoff_s": 1}
SECRET = "s3cret-header-value"
PAYLOAD_TEXT = "payload-only-text"
ANSWER = "answer"  # what the target's body says: quoted in the execution's error, not the log
LOG_JOBS = 5
# Long enough for outcomes finishing together to be recorded in one batch (one transaction).
BATCHING = {"outcome_flush_interval_s": 0.5}


def finished_lines(logs: list[dict]) -> list[dict]:
    return [entry for entry in logs if entry["event"] == "execution_finished"]


async def test_each_recorded_execution_is_logged_once_batched_or_retried(
    database_url, kafka_bootstrap_servers, unique_name, serve_app
):
    with structlog.testing.capture_logs() as logs:
        async with (
            Target(503, 200).serving(serve_app) as target,
            platform(database_url, kafka_bootstrap_servers, unique_name, executor=BATCHING) as p,
        ):
            log_jobs = [await p.due_now(type="log") for _ in range(LOG_JOBS)]
            payload = {
                "url": target.url,
                "headers": {"authorization": f"Bearer {SECRET}"},
                "body": {"note": PAYLOAD_TEXT},
            }
            http_job = await p.due_now(type="http", payload=payload, retry_policy=FAST_RETRY)
            expected = LOG_JOBS + 2  # the http job fails once, then succeeds

            async def all_logged():
                return len(finished_lines(logs)) >= expected

            await eventually(all_logged, what=f"{expected} execution_finished lines")
            rows = [e for j in [*log_jobs, http_job] for e in await executions(p.sessions, j)]
            for job_id in [*log_jobs, http_job]:
                assert (await job(p.sessions, job_id)).status == JobStatus.COMPLETED

    lines = finished_lines(logs)
    assert Counter(line["execution_id"] for line in lines) == Counter(str(e.id) for e in rows)
    by_execution = {line["execution_id"]: line for line in lines}
    for row in rows:
        line = by_execution[str(row.id)]
        assert line["log_level"] == "info"
        assert line["job_id"] == str(row.job_id)
        assert (line["status"], line["attempt"]) == (row.status, row.attempt)
        assert line["duration_ms"] >= 0
    # The log jobs' outcomes were one batch: one transaction, one `now()` for all of them...
    log_rows = [row for row in rows if row.job_id in log_jobs]
    recorded_at = {job_id: (await job(p.sessions, job_id)).last_finished_at for job_id in log_jobs}
    assert len(set(recorded_at.values())) == 1
    # ...while each execution's `finished_at` is when its attempt ended, not when the batch
    # gathered for half a second was written.
    for row in log_rows:
        assert row.started_at <= row.finished_at < recorded_at[row.job_id]
        assert (row.finished_at - row.started_at).total_seconds() < BATCHING[
            "outcome_flush_interval_s"
        ]
    assert {by_execution[str(row.id)]["type"] for row in log_rows} == {"log"}
    http = sorted(
        (line for line in lines if line["job_id"] == str(http_job)), key=lambda x: x["attempt"]
    )
    assert [(line["type"], line["status"], line["error_kind"], line["then"]) for line in http] == [
        ("http", ExecutionStatus.FAILED.value, "http_5xx", "retry"),
        ("http", ExecutionStatus.SUCCEEDED.value, None, "completed"),
    ]
    assert http[0]["next_run_at"] is not None
    [failed] = [row for row in rows if row.status == ExecutionStatus.FAILED]
    assert ANSWER in failed.error  # the execution keeps the error's text; the line does not
    logged = json.dumps(lines)
    for hidden in (SECRET, PAYLOAD_TEXT, ANSWER):
        assert hidden not in logged


async def test_an_execution_recorded_after_its_job_was_paused_says_the_job_did_not_move(
    database_url, kafka_bootstrap_servers, unique_name, serve_app
):
    with structlog.testing.capture_logs() as logs:
        async with attempt_under_way(
            database_url, kafka_bootstrap_servers, unique_name, serve_app
        ) as (p, target, job_id):
            await p.sql("UPDATE jobs SET status = 'PAUSED' WHERE id = :j", j=job_id)
            target.hold.set()

            async def logged():
                return finished_lines(logs)

            [line] = await eventually(logged, what="the execution_finished line")
            [execution] = await executions(p.sessions, job_id)
            assert (await job(p.sessions, job_id)).status == JobStatus.PAUSED

    assert line["execution_id"] == str(execution.id)
    assert (line["status"], line["then"]) == (ExecutionStatus.SUCCEEDED.value, None)
    assert execution.status == ExecutionStatus.SUCCEEDED
