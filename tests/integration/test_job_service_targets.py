"""The job service refuses, at creation and update, an `http` job whose URL names a non-public
address literally, as the executors would refuse to call it (`libs.security.addresses`, the
executors' rule), unless `http.allowed.networks` allows it. Names are not resolved here: the
executors' check at connection time stays the one that protects."""

from __future__ import annotations

import pytest
from job_service_support import JobService, assert_invalid, job_body, running

REFUSED_URLS = [
    "http://10.0.0.1/",
    "http://[::1]/",
    "http://169.254.169.254/latest/meta-data/",
    "https://127.0.0.1:8443/hook",
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped loopback
    "http://2130706433/",  # 127.0.0.1 in another spelling the resolver reads
    "http://0x7f.1/",
    "http://[fe80::1%25eth0]/",  # link-local with its zone
]
ACCEPTED_URLS = [
    "https://8.8.8.8/hook",
    "http://[2606:4700:4700::1111]/",
    "https://example.com/hook",
    "http://localhost/",  # a name: resolved and checked by the executor when it connects
    "http://10.0.0.1.example.com/",
]


@pytest.fixture
async def jobs(database_url, token_issuer):
    async with running(database_url, token_issuer) as service:
        yield service


def http_job(url: str, **overrides: object) -> dict:
    return job_body(type="http", payload={"url": url, "method": "POST"}, **overrides)


async def assert_url_refused(jobs: JobService, response, field: str = "body.payload.url"):
    document = assert_invalid(response, field, "address_not_allowed")
    assert "not a public address" in document["detail"]
    return document


@pytest.mark.parametrize("url", REFUSED_URLS)
async def test_a_non_public_literal_address_is_refused_at_creation(jobs, url):
    before = await jobs.counts()

    response = await jobs.create(http_job(url))

    await assert_url_refused(jobs, response)
    assert await jobs.counts() == before


@pytest.mark.parametrize("url", ACCEPTED_URLS)
async def test_public_addresses_and_names_are_accepted(jobs, url):
    job = await jobs.created(type="http", payload={"url": url})

    assert job["payload"]["url"] == url


async def test_a_batch_refuses_only_the_item_with_the_address(jobs):
    body = {"jobs": [http_job("https://example.com/a"), http_job("http://169.254.169.254/")]}

    response = await jobs.post("/v1/jobs:batch", json=body)

    assert response.status_code == 200, response.text
    result = response.json()
    assert [r["status"] for r in result["results"]] == [201, 422]
    [error] = result["results"][1]["problem"]["errors"]
    assert (error["field"], error["code"]) == ("body.jobs.1.payload.url", "address_not_allowed")
    assert result["created"] == 1


async def test_an_update_to_a_non_public_address_is_refused_and_changes_nothing(jobs):
    job = await jobs.created(type="http", payload={"url": "https://example.com/hook"})
    before = await jobs.snapshot()

    response = await jobs.client.patch(
        f"/v1/jobs/{job['id']}",
        json={"payload": {"url": "http://10.0.0.1/"}},
        headers={**jobs.bearer(), "if-match": '"1"'},
    )

    await assert_url_refused(jobs, response)
    assert await jobs.snapshot() == before


async def test_other_types_are_not_concerned(jobs):
    await jobs.created(type="log", payload={"message": "http://10.0.0.1/"})


async def test_the_allowed_networks_let_their_addresses_through(database_url, token_issuer):
    async with running(
        database_url, token_issuer, http_allowed_networks="10.0.0.0/8, ::1/128"
    ) as jobs:
        for url in ("http://10.0.0.1/", "http://[::1]/", "http://10.255.0.7:8080/hook"):
            await jobs.created(type="http", payload={"url": url})

        metadata = await jobs.create(http_job("http://169.254.169.254/"))
        loopback = await jobs.create(http_job("http://127.0.0.1/"))

        await assert_url_refused(jobs, metadata)
        await assert_url_refused(jobs, loopback)
        assert (await jobs.counts())["jobs"] == 3


async def test_a_refused_address_is_reported_with_the_other_errors(jobs):
    body = http_job("http://10.0.0.1/", schedule={"kind": "cron", "expression": "nope"})

    response = await jobs.create(body)

    document = assert_invalid(response, "body.payload.url", "address_not_allowed")
    assert {e["field"] for e in document["errors"]} == {
        "body.payload.url",
        "body.schedule.expression",
    }
