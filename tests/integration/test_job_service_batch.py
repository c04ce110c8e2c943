"""Batch creation on a real database: each item judged on its own, the valid ones created
together in one transaction, the invalid ones reported by index; and `Idempotency-Key` on a
batch (the first answer replayed, other requests with the key refused, racing copies creating
the jobs once)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pytest
from job_service_support import JobService, assert_invalid, assert_problem, job_body, running

from job_service import idempotency, schemas
from libs.contracts import channels

NOTIFY_DEADLINE_S = 10


@pytest.fixture
async def jobs(database_url, token_issuer):
    async with running(database_url, token_issuer) as service:
        yield service


async def test_valid_items_are_created_and_invalid_ones_reported_by_index(jobs):
    items = [
        job_body(name="first"),
        job_body(name=""),
        job_body(name="unknown type", type="ftp"),
        "not an object",
        job_body(name="bad schedule", schedule={"kind": "cron", "expression": "99 * * * *"}),
        job_body(name="last", labels={"team": "a"}),
        job_body(name="bad payload", payload={"message": "x", "extra": 1}),
    ]

    response = await jobs.post("/v1/jobs:batch", json={"jobs": items})

    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["created"], result["failed"]) == (2, 5)
    assert [r["index"] for r in result["results"]] == list(range(7))
    assert [r["status"] for r in result["results"]] == [201, 422, 422, 422, 422, 201, 422]
    fields = {
        r["index"]: [e["field"] for e in r["problem"]["errors"]]
        for r in result["results"]
        if r["status"] == 422
    }
    assert fields == {
        1: ["body.jobs.1.name"],
        2: ["body.jobs.2.type"],
        3: ["body.jobs.3"],
        4: ["body.jobs.4.schedule.expression"],
        6: ["body.jobs.6.payload.extra"],
    }
    assert "http, kafka, log" in result["results"][2]["problem"]["errors"][0]["message"]
    created = [r["job"] for r in result["results"] if r["status"] == 201]
    assert [j["name"] for j in created] == ["first", "last"]
    assert all(r["problem"] is None for r in result["results"] if r["status"] == 201)
    rows = await jobs.sql("SELECT id, name, created_at FROM jobs ORDER BY name")
    assert [(str(r.id), r.name) for r in rows] == [
        (created[0]["id"], "first"), (created[1]["id"], "last"),
    ]  # fmt: skip
    # One transaction: one clock.
    assert rows[0].created_at == rows[1].created_at


async def test_a_value_json_should_not_carry_refuses_only_its_item(jobs):
    body = json.dumps({"jobs": [job_body(name="ok"), job_body(name="PLACEHOLDER")]})
    body = body.replace('"PLACEHOLDER"', '"a\\u0000b"')

    response = await jobs.client.post(
        "/v1/jobs:batch",
        content=body.replace('"ok"', '"ok", "misfireGraceSeconds": NaN', 0).encode(),
        headers={**jobs.bearer(), "content-type": "application/json"},
    )

    result = response.json()
    assert [r["status"] for r in result["results"]] == [201, 422]
    assert result["results"][1]["problem"]["errors"][0]["field"] == "body.jobs.1.name"


async def test_a_batch_of_1000_fits_the_body_limit_and_notifies_once(jobs, database_url):
    items = [
        job_body(
            name=f"tenant {i} nightly report",
            description="Posts the nightly report of one tenant to the reporting service.",
            labels={"team": "billing", "tenant": str(i)},
            type="http",
            payload={
                "url": f"https://example.com/tenants/{i}/report",
                "body": {"tenant": i, "sections": ["summary", "invoices", "usage"] * 40},
            },
            schedule={
                "kind": "cron",
                "expression": f"{i % 60} 2 * * *",
                "timezone": "Europe/London",
            },
        )
        for i in range(1000)
    ]
    body = json.dumps({"jobs": items})
    assert 1024 * 1024 < len(body) < 2 * 1024 * 1024  # over the platform default, under ours
    listener = await asyncpg.connect(database_url)
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(channels.JOBS_DUE, lambda *args: heard.put_nowait(args[3]))
    try:
        response = await jobs.client.post(
            "/v1/jobs:batch",
            content=body,
            headers={**jobs.bearer(), "content-type": "application/json"},
        )
        async with asyncio.timeout(NOTIFY_DEADLINE_S):
            payload = await heard.get()
    finally:
        await listener.close()

    assert response.status_code == 200, response.text[:500]
    assert response.json()["created"] == 1000
    [row] = await jobs.sql(
        "SELECT count(*) AS n, count(DISTINCT created_at) AS clocks, min(next_run_at) AS first"
        " FROM jobs"
    )
    assert (row.n, row.clocks) == (1000, 1)
    assert datetime.fromisoformat(payload) == row.first
    assert heard.empty()


@pytest.mark.parametrize(
    ("jobs_field", "field"),
    [([], "body.jobs"), ([job_body()] * 1001, "body.jobs"), ("x", "body.jobs")],
    ids=["empty", "too-many", "not-a-list"],
)
async def test_a_malformed_batch_is_refused_whole(jobs, jobs_field, field):
    response = await jobs.post("/v1/jobs:batch", json={"jobs": jobs_field})

    assert_invalid(response, field)
    assert (await jobs.counts())["jobs"] == 0


async def test_a_batch_of_invalid_items_creates_nothing(jobs):
    response = await jobs.post("/v1/jobs:batch", json={"jobs": [{"name": "x"}, {}]})

    assert response.json()["created"] == 0
    assert (await jobs.counts())["jobs"] == 0


async def test_batch_creation_requires_jobs_write(jobs):
    response = await jobs.post(
        "/v1/jobs:batch", json={"jobs": [job_body()]}, headers=jobs.bearer(None, "jobs:read")
    )

    assert response.status_code == 403
    assert (await jobs.counts())["jobs"] == 0


# --- Idempotency-Key -----------------------------------------------------------------------------

# Two valid items around a refused one.
MIXED = [job_body(name="first"), job_body(name=""), job_body(name="third")]


async def batch(
    jobs: JobService, items: list[Any], key: str | None, owner: uuid.UUID | None = None
) -> httpx.Response:
    headers = jobs.bearer(owner)
    if key is not None:
        headers["idempotency-key"] = key
    return await jobs.client.post("/v1/jobs:batch", json={"jobs": items}, headers=headers)


def ids(response: httpx.Response) -> list[str | None]:
    return [r["job"]["id"] if r["job"] else None for r in response.json()["results"]]


async def test_the_same_key_and_batch_answer_the_first_results_and_create_nothing(jobs):
    first = await batch(jobs, MIXED, "nightly-batch-1")
    before = await jobs.counts()
    # The same batch with its valid items written differently (field names, key order) is the
    # same request; an item that is no valid request is compared as it was sent.
    rewritten = [
        {"schedule": {"interval_s": 3600, "kind": "fixed_rate"}, "payload": {"message": "hello"},
         "type": "log", "name": item["name"]} if item["name"] else item
        for item in MIXED
    ]  # fmt: skip
    again = await batch(jobs, rewritten, "nightly-batch-1")

    assert (first.status_code, again.status_code) == (200, 200)
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert ids(again)[0] and ids(again)[1] is None and ids(again)[2]
    assert again.json()["results"][1]["problem"]["errors"][0]["field"] == "body.jobs.1.name"
    assert await jobs.counts() == before
    assert before["jobs"] == 2 and before["idempotency_keys"] == 1


async def test_a_replay_shows_the_jobs_as_they_are_and_a_deleted_one_as_deleted(jobs):
    first = (await batch(jobs, MIXED, "k-changed")).json()
    kept, gone = first["results"][0]["job"], first["results"][2]["job"]
    await jobs.post(f"/v1/jobs/{kept['id']}:pause")
    await jobs.client.delete(f"/v1/jobs/{gone['id']}", headers=jobs.bearer())

    again = await batch(jobs, MIXED, "k-changed")

    assert again.status_code == 200, again.text
    result = again.json()
    assert [r["status"] for r in result["results"]] == [201, 422, 409]
    assert (result["created"], result["failed"]) == (1, 2)
    replayed = result["results"][0]["job"]
    assert (replayed["id"], replayed["status"]) == (kept["id"], "PAUSED")
    assert result["results"][1] == first["results"][1]
    problem = result["results"][2]["problem"]
    assert problem["type"].endswith("/idempotent-job-deleted") and problem["status"] == 409
    assert (await jobs.counts())["jobs"] == 2


async def test_a_batch_of_refused_items_is_replayed_with_the_same_refusals(jobs):
    items = [job_body(name=""), "not an object"]
    first = await batch(jobs, items, "k-refused")

    again = await batch(jobs, items, "k-refused")

    assert first.json()["created"] == 0
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert (await jobs.counts())["jobs"] == 0


async def test_a_retry_gets_the_first_answer_even_when_its_items_would_no_longer_validate(jobs):
    # As if the first request was made in 2000, when its `once` time was still ahead.
    items = [job_body(schedule={"kind": "once", "at": "2001-01-01T00:00:00Z"})]
    job = await jobs.created()
    await jobs.sql(
        "INSERT INTO idempotency_keys (owner_id, key, request_hash, batch_results)"
        " VALUES (:owner, 'batch-from-2000', :digest, CAST(:results AS jsonb))",
        owner=jobs.owner,
        digest=idempotency.batch_hash(
            items, [schemas.JobCreate.model_validate(items[0])], jobs.app.state.job_types
        ),
        results=json.dumps([{"jobId": job["id"]}]),
    )

    again = await batch(jobs, items, "batch-from-2000")
    fresh = await batch(jobs, items, "batch-from-today")

    assert ids(again) == [job["id"]]
    assert [r["status"] for r in fresh.json()["results"]] == [422]


async def test_the_same_key_with_another_batch_is_refused_naming_the_header(jobs):
    await batch(jobs, MIXED, "k1")
    before = await jobs.counts()

    response = await batch(jobs, [*MIXED, job_body(name="fourth")], "k1")

    document = assert_problem(response, 422, "idempotency-key-reused")
    assert [e["field"] for e in document["errors"]] == ["header.Idempotency-Key"]
    assert await jobs.counts() == before


async def test_a_key_is_either_a_single_creations_or_a_batchs(jobs):
    single = await jobs.create(job_body(), headers={"idempotency-key": "used-once"})
    await batch(jobs, [job_body()], "used-in-batch")
    before = await jobs.counts()

    as_batch = await batch(jobs, [job_body()], "used-once")
    as_single = await jobs.create(job_body(), headers={"idempotency-key": "used-in-batch"})

    assert single.status_code == 201
    assert_problem(as_batch, 422, "idempotency-key-reused")
    assert_problem(as_single, 422, "idempotency-key-reused")
    assert await jobs.counts() == before


async def test_batch_keys_belong_to_their_owner(jobs):
    mine = await batch(jobs, MIXED, "shared-batch-key")
    theirs = await batch(jobs, MIXED, "shared-batch-key", owner=uuid.uuid4())

    assert "idempotent-replayed" not in theirs.headers
    assert set(ids(mine)).isdisjoint(i for i in ids(theirs) if i)
    assert (await jobs.counts())["jobs"] == 4


async def test_concurrent_copies_of_a_batch_create_its_jobs_once(jobs):
    copies = 4

    responses = await asyncio.gather(*(batch(jobs, MIXED, "raced-batch") for _ in range(copies)))

    assert {r.status_code for r in responses} == {200}
    assert len({tuple(ids(r)) for r in responses}) == 1
    assert sorted("idempotent-replayed" in r.headers for r in responses) == [False] + [True] * (
        copies - 1
    )
    assert await jobs.counts() == {
        "jobs": 2, "idempotency_keys": 1, "executions": 0, "dead_letters": 0,
    }  # fmt: skip
