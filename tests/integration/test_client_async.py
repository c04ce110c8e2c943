"""The asyncio client against the real services: a representative set of operations, pages
followed lazily, problems as exceptions, and tokens renewed once for concurrent tasks."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from client_support import PASSWORD, log_job, running

from libs.scheduling.states import Role
from schedctl import embedded
from scheduler_client import AsyncClient, ClientCredentials, PasswordLogin, Tokens, errors, models

CONCURRENT_REQUESTS = 8


@pytest.fixture
def platform(database_url, serve_app):
    with running(database_url, serve_app) as platform:
        yield platform


async def test_jobs_are_created_changed_and_listed(platform):
    heard: list[Tokens] = []
    async with platform.async_client(platform.account(), on_tokens=heard.append) as client:
        job = await client.jobs.create(
            models.JobCreate(
                name="nightly",
                type="log",
                payload={"message": "hi"},
                schedule=models.CalendarSchedule(every=1, unit="days", timezone="Europe/Paris"),
            ),
            idempotency_key=uuid.uuid4().hex,
        )
        assert job.schedule.kind == "calendar"
        assert await client.jobs.get(job.id) == job
        changed = await client.jobs.update(job.id, {"labels": {"a": "b"}}, if_match=job.version)
        assert changed.labels == {"a": "b"}
        with pytest.raises(errors.StaleVersion) as caught:
            await client.jobs.update(job.id, {"labels": {}}, if_match=job.version)
        assert caught.value.current_version == changed.version

        assert (await client.jobs.pause(job.id)).status == models.JobStatus.PAUSED
        assert (await client.jobs.resume(job.id)).status == models.JobStatus.SCHEDULED
        assert (await client.jobs.run(job.id)).status == models.JobStatus.SCHEDULED
        with pytest.raises(errors.InvalidRequest) as invalid:
            await client.jobs.create(log_job(schedule={"kind": "weekly"}))
        assert invalid.value.errors[0].field == "body.schedule.kind"
        batch = await client.jobs.create_many([log_job(name="a"), log_job(name="b")])
        assert batch.created == 2

        # One transaction creates the batch: its jobs share a creation time.
        names = [j.name async for j in client.jobs.iterate(limit=1)]
        assert names[0] == "nightly"
        assert sorted(names[1:]) == ["a", "b"]
        assert (await client.jobs.cancel(job.id)).status == models.JobStatus.CANCELLED
        await client.jobs.delete(job.id)
        with pytest.raises(errors.JobNotFound):
            await client.jobs.get(job.id)
    assert len(heard) == 1  # one login, kept for every request


async def test_executions_dead_letters_and_tools(platform):
    async with platform.async_client(platform.account()) as client:
        job = await client.jobs.create(log_job())
        first = platform.add_execution(job.id, created_at=datetime(2030, 1, 1, tzinfo=UTC))
        second = platform.add_execution(
            job.id, attempt=2, created_at=datetime(2030, 1, 2, tzinfo=UTC)
        )
        letter = platform.add_dead_letter(job)

        assert [e.id for e in (await client.jobs.executions(job.id)).items] == [second, first]
        assert [e.id async for e in client.executions.iterate(limit=1)] == [second, first]
        assert (await client.executions.list(status="SUCCEEDED")).next_cursor is None
        assert (await client.executions.get(first)).scheduled_for.year == 2030
        assert [d.id for d in (await client.dead_letters.list()).items] == [letter]
        assert [d.id async for d in client.dead_letters.iterate(job_id=job.id)] == [letter]
        assert (await client.dead_letters.replay(letter)).job.id == job.id

        preview = await client.schedules.preview(models.OnceSchedule(), count=5)
        assert len(preview.fire_times) == 1
        assert "http" in {t.name for t in await client.job_types.list()}
        secret = await client.webhook_secret.get()
        assert (await client.webhook_secret.rotate(grace_s=60)).secret != secret.secret


async def test_users_and_service_accounts(platform):
    async with platform.async_client() as anonymous:
        await anonymous.users.register(email="ann@example.com", password=PASSWORD, display_name="A")
    async with platform.async_client(PasswordLogin("ann@example.com", PASSWORD)) as ann:
        me = await ann.users.me()
        assert (await ann.users.update_me(display_name="Ann")).display_name == "Ann"
        with pytest.raises(errors.WrongPassword):
            await ann.users.change_password(current_password="x", new_password=PASSWORD + "!")

    async with platform.async_client(platform.account(Role.ADMIN)) as admin:
        assert [u.email async for u in admin.users.iterate(email="ann")] == ["ann@example.com"]
        assert (await admin.users.list(locked=False)).items
        assert (await admin.users.get(me.id)).display_name == "Ann"
        assert (await admin.users.set_role(me.id, "admin")).role == models.Role.ADMIN
        assert (await admin.users.disable(me.id)).disabled
        assert not (await admin.users.enable(me.id)).disabled
        assert (await admin.users.unlock(me.id)).locked_until is None
        platform.add_node("executor-1")
        assert [n.node_id for n in await admin.nodes.list()] == ["executor-1"]

        account = await admin.service_accounts.create(name="robot", scopes=["jobs:read"])
        assert (await admin.service_accounts.get(account.id)).client_id == account.client_id
        assert [a.id async for a in admin.service_accounts.iterate()] == [account.id]
        assert (await admin.service_accounts.list()).next_cursor is None
        rotated = await admin.service_accounts.rotate_secret(account.id)
        assert (await admin.service_accounts.disable(account.id)).disabled
        assert not (await admin.service_accounts.enable(account.id)).disabled

    robot = ClientCredentials(account.client_id, rotated.client_secret)
    async with platform.async_client(robot) as client:
        assert (await client.jobs.list()).items == []
        assert "jobs:write" not in client.tokens.scope


async def test_concurrent_tasks_share_one_refresh(platform):
    async with platform.async_client(platform.account()) as client:
        saved = await client.login()
    expired = dataclasses.replace(saved, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    heard: list[Tokens] = []

    async with platform.async_client(expired, on_tokens=heard.append) as client:
        answers = await asyncio.gather(*(client.users.me() for _ in range(CONCURRENT_REQUESTS)))

    assert len({me.id for me in answers}) == 1
    assert len(heard) == 1
    assert heard[0].refresh_token != saved.refresh_token


async def test_a_refused_token_is_renewed_and_logout_revokes(platform):
    sent: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request)

    async with platform.async_client(platform.account()) as client:
        saved = await client.login()
    http = httpx.AsyncClient(event_hooks={"request": [record]})
    refused = dataclasses.replace(saved, access_token="not-a-token")
    async with platform.async_client(refused, http_client=http) as client:
        await client.users.me()
        assert [r.url.path for r in sent] == ["/v1/users/me", "/oauth/token", "/v1/users/me"]
        renewed = client.tokens
        await client.logout()
        assert client.tokens is None
    await http.aclose()

    async with platform.async_client(renewed) as client:
        with pytest.raises(errors.InvalidGrant):
            await client.login()


async def test_a_service_that_does_not_answer_raises_connection_failed():
    closed = f"http://127.0.0.1:{embedded.free_port()}"
    async with AsyncClient(closed, auth=PasswordLogin("a@example.com", "x")) as client:
        with pytest.raises(errors.ConnectionFailed) as caught:
            await client.jobs.list()

    assert caught.value.url == f"{closed}/oauth/token"
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
