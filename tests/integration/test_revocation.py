"""Revocation across services: the auth service issues real tokens, the user service changes
accounts, and the job service, with its default settings, stops honouring the earlier tokens
within the bound the README states (`auth.revocation.max.staleness.s`).

The auth service is served over loopback HTTP (the others fetch its JWKS); the user and job
services are called in process. All three share one database, as in production.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from auth_support import PASSWORD, add_user, auth_app, basic
from job_service_support import job_body

import job_service.api
import job_service.settings
import user_service.api
import user_service.settings
from auth_service import api as auth_api
from libs.scheduling.states import Role

ISSUER = "https://auth.revocation.test"
# The bound every service keeps by default, which the README states.
BOUND_S = job_service.settings.Settings.model_fields["auth_revocation_max_staleness_s"].default
SLACK_S = 2.0  # for a busy machine: a request and the polling interval


@dataclass
class Platform:
    auth: httpx.AsyncClient
    users: httpx.AsyncClient
    jobs: httpx.AsyncClient

    async def login(self, email: str) -> dict[str, str]:
        form = {"grant_type": "password", "username": email, "password": PASSWORD}
        answer = await self.auth.post(auth_api.TOKEN_PATH, data=form)
        assert answer.status_code == 200, answer.text
        return {"authorization": f"Bearer {answer.json()['access_token']}"}

    async def client_login(self, client_id: str, secret: str) -> dict[str, str]:
        answer = await self.auth.post(
            auth_api.TOKEN_PATH,
            data={"grant_type": "client_credentials"},
            headers=basic(client_id, secret),
        )
        assert answer.status_code == 200, answer.text
        return {"authorization": f"Bearer {answer.json()['access_token']}"}


def in_process(app: Any, name: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}")


@asynccontextmanager
async def platform(database_url: str, serve_app: Any) -> AsyncIterator[Platform]:
    """The three identity-bearing services on one database, the job service's settings left
    at their defaults but for where the auth service is."""
    auth = auth_app(database_url, auth_issuer=ISSUER)
    async with AsyncExitStack() as stack:
        auth_url = await stack.enter_async_context(serve_app(auth))
        trust = {"auth_issuer": ISSUER, "auth_jwks_url": auth_url + auth_api.JWKS_PATH}
        users = user_service.api.create_app(
            user_service.settings.Settings(database_url=database_url, **trust)
        )
        jobs = job_service.api.create_app(
            job_service.settings.Settings(database_url=database_url, **trust)
        )
        for app in (users, jobs):
            await stack.enter_async_context(app.router.lifespan_context(app))
        clients = [
            httpx.AsyncClient(base_url=auth_url),
            in_process(users, "users"),
            in_process(jobs, "jobs"),
        ]
        for client in clients:
            await stack.enter_async_context(client)
        await add_user(auth, "admin@example.com", role=Role.ADMIN)
        await add_user(auth, "ann@example.com")
        yield Platform(*clients)


async def refused_after(
    jobs: httpx.AsyncClient, headers: dict[str, str], since: float
) -> tuple[httpx.Response, float]:
    """The job service's first refusal of GET /v1/jobs with `headers`, and the seconds from
    `since` to it; fails when none comes within the bound and the slack."""
    while True:
        answer = await jobs.get("/v1/jobs", headers=headers)
        elapsed = time.monotonic() - since
        if answer.status_code != 200:
            return answer, elapsed
        assert elapsed < BOUND_S + SLACK_S, "the job service still honours the token"
        await asyncio.sleep(0.1)


async def test_a_disabled_users_and_a_rotated_service_accounts_earlier_tokens_end_in_the_bound(
    database_url, serve_app
):
    async with platform(database_url, serve_app) as p:
        admin = await p.login("admin@example.com")
        ann = await p.login("ann@example.com")
        created = await p.users.post(
            "/v1/service-accounts",
            json={"name": "ci", "scopes": ["jobs:read", "jobs:write"]},
            headers=admin,
        )
        account = created.json()
        robot = await p.client_login(account["clientId"], account["clientSecret"])
        [ann_id] = [
            user["id"]
            for user in (await p.users.get("/v1/users", headers=admin)).json()["items"]
            if user["email"] == "ann@example.com"
        ]
        # Both tokens work, and the job service has read both accounts.
        assert (await p.jobs.get("/v1/jobs", headers=ann)).status_code == 200
        assert (await p.jobs.post("/v1/jobs", json=job_body(), headers=ann)).status_code == 201
        assert (await p.jobs.get("/v1/jobs", headers=robot)).status_code == 200

        disabled = await p.users.post(f"/v1/users/{ann_id}:disable", headers=admin)
        disabled_at = time.monotonic()
        rotated = await p.users.post(
            f"/v1/service-accounts/{account['id']}:rotateSecret", headers=admin
        )
        rotated_at = time.monotonic()
        ann_refused, ann_after_s = await refused_after(p.jobs, ann, disabled_at)
        robot_refused, robot_after_s = await refused_after(p.jobs, robot, rotated_at)
        ann_post = await p.jobs.post("/v1/jobs", json=job_body(), headers=ann)
        robot_post = await p.jobs.post("/v1/jobs", json=job_body(), headers=robot)
        # The new secret's token is honoured at once, though the job service read the account
        # before the rotation.
        new_robot = await p.client_login(account["clientId"], rotated.json()["clientSecret"])
        fresh = await p.jobs.get("/v1/jobs", headers=new_robot)
        listed = (await p.jobs.get("/v1/jobs", headers=admin)).json()["items"]

    assert (disabled.status_code, rotated.status_code) == (200, 200)
    assert ann_after_s <= BOUND_S + SLACK_S
    assert robot_after_s <= BOUND_S + SLACK_S
    assert (ann_refused.status_code, ann_post.status_code) == (403, 403)
    assert ann_refused.json()["type"].endswith("/account-disabled")
    assert (robot_refused.status_code, robot_post.status_code) == (401, 401)
    assert 'error="invalid_token"' in robot_refused.headers["www-authenticate"]
    assert fresh.status_code == 200, fresh.text
    assert len(listed) == 1  # only Ann's job, created before she was disabled
