"""`libs.auth.require` on a small real app: RFC 6750 challenges, problem documents, scopes.

The app is built as every service builds its own (`web.create_app`, a lifespan installing
`resources.token_verifier`), and trusts `token_issuer`, whose JWKS it fetches over loopback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import fastapi
import httpx
import pytest

from libs import auth, problems, resources, scopes, web
from libs.config import ApiSettings
from libs.tokens import Principal

UNUSED_DATABASE_URL = "postgresql://unused@127.0.0.1/unused"  # never connected to
BARE_CHALLENGE = 'Bearer realm="scheduler"'


class ProbeSettings(ApiSettings):
    service_name: ClassVar[str] = "probe"


def probe_router() -> fastapi.APIRouter:
    router = fastapi.APIRouter()

    def who(principal: Principal) -> dict[str, Any]:
        return {"subject": principal.subject, "kind": principal.kind}

    @router.get("/needs-read")
    async def needs_read(
        principal: Principal = fastapi.Depends(auth.require(scopes.JOBS_READ)),
    ) -> dict[str, Any]:
        return who(principal)

    @router.get("/needs-two")
    async def needs_two(
        principal: Principal = fastapi.Depends(auth.require(scopes.JOBS_READ, scopes.JOBS_WRITE)),
    ) -> dict[str, Any]:
        return who(principal)

    return router


@pytest.fixture
async def client(token_issuer) -> AsyncIterator[httpx.AsyncClient]:
    settings = ProbeSettings(database_url=UNUSED_DATABASE_URL, **token_issuer.settings())

    @asynccontextmanager
    async def lifespan(app: fastapi.FastAPI) -> AsyncIterator[dict[str, web.Check]]:
        async with resources.token_verifier(app, settings) as checks:
            yield checks

    app = web.create_app(settings, title="Probe", lifespan=lifespan, routers=[probe_router()])
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://probe") as client,
    ):
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def challenge_params(response: httpx.Response) -> dict[str, str]:
    """The auth-params of the response's Bearer challenge (our values hold no commas)."""
    scheme, _, params = response.headers["www-authenticate"].partition(" ")
    assert scheme == "Bearer"
    pairs = (item.strip().split("=", 1) for item in params.split(","))
    return {name: value.strip('"') for name, value in pairs}


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == problems.MEDIA_TYPE
    document = response.json()
    assert document["type"] == problems.TYPE_BASE + slug
    assert document["status"] == status
    return document


async def test_no_authorization_header_is_a_401_with_a_bare_challenge(client):
    response = await client.get("/needs-read")

    document = assert_problem(response, 401, "unauthenticated")
    assert document["instance"] == "/needs-read"
    assert response.headers["www-authenticate"] == BARE_CHALLENGE


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwYXNzd29yZA==", "Bearer", "Bearer    ", "Token abc", "bearer"],
    ids=["basic", "bearer-without-token", "bearer-blank-token", "other-scheme", "lowercase"],
)
async def test_a_malformed_authorization_header_is_an_invalid_request(client, authorization):
    response = await client.get("/needs-read", headers={"Authorization": authorization})

    assert_problem(response, 401, "unauthenticated")
    assert challenge_params(response) == {"realm": "scheduler", "error": "invalid_request"}


@pytest.mark.parametrize(
    "token",
    ["not-a-jwt", "a.b.c", "eyJhbGciOiJub25lIn0.e30."],
    ids=["garbage", "three-segments", "alg-none"],
)
async def test_an_invalid_token_is_a_401_invalid_token(client, token):
    response = await client.get("/needs-read", headers=bearer(token))

    document = assert_problem(response, 401, "unauthenticated")
    params = challenge_params(response)
    assert (params["realm"], params["error"]) == ("scheduler", "invalid_token")
    assert params["error_description"] == document["detail"]


async def test_an_expired_token_is_a_401_saying_so(client, token_issuer):
    response = await client.get("/needs-read", headers=bearer(token_issuer.mint(ttl_s=-600)))

    assert_problem(response, 401, "unauthenticated")
    params = challenge_params(response)
    assert params["error"] == "invalid_token"
    assert "expired" in params["error_description"]


async def test_a_token_for_another_audience_is_a_401(client, token_issuer):
    response = await client.get("/needs-read", headers=bearer(token_issuer.mint(aud="other")))

    assert_problem(response, 401, "unauthenticated")
    assert challenge_params(response)["error"] == "invalid_token"


async def test_a_valid_token_without_the_scope_is_a_403_insufficient_scope(client, token_issuer):
    token = token_issuer.mint("user-1", [scopes.JOBS_WRITE, scopes.JOBS_RUN])

    response = await client.get("/needs-read", headers=bearer(token))

    document = assert_problem(response, 403, "insufficient-scope")
    assert document["required_scope"] == "jobs:read"
    assert challenge_params(response) == {
        "realm": "scheduler",
        "error": "insufficient_scope",
        "scope": "jobs:read",
    }


async def test_a_token_with_the_scope_is_let_through_as_its_principal(client, token_issuer):
    token = token_issuer.mint("user-1", [scopes.JOBS_READ])

    response = await client.get("/needs-read", headers=bearer(token))

    assert response.status_code == 200
    assert response.json() == {"subject": "user-1", "kind": "user"}


async def test_the_scheme_name_is_case_insensitive(client, token_issuer):
    token = token_issuer.mint("user-1", [scopes.JOBS_READ])

    response = await client.get("/needs-read", headers={"Authorization": f"bearer {token}"})

    assert response.status_code == 200


async def test_one_of_two_required_scopes_is_not_enough(client, token_issuer):
    token = token_issuer.mint("user-1", [scopes.JOBS_READ])

    response = await client.get("/needs-two", headers=bearer(token))

    document = assert_problem(response, 403, "insufficient-scope")
    assert document["required_scope"] == "jobs:read jobs:write"
    assert challenge_params(response)["scope"] == "jobs:read jobs:write"


async def test_both_required_scopes_let_the_request_through(client, token_issuer):
    token = token_issuer.mint("user-1", [scopes.JOBS_READ, scopes.JOBS_WRITE])

    response = await client.get("/needs-two", headers=bearer(token))

    assert response.status_code == 200
    assert response.json()["subject"] == "user-1"


@pytest.mark.parametrize(
    ("granted", "path", "status"),
    [
        ([scopes.JOBS_READ], "/needs-read", 200),
        ([scopes.JOBS_READ], "/needs-two", 403),
        ([scopes.JOBS_RUN], "/needs-read", 403),
        ([scopes.JOBS_READ, scopes.JOBS_WRITE], "/needs-two", 200),
    ],
)
async def test_a_service_account_token_is_held_to_scopes_as_a_user_token(
    client, token_issuer, granted, path, status
):
    token = token_issuer.mint("sa-1", granted, principal="service_account")

    response = await client.get(path, headers=bearer(token))

    assert response.status_code == status
    if status == 200:
        assert response.json() == {"subject": "sa-1", "kind": "service_account"}
    else:
        assert challenge_params(response)["error"] == "insufficient_scope"
