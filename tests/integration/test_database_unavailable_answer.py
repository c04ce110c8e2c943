"""How `libs.contracts.problems` answers a request whose database is unavailable, on a real app
whose routes raise what the database stack raises (the outage itself, through real processes and a
real PostgreSQL stopped under them, is in tests/system/test_database_outage.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import fastapi
import httpx
import structlog.testing
from sqlalchemy import exc as sa_exc

import job_service.settings
from libs.contracts import problems
from libs.infra import web

UNUSED_DATABASE_URL = "postgresql://unused@127.0.0.1/unused"  # never connected to
DRIVER_MESSAGE = "Connect call failed ('10.1.2.3', 5432)"


def probe_router() -> fastapi.APIRouter:
    router = fastapi.APIRouter()

    @router.get("/refused")
    async def refused() -> None:
        raise ConnectionRefusedError(111, DRIVER_MESSAGE)

    @router.get("/wrapped")
    async def wrapped() -> None:
        try:
            raise ConnectionRefusedError(111, DRIVER_MESSAGE)
        except ConnectionRefusedError as exc:
            raise RuntimeError("could not load") from exc

    @router.get("/duplicate")
    async def duplicate() -> None:
        raise sa_exc.IntegrityError("INSERT ...", None, Exception("duplicate key value"))

    return router


@asynccontextmanager
async def no_resources(_app: fastapi.FastAPI) -> AsyncIterator[dict[str, web.Check]]:
    yield {}


@asynccontextmanager
async def client(**transport_options: Any) -> AsyncIterator[httpx.AsyncClient]:
    settings = job_service.settings.Settings(database_url=UNUSED_DATABASE_URL)
    app = web.create_app(settings, title="Probe", lifespan=no_resources, routers=[probe_router()])
    transport = httpx.ASGITransport(app=app, **transport_options)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://probe") as probe,
    ):
        yield probe


def complaints(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The warning and error lines (not the lines of every request and of start and stop)."""
    return [entry for entry in logs if entry["log_level"] in ("warning", "error")]


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503
    assert response.headers["content-type"] == problems.MEDIA_TYPE
    assert response.headers["retry-after"] == str(problems.UNAVAILABLE_RETRY_AFTER_S)
    assert response.json() == {
        "type": problems.TYPE_BASE + "service-unavailable",
        "title": "Service unavailable",
        "status": 503,
        "detail": "the database is unavailable; retry the request later",
        "instance": response.request.url.path,
    }


async def test_an_unreachable_database_is_a_503_logged_once_without_a_traceback():
    with structlog.testing.capture_logs() as logs:
        # The transport raises what the app lets out: nothing is, so no server logs it again.
        async with client() as probe:
            response = await probe.get("/refused")

    assert_unavailable(response)
    assert "10.1.2.3" not in response.text
    assert complaints(logs) == [
        {
            "event": "database_unavailable",
            "log_level": "warning",
            "path": "/refused",
            "error": "ConnectionRefusedError",
            "cause": "ConnectionRefusedError",
        }
    ]


async def test_an_unreachable_database_under_another_exception_is_a_503_too():
    with structlog.testing.capture_logs() as logs:
        async with client(raise_app_exceptions=False) as probe:
            response = await probe.get("/wrapped")

    assert_unavailable(response)
    assert [(e["event"], e["error"], e["cause"]) for e in complaints(logs)] == [
        ("database_unavailable", "RuntimeError", "ConnectionRefusedError")
    ]


async def test_a_statement_error_of_the_driver_is_still_a_500():
    with structlog.testing.capture_logs() as logs:
        async with client(raise_app_exceptions=False) as probe:
            response = await probe.get("/duplicate")

    assert response.status_code == 500
    assert response.json()["type"] == problems.TYPE_BASE + "internal-error"
    [failure] = complaints(logs)
    assert failure["event"] == "request_failed"
    assert isinstance(failure["exc_info"], sa_exc.IntegrityError)
