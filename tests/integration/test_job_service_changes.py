"""Changing jobs on a real database: PATCH with If-Match, and every transition the API offers
(pause, resume under each misfire policy, cancel, run now, delete), from every state."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from job_service_support import (
    JobService,
    assert_invalid,
    assert_problem,
    running,
)

from libs.scheduling import misfire, schedule, states
from libs.scheduling.states import JobStatus


@pytest.fixture
async def jobs(database_url, token_issuer):
    async with running(database_url, token_issuer) as service:
        yield service


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def patch(
    jobs: JobService, job_id: str, body: object, if_match: str | None = '"1"'
) -> object:
    headers = jobs.bearer()
    if if_match is not None:
        headers["if-match"] = if_match
    return await jobs.client.patch(f"/v1/jobs/{job_id}", json=body, headers=headers)


async def set_status(jobs: JobService, job_id: str, status: JobStatus) -> None:
    """Put the job in `status` as the scheduler or executor would (CHECKs respected)."""
    await jobs.sql(
        "UPDATE jobs SET status = :status,"
        " lease_expires_at = CASE WHEN :status = 'RUNNING' THEN now() + interval '1 minute' END,"
        " next_run_at = CASE WHEN :status IN ('SCHEDULED', 'RUNNING', 'PAUSED')"
        " THEN now() + interval '1 hour' END WHERE id = :id",
        status=str(status),
        id=uuid.UUID(job_id),
    )


async def stored(jobs: JobService, job_id: str) -> object:
    [row] = await jobs.sql("SELECT * FROM jobs WHERE id = :id", id=uuid.UUID(job_id))
    return row


# --- PATCH -------------------------------------------------------------------------------------


async def test_patch_changes_the_fields_sent_and_bumps_the_version(jobs):
    job = await jobs.created(description="old", labels={"a": "1"})

    response = await patch(
        jobs,
        job["id"],
        {
            "name": "renamed",
            "labels": {"b": "2"},
            "retryPolicy": {"maxAttempts": 9},
            "misfirePolicy": "run_all",
            "misfireGraceSeconds": 5,
            "timeoutSeconds": 10,
            "payload": {"message": "new", "level": "error"},
        },
    )

    assert response.status_code == 200, response.text
    changed = response.json()
    assert response.headers["etag"] == '"2"'
    assert changed["version"] == 2
    assert (changed["name"], changed["description"], changed["labels"]) == (
        "renamed", "old", {"b": "2"},
    )  # fmt: skip
    assert changed["retryPolicy"]["maxAttempts"] == 9
    assert (changed["misfirePolicy"], changed["misfireGraceSeconds"]) == ("run_all", 5)
    assert changed["timeoutSeconds"] == 10
    assert changed["payload"] == {"message": "new", "level": "error"}
    assert changed["schedule"] == job["schedule"]
    assert changed["nextRunAt"] == job["nextRunAt"]
    assert parse_time(changed["updatedAt"]) > parse_time(job["updatedAt"])
    assert (await jobs.get(f"/v1/jobs/{job['id']}")).json() == changed


async def test_patch_with_a_null_description_removes_it(jobs):
    job = await jobs.created(description="old")

    response = await patch(jobs, job["id"], {"description": None})

    assert response.json()["description"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": None}, "body.name"),
        ({"labels": None}, "body.labels"),
        ({"name": ""}, "body.name"),
        ({"type": "http"}, "body.type"),
        ({"status": "COMPLETED"}, "body.status"),
        ({"payload": {"url": "https://example.com"}}, "body.payload.url"),
        ({"payload": {"message": ""}}, "body.payload.message"),
        ({"schedule": {"kind": "cron", "expression": "bad"}}, "body.schedule.expression"),
        ({"timeoutSeconds": 0}, "body.timeoutSeconds"),
    ],
)
async def test_a_refused_patch_changes_nothing(jobs, body, field):
    job = await jobs.created()
    before = await jobs.snapshot()

    response = await patch(jobs, job["id"], body)

    assert_invalid(response, field)
    assert await jobs.snapshot() == before


async def test_patch_requires_if_match(jobs):
    job = await jobs.created()
    before = await jobs.snapshot()

    response = await patch(jobs, job["id"], {"name": "x"}, if_match=None)

    assert_problem(response, 428, "precondition-required")
    assert await jobs.snapshot() == before


@pytest.mark.parametrize("if_match", ['"2"', 'W/"1"', '"7", "9"'])
async def test_patch_with_a_stale_version_is_refused_with_the_current_etag(jobs, if_match):
    job = await jobs.created()
    before = await jobs.snapshot()

    response = await patch(jobs, job["id"], {"name": "x"}, if_match=if_match)

    document = assert_problem(response, 412, "stale-version")
    assert response.headers["etag"] == '"1"'
    assert document["currentVersion"] == 1
    assert await jobs.snapshot() == before


@pytest.mark.parametrize("if_match", ["*", '"1"', '"0", "1"'])
async def test_if_match_accepts_any_or_a_list(jobs, if_match):
    job = await jobs.created()

    response = await patch(jobs, job["id"], {"name": "x"}, if_match=if_match)

    assert response.status_code == 200


@pytest.mark.parametrize("if_match", ["1", '"one"', '"1', ""])
async def test_a_malformed_if_match_is_refused(jobs, if_match):
    job = await jobs.created()

    response = await patch(jobs, job["id"], {"name": "x"}, if_match=if_match)

    assert_invalid(response, "header.If-Match")


async def test_two_concurrent_patches_of_one_version_have_one_winner(jobs):
    job = await jobs.created()

    responses = await asyncio.gather(
        *(patch(jobs, job["id"], {"name": f"writer {i}"}) for i in range(5))
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 412, 412, 412, 412]
    [winner] = [r.json() for r in responses if r.status_code == 200]
    assert (await stored(jobs, job["id"])).name == winner["name"]


async def test_an_empty_patch_changes_nothing(jobs):
    job = await jobs.created()

    response = await patch(jobs, job["id"], {})

    assert response.status_code == 200
    assert response.json() == job


async def test_a_schedule_change_moves_the_next_run_of_a_scheduled_job(jobs):
    job = await jobs.created()

    response = await patch(
        jobs, job["id"], {"schedule": {"kind": "once", "at": "2031-05-01T10:00:00+02:00"}}
    )

    changed = response.json()
    assert changed["nextRunAt"] == "2031-05-01T08:00:00Z"
    assert changed["schedule"]["kind"] == "once"
    row = await stored(jobs, job["id"])
    assert (row.schedule_kind, row.schedule["at"]) == ("once", "2031-05-01T08:00:00Z")


async def test_a_schedule_change_of_a_running_job_applies_from_its_next_occurrence(jobs):
    job = await jobs.created()
    await set_status(jobs, job["id"], JobStatus.RUNNING)
    before = await stored(jobs, job["id"])

    response = await patch(
        jobs, job["id"], {"schedule": {"kind": "cron", "expression": "*/5 * * * *"}}
    )

    assert response.status_code == 200, response.text
    after = await stored(jobs, job["id"])
    assert (after.status, after.next_run_at) == ("RUNNING", before.next_run_at)
    assert after.schedule["expression"] == "*/5 * * * *"
    assert after.schedule_kind == "cron"


async def test_a_schedule_change_of_a_paused_job_moves_its_pending_run(jobs):
    job = await jobs.created()
    await jobs.post(f"/v1/jobs/{job['id']}:pause")

    response = await patch(
        jobs, job["id"], {"schedule": {"kind": "once", "at": "2031-01-01T00:00:00Z"}}, '"2"'
    )

    changed = response.json()
    assert (changed["status"], changed["nextRunAt"]) == ("PAUSED", "2031-01-01T00:00:00Z")


async def test_a_schedule_whose_runs_are_used_up_is_refused(jobs):
    job = await jobs.created()
    await jobs.sql("UPDATE jobs SET run_count = 3 WHERE id = :id", id=uuid.UUID(job["id"]))
    before = await jobs.snapshot()

    response = await patch(
        jobs, job["id"], {"schedule": {"kind": "fixed_rate", "intervalSeconds": 60, "maxRuns": 3}}
    )

    assert_invalid(response, "body.schedule.maxRuns")
    assert await jobs.snapshot() == before


# --- Every transition from every state --------------------------------------------------------

ACTIONS = {
    # action: the states it is allowed from (libs.scheduling.states, written out here on purpose)
    "pause": {JobStatus.SCHEDULED, JobStatus.RUNNING},
    "resume": {JobStatus.PAUSED, JobStatus.FAILED},
    "cancel": {JobStatus.SCHEDULED, JobStatus.RUNNING, JobStatus.PAUSED},
    "run": {JobStatus.SCHEDULED, JobStatus.PAUSED, JobStatus.FAILED},
}
RESULTS = {"pause": "PAUSED", "resume": "SCHEDULED", "cancel": "CANCELLED", "run": "SCHEDULED"}


@pytest.mark.parametrize("status", list(JobStatus), ids=str)
@pytest.mark.parametrize("action", list(ACTIONS))
async def test_each_action_from_each_state(jobs, action, status):
    job = await jobs.created()
    await set_status(jobs, job["id"], status)
    before = await jobs.snapshot()

    response = await jobs.post(f"/v1/jobs/{job['id']}:{action}")

    if status in ACTIONS[action]:
        assert response.status_code == 200, response.text
        assert response.json()["status"] == RESULTS[action]
        assert response.json()["version"] == 2
        if status != RESULTS[action]:  # staying SCHEDULED (run now) is no transition
            assert states.can_transition(status, JobStatus(RESULTS[action]))
    else:
        document = assert_problem(response, 409, "job-state-conflict")
        assert document["currentStatus"] == str(status)
        assert await jobs.snapshot() == before


@pytest.mark.parametrize("status", list(JobStatus), ids=str)
async def test_patch_from_each_state(jobs, status):
    job = await jobs.created()
    await set_status(jobs, job["id"], status)

    response = await patch(jobs, job["id"], {"name": "x"})

    if status in {JobStatus.SCHEDULED, JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.FAILED}:
        assert response.status_code == 200
        assert response.json()["status"] == status
    else:
        assert assert_problem(response, 409, "job-state-conflict")["currentStatus"] == status


async def test_a_transition_with_a_stale_if_match_is_refused(jobs):
    job = await jobs.created()

    response = await jobs.post(
        f"/v1/jobs/{job['id']}:pause", headers={**jobs.bearer(), "if-match": '"5"'}
    )

    assert_problem(response, 412, "stale-version")
    assert (await stored(jobs, job["id"])).status == "SCHEDULED"


async def test_running_a_job_now_requires_jobs_run(jobs):
    job = await jobs.created()

    response = await jobs.post(
        f"/v1/jobs/{job['id']}:run", headers=jobs.bearer(None, "jobs:read", "jobs:write")
    )

    assert_problem(response, 403, "insufficient-scope")


# --- Pause and resume ----------------------------------------------------------------------------


async def test_pause_keeps_the_pending_run_and_resume_before_it_keeps_it_too(jobs):
    job = await jobs.created(schedule={"kind": "once", "at": "2031-01-01T00:00:00Z"})

    paused = (await jobs.post(f"/v1/jobs/{job['id']}:pause")).json()
    resumed = (await jobs.post(f"/v1/jobs/{job['id']}:resume")).json()

    assert (paused["status"], paused["nextRunAt"]) == ("PAUSED", "2031-01-01T00:00:00Z")
    assert (resumed["status"], resumed["nextRunAt"]) == ("SCHEDULED", "2031-01-01T00:00:00Z")
    assert resumed["version"] == 3


async def paused_hourly_job(jobs: JobService, policy: str, missed_by: timedelta) -> dict:
    """A paused job every hour on the hour (anchored 10 hours ago), whose pending occurrence
    is `missed_by` in the past."""
    [row] = await jobs.sql("SELECT date_trunc('hour', now()) - interval '10 hours' AS anchor")
    job = await jobs.created(
        schedule={"kind": "fixed_rate", "intervalSeconds": 3600,
                  "anchor": row.anchor.isoformat()},
        misfirePolicy=policy,
        misfireGraceSeconds=60,
    )  # fmt: skip
    await jobs.post(f"/v1/jobs/{job['id']}:pause")
    await jobs.sql(
        "UPDATE jobs SET next_run_at = date_trunc('hour', now()) - CAST(:missed AS interval),"
        " run_count = 2"
        " WHERE id = :id",
        missed=missed_by,
        id=uuid.UUID(job["id"]),
    )
    return job


@pytest.mark.parametrize("policy", ["run_once", "run_all"])
async def test_resume_runs_a_missed_occurrence_now_when_the_policy_runs_it(jobs, policy):
    job = await paused_hourly_job(jobs, policy, timedelta(hours=3))

    resumed = (await jobs.post(f"/v1/jobs/{job['id']}:resume")).json()

    assert resumed["status"] == "SCHEDULED"
    # Due now: the database's now of the resume, which `updatedAt` records too.
    assert resumed["nextRunAt"] == resumed["updatedAt"]
    assert resumed["attempt"] == 1


async def test_resume_skips_missed_occurrences_when_the_policy_skips(jobs):
    job = await paused_hourly_job(jobs, "skip", timedelta(hours=3))
    row = await stored(jobs, job["id"])

    resumed = (await jobs.post(f"/v1/jobs/{job['id']}:resume")).json()

    now = parse_time(resumed["updatedAt"])
    decision = misfire.decide(
        misfire.MisfirePolicy.SKIP,
        schedule.load(row.schedule),
        scheduled_for=row.next_run_at,
        now=now,
        grace_s=60,
        runs=2,
    )
    assert decision.fire == []
    assert parse_time(resumed["nextRunAt"]) == decision.next_run_at
    assert now < decision.next_run_at <= now + timedelta(hours=1)
    assert decision.next_run_at.minute == decision.next_run_at.second == 0


async def test_resume_within_the_grace_runs_now_even_when_the_policy_skips(jobs):
    job = await paused_hourly_job(jobs, "skip", timedelta(seconds=0))
    # Pending 10 s ago: within the 60 s grace.
    await jobs.sql(
        "UPDATE jobs SET next_run_at = now() - interval '10 seconds' WHERE id = :id",
        id=uuid.UUID(job["id"]),
    )

    resumed = (await jobs.post(f"/v1/jobs/{job['id']}:resume")).json()

    assert resumed["nextRunAt"] == resumed["updatedAt"]


async def test_resume_of_a_job_with_no_occurrence_left_completes_it(jobs):
    job = await jobs.created(schedule={"kind": "once"}, misfirePolicy="skip")
    await jobs.post(f"/v1/jobs/{job['id']}:pause")
    await jobs.sql(
        "UPDATE jobs SET next_run_at = now() - interval '1 hour' WHERE id = :id",
        id=uuid.UUID(job["id"]),
    )

    resumed = (await jobs.post(f"/v1/jobs/{job['id']}:resume")).json()

    assert (resumed["status"], resumed["nextRunAt"]) == ("COMPLETED", None)


async def test_resume_without_a_pending_run_computes_the_next_one(jobs):
    job = await jobs.created(schedule={"kind": "fixed_rate", "intervalSeconds": 60})
    await jobs.post(f"/v1/jobs/{job['id']}:pause")
    await jobs.sql(
        "UPDATE jobs SET next_run_at = NULL, run_count = 4 WHERE id = :id",
        id=uuid.UUID(job["id"]),
    )

    resumed = (await jobs.post(f"/v1/jobs/{job['id']}:resume")).json()

    now = parse_time(resumed["updatedAt"])
    assert now < parse_time(resumed["nextRunAt"]) <= now + timedelta(seconds=60)


# --- The platform's reason for a status ---------------------------------------------------------

GONE = "target answered 410 Gone"


async def paused_by_the_platform(jobs: JobService) -> dict:
    """A job the executor paused because its target answered 410 Gone (as it leaves one)."""
    job = await jobs.created()
    await set_status(jobs, job["id"], JobStatus.PAUSED)
    await jobs.sql(
        "UPDATE jobs SET status_reason = :reason WHERE id = :id",
        reason=GONE,
        id=uuid.UUID(job["id"]),
    )
    return job


async def test_the_reason_the_platform_gave_is_shown_and_a_persons_pause_gives_none(jobs):
    by_platform = await paused_by_the_platform(jobs)
    by_person = await jobs.created()
    await jobs.post(f"/v1/jobs/{by_person['id']}:pause")

    shown = (await jobs.get(f"/v1/jobs/{by_platform['id']}")).json()
    listed = (await jobs.get("/v1/jobs", params={"status": "PAUSED"})).json()["items"]

    assert (shown["status"], shown["statusReason"]) == ("PAUSED", GONE)
    assert {j["id"]: j["statusReason"] for j in listed} == {
        by_platform["id"]: GONE,
        by_person["id"]: None,
    }
    assert by_person["statusReason"] is None  # as created


@pytest.mark.parametrize(("action", "status"), [("resume", "SCHEDULED"), ("cancel", "CANCELLED")])
async def test_a_person_changing_the_status_clears_the_reason(jobs, action, status):
    job = await paused_by_the_platform(jobs)

    response = await jobs.post(f"/v1/jobs/{job['id']}:{action}")

    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["statusReason"]) == (status, None)
    assert (await stored(jobs, job["id"])).status_reason is None


async def test_editing_a_paused_job_keeps_its_reason(jobs):
    job = await paused_by_the_platform(jobs)

    response = await patch(jobs, job["id"], {"payload": {"message": "fixed"}})

    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["statusReason"]) == ("PAUSED", GONE)


async def test_deleting_clears_the_reason(jobs):
    job = await paused_by_the_platform(jobs)

    response = await jobs.client.delete(f"/v1/jobs/{job['id']}", headers=jobs.bearer())

    assert response.status_code == 204
    row = await stored(jobs, job["id"])
    assert (row.status, row.status_reason) == ("CANCELLED", None)


# --- Cancel, run now, delete -------------------------------------------------------------------


async def test_cancel_clears_the_next_run_for_good(jobs):
    job = await jobs.created()

    cancelled = (await jobs.post(f"/v1/jobs/{job['id']}:cancel")).json()
    resumed = await jobs.post(f"/v1/jobs/{job['id']}:resume")

    assert (cancelled["status"], cancelled["nextRunAt"]) == ("CANCELLED", None)
    assert_problem(resumed, 409, "job-state-conflict")


async def test_run_now_makes_a_scheduled_job_due_now_and_keeps_its_schedule(jobs):
    job = await jobs.created(schedule={"kind": "once", "at": "2031-01-01T00:00:00Z"})

    ran = (await jobs.post(f"/v1/jobs/{job['id']}:run")).json()

    assert (ran["status"], ran["nextRunAt"]) == ("SCHEDULED", ran["updatedAt"])
    assert parse_time(ran["nextRunAt"]) < datetime(2031, 1, 1, tzinfo=UTC)
    assert ran["schedule"] == job["schedule"]
    assert ran["version"] == 2


async def test_delete_hides_the_job_and_keeps_its_executions_readable(jobs):
    job = await jobs.created()
    execution_id = await jobs.add_execution(job["id"])

    deleted = await jobs.client.delete(f"/v1/jobs/{job['id']}", headers=jobs.bearer())

    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_problem(await jobs.get(f"/v1/jobs/{job['id']}"), 404, "job-not-found")
    assert (await jobs.get("/v1/jobs")).json()["items"] == []
    execution = await jobs.get(f"/v1/executions/{execution_id}")
    assert execution.status_code == 200
    assert execution.json()["jobId"] == job["id"]
    row = await stored(jobs, job["id"])
    assert (row.status, row.next_run_at) == ("CANCELLED", None)
    assert row.deleted_at is not None
    again = await jobs.client.delete(f"/v1/jobs/{job['id']}", headers=jobs.bearer())
    assert_problem(again, 404, "job-not-found")
    for action in ACTIONS:
        assert_problem(await jobs.post(f"/v1/jobs/{job['id']}:{action}"), 404, "job-not-found")


async def test_deleting_a_finished_job_keeps_the_state_it_finished_in(jobs):
    job = await jobs.created()
    await set_status(jobs, job["id"], JobStatus.COMPLETED)

    response = await jobs.client.delete(f"/v1/jobs/{job['id']}", headers=jobs.bearer())

    assert response.status_code == 204
    row = await stored(jobs, job["id"])
    assert (row.status, row.deleted_at is not None) == ("COMPLETED", True)


async def test_delete_with_a_stale_if_match_is_refused(jobs):
    job = await jobs.created()

    response = await jobs.client.delete(
        f"/v1/jobs/{job['id']}", headers={**jobs.bearer(), "if-match": '"3"'}
    )

    assert_problem(response, 412, "stale-version")
    assert (await stored(jobs, job["id"])).deleted_at is None
