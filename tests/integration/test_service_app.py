"""The operational HTTP surface every service shares (`libs.infra.web`, `libs.contracts.problems`),
on real apps.

The job service runs against a real database and the scheduler service against a real broker;
the error-rendering tests add a throwaway router to an app with no resources.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import fastapi
import httpx
import pytest
import structlog.contextvars
import structlog.testing
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import parser

import job_service.api
import job_service.settings
import scheduler_service.app
import scheduler_service.settings
from libs.contracts import problems
from libs.infra import web
from schedctl import embedded

GENERATED_REQUEST_ID = re.compile(r"[0-9a-f]{32}")
UNEXPECTED_MESSAGE = "secret-detail-of-the-failure"
UNUSED_DATABASE_URL = "postgresql://unused@127.0.0.1/unused"  # never connected to


def client_for(app: fastapi.FastAPI, **transport_options: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, **transport_options)
    return httpx.AsyncClient(transport=transport, base_url="http://job")


@asynccontextmanager
async def running(
    app: fastapi.FastAPI, **transport_options: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app` while its lifespan (resources, readiness) is running."""
    async with app.router.lifespan_context(app), client_for(app, **transport_options) as client:
        yield client


def job_app(database_url: str) -> fastapi.FastAPI:
    return job_service.api.create_app(job_service.settings.Settings(database_url=database_url))


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == problems.MEDIA_TYPE
    document = response.json()
    assert document["type"] == problems.TYPE_BASE + slug
    assert document["status"] == status
    assert document["title"]
    return document


# --- health and readiness ---------------------------------------------------------------------


async def test_alive_and_ready_with_the_database_up(database_url):
    async with running(job_app(database_url)) as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")

    assert health.status_code == 200
    assert health.json() == {"status": "alive"}
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}


async def test_not_ready_but_alive_when_the_database_is_unreachable():
    closed = f"postgresql://scheduler@127.0.0.1:{embedded.free_port()}/scheduler"
    async with running(job_app(closed)) as client:
        ready = await client.get("/readyz")
        health = await client.get("/healthz")

    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["database"].startswith("failed")
    assert health.status_code == 200
    assert health.json() == {"status": "alive"}


async def test_draining_after_the_lifespan_has_ended(database_url):
    app = job_app(database_url)
    async with client_for(app) as client:
        async with app.router.lifespan_context(app):
            assert (await client.get("/readyz")).status_code == 200

        ready = await client.get("/readyz")

    assert ready.status_code == 503
    assert ready.json()["status"] == "draining"


async def test_scheduler_service_is_ready_and_created_its_topics(
    database_url, kafka_bootstrap_servers, unique_name
):
    settings = scheduler_service.settings.Settings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap_servers,
        kafka_dispatch_topic=f"{unique_name}.dispatch",
        kafka_dead_letter_topic=f"{unique_name}.dlq",
        kafka_dispatch_partitions=2,
    )
    async with running(scheduler_service.app.create_app(settings)) as client:
        ready = await client.get("/readyz")

    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "kafka": "ok"}}
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics(
            [settings.kafka_dispatch_topic, settings.kafka_dead_letter_topic]
        )
    finally:
        await admin.close()
    assert {d["topic"]: (d["error_code"], len(d["partitions"])) for d in described} == {
        f"{unique_name}.dispatch": (0, 2),
        f"{unique_name}.dlq": (0, 1),
    }


# --- routing errors ---------------------------------------------------------------------------


async def test_unknown_path_is_a_404_problem(database_url):
    async with running(job_app(database_url)) as client:
        response = await client.get("/no-such-path")

    document = assert_problem(response, 404, "not-found")
    assert document["instance"] == "/no-such-path"


async def test_wrong_method_is_a_405_problem(database_url):
    async with running(job_app(database_url)) as client:
        response = await client.post("/healthz")

    document = assert_problem(response, 405, "method-not-allowed")
    assert document["instance"] == "/healthz"
    assert "GET" in response.headers["allow"]


# --- request ids ------------------------------------------------------------------------------


async def test_a_well_formed_request_id_is_echoed(database_url):
    async with running(job_app(database_url)) as client:
        response = await client.get("/healthz", headers={"X-Request-ID": "client-42.retry_1"})

    assert response.headers["x-request-id"] == "client-42.retry_1"


@pytest.mark.parametrize(
    "supplied",
    ["has a space", "x" * 200, "forged\n"],
    ids=["space", "too-long", "trailing-newline"],
)
async def test_a_malformed_request_id_is_replaced(database_url, supplied):
    async with running(job_app(database_url)) as client:
        response = await client.get("/healthz", headers={"X-Request-ID": supplied})

    assert response.status_code == 200
    assert GENERATED_REQUEST_ID.fullmatch(response.headers["x-request-id"])


async def test_a_request_without_an_id_gets_a_generated_one(database_url):
    async with running(job_app(database_url)) as client:
        first = await client.get("/healthz")
        second = await client.get("/healthz")

    assert GENERATED_REQUEST_ID.fullmatch(first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


# --- metrics ----------------------------------------------------------------------------------


async def test_metrics_are_prometheus_text_with_service_info_and_request_counts(database_url):
    async with running(job_app(database_url)) as client:
        await client.get("/healthz")
        await client.get("/healthz")
        response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = [
        sample
        for family in parser.text_string_to_metric_families(response.text)
        for sample in family.samples
    ]
    info = [s for s in samples if s.name == "service_info"]
    assert [s.labels["service"] for s in info] == ["job_service"]
    assert info[0].value == 1.0
    assert "service_info{" in response.text
    healthz = [
        s.value
        for s in samples
        if s.name == "http_requests_total"
        and s.labels == {"method": "GET", "route": "/healthz", "status": "200"}
    ]
    assert healthz == [2.0]


async def test_every_request_is_logged_and_counted_under_its_route(serve_app):
    database = {"up": True}

    async def database_check() -> None:
        if not database["up"]:
            raise ConnectionRefusedError

    @asynccontextmanager
    async def lifespan(_app: fastapi.FastAPI) -> AsyncIterator[dict[str, web.Check]]:
        yield {"database": database_check}

    settings = job_service.settings.Settings(database_url=UNUSED_DATABASE_URL)
    app = web.create_app(settings, title="Probe", lifespan=lifespan, routers=[probe_router()])
    with structlog.testing.capture_logs() as logs:
        async with serve_app(app) as base_url, httpx.AsyncClient(base_url=base_url) as client:
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).status_code == 200
            database["up"] = False
            assert (await client.get("/readyz")).status_code == 503
            assert (await client.get("/metrics")).status_code == 200
            assert (await client.get("/items", params={"count": 3})).status_code == 200
            assert (await client.get("/no-such-path")).status_code == 404
            scraped = await client.get("/metrics")

    lines = [
        (entry["log_level"], entry["route"], entry["status"])
        for entry in logs
        if entry["event"] == "http_request"
    ]
    # Probes and scrapes at debug, a failed one as a warning, the API's requests at info.
    assert lines == [
        ("debug", "/healthz", 200),
        ("debug", "/readyz", 200),
        ("warning", "/readyz", 503),
        ("debug", "/metrics", 200),
        ("info", "/items", 200),
        ("info", "unmatched", 404),
        ("debug", "/metrics", 200),
    ]
    counted = {
        (sample.labels["route"], sample.labels["status"]): sample.value
        for family in parser.text_string_to_metric_families(scraped.text)
        for sample in family.samples
        if sample.name == "http_requests_total"
    }
    assert counted == {
        ("/healthz", "200"): 1.0,
        ("/readyz", "200"): 1.0,
        ("/readyz", "503"): 1.0,
        ("/metrics", "200"): 1.0,  # the scrape that read these is counted after it
        ("/items", "200"): 1.0,
        ("unmatched", "404"): 1.0,
    }


# --- error rendering --------------------------------------------------------------------------


class QuotaExceeded(problems.Problem):
    status = 429
    slug = "quota-exceeded"
    title = "Quota exceeded"


def probe_router() -> fastapi.APIRouter:
    router = fastapi.APIRouter()

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError(UNEXPECTED_MESSAGE)

    @router.get("/quota")
    async def quota() -> None:
        raise QuotaExceeded("at most 5 jobs per minute", headers={"Retry-After": "30"}, limit=5)

    @router.get("/items")
    async def items(count: int) -> dict[str, int]:
        return {"count": count}

    return router


@asynccontextmanager
async def no_resources(_app: fastapi.FastAPI) -> AsyncIterator[dict[str, web.Check]]:
    yield {}


def probe_app() -> fastapi.FastAPI:
    settings = job_service.settings.Settings(database_url=UNUSED_DATABASE_URL)
    return web.create_app(settings, title="Probe", lifespan=no_resources, routers=[probe_router()])


async def test_an_unexpected_exception_is_a_500_problem_that_hides_its_cause():
    # Starlette re-raises after sending the 500, so that the server logs the exception too.
    bound_ids = [structlog.contextvars.merge_contextvars]
    with structlog.testing.capture_logs(processors=bound_ids) as logs:
        async with running(probe_app(), raise_app_exceptions=False) as client:
            response = await client.get("/boom", headers={"X-Request-ID": "quote-me"})

    document = assert_problem(response, 500, "internal-error")
    assert document["instance"] == "/boom"
    assert UNEXPECTED_MESSAGE not in response.text
    # The client can quote the request id, and the log line with the cause carries it.
    assert response.headers["x-request-id"] == "quote-me"
    failures = [entry for entry in logs if entry["event"] == "request_failed"]
    assert [entry["request_id"] for entry in failures] == ["quote-me"]


async def test_a_problem_renders_its_status_type_title_detail_and_extensions():
    async with running(probe_app()) as client:
        response = await client.get("/quota")

    document = assert_problem(response, 429, "quota-exceeded")
    assert document == {
        "type": problems.TYPE_BASE + "quota-exceeded",
        "title": "Quota exceeded",
        "status": 429,
        "detail": "at most 5 jobs per minute",
        "instance": "/quota",
        "limit": 5,
    }
    assert response.headers["retry-after"] == "30"


async def test_a_missing_parameter_is_a_422_problem_naming_the_field():
    async with running(probe_app()) as client:
        response = await client.get("/items")

    document = assert_problem(response, 422, "validation-failed")
    assert [(e["field"], e["code"]) for e in document["errors"]] == [("query.count", "missing")]


async def test_a_validation_problem_does_not_echo_the_input():
    async with running(probe_app()) as client:
        response = await client.get("/items", params={"count": "secret-input-value"})

    document = assert_problem(response, 422, "validation-failed")
    assert [e["field"] for e in document["errors"]] == ["query.count"]
    assert "secret-input-value" not in response.text
