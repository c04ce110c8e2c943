"""A job's history on a real database: executions, dead letters and their replay; the schedule
preview, the job types, and the NOTIFY every write that sets a next run sends."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from job_service_support import (
    JobService,
    assert_invalid,
    assert_problem,
    job_body,
    running,
)

from libs.contracts import channels
from libs.scheduling.states import JobStatus

NOTIFY_DEADLINE_S = 10
T0 = datetime(2030, 1, 1, tzinfo=UTC)
EXECUTION_KEYS = {
    "id", "jobId", "jobName", "jobType", "jobDeleted", "scheduledFor", "attempt", "status",
    "worker", "dispatchedAt", "startedAt", "finishedAt", "durationSeconds", "errorKind", "error",
    "createdAt",
}  # fmt: skip


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
    assert set(body) == EXECUTION_KEYS
    assert (body["jobId"], body["attempt"], body["status"]) == (job["id"], 2, "FAILED")
    assert (body["jobName"], body["jobType"], body["jobDeleted"]) == ("hourly", "log", False)
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


# --- Executions across jobs: GET /v1/executions and the filters --------------------------------

STATUSES = ["SUCCEEDED", "FAILED", "TIMED_OUT", "RUNNING", "LOST", "DISPATCHED"]


@dataclass(frozen=True)
class Run:
    id: str
    job_id: str
    status: str
    created_at: datetime


async def runs_of(jobs: JobService, job_ids: list[str], count: int) -> list[Run]:
    """`count` executions spread over the jobs and the states; two at a time share a
    `createdAt` (one scheduler batch), so the id breaks ties inside the filters too."""
    runs = []
    for i in range(count):
        job_id = job_ids[i % len(job_ids)]
        status = STATUSES[(i // len(job_ids)) % len(STATUSES)]
        created_at = T0 + timedelta(minutes=i // 2)
        run_id = await jobs.add_execution(
            job_id, scheduled_for=T0 + timedelta(minutes=i), status=status, created_at=created_at
        )
        runs.append(Run(str(run_id), job_id, status, created_at))
    return runs


def newest_first(runs: list[Run]) -> list[str]:
    """Ids in the API's order: `(createdAt, id)` descending (PostgreSQL compares uuids as
    Python does, byte by byte)."""
    ordered = sorted(runs, key=lambda r: (r.created_at, uuid.UUID(r.id)), reverse=True)
    return [r.id for r in ordered]


async def test_executions_across_jobs_are_listed_newest_first_naming_their_job(jobs):
    log_job = await jobs.created(name="log job")
    kafka_job = await jobs.created(
        name="kafka job", type="kafka", payload={"topic": "billing.invoices", "value": {"n": 1}}
    )
    runs = await runs_of(jobs, [log_job["id"], kafka_job["id"]], 7)

    for limit in (1, 2, 3, 50):
        assert await pages(jobs, "/v1/executions", limit) == newest_first(runs)
    items = (await jobs.get("/v1/executions")).json()["items"]
    assert all(set(item) == EXECUTION_KEYS for item in items)
    named = {
        item["jobId"]: (item["jobName"], item["jobType"], item["jobDeleted"]) for item in items
    }
    assert named == {
        log_job["id"]: ("log job", "log", False),
        kafka_job["id"]: ("kafka job", "kafka", False),
    }


async def test_executions_are_filtered_and_paged_by_job_status_and_creation_time(jobs):
    a, b, c = [(await jobs.created())["id"] for _ in range(3)]
    runs = await runs_of(jobs, [a, b, c], 36)
    after, before = T0 + timedelta(minutes=3), T0 + timedelta(minutes=12)
    unknown_job = {"jobId": str(uuid.uuid4())}
    cases: list[tuple[dict[str, object], Callable[[Run], bool]]] = [
        ({}, lambda r: True),
        ({"jobId": a}, lambda r: r.job_id == a),
        ({"jobId": [a, c]}, lambda r: r.job_id in (a, c)),
        ({"status": "FAILED"}, lambda r: r.status == "FAILED"),
        ({"status": ["FAILED", "TIMED_OUT"]}, lambda r: r.status in ("FAILED", "TIMED_OUT")),
        # Inclusive: the two created at `after` itself are in.
        ({"createdAfter": "2030-01-01T00:03:00Z"}, lambda r: r.created_at >= after),
        # The same instant with another offset.
        ({"createdAfter": "2030-01-01T02:03:00+02:00"}, lambda r: r.created_at >= after),
        # Exclusive: the two created at `before` itself are out.
        ({"createdBefore": "2030-01-01T00:12:00Z"}, lambda r: r.created_at < before),
        (
            {"createdAfter": "2030-01-01T00:03:00Z", "createdBefore": "2030-01-01T00:12:00Z"},
            lambda r: after <= r.created_at < before,
        ),
        (
            {
                "jobId": [a, b],
                "status": ["SUCCEEDED", "FAILED", "LOST"],
                "createdAfter": "2030-01-01T00:03:00Z",
                "createdBefore": "2030-01-01T00:12:00Z",
            },
            lambda r: (
                r.job_id in (a, b)
                and r.status in ("SUCCEEDED", "FAILED", "LOST")
                and after <= r.created_at < before
            ),
        ),
        (unknown_job, lambda r: False),
    ]

    for params, selected in cases:
        expected = newest_first([r for r in runs if selected(r)])
        # Each filter keeps some and drops some (the unknown job's: all).
        assert 0 < len(expected) < len(runs) or params in ({}, unknown_job), params
        for limit in (2, 5, 50):
            listed = await pages(jobs, "/v1/executions", limit, **params)
            assert listed == expected, (params, limit)


async def test_a_jobs_executions_take_the_status_and_time_filters(jobs):
    a, b = [(await jobs.created())["id"] for _ in range(2)]
    runs = await runs_of(jobs, [a, b], 24)
    params = {"status": ["SUCCEEDED", "RUNNING"], "createdAfter": "2030-01-01T00:02:00Z",
              "createdBefore": "2030-01-01T00:10:00Z"}  # fmt: skip

    listed = await pages(jobs, f"/v1/jobs/{a}/executions", 2, **params)

    expected = newest_first([
        r for r in runs
        if r.job_id == a and r.status in ("SUCCEEDED", "RUNNING")
        and T0 + timedelta(minutes=2) <= r.created_at < T0 + timedelta(minutes=10)
    ])  # fmt: skip
    assert len(expected) >= 2
    assert listed == expected


async def test_another_users_executions_never_appear_and_an_admin_sees_all(jobs):
    mine = await jobs.created()
    mine_runs = await runs_of(jobs, [mine["id"]], 3)
    stranger = uuid.uuid4()
    theirs = (
        await jobs.client.post("/v1/jobs", json=job_body(), headers=jobs.bearer(stranger))
    ).json()
    their_runs = await runs_of(jobs, [theirs["id"]], 3)
    admin = jobs.bearer(uuid.uuid4(), "jobs:read", "users:admin")

    assert await pages(jobs, "/v1/executions", 2) == newest_first(mine_runs)
    assert await pages(jobs, "/v1/executions", 2, jobId=theirs["id"]) == []
    assert await pages(jobs, "/v1/executions", 2, jobId=[mine["id"], theirs["id"]]) == (
        newest_first(mine_runs)
    )
    everyone = (await jobs.get("/v1/executions", headers=admin)).json()["items"]
    assert [e["id"] for e in everyone] == newest_first(mine_runs + their_runs)
    only_theirs = await jobs.get("/v1/executions", params={"jobId": theirs["id"]}, headers=admin)
    assert [e["id"] for e in only_theirs.json()["items"]] == newest_first(their_runs)
    theirs_per_job = await jobs.get(f"/v1/jobs/{theirs['id']}/executions", headers=admin)
    assert [e["id"] for e in theirs_per_job.json()["items"]] == newest_first(their_runs)


async def test_a_deleted_jobs_history_stays_listed_and_marked(jobs):
    kept = await jobs.created(name="kept")
    gone = await jobs.created(name="gone")
    kept_runs = await runs_of(jobs, [kept["id"]], 2)
    gone_runs = await runs_of(jobs, [gone["id"]], 3)
    letter_id = await jobs.add_dead_letter(gone["id"], execution_id=uuid.UUID(gone_runs[0].id))
    deleted = await jobs.client.delete(f"/v1/jobs/{gone['id']}", headers=jobs.bearer())
    assert deleted.status_code == 204

    assert_problem(await jobs.get(f"/v1/jobs/{gone['id']}"), 404, "job-not-found")
    per_job = await jobs.get(f"/v1/jobs/{gone['id']}/executions", params={"status": "SUCCEEDED"})
    assert per_job.status_code == 200, per_job.text
    items = per_job.json()["items"]
    assert [e["id"] for e in items] == newest_first(
        [r for r in gone_runs if r.status == "SUCCEEDED"]
    )
    assert all((e["jobName"], e["jobDeleted"]) == ("gone", True) for e in items)
    listed = (await jobs.get("/v1/executions")).json()["items"]
    assert [e["id"] for e in listed] == newest_first(kept_runs + gone_runs)
    assert {e["id"]: e["jobDeleted"] for e in listed} == {
        **{r.id: False for r in kept_runs},
        **{r.id: True for r in gone_runs},
    }
    by_id = (await jobs.get(f"/v1/executions/{gone_runs[0].id}")).json()
    assert by_id["jobDeleted"] is True
    [letter] = (await jobs.get("/v1/dead-letters", params={"jobId": gone["id"]})).json()["items"]
    assert (letter["id"], letter["jobDeleted"]) == (str(letter_id), True)


async def test_a_deleted_jobs_history_is_still_not_found_for_anyone_else(jobs):
    job = await jobs.created()
    await runs_of(jobs, [job["id"]], 1)
    await jobs.client.delete(f"/v1/jobs/{job['id']}", headers=jobs.bearer())
    stranger = jobs.bearer(uuid.uuid4())

    theirs = await jobs.get(f"/v1/jobs/{job['id']}/executions", headers=stranger)
    missing = await jobs.get(f"/v1/jobs/{uuid.uuid4()}/executions")

    assert_problem(theirs, 404, "job-not-found")
    assert_problem(missing, 404, "job-not-found")
    assert (await jobs.get("/v1/executions", headers=stranger)).json()["items"] == []


async def test_an_executions_duration_runs_from_start_to_finish_to_the_millisecond(jobs):
    job = await jobs.created()
    finished, running_now, never_started = [
        await jobs.add_execution(job["id"], scheduled_for=T0 + timedelta(minutes=i), status=s)
        for i, s in enumerate(["SUCCEEDED", "RUNNING", "LOST"])
    ]
    started = T0 + timedelta(seconds=5)
    await jobs.sql(
        "UPDATE executions SET started_at = :started, finished_at = :finished WHERE id = :id",
        started=started, finished=started + timedelta(seconds=2, microseconds=345_678),
        id=finished,
    )  # fmt: skip
    await jobs.sql(
        "UPDATE executions SET started_at = :started WHERE id = :id",
        started=started,
        id=running_now,
    )
    await jobs.sql(
        "UPDATE executions SET finished_at = :finished WHERE id = :id",
        finished=started,
        id=never_started,
    )

    durations = {
        e["id"]: e["durationSeconds"]
        for e in (await jobs.get(f"/v1/jobs/{job['id']}/executions")).json()["items"]
    }
    by_id = (await jobs.get(f"/v1/executions/{finished}")).json()

    assert durations == {str(finished): 2.346, str(running_now): None, str(never_started): None}
    assert by_id["durationSeconds"] == 2.346


@pytest.mark.parametrize("path", ["/v1/executions", "/v1/jobs/{job}/executions"])
@pytest.mark.parametrize(
    "after", ["2030-01-01T00:10:00Z", "2030-01-01T00:10:01Z", "2030-01-01T02:10:00+02:00"]
)
async def test_an_empty_time_range_is_refused_naming_both_bounds(jobs, path, after):
    job = await jobs.created()

    response = await jobs.get(
        path.format(job=job["id"]),
        params={"createdAfter": after, "createdBefore": "2030-01-01T00:10:00Z"},
    )

    document = assert_invalid(response, "query.createdAfter", "time_range")
    assert_invalid(response, "query.createdBefore", "time_range")
    assert len(document["errors"]) == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"createdAfter": "2030-01-01T00:00:00"}, "query.createdAfter"),
        ({"createdBefore": "2030-01-01T00:00:00"}, "query.createdBefore"),
        ({"createdAfter": "2030-01-01"}, "query.createdAfter"),
        ({"createdAfter": "yesterday"}, "query.createdAfter"),
        # No UTC instant (year 0): refused, not a server error.
        ({"createdAfter": "0001-01-01T00:00:00+01:00"}, "query.createdAfter"),
        ({"status": "PENDING"}, "query.status.0"),
        ({"status": ["FAILED", "succeeded"]}, "query.status.1"),
        ({"jobId": "42"}, "query.jobId.0"),
        ({"jobId": [str(uuid.uuid4()) for _ in range(101)]}, "query.jobId"),
    ],
)
async def test_invalid_execution_filters_are_refused(jobs, params, field):
    assert_invalid(await jobs.get("/v1/executions", params=params), field)


async def test_the_executions_list_needs_jobs_read(jobs):
    response = await jobs.get("/v1/executions", headers=jobs.bearer(None, "jobs:write"))

    assert_problem(response, 403, "insufficient-scope")


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
        "replayedAt", "jobDeleted",
    }  # fmt: skip


async def test_dead_letters_are_filtered_by_job_and_by_replayed(jobs):
    job, replayed_id = await failed_job_with_dead_letter(jobs)
    other = await jobs.created()
    others = [
        str(await jobs.add_dead_letter(other["id"], created_at=T0 + timedelta(minutes=i)))
        for i in range(3)
    ]
    # Newer than the first (created now), older than the other job's.
    pending_id = await jobs.add_dead_letter(job["id"], created_at=T0 - timedelta(minutes=1))
    replay = await jobs.post(f"/v1/dead-letters/{replayed_id}:replay")
    assert replay.json()["deadLetter"]["jobDeleted"] is False

    async def listed(**params: object) -> list[str]:
        return await pages(jobs, "/v1/dead-letters", 1, **params)

    assert await listed(jobId=other["id"]) == others[::-1]
    assert await listed(jobId=job["id"]) == [str(pending_id), str(replayed_id)]
    assert await listed(replayed="true") == [str(replayed_id)]
    assert await listed(replayed="false") == [*others[::-1], str(pending_id)]
    assert await listed(jobId=job["id"], replayed="false") == [str(pending_id)]
    assert await listed(jobId=other["id"], replayed="true") == []
    assert_invalid(
        await jobs.get("/v1/dead-letters", params={"replayed": "maybe"}), "query.replayed"
    )


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
    assert items[0]["payloadSchema"] == jobs.app.state.job_types.json_schema("http")
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
