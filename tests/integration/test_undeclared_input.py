"""Input an operation does not declare is refused with a 422 naming it, on every operation of
every service's OpenAPI document: an unknown query parameter on every GET, a body sent to
every operation that takes none. The OAuth 2.0 endpoints ignore unknown parameters, as RFC
6749 requires of them."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import auth_support
import httpx
import job_service_support as job_support
import pytest
import user_service_support as user_support

from libs.security import scopes

UNKNOWN = "userName"  # a plausible guess no operation takes
SERVICES = ("jobs", "users", "auth")


@asynccontextmanager
async def _client(
    name: str, database_url: str, token_issuer: Any
) -> AsyncIterator[httpx.AsyncClient]:
    if name == "jobs":
        async with job_support.running(database_url, token_issuer) as service:
            yield service.client
    elif name == "users":
        async with user_support.running(database_url, token_issuer) as service:
            yield service.client
    else:
        async with auth_support.running(auth_support.auth_app(database_url)) as client:
            yield client


@pytest.fixture(params=SERVICES)
async def service(request, database_url, token_issuer) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(request.param, database_url, token_issuer) as client:
        # Every scope: what the answer is about is the input, not the caller.
        token = token_issuer.mint(str(uuid.uuid4()), scopes.ALL)
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def _concrete(path: str) -> str:
    """`path` with every `{parameter}` filled in: an id of nothing, which is fine, since the
    answer to judge comes before any lookup."""
    return re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)


def _errors(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, (response.request.url, response.text)
    return {error["field"]: error["code"] for error in response.json()["errors"]}


async def test_every_get_refuses_an_unknown_query_parameter(service) -> None:
    document = (await service.get("/openapi.json")).json()
    gets = [(path, op) for method, path, op in _operations(document) if method == "get"]
    assert gets
    for path, operation in gets:
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        assert UNKNOWN not in declared
        url = _concrete(path)
        refused = await service.get(url, params={UNKNOWN: "x"})
        assert _errors(refused) == {f"query.{UNKNOWN}": "extra_forbidden"}, path
        assert all(name in refused.json()["detail"] for name in declared), refused.text
        # Without it the same request is not refused for its input.
        plain = await service.get(url)
        assert plain.status_code != 422, (path, plain.text)


async def test_every_operation_without_a_body_refuses_one(service) -> None:
    document = (await service.get("/openapi.json")).json()
    bodiless = [
        (method, path)
        for method, path, op in _operations(document)
        if method != "get" and "requestBody" not in op
    ]
    for method, path in bodiless:
        url = _concrete(path)
        refused = await service.request(method, url, json={"reason": "a field nobody reads"})
        assert _errors(refused) == {"body": "extra_forbidden"}, (method, path)
        # An empty body, or an empty JSON object, carries nothing: not refused for it.
        for empty in (None, {}):
            answered = await service.request(method, url, json=empty)
            assert answered.status_code != 422, (method, path, answered.text)


async def test_a_misspelt_filter_and_a_body_sent_to_pause_are_refused(
    database_url, token_issuer
) -> None:
    async with job_support.running(database_url, token_issuer) as jobs:
        answer = await jobs.get("/v1/jobs?statuz=PAUSED&limit=5")
        assert _errors(answer) == {"query.statuz": "extra_forbidden"}
        assert "status" in answer.json()["detail"]
        # A body on `:pause` is refused and changes nothing.
        job = await jobs.created()
        paused = await jobs.post(f"/v1/jobs/{job['id']}:pause", json={"reason": "maintenance"})
        assert _errors(paused) == {"body": "extra_forbidden"}
        after = await jobs.get(f"/v1/jobs/{job['id']}")
        assert after.json()["status"] == "SCHEDULED"


async def test_the_token_endpoint_ignores_unknown_parameters(database_url) -> None:
    app = auth_support.auth_app(database_url)
    async with auth_support.running(app) as client:
        await auth_support.add_user(app, "ada@example.com")
        form = {
            "grant_type": "password",
            "username": "ada@example.com",
            "password": auth_support.PASSWORD,
            "audience": "anything",  # unknown to us: ignored, as RFC 6749 section 3.2 says
        }
        answer = await client.post(auth_support.TOKEN_PATH + "?trace=1", data=form)
        assert answer.status_code == 200, answer.text
        assert answer.json()["access_token"]
