"""Running a job again on a real database, as the API decides it: a FAILED job is fixed with
PATCH (staying FAILED), then run now, resumed at its schedule's next occurrence, or replayed; a
PAUSED job is run now once without being resumed (`pauseAfterRun`), and a resume, a pause or a
cancel during that run. What the scheduler and executor then do with such a job:
test_scheduler_misfire.py, test_scheduler_recovery.py, test_executor.py and the end-to-end
tests/system/test_execution_flow.py."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from job_service_support import JobService, assert_problem, running
from sqlalchemy.exc import IntegrityError

from libs.scheduling.states import JobStatus


@pytest.fixture
async def jobs(database_url, token_issuer):
    async with running(database_url, token_issuer) as service:
        yield service


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def stored(jobs: JobService, job_id: str) -> object:
    [row] = await jobs.sql("SELECT * FROM jobs WHERE id = :id", id=uuid.UUID(job_id))
    return row


async def failed_job(jobs: JobService, **overrides: object) -> dict:
    """A one-time job that failed for good: its attempts used up, as the executor leaves it."""
    job = await jobs.created(schedule={"kind": "once"}, **overrides)
    await jobs.sql(
        "UPDATE jobs SET status = 'FAILED', next_run_at = NULL, attempt = 3, run_count = 1"
        " WHERE id = :id",
        id=uuid.UUID(job["id"]),
    )
    return (await jobs.get(f"/v1/jobs/{job['id']}")).json()


async def paused_job(jobs: JobService) -> dict:
    job = await jobs.created()
    return (await jobs.post(f"/v1/jobs/{job['id']}:pause")).json()


# --- Fix, then run again -----------------------------------------------------------------------


async def test_a_failed_job_can_be_fixed_and_stays_failed(jobs):
    job = await failed_job(jobs)

    fixed = await jobs.edit(
        job, {"payload": {"message": "fixed"}, "retryPolicy": {"maxAttempts": 5}}
    )

    assert (fixed["status"], fixed["nextRunAt"], fixed["attempt"]) == ("FAILED", None, 3)
    assert fixed["payload"]["message"] == "fixed"
    assert (fixed["retryPolicy"]["maxAttempts"], fixed["version"]) == (5, job["version"] + 1)


async def test_run_now_schedules_a_failed_job_at_once_with_attempts_from_one(jobs):
    job = await failed_job(jobs)
    fixed = await jobs.edit(job, {"payload": {"message": "fixed"}})

    ran = await jobs.post(f"/v1/jobs/{job['id']}:run")

    assert ran.status_code == 200, ran.text
    body = ran.json()
    assert (body["status"], body["attempt"], body["pauseAfterRun"]) == ("SCHEDULED", 1, False)
    assert body["nextRunAt"] == body["updatedAt"]  # due now, by the database's clock
    assert (ran.headers["etag"], body["runCount"]) == (f'"{fixed["version"] + 1}"', 1)


async def test_run_now_keeps_its_if_match_on_a_failed_job(jobs):
    job = await failed_job(jobs)
    before = await jobs.snapshot()

    response = await jobs.post(
        f"/v1/jobs/{job['id']}:run", headers={**jobs.bearer(), "if-match": '"99"'}
    )

    assert_problem(response, 412, "stale-version")
    assert await jobs.snapshot() == before


async def test_a_failed_job_with_a_new_future_time_waits_for_a_resume(jobs):
    # An edit runs nothing: the new time is the job's pending occurrence, which a resume
    # schedules (and `:run` would run now instead).
    job = await failed_job(jobs)

    changed = await jobs.edit(job, {"schedule": {"kind": "once", "at": "2031-05-01T08:00:00Z"}})
    resumed = await jobs.post(f"/v1/jobs/{job['id']}:resume")

    assert (changed["status"], changed["nextRunAt"]) == ("FAILED", "2031-05-01T08:00:00Z")
    assert resumed.status_code == 200, resumed.text
    assert (resumed.json()["status"], resumed.json()["nextRunAt"], resumed.json()["attempt"]) == (
        "SCHEDULED", "2031-05-01T08:00:00Z", 1,
    )  # fmt: skip


async def test_a_failed_job_with_no_occurrence_left_is_not_resumed(jobs):
    job = await failed_job(jobs)
    before = await jobs.snapshot()

    response = await jobs.post(f"/v1/jobs/{job['id']}:resume")

    document = assert_problem(response, 409, "job-state-conflict")
    assert document["currentStatus"] == "FAILED"
    assert "run it now" in document["detail"]
    assert await jobs.snapshot() == before


async def test_a_recurring_failed_job_resumes_at_its_next_occurrence(jobs):
    job = await jobs.created(schedule={"kind": "fixed_rate", "intervalSeconds": 60})
    await jobs.sql(
        "UPDATE jobs SET status = 'FAILED', next_run_at = NULL, run_count = 3 WHERE id = :id",
        id=uuid.UUID(job["id"]),
    )

    resumed = (await jobs.post(f"/v1/jobs/{job['id']}:resume")).json()

    now = parse_time(resumed["updatedAt"])
    assert resumed["status"] == "SCHEDULED"
    assert 0 < (parse_time(resumed["nextRunAt"]) - now).total_seconds() <= 60


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.CANCELLED])
async def test_finished_and_cancelled_jobs_stay_read_only(jobs, status):
    job = await jobs.created()
    await jobs.sql(
        "UPDATE jobs SET status = :status, next_run_at = NULL WHERE id = :id",
        status=str(status),
        id=uuid.UUID(job["id"]),
    )
    before = await jobs.snapshot()

    edited = await jobs.client.patch(
        f"/v1/jobs/{job['id']}", json={"name": "x"}, headers={**jobs.bearer(), "if-match": "*"}
    )
    ran = await jobs.post(f"/v1/jobs/{job['id']}:run")

    for response in (edited, ran):
        assert assert_problem(response, 409, "job-state-conflict")["currentStatus"] == status
    assert await jobs.snapshot() == before


# --- Run a paused job once ---------------------------------------------------------------------


async def test_run_now_on_a_paused_job_schedules_one_run_and_marks_its_return(jobs):
    job = await paused_job(jobs)

    ran = await jobs.post(f"/v1/jobs/{job['id']}:run")

    assert ran.status_code == 200, ran.text
    body = ran.json()
    assert (body["status"], body["pauseAfterRun"], body["attempt"]) == ("SCHEDULED", True, 1)
    assert body["nextRunAt"] == body["updatedAt"]
    assert body["version"] == job["version"] + 1


async def test_run_now_on_a_paused_job_clears_the_reason_the_platform_gave(jobs):
    job = await paused_job(jobs)
    await jobs.sql(
        "UPDATE jobs SET status_reason = 'target answered 410 Gone' WHERE id = :id",
        id=uuid.UUID(job["id"]),
    )

    ran = (await jobs.post(f"/v1/jobs/{job['id']}:run")).json()

    assert (ran["statusReason"], ran["pauseAfterRun"]) == (None, True)


async def test_a_second_run_now_before_the_first_started_keeps_the_return(jobs):
    job = await paused_job(jobs)
    await jobs.post(f"/v1/jobs/{job['id']}:run")

    again = (await jobs.post(f"/v1/jobs/{job['id']}:run")).json()

    assert (again["status"], again["pauseAfterRun"]) == ("SCHEDULED", True)


@pytest.mark.parametrize("status", [JobStatus.SCHEDULED, JobStatus.RUNNING])
async def test_a_resume_during_the_requested_run_keeps_the_job_on_its_schedule(jobs, status):
    job = await paused_job(jobs)
    ran = (await jobs.post(f"/v1/jobs/{job['id']}:run")).json()
    if status is JobStatus.RUNNING:  # claimed by a scheduler meanwhile
        await jobs.sql(
            "UPDATE jobs SET status = 'RUNNING', lease_expires_at = now() + interval '1 minute'"
            " WHERE id = :id",
            id=uuid.UUID(job["id"]),
        )

    resumed = await jobs.post(
        f"/v1/jobs/{job['id']}:resume", headers={**jobs.bearer(), "if-match": '"3"'}
    )

    assert resumed.status_code == 200, resumed.text
    body = resumed.json()
    assert (body["status"], body["pauseAfterRun"]) == (status, False)
    assert (body["nextRunAt"], body["version"]) == (ran["nextRunAt"], 4)


async def test_a_pause_during_the_requested_run_pauses_the_job_at_once(jobs):
    job = await paused_job(jobs)
    await jobs.post(f"/v1/jobs/{job['id']}:run")

    paused = (await jobs.post(f"/v1/jobs/{job['id']}:pause")).json()

    assert (paused["status"], paused["pauseAfterRun"]) == ("PAUSED", False)


@pytest.mark.parametrize("how", ["cancel", "delete"])
async def test_cancelling_or_deleting_during_the_requested_run_ends_it(jobs, how):
    job = await paused_job(jobs)
    await jobs.post(f"/v1/jobs/{job['id']}:run")

    if how == "cancel":
        response = await jobs.post(f"/v1/jobs/{job['id']}:cancel")
    else:
        response = await jobs.client.delete(f"/v1/jobs/{job['id']}", headers=jobs.bearer())

    assert response.status_code in (200, 204), response.text
    row = await stored(jobs, job["id"])
    assert (row.status, row.pause_after_run) == ("CANCELLED", False)


async def test_a_resume_of_a_running_job_without_a_requested_run_is_refused(jobs):
    job = await jobs.created()
    await jobs.sql(
        "UPDATE jobs SET status = 'RUNNING', lease_expires_at = now() + interval '1 minute'"
        " WHERE id = :id",
        id=uuid.UUID(job["id"]),
    )

    response = await jobs.post(f"/v1/jobs/{job['id']}:resume")

    assert assert_problem(response, 409, "job-state-conflict")["currentStatus"] == "RUNNING"


async def test_the_return_to_paused_cannot_outlive_an_active_status(jobs):
    # The database refuses a row that any path forgot to clear.
    job = await paused_job(jobs)
    await jobs.post(f"/v1/jobs/{job['id']}:run")

    with pytest.raises(IntegrityError, match="ck_jobs_pause_after_run_while_active"):
        await jobs.sql(
            "UPDATE jobs SET status = 'COMPLETED', next_run_at = NULL WHERE id = :id",
            id=uuid.UUID(job["id"]),
        )
