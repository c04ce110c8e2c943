"""A job's history on a real database: executions, dead letters and their replay; the schedule
preview, the job types, and the NOTIFY every write that sets a next run sends."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from test_job_service_support import (
    JobService,
    assert_invalid,
    assert_problem,
    job_body,
    running,
)

from libs import channels, job_types
from libs.states import JobStatus

NOTIFY_DEADLINE_S = 10
T0 = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
async def jobs(database_url, token_issuer):
    async with running(database_url, token_issuer) as service:
        yield service


async def pages(jobs: JobService, path: str, limit: int, **params: object) -> list[str]:
    ids: list[str] = []
    cursor = None
    for _ in range(100):
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        response = await jobs.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        ids.extend(item["id"] for item in page["items"])
        cursor = page["nextCursor"]
        if cursor is None:
            return ids
    raise AssertionError("pagination did not end")


# --- Executions ------------------------------------------------------------------------------


async def test_a_jobs_executions_are_listed_newest_first_across_pages(jobs):
    job = await jobs.created()
    other = await jobs.created()
    # Three share one created_at (one scheduler batch): the id breaks the tie.
    ids = [
        await jobs.add_execution(job["id"], scheduled_for=T0 + timedelta(minutes=i),
                                 created_at=T0 + timedelta(minutes=min(i, 2)))
        for i in range(5)
    ]  # fmt: skip
    await jobs.add_execution(other["id"])

    expected = await jobs.sql(
        "SELECT id FROM executions WHERE job_id = :id ORDER BY created_at DESC, id DESC",
        id=uuid.UUID(job["id"]),
    )
    for limit in (1, 2, 5, 50):
        listed = await pages(jobs, f"/v1/jobs/{job['id']}/executions", limit)
        assert listed == [str(r.id) for r in expected]
    assert set(listed) == {str(i) for i in ids}


async def test_an_execution_is_read_by_id(jobs):
    job = await jobs.created()
    execution_id = await jobs.add_execution(job["id"], status="FAILED", attempt=2)

    response = await jobs.get(f"/v1/executions/{execution_id}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "id", "jobId", "scheduledFor", "attempt", "status", "worker", "dispatchedAt",
        "startedAt", "finishedAt", "errorKind", "error", "createdAt",
    }  # fmt: skip
    assert (body["jobId"], body["attempt"], body["status"]) == (job["id"], 2, "FAILED")
    assert body["scheduledFor"] == "2030-01-01T00:00:00Z"


async def test_another_owners_execution_is_not_found(jobs):
    job = await jobs.created()
    execution_id = await jobs.add_execution(job["id"])
    stranger = jobs.bearer(uuid.uuid4())
    admin = jobs.bearer(uuid.uuid4(), "jobs:read", "users:admin")

    assert_problem(
        await jobs.get(f"/v1/executions/{execution_id}", headers=stranger),
        404,
        "execution-not-found",
    )
    assert_problem(await jobs.get(f"/v1/executions/{uuid.uuid4()}"), 404, "execution-not-found")
    assert (await jobs.get(f"/v1/executions/{execution_id}", headers=admin)).status_code == 200


async def test_a_history_cursor_is_checked(jobs):
    job = await jobs.created()

    response = await jobs.get(f"/v1/jobs/{job['id']}/executions", params={"cursor": "e30"})

    assert_invalid(response, "query.cursor")


# --- Dead letters ------------------------------------------------------------------------------


async def test_dead_letters_are_listed_newest_first_per_owner(jobs):
    job = await jobs.created()
    second = await jobs.created()
    mine = [
        await jobs.add_dead_letter(job["id"], created_at=T0 + timedelta(minutes=min(i, 1)))
        for i in range(4)
    ]
    mine.append(await jobs.add_dead_letter(second["id"], created_at=T0))
    theirs = (
        await jobs.client.post("/v1/jobs", json=job_body(), headers=jobs.bearer(uuid.uuid4()))
    ).json()
    their_letter = await jobs.add_dead_letter(theirs["id"])

    expected = await jobs.sql(
        "SELECT id FROM dead_letters WHERE owner_id = :owner ORDER BY created_at DESC, id DESC",
        owner=jobs.owner,
    )
    for limit in (1, 3, 50):
        assert await pages(jobs, "/v1/dead-letters", limit) == [str(r.id) for r in expected]
    only_second = await pages(jobs, "/v1/dead-letters", 50, jobId=second["id"])
    assert only_second == [str(mine[-1])]
    admin = jobs.bearer(uuid.uuid4(), "jobs:read", "users:admin")
    everyone = (await jobs.get("/v1/dead-letters", headers=admin)).json()["items"]
    assert {d["id"] for d in everyone} == {str(i) for i in [*mine, their_letter]}
    letter = (await jobs.get("/v1/dead-letters", params={"limit": 1})).json()["items"][0]
    assert set(letter) == {
        "id", "jobId", "executionId", "reason", "error", "attempts", "payload", "createdAt",
        "replayedAt",
    }  # fmt: skip


async def failed_job_with_dead_letter(jobs: JobService) -> tuple[dict, uuid.UUID]:
    job = await jobs.created()
    execution_id = await jobs.add_execution(job["id"], status="FAILED", attempt=3)
    await jobs.sql(
        "UPDATE jobs SET status = 'FAILED', next_run_at = NULL, attempt = 3 WHERE id = :id",
        id=uuid.UUID(job["id"]),
    )
    return job, await jobs.add_dead_letter(job["id"], execution_id=execution_id)


async def test_replay_makes_a_failed_job_due_now_with_a_fresh_attempt(jobs):
    job, letter_id = await failed_job_with_dead_letter(jobs)

    response = await jobs.post(f"/v1/dead-letters/{letter_id}:replay")

    assert response.status_code == 200, response.text
    body = response.json()
    replayed_job = body["job"]
    assert (replayed_job["status"], replayed_job["attempt"]) == ("SCHEDULED", 1)
    assert replayed_job["nextRunAt"] == replayed_job["updatedAt"]
    assert replayed_job["version"] == job["version"] + 1
    assert body["deadLetter"]["id"] == str(letter_id)
    assert body["deadLetter"]["replayedAt"] == replayed_job["updatedAt"]


async def test_a_dead_letter_is_replayed_once(jobs):
    _job, letter_id = await failed_job_with_dead_letter(jobs)
    await jobs.post(f"/v1/dead-letters/{letter_id}:replay")
    before = await jobs.snapshot()

    again = await jobs.post(f"/v1/dead-letters/{letter_id}:replay")

    assert_problem(again, 409, "dead-letter-already-replayed")
    assert await jobs.snapshot() == before


async def test_concurrent_replays_of_one_dead_letter_have_one_winner(jobs):
    _job, letter_id = await failed_job_with_dead_letter(jobs)

    responses = await asyncio.gather(
        *(jobs.post(f"/v1/dead-letters/{letter_id}:replay") for _ in range(4))
    )

    assert sorted(r.status_code for r in responses) == [200, 409, 409, 409]


@pytest.mark.parametrize("status", [JobStatus.PAUSED, JobStatus.CANCELLED, JobStatus.COMPLETED])
async def test_replay_is_refused_when_the_jobs_state_does_not_allow_it(jobs, status):
    job, letter_id = await failed_job_with_dead_letter(jobs)
    await jobs.sql(
        "UPDATE jobs SET status = :status WHERE id = :id",
        status=str(status),
        id=uuid.UUID(job["id"]),
    )
    before = await jobs.snapshot()

    response = await jobs.post(f"/v1/dead-letters/{letter_id}:replay")

    assert assert_problem(response, 409, "job-state-conflict")["currentStatus"] == status
    assert await jobs.snapshot() == before
    [row] = await jobs.sql("SELECT replayed_at FROM dead_letters WHERE id = :id", id=letter_id)
    assert row.replayed_at is None


async def test_replay_of_a_deleted_jobs_dead_letter_is_refused(jobs):
    job, letter_id = await failed_job_with_dead_letter(jobs)
    await jobs.client.delete(f"/v1/jobs/{job['id']}", headers=jobs.bearer())

    response = await jobs.post(f"/v1/dead-letters/{letter_id}:replay")

    assert assert_problem(response, 409, "job-state-conflict")["detail"] == "the job was deleted"


async def test_replay_of_a_scheduled_jobs_dead_letter_runs_it_now(jobs):
    # A recurring job carries on with its next occurrence after one was given up on.
    job = await jobs.created(schedule={"kind": "once", "at": "2031-01-01T00:00:00Z"})
    letter_id = await jobs.add_dead_letter(job["id"])

    replayed = (await jobs.post(f"/v1/dead-letters/{letter_id}:replay")).json()["job"]

    assert replayed["status"] == "SCHEDULED"
    assert replayed["nextRunAt"] == replayed["updatedAt"]


async def test_replay_requires_jobs_run_and_ownership(jobs):
    _job, letter_id = await failed_job_with_dead_letter(jobs)

    no_scope = await jobs.post(
        f"/v1/dead-letters/{letter_id}:replay", headers=jobs.bearer(None, "jobs:write")
    )
    stranger = await jobs.post(
        f"/v1/dead-letters/{letter_id}:replay", headers=jobs.bearer(uuid.uuid4())
    )
    missing = await jobs.post(f"/v1/dead-letters/{uuid.uuid4()}:replay")

    assert_problem(no_scope, 403, "insufficient-scope")
    assert_problem(stranger, 404, "dead-letter-not-found")
    assert_problem(missing, 404, "dead-letter-not-found")


# --- Preview and job types ---------------------------------------------------------------------


async def test_preview_lists_the_next_fire_times_and_creates_nothing(jobs):
    response = await jobs.post(
        "/v1/schedules:preview",
        json={"schedule": {"kind": "cron", "expression": "0 9 * * *", "timezone": "Europe/Paris"},
              "count": 3},
    )  # fmt: skip

    assert response.status_code == 200, response.text
    times = [datetime.fromisoformat(t) for t in response.json()["fireTimes"]]
    assert len(times) == 3
    assert all(t.tzinfo is not None and t.utcoffset() == timedelta(0) for t in times)
    assert times == sorted(times)
    assert all(t.minute == 0 and t.hour in (7, 8) for t in times)  # 09:00 in Paris
    assert times[1] - times[0] in (timedelta(hours=23), timedelta(hours=24), timedelta(hours=25))
    assert all(t.endswith("Z") for t in response.json()["fireTimes"])
    assert await jobs.counts() == {
        "jobs": 0, "idempotency_keys": 0, "executions": 0, "dead_letters": 0,
    }  # fmt: skip


async def test_preview_stops_where_the_schedule_ends(jobs):
    response = await jobs.post(
        "/v1/schedules:preview",
        json={"schedule": {"kind": "fixed_rate", "intervalSeconds": 60, "maxRuns": 2}},
    )

    assert len(response.json()["fireTimes"]) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"schedule": {"kind": "cron", "expression": "x"}}, "body.schedule.expression"),
        ({"schedule": {"kind": "once"}, "count": 101}, "body.count"),
        ({"schedule": {"kind": "once"}, "count": 0}, "body.count"),
        ({"schedule": {"kind": "once"}, "extra": 1}, "body.extra"),
    ],
)
async def test_preview_refuses_what_creation_refuses(jobs, body, field):
    assert_invalid(await jobs.post("/v1/schedules:preview", json=body), field)


async def test_job_types_are_listed_with_their_payload_schemas(jobs):
    response = await jobs.get("/v1/job-types")

    items = response.json()["items"]
    assert [t["name"] for t in items] == ["http", "kafka", "log"]
    assert items[0]["payloadSchema"] == job_types.json_schema("http")
    assert "timeoutSeconds" in items[0]["payloadSchema"]["properties"]


# --- NOTIFY ------------------------------------------------------------------------------------


async def test_every_write_that_sets_a_next_run_notifies(jobs, database_url):
    listener = await asyncpg.connect(database_url)
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(channels.JOBS_DUE, lambda *args: heard.put_nowait(args[3]))

    async def notified() -> datetime:
        async with asyncio.timeout(NOTIFY_DEADLINE_S):
            return datetime.fromisoformat(await heard.get())

    try:
        job = await jobs.created(schedule={"kind": "once", "at": "2031-01-01T00:00:00Z"})
        assert await notified() == datetime(2031, 1, 1, tzinfo=UTC)

        patched = await jobs.client.patch(
            f"/v1/jobs/{job['id']}",
            json={"schedule": {"kind": "once", "at": "2032-01-01T00:00:00Z"}},
            headers={**jobs.bearer(), "if-match": '"1"'},
        )
        assert await notified() == datetime.fromisoformat(patched.json()["nextRunAt"])

        ran = (await jobs.post(f"/v1/jobs/{job['id']}:run")).json()
        assert await notified() == datetime.fromisoformat(ran["nextRunAt"])

        await jobs.post(f"/v1/jobs/{job['id']}:pause")  # sets no next run: no notification
        resumed = (await jobs.post(f"/v1/jobs/{job['id']}:resume")).json()
        assert await notified() == datetime.fromisoformat(resumed["nextRunAt"])

        letter_id = await jobs.add_dead_letter(job["id"])
        replayed = (await jobs.post(f"/v1/dead-letters/{letter_id}:replay")).json()["job"]
        assert await notified() == datetime.fromisoformat(replayed["nextRunAt"])
    finally:
        await listener.close()
    assert heard.empty()
