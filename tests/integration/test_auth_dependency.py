"""`libs.security.auth.require` on a small real app: RFC 6750 challenges, problem documents, scopes,
and the refusal of tokens whose account no longer stands behind them (`libs.security.revocation`).

The app is built as every service builds its own (`web.create_app`, a lifespan installing
`resources.database` and `resources.token_verifier`), on a database of its own, and trusts
`token_issuer`, whose JWKS it fetches over loopback. Accounts are rows inserted with SQL.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import fastapi
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from libs.contracts import problems
from libs.infra import db, resources, web
from libs.infra.config import ApiSettings
from libs.security import auth, scopes
from libs.security.tokens import Principal

BARE_CHALLENGE = 'Bearer realm="scheduler"'
CHANGE_DEADLINE_SLACK_S = 2.0  # beyond the staleness bound, for a busy machine


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


@dataclass
class Probe:
    app: fastapi.FastAPI
    client: httpx.AsyncClient

    async def sql(self, statement: str, **params: Any) -> list[Any]:
        async with db.unit_of_work(self.app.state.sessions) as session:
            result = await session.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []

    async def add_user(self) -> str:
        [row] = await self.sql(
            "INSERT INTO users (email, password_hash) VALUES (:email, 'x') RETURNING id",
            email=f"{uuid.uuid4().hex}@example.com",
        )
        return str(row.id)

    async def add_service_account(self) -> str:
        [row] = await self.sql(
            "INSERT INTO service_accounts (client_id, name, secret_hash)"
            " VALUES (:client_id, 'robot', 'x') RETURNING id",
            client_id=f"sa_{uuid.uuid4().hex}",
        )
        return str(row.id)


@asynccontextmanager
async def probe_app(database_url: str, issuer: Any, **overrides: Any) -> AsyncIterator[Probe]:
    settings = ProbeSettings(database_url=database_url, **issuer.settings(), **overrides)

    @asynccontextmanager
    async def lifespan(app: fastapi.FastAPI) -> AsyncIterator[dict[str, web.Check]]:
        async with resources.all_of(
            app,
            lambda app: resources.database(app, settings),
            lambda app: resources.token_verifier(app, settings),
        ) as checks:
            yield checks

    app = web.create_app(settings, title="Probe", lifespan=lifespan, routers=[probe_router()])
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://probe") as client,
    ):
        yield Probe(app, client)


@pytest.fixture
async def probe(database_url, token_issuer) -> AsyncIterator[Probe]:
    async with probe_app(database_url, token_issuer) as probe:
        yield probe


@pytest.fixture
def client(probe: Probe) -> httpx.AsyncClient:
    return probe.client


@pytest.fixture
async def user_id(probe: Probe) -> str:
    return await probe.add_user()


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


async def test_a_valid_token_without_the_scope_is_a_403_insufficient_scope(
    client, token_issuer, user_id
):
    token = token_issuer.mint(user_id, [scopes.JOBS_WRITE, scopes.JOBS_RUN])

    response = await client.get("/needs-read", headers=bearer(token))

    document = assert_problem(response, 403, "insufficient-scope")
    assert document["required_scope"] == "jobs:read"
    assert challenge_params(response) == {
        "realm": "scheduler",
        "error": "insufficient_scope",
        "scope": "jobs:read",
    }


async def test_a_token_with_the_scope_is_let_through_as_its_principal(
    client, token_issuer, user_id
):
    token = token_issuer.mint(user_id, [scopes.JOBS_READ])

    response = await client.get("/needs-read", headers=bearer(token))

    assert response.status_code == 200
    assert response.json() == {"subject": user_id, "kind": "user"}


async def test_the_scheme_name_is_case_insensitive(client, token_issuer, user_id):
    token = token_issuer.mint(user_id, [scopes.JOBS_READ])

    response = await client.get("/needs-read", headers={"Authorization": f"bearer {token}"})

    assert response.status_code == 200


async def test_one_of_two_required_scopes_is_not_enough(client, token_issuer, user_id):
    token = token_issuer.mint(user_id, [scopes.JOBS_READ])

    response = await client.get("/needs-two", headers=bearer(token))

    document = assert_problem(response, 403, "insufficient-scope")
    assert document["required_scope"] == "jobs:read jobs:write"
    assert challenge_params(response)["scope"] == "jobs:read jobs:write"


async def test_both_required_scopes_let_the_request_through(client, token_issuer, user_id):
    token = token_issuer.mint(user_id, [scopes.JOBS_READ, scopes.JOBS_WRITE])

    response = await client.get("/needs-two", headers=bearer(token))

    assert response.status_code == 200
    assert response.json()["subject"] == user_id


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
    probe, token_issuer, granted, path, status
):
    account_id = await probe.add_service_account()
    token = token_issuer.mint(account_id, granted, principal="service_account")

    response = await probe.client.get(path, headers=bearer(token))

    assert response.status_code == status
    if status == 200:
        assert response.json() == {"subject": account_id, "kind": "service_account"}
    else:
        assert challenge_params(response)["error"] == "insufficient_scope"


# --- Revocation: the account behind the token -----------------------------------------------------


async def wait_for_status(
    client: httpx.AsyncClient, headers: dict[str, str], wanted: int, deadline_s: float
) -> tuple[httpx.Response, float]:
    """The first answer to GET /needs-read with `wanted` status, and how long it took to come;
    fails once `deadline_s` passed without one."""
    started = time.monotonic()
    while True:
        response = await client.get("/needs-read", headers=headers)
        elapsed = time.monotonic() - started
        if response.status_code == wanted:
            return response, elapsed
        assert elapsed < deadline_s, (response.status_code, response.text)
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("subject", [lambda: str(uuid.uuid4()), lambda: "not-an-account-id"])
async def test_a_token_whose_account_does_not_exist_is_a_401_invalid_token(
    client, token_issuer, subject
):
    token = token_issuer.mint(subject(), [scopes.JOBS_READ])

    response = await client.get("/needs-read", headers=bearer(token))

    document = assert_problem(response, 401, "unauthenticated")
    assert challenge_params(response)["error"] == "invalid_token"
    assert "no longer exists" in document["detail"]


@pytest.mark.parametrize("kind", ["user", "service_account"])
async def test_a_token_of_a_disabled_account_is_a_403_account_disabled(probe, token_issuer, kind):
    account_id = await (probe.add_user() if kind == "user" else probe.add_service_account())
    table = "users" if kind == "user" else "service_accounts"
    await probe.sql(f"UPDATE {table} SET disabled_at = now() WHERE id = :id", id=account_id)  # noqa: S608
    token = token_issuer.mint(account_id, [scopes.JOBS_READ], principal=kind)

    response = await probe.client.get("/needs-read", headers=bearer(token))

    assert_problem(response, 403, "account-disabled")


async def test_a_token_of_an_earlier_generation_is_revoked_one_of_the_current_is_honoured(
    probe, token_issuer, user_id
):
    await probe.sql("UPDATE users SET token_generation = 2 WHERE id = :id", id=user_id)
    earlier = token_issuer.mint(user_id, [scopes.JOBS_READ], generation=1)
    current = token_issuer.mint(user_id, [scopes.JOBS_READ], generation=2)

    refused = await probe.client.get("/needs-read", headers=bearer(earlier))
    honoured = await probe.client.get("/needs-read", headers=bearer(current))

    document = assert_problem(refused, 401, "unauthenticated")
    assert challenge_params(refused)["error"] == "invalid_token"
    assert "revoked" in document["detail"]
    assert honoured.status_code == 200, honoured.text


async def test_a_token_newer_than_what_the_service_keeps_is_honoured_at_once(
    database_url, token_issuer
):
    # Kept for a minute: only the newer token can make the service read the account again.
    async with probe_app(database_url, token_issuer, auth_revocation_max_staleness_s=60) as probe:
        user_id = await probe.add_user()
        first = bearer(token_issuer.mint(user_id, [scopes.JOBS_READ]))
        warmed = await probe.client.get("/needs-read", headers=first)
        await probe.sql(  # as a password change does
            "UPDATE users SET token_generation = token_generation + 1 WHERE id = :id", id=user_id
        )
        after = bearer(token_issuer.mint(user_id, [scopes.JOBS_READ], generation=1))
        fresh = await probe.client.get("/needs-read", headers=after)
        earlier = await probe.client.get("/needs-read", headers=first)

    assert warmed.status_code == 200
    assert fresh.status_code == 200, fresh.text
    # The read the newer token caused is what the service keeps now.
    assert_problem(earlier, 401, "unauthenticated")


async def test_what_a_service_read_of_an_account_is_kept_within_the_bound_and_no_longer(
    database_url, token_issuer
):
    bound_s = 3.0
    async with probe_app(
        database_url, token_issuer, auth_revocation_max_staleness_s=bound_s
    ) as probe:
        user_id = await probe.add_user()
        headers = bearer(token_issuer.mint(user_id, [scopes.JOBS_READ]))
        warmed = await probe.client.get("/needs-read", headers=headers)
        await probe.sql("UPDATE users SET disabled_at = now() WHERE id = :id", id=user_id)
        kept = await probe.client.get("/needs-read", headers=headers)
        refused, _ = await wait_for_status(
            probe.client, headers, 403, bound_s + CHANGE_DEADLINE_SLACK_S
        )

    assert (warmed.status_code, kept.status_code) == (200, 200)  # no query for each request
    assert_problem(refused, 403, "account-disabled")


class Gate:
    """A TCP forwarder in front of PostgreSQL: closing it is an outage of the database."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def open(self) -> int:
        self.server = await asyncio.start_server(self._forward, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, upstream_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while data := await source.read(65_536):
                sink.write(data)
                await sink.drain()
            sink.close()

        await asyncio.gather(
            pipe(reader, upstream_writer), pipe(upstream_reader, writer), return_exceptions=True
        )

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        await self.server.wait_closed()


async def test_an_account_that_cannot_be_read_again_is_a_503_never_a_pass(
    database_url, token_issuer
):
    url = make_url(database_url)
    gate = Gate(url.host or "127.0.0.1", url.port or 5432)
    port = await gate.open()
    gated_url = url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    bound_s = 1.0
    try:
        async with probe_app(
            gated_url, token_issuer, auth_revocation_max_staleness_s=bound_s
        ) as probe:
            user_id = await probe.add_user()
            headers = bearer(token_issuer.mint(user_id, [scopes.JOBS_READ]))
            warmed = await probe.client.get("/needs-read", headers=headers)
            await gate.close()
            unavailable, _ = await wait_for_status(
                probe.client, headers, 503, bound_s + CHANGE_DEADLINE_SLACK_S
            )
    finally:
        await gate.close()

    assert warmed.status_code == 200
    assert_problem(unavailable, 503, "service-unavailable")
    assert unavailable.headers["retry-after"] == str(problems.UNAVAILABLE_RETRY_AFTER_S)
