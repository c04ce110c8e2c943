"""The job service on a real database: creating jobs and every refusal of a creation, reading
and listing them, who sees what, idempotent creation and the NOTIFY a creation sends. Changes
and transitions: test_job_service_changes.py; running FAILED and PAUSED jobs again:
test_job_service_reruns.py; batches: test_job_service_batch.py; executions,
dead letters and previews: test_job_service_history.py; the OpenAPI document:
test_job_service_openapi.py; the harness: job_service_support.py."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from job_service_support import (
    JobService,
    assert_invalid,
    assert_problem,
    job_body,
    running,
)

from job_service import idempotency, schemas, settings
from libs.contracts import channels
from libs.scheduling import misfire, schedule
from libs.store import models

NOTIFY_DEADLINE_S = 10


@pytest.fixture
async def jobs(database_url, token_issuer):
    async with running(database_url, token_issuer) as service:
        yield service


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


# --- Creating a job ------------------------------------------------------------------------------


async def test_a_created_job_is_stored_scheduled_with_its_first_run(jobs):
    body = job_body(
        name="nightly",
        description="runs at night",
        labels={"team": "billing", "env": "prod"},
        type="http",
        payload={"url": "https://example.com/hook", "body": {"a": 1}},
        schedule={"kind": "cron", "expression": "0 2 * * *", "timezone": "Europe/Paris"},
        retryPolicy={"maxAttempts": 5, "initialBackoffSeconds": 2},
        misfirePolicy="skip",
        misfireGraceSeconds=30,
        timeoutSeconds=120,
    )

    response = await jobs.create(body)

    assert response.status_code == 201, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert response.headers["etag"] == '"1"'
    assert (job["status"], job["version"], job["runCount"], job["attempt"]) == (
        "SCHEDULED", 1, 0, 1,
    )  # fmt: skip
    assert job["ownerId"] == str(jobs.owner)
    assert (job["name"], job["description"], job["labels"]) == (
        "nightly", "runs at night", {"team": "billing", "env": "prod"},
    )  # fmt: skip
    assert job["payload"] == jobs.app.state.job_types.validate_payload("http", body["payload"])
    assert job["payload"]["timeoutSeconds"] == 30  # defaults filled in, camelCase
    assert job["retryPolicy"] == {
        "maxAttempts": 5, "initialBackoffSeconds": 2.0, "multiplier": 2.0,
        "maxBackoffSeconds": 300.0,
    }  # fmt: skip
    assert (job["misfirePolicy"], job["misfireGraceSeconds"], job["timeoutSeconds"]) == (
        "skip", 30, 120,
    )  # fmt: skip
    # The first run is computed with the database's clock, the one `createdAt` shows.
    created_at = parse_time(job["createdAt"])
    spec = schedule.normalise(
        schedule.SCHEDULE_ADAPTER.validate_python(body["schedule"]), created_at
    )
    assert parse_time(job["nextRunAt"]) == schedule.first_fire(spec, created_at)
    assert parse_time(job["nextRunAt"]) > created_at


async def test_the_schedule_is_stored_as_libs_schedule_reads_it_and_shown_in_camel_case(jobs):
    job = await jobs.created(
        schedule={"kind": "fixed_rate", "intervalSeconds": 60, "maxRuns": 3},
        retryPolicy={"maxAttempts": 4},
    )

    [row] = await jobs.sql(
        "SELECT schedule, schedule_kind, timezone, retry_policy, next_run_at FROM jobs"
    )
    stored = schedule.load(row.schedule)
    assert isinstance(stored, schedule.FixedRate)
    assert (stored.interval_s, stored.max_runs) == (60, 3)
    # The anchor defaults to the database's now, which is also the first run.
    assert stored.anchor == row.next_run_at == parse_time(job["createdAt"])
    assert (row.schedule_kind, row.timezone) == ("fixed_rate", "UTC")
    assert row.retry_policy == {
        "max_attempts": 4, "initial_backoff_s": 1.0, "multiplier": 2.0, "max_backoff_s": 300.0,
    }  # fmt: skip
    assert job["schedule"] == {
        "kind": "fixed_rate", "intervalSeconds": 60, "maxRuns": 3, "timezone": "UTC",
        "startAt": None, "endAt": None, "anchor": job["createdAt"],
    }  # fmt: skip


async def test_field_names_are_accepted_as_well_as_camel_case(jobs):
    job = await jobs.created(
        schedule={"kind": "fixed_delay", "delay_s": 30},
        retry_policy={"max_attempts": 7},
        timeout_s=45,
        misfire_grace_s=5,
    )

    assert job["schedule"]["delaySeconds"] == 30
    assert (job["retryPolicy"]["maxAttempts"], job["timeoutSeconds"]) == (7, 45)
    assert job["misfireGraceSeconds"] == 5


async def test_defaults(jobs):
    job = await jobs.created()

    assert (job["description"], job["labels"]) == (None, {})
    assert job["retryPolicy"] == {
        "maxAttempts": 3, "initialBackoffSeconds": 1.0, "multiplier": 2.0,
        "maxBackoffSeconds": 300.0,
    }  # fmt: skip
    assert (job["misfirePolicy"], job["misfireGraceSeconds"], job["timeoutSeconds"]) == (
        "run_once", 60, 300,
    )  # fmt: skip


async def test_a_once_job_without_a_time_is_due_now(jobs):
    job = await jobs.created(schedule={"kind": "once"})

    assert job["nextRunAt"] == job["createdAt"] == job["schedule"]["at"]


# --- Refused creations ---------------------------------------------------------------------------


async def assert_refused(jobs: JobService, body: object, field: str, code: str | None = None):
    before = await jobs.counts()
    response = await jobs.client.post("/v1/jobs", json=body, headers=jobs.bearer())
    document = assert_invalid(response, field, code)
    assert await jobs.counts() == before
    return document


async def test_an_unknown_type_is_refused_naming_the_known_ones(jobs):
    document = await assert_refused(jobs, job_body(type="ftp"), "body.type", "unknown_type")

    [error] = document["errors"]
    assert "http, kafka, log" in error["message"]


@pytest.mark.parametrize(
    ("type_", "payload", "field"),
    [
        ("log", {"message": ""}, "body.payload.message"),
        ("log", {"message": "x", "level": "loud"}, "body.payload.level"),
        ("log", {"message": "x", "colour": "red"}, "body.payload.colour"),
        ("log", {"message": "x" * 4097}, "body.payload.message"),
        ("http", {"url": "ftp://example.com"}, "body.payload.url"),
        ("http", {"url": "https://user:pw@example.com"}, "body.payload.url"),
        ("http", {"url": "https://example.com", "method": "GET", "body": 1}, "body.payload.body"),
        (
            "http",
            {"url": "https://example.com", "timeoutSeconds": 0},
            "body.payload.timeoutSeconds",
        ),
        ("http", {"url": "https://example.com", "headers": {"Host": "x"}}, "body.payload.headers"),
        ("kafka", {"topic": "bad topic", "value": 1}, "body.payload.topic"),
        ("kafka", {"topic": "t"}, "body.payload.value"),
    ],
)
async def test_a_payload_that_does_not_match_its_type_is_refused(jobs, type_, payload, field):
    await assert_refused(jobs, job_body(type=type_, payload=payload), field, "invalid_payload")


async def test_a_payload_over_64_kib_is_refused(jobs):
    payload = {"url": "https://example.com", "body": {"data": "x" * (64 * 1024)}}

    document = await assert_refused(jobs, job_body(type="http", payload=payload), "body.payload")

    assert "65536" in document["detail"]


async def test_payload_and_schedule_errors_are_reported_together(jobs):
    body = job_body(payload={"message": ""}, schedule={"kind": "cron", "expression": "nope"})

    document = await assert_refused(jobs, body, "body.payload.message")

    assert {e["field"] for e in document["errors"]} == {
        "body.payload.message",
        "body.schedule.expression",
    }


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"kind": "cron", "expression": "61 * * * *"}, "body.schedule.expression"),
        ({"kind": "cron", "expression": "0 0 30 2 *"}, "body.schedule.expression"),  # never
        ({"kind": "once", "at": "2001-01-01T00:00:00Z"}, "body.schedule.at"),
        ({"kind": "fixed_rate", "intervalSeconds": 0}, "body.schedule.intervalSeconds"),
        ({"kind": "fixed_rate"}, "body.schedule.intervalSeconds"),
        ({"kind": "fixed_rate", "intervalSeconds": 5, "timezone": "Mars/Base"},
         "body.schedule.timezone"),
        ({"kind": "fixed_rate", "intervalSeconds": 5, "startAt": "2031-01-01T00:00:00Z",
          "endAt": "2030-01-01T00:00:00Z"}, "body.schedule.endAt"),
        ({"kind": "fixed_rate", "intervalSeconds": 5, "endAt": "2001-01-01T00:00:00Z"},
         "body.schedule.endAt"),
        ({"kind": "calendar", "every": 1, "unit": "decades"}, "body.schedule.unit"),
        ({"kind": "cron", "expression": "0 0 12 1-5W * ?"}, "body.schedule.expression"),
        ({"kind": "cron", "expression": "0 0 12 * * ? 2020"}, "body.schedule.expression"),
        ({"kind": "hourly"}, "body.schedule.kind"),
        ({"kind": "fixed_rate", "intervalSeconds": 5, "colour": "red"}, "body.schedule.colour"),
    ],
)  # fmt: skip
async def test_a_bad_schedule_is_refused_naming_its_field(jobs, spec, field):
    await assert_refused(jobs, job_body(schedule=spec), field)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": ""}, "body.name"),
        ({"name": "   "}, "body.name"),
        ({"name": "a\nb"}, "body.name"),
        ({"name": "x" * 201}, "body.name"),
        ({"description": "x" * 2001}, "body.description"),
        ({"labels": {"Team": "x"}}, "body.labels.Team.[key]"),
        ({"labels": {"team": "x" * 201}}, "body.labels.team"),
        ({"labels": {f"k{i}": "v" for i in range(33)}}, "body.labels"),
        ({"retryPolicy": {"maxAttempts": 0}}, "body.retryPolicy.maxAttempts"),
        ({"retryPolicy": {"maxAttempts": 101}}, "body.retryPolicy.maxAttempts"),
        ({"retryPolicy": {"multiplier": 11}}, "body.retryPolicy.multiplier"),
        ({"retryPolicy": {"initialBackoffSeconds": 0.01}},
         "body.retryPolicy.initialBackoffSeconds"),
        ({"retryPolicy": {"maxBackoffSeconds": 86401}}, "body.retryPolicy.maxBackoffSeconds"),
        ({"retryPolicy": {"initialBackoffSeconds": 10, "maxBackoffSeconds": 5}},
         "body.retryPolicy.maxBackoffSeconds"),
        ({"misfirePolicy": "sometimes"}, "body.misfirePolicy"),
        ({"misfireGraceSeconds": -1}, "body.misfireGraceSeconds"),
        ({"misfireGraceSeconds": 86401}, "body.misfireGraceSeconds"),
        ({"timeoutSeconds": 0}, "body.timeoutSeconds"),
        ({"timeoutSeconds": 86401}, "body.timeoutSeconds"),
        ({"nmae": "typo"}, "body.nmae"),
        ({"payload": "text"}, "body.payload"),
        ({"schedule": []}, "body.schedule"),
    ],
)  # fmt: skip
async def test_a_field_out_of_bounds_is_refused(jobs, overrides, field):
    await assert_refused(jobs, job_body(**overrides), field)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('"payload": {"message": NaN}', "body.payload"),
        ('"payload": {"message": "x"}, "misfireGraceSeconds": Infinity',
         "body.misfireGraceSeconds"),
        ('"payload": {"message": "a\\u0000b"}', "body.payload"),
        ('"payload": {"message": "\\ud800"}', "body.payload"),
        ('"payload": {"message": "x"}, "labels": {"k": "\\udc00"}', "body.labels"),
        ('"payload": {"message": "x"}, "description": "a\\u0000"', "body.description"),
    ],
)  # fmt: skip
async def test_values_json_should_not_carry_are_refused(jobs, text, field):
    # Written by hand: a JSON encoder would not produce NaN or lone surrogates.
    body = ('{"name": "n", "type": "log", "schedule": {"kind": "once"}, ' + text + "}").encode()
    before = await jobs.counts()

    response = await jobs.client.post(
        "/v1/jobs", content=body, headers={**jobs.bearer(), "content-type": "application/json"}
    )

    assert_invalid(response, field)
    assert await jobs.counts() == before


async def test_a_date_time_without_an_offset_is_refused(jobs):
    spec = {"kind": "once", "at": "2030-01-01T09:00:00"}

    await assert_refused(jobs, job_body(schedule=spec), "body.schedule.at", "timezone_aware")


async def test_a_body_over_the_limit_is_refused_with_413(jobs):
    assert settings.Settings.model_fields["http_max_body_bytes"].default == 2 * 1024 * 1024
    before = await jobs.counts()
    padding = "x" * (2 * 1024 * 1024)

    response = await jobs.create(job_body(description=padding))

    assert_problem(response, 413, "payload-too-large")
    assert await jobs.counts() == before


# --- Who may do what -----------------------------------------------------------------------------


async def test_creating_requires_a_token_with_jobs_write(jobs):
    anonymous = await jobs.client.post("/v1/jobs", json=job_body())
    reader = await jobs.client.post(
        "/v1/jobs", json=job_body(), headers=jobs.bearer(None, "jobs:read", "jobs:run")
    )

    assert_problem(anonymous, 401, "unauthenticated")
    document = assert_problem(reader, 403, "insufficient-scope")
    assert document["required_scope"] == "jobs:write"
    assert (await jobs.counts())["jobs"] == 0


async def test_reading_requires_jobs_read(jobs):
    job = await jobs.created()

    response = await jobs.get(f"/v1/jobs/{job['id']}", headers=jobs.bearer(None, "jobs:write"))

    assert_problem(response, 403, "insufficient-scope")


async def test_a_token_whose_subject_is_no_id_cannot_create_jobs(jobs):
    response = await jobs.client.post(
        "/v1/jobs", json=job_body(), headers=jobs.bearer("not-a-uuid")
    )

    # No account has such an id: the token speaks for nobody.
    assert_problem(response, 401, "unauthenticated")


async def test_users_see_only_their_own_jobs(jobs):
    mine = await jobs.created(name="mine")
    other = uuid.uuid4()
    theirs_response = await jobs.client.post(
        "/v1/jobs", json=job_body(name="theirs"), headers=jobs.bearer(other)
    )
    theirs = theirs_response.json()

    listed = (await jobs.get("/v1/jobs")).json()
    their_list = (await jobs.get("/v1/jobs", headers=jobs.bearer(other))).json()
    read_theirs = await jobs.get(f"/v1/jobs/{theirs['id']}")
    executions = await jobs.get(f"/v1/jobs/{theirs['id']}/executions")

    assert [j["id"] for j in listed["items"]] == [mine["id"]]
    assert [j["id"] for j in their_list["items"]] == [theirs["id"]]
    # Another's job answers exactly as a job that does not exist.
    missing = await jobs.get(f"/v1/jobs/{uuid.uuid4()}")
    assert_problem(read_theirs, 404, "job-not-found")
    assert {k: v for k, v in read_theirs.json().items() if k != "instance"} == {
        k: v for k, v in missing.json().items() if k != "instance"
    }
    assert_problem(executions, 404, "job-not-found")


async def test_another_users_job_cannot_be_changed(jobs):
    other = uuid.uuid4()
    theirs = (
        await jobs.client.post("/v1/jobs", json=job_body(), headers=jobs.bearer(other))
    ).json()
    path = f"/v1/jobs/{theirs['id']}"
    before = await jobs.snapshot()

    responses = [
        await jobs.client.patch(
            path, json={"name": "x"}, headers={**jobs.bearer(), "if-match": '"1"'}
        ),
        await jobs.post(f"{path}:pause"),
        await jobs.post(f"{path}:cancel"),
        await jobs.post(f"{path}:run"),
        await jobs.client.delete(path, headers=jobs.bearer()),
    ]  # fmt: skip

    for response in responses:
        assert_problem(response, 404, "job-not-found")
    assert await jobs.snapshot() == before


async def test_an_admin_sees_and_changes_every_owners_jobs(jobs):
    mine = await jobs.created(name="mine")
    admin = jobs.bearer(uuid.uuid4(), "jobs:read", "jobs:write", "users:admin")

    listed = (await jobs.get("/v1/jobs", headers=admin)).json()
    read = await jobs.get(f"/v1/jobs/{mine['id']}", headers=admin)
    paused = await jobs.client.post(f"/v1/jobs/{mine['id']}:pause", headers=admin)

    assert [j["id"] for j in listed["items"]] == [mine["id"]]
    assert read.status_code == 200
    assert paused.json()["status"] == "PAUSED"


async def test_jobs_are_listed_by_owner(jobs):
    mine = await jobs.created(name="mine")
    other = uuid.uuid4()
    theirs = (await jobs.create(job_body(name="theirs"), headers=jobs.bearer(other))).json()
    admin = jobs.bearer(uuid.uuid4(), "jobs:read", "users:admin")

    def ids(response) -> list[str]:
        assert response.status_code == 200, response.text
        return [j["id"] for j in response.json()["items"]]

    # An admin narrows everyone's jobs to one owner's.
    assert ids(await jobs.get(f"/v1/jobs?ownerId={other}", headers=admin)) == [theirs["id"]]
    assert ids(await jobs.get(f"/v1/jobs?ownerId={jobs.owner}", headers=admin)) == [mine["id"]]
    # Anyone else sees their own jobs only: their own id matches them, another id nothing.
    assert ids(await jobs.get(f"/v1/jobs?ownerId={jobs.owner}")) == [mine["id"]]
    assert ids(await jobs.get(f"/v1/jobs?ownerId={other}")) == []


# --- Reading and listing -------------------------------------------------------------------------


async def test_a_job_is_read_with_its_etag(jobs):
    job = await jobs.created()

    response = await jobs.get(f"/v1/jobs/{job['id']}")

    assert response.status_code == 200
    assert response.json() == job
    assert response.headers["etag"] == '"1"'


async def test_an_id_that_is_not_a_uuid_is_refused(jobs):
    response = await jobs.get("/v1/jobs/not-a-uuid")

    assert_invalid(response, "path.jobId")


async def list_ids(jobs: JobService, **params: object) -> list[str]:
    response = await jobs.get("/v1/jobs", params=params)
    assert response.status_code == 200, response.text
    return [job["id"] for job in response.json()["items"]]


async def test_list_filters(jobs):
    a = await jobs.created(name="report-a", labels={"team": "billing", "env": "prod"})
    b = await jobs.created(name="report-b", labels={"team": "billing"}, type="http",
                           payload={"url": "https://example.com"})  # fmt: skip
    c = await jobs.created(name="cleanup", labels={"team": "ops", "env": "prod"})
    await jobs.post(f"/v1/jobs/{c['id']}:pause")

    assert await list_ids(jobs, label="team:billing") == [a["id"], b["id"]]
    assert await list_ids(jobs, label=["team:billing", "env:prod"]) == [a["id"]]
    assert await list_ids(jobs, label="env:prod") == [a["id"], c["id"]]
    assert await list_ids(jobs, type="http") == [b["id"]]
    assert await list_ids(jobs, status="PAUSED") == [c["id"]]
    assert await list_ids(jobs, status=["PAUSED", "SCHEDULED"]) == [a["id"], b["id"], c["id"]]
    assert await list_ids(jobs, name="report") == [a["id"], b["id"]]
    assert await list_ids(jobs, name="report_") == []  # `_` is a character, not a wildcard
    assert await list_ids(jobs, label="team:nobody") == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"label": "no-colon"}, "query.label"),
        ({"label": "Bad:key"}, "query.label"),
        ({"label": ["team:a", "team:b"]}, "query.label"),
        ({"status": "SLEEPING"}, "query.status.0"),
        ({"sort": "name"}, "query.sort"),
        ({"limit": 0}, "query.limit"),
        ({"limit": 201}, "query.limit"),
        ({"cursor": "not-a-cursor"}, "query.cursor"),
    ],
)
async def test_list_parameters_are_checked(jobs, params, field):
    response = await jobs.get("/v1/jobs", params=params)

    assert_invalid(response, field)


async def test_a_cursor_of_one_sort_is_refused_by_the_other(jobs):
    for _ in range(3):
        await jobs.created()
    page = (await jobs.get("/v1/jobs", params={"limit": 1})).json()

    response = await jobs.get(
        "/v1/jobs", params={"limit": 1, "sort": "nextRunAt", "cursor": page["nextCursor"]}
    )

    assert_invalid(response, "query.cursor", "cursor")


async def all_pages(jobs: JobService, **params: object) -> list[str]:
    ids: list[str] = []
    cursor = None
    for _ in range(100):
        page = (
            await jobs.get("/v1/jobs", params={**params, **({"cursor": cursor} if cursor else {})})
        ).json()
        ids.extend(job["id"] for job in page["items"])
        cursor = page["nextCursor"]
        if cursor is None:
            return ids
    raise AssertionError("pagination did not end")


async def test_pagination_has_no_gaps_or_duplicates_in_either_order(jobs):
    # Jobs of one batch share `createdAt` (one transaction): the id breaks the tie. Some have
    # no next run (cancelled): they come last by next run.
    batch = [
        job_body(name=f"b{i}", schedule={"kind": "fixed_rate", "intervalSeconds": 60,
                                         "startAt": f"2030-01-01T00:0{i % 3}:00Z"})
        for i in range(9)
    ]  # fmt: skip
    response = await jobs.post("/v1/jobs:batch", json={"jobs": batch})
    assert response.json()["created"] == 9
    singles = [await jobs.created(name=f"s{i}") for i in range(4)]
    for job in singles[:2]:
        await jobs.post(f"/v1/jobs/{job['id']}:cancel")
    await jobs.created(name="deleted-one")
    deleted = (await jobs.get("/v1/jobs", params={"name": "deleted-one"})).json()["items"][0]
    await jobs.client.delete(f"/v1/jobs/{deleted['id']}", headers=jobs.bearer())

    by_created = await jobs.sql(
        "SELECT id FROM jobs WHERE deleted_at IS NULL ORDER BY created_at, id"
    )
    by_next_run = await jobs.sql(
        "SELECT id FROM jobs WHERE deleted_at IS NULL ORDER BY next_run_at NULLS LAST, id"
    )

    for limit in (1, 2, 5, 13, 200):
        assert await all_pages(jobs, limit=limit) == [str(r.id) for r in by_created]
        assert await all_pages(jobs, limit=limit, sort="nextRunAt") == [
            str(r.id) for r in by_next_run
        ]


async def test_a_full_last_page_has_no_next_cursor(jobs):
    for _ in range(2):
        await jobs.created()

    page = (await jobs.get("/v1/jobs", params={"limit": 2})).json()

    assert len(page["items"]) == 2
    assert page["nextCursor"] is None


# --- Idempotency -------------------------------------------------------------------------------


async def test_the_same_key_and_body_give_the_same_job(jobs):
    key = {"idempotency-key": "create-nightly-1"}

    first = await jobs.create(job_body(), headers=key)
    # The same request written differently (field names, key order) is the same request.
    again = await jobs.create(
        {"schedule": {"kind": "fixed_rate", "interval_s": 3600}, "payload": {"message": "hello"},
         "type": "log", "name": "hourly"},
        headers=key,
    )  # fmt: skip

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert (await jobs.counts())["jobs"] == 1


async def test_the_same_key_with_another_body_is_refused(jobs):
    key = {"idempotency-key": "k1"}
    await jobs.create(job_body(), headers=key)
    before = await jobs.counts()

    response = await jobs.create(job_body(name="another"), headers=key)

    assert_problem(response, 422, "idempotency-key-reused")
    assert await jobs.counts() == before


async def test_keys_belong_to_their_owner(jobs):
    key = {"idempotency-key": "shared-key"}
    mine = await jobs.create(job_body(), headers=key)
    theirs = await jobs.client.post(
        "/v1/jobs", json=job_body(), headers={**jobs.bearer(uuid.uuid4()), **key}
    )

    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"]


async def test_a_retry_finds_its_job_even_when_the_body_would_no_longer_validate(jobs):
    # As if the first request was made in 2000, when its `once` time was still ahead: the
    # retry, today, must return that job rather than refuse the time as past.
    body = job_body(schedule={"kind": "once", "at": "2001-01-01T00:00:00Z"})
    job = await jobs.created()
    await jobs.sql(
        "INSERT INTO idempotency_keys (owner_id, key, request_hash, job_id)"
        " VALUES (:owner, 'from-2000', :digest, :job_id)",
        owner=jobs.owner,
        digest=idempotency.request_hash(
            schemas.JobCreate.model_validate(body), jobs.app.state.job_types
        ),
        job_id=uuid.UUID(job["id"]),
    )

    again = await jobs.create(body, headers={"idempotency-key": "from-2000"})
    fresh = await jobs.create(body, headers={"idempotency-key": "from-today"})

    assert again.status_code == 201
    assert again.json()["id"] == job["id"]
    assert_invalid(fresh, "body.schedule.at")


async def test_a_key_whose_job_was_deleted_is_refused(jobs):
    key = {"idempotency-key": "k-deleted"}
    job = (await jobs.create(job_body(), headers=key)).json()
    await jobs.client.delete(f"/v1/jobs/{job['id']}", headers=jobs.bearer())

    response = await jobs.create(job_body(), headers=key)

    assert_problem(response, 409, "idempotent-job-deleted")


async def test_concurrent_requests_with_one_key_create_one_job(jobs):
    key = {"idempotency-key": "raced"}

    responses = await asyncio.gather(*(jobs.create(job_body(), headers=key) for _ in range(8)))

    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert await jobs.counts() == {
        "jobs": 1, "idempotency_keys": 1, "executions": 0, "dead_letters": 0,
    }  # fmt: skip


@pytest.mark.parametrize("key", ["", "x" * 201, "tab\there"])
async def test_a_malformed_key_is_refused(jobs, key):
    response = await jobs.create(job_body(), headers={"idempotency-key": key})

    assert_invalid(response, "header.Idempotency-Key")
    assert (await jobs.counts())["jobs"] == 0


# --- NOTIFY -------------------------------------------------------------------------------------


async def test_a_creation_notifies_the_schedulers_at_commit(jobs, database_url):
    listener = await asyncpg.connect(database_url)
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(channels.JOBS_DUE, lambda *args: heard.put_nowait(args[3]))
    try:
        # A refused request sends nothing: the first notification is the valid job's.
        refused = await jobs.create(job_body(type="ftp"))
        assert refused.status_code == 422
        job = await jobs.created(schedule={"kind": "once", "at": "2030-01-01T00:00:00Z"})

        async with asyncio.timeout(NOTIFY_DEADLINE_S):
            payload = await heard.get()
    finally:
        await listener.close()

    assert parse_time(payload) == parse_time(job["nextRunAt"]) == datetime(2030, 1, 1, tzinfo=UTC)
    assert heard.empty()


def test_the_stored_misfire_policies_are_the_enumerations():
    assert models.MISFIRE_POLICIES == tuple(misfire.MisfirePolicy)


def test_the_channel_name_is_stable():
    # Schedulers LISTEN on it: renaming it silently breaks their wake-ups.
    assert channels.JOBS_DUE == "scheduler_jobs_due"
