"""Batch creation on a real database: each item judged on its own, the valid ones created
together in one transaction, the invalid ones reported by index."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import asyncpg
import pytest
from test_job_service_support import assert_invalid, job_body, running

from libs import channels

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
