"""Login locks seen and lifted by admins: the auth service locks an account after its limit of
wrong passwords (ADR 0005); the user service shows the lock on the user (`lockedUntil`), lists
locked users (`?locked=true`) and lifts a lock (`POST /v1/users/{userId}:unlock`).

The auth service is served over loopback HTTP (the user service fetches its JWKS and verifies
its real tokens); the user service is called in process. Both share one database, as in
production. The listing's cases are arranged with rows of `login_throttles` directly.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import fastapi
import httpx
import pytest
import structlog
from auth_support import add_user, auth_app, execute, login
from sqlalchemy import select
from user_service_support import UserService, assert_invalid, assert_problem, running

import user_service.api
import user_service.settings
from auth_service import api as auth_api
from libs.scheduling.states import Role
from libs.security import scopes
from libs.store import models

ISSUER = "https://auth.locks.test"
WRONG = "not the password at all"
ACCOUNT_MAX_FAILURES = 5  # the auth service's default (`account.max.failures`)
Throttle = models.LoginThrottle


@dataclass
class Identity:
    auth_app: fastapi.FastAPI
    auth: httpx.AsyncClient
    users: httpx.AsyncClient
    admin_id: uuid.UUID
    ann_id: uuid.UUID
    bob_id: uuid.UUID

    async def bearer(self, email: str, scope: str | None = None) -> dict[str, str]:
        answer = await login(self.auth, email, scope=scope)
        assert answer.status_code == 200, answer.text
        return {"authorization": f"Bearer {answer.json()['access_token']}"}


@asynccontextmanager
async def identity(database_url: str, serve_app) -> AsyncIterator[Identity]:
    """The auth service (default limits) and the user service on one database, with an admin
    and two users whose password is `PASSWORD`."""
    auth = auth_app(database_url, auth_issuer=ISSUER)
    async with serve_app(auth) as auth_url:
        users = user_service.api.create_app(
            user_service.settings.Settings(
                database_url=database_url,
                auth_issuer=ISSUER,
                auth_jwks_url=auth_url + auth_api.JWKS_PATH,
            )
        )
        async with (
            users.router.lifespan_context(users),
            httpx.AsyncClient(base_url=auth_url) as auth_client,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=users), base_url="http://users"
            ) as users_client,
        ):
            yield Identity(
                auth,
                auth_client,
                users_client,
                admin_id=await add_user(auth, "admin@example.com", role=Role.ADMIN),
                ann_id=await add_user(auth, "ann@example.com"),
                bob_id=await add_user(auth, "bob@example.com"),
            )


async def test_an_admin_sees_a_locked_account_and_unlocks_it_so_its_owner_logs_in_at_once(
    database_url, serve_app
):
    async with identity(database_url, serve_app) as p:
        admin = await p.bearer("admin@example.com", scope=scopes.USERS_ADMIN)
        bob = await p.bearer("bob@example.com")
        wrong = [await login(p.auth, "Ann@Example.com", WRONG) for _ in range(ACCOUNT_MAX_FAILURES)]
        locked_out = await login(p.auth, "ann@example.com")

        seen = await p.users.get(f"/v1/users/{p.ann_id}", headers=admin)
        listed = await p.users.get("/v1/users", params={"locked": "true"}, headers=admin)
        others = await p.users.get("/v1/users", params={"locked": "false"}, headers=admin)
        bob_reads = await p.users.get(f"/v1/users/{p.ann_id}", headers=bob)
        bob_lists = await p.users.get("/v1/users", params={"locked": "true"}, headers=bob)
        bob_unlocks = await p.users.post(f"/v1/users/{p.ann_id}:unlock", headers=bob)
        still_locked_out = await login(p.auth, "ann@example.com")
        with structlog.testing.capture_logs() as logs:
            unlocked = await p.users.post(f"/v1/users/{p.ann_id}:unlock", headers=admin)
        logged_in = await login(p.auth, "ann@example.com")
        reread = await p.users.get(f"/v1/users/{p.ann_id}", headers=admin)

    assert [r.status_code for r in wrong] == [400] * ACCOUNT_MAX_FAILURES
    assert locked_out.status_code == 429
    assert seen.status_code == 200, seen.text
    locked_until = datetime.fromisoformat(seen.json()["lockedUntil"])
    assert locked_until > datetime.now(UTC)
    assert [item["id"] for item in listed.json()["items"]] == [str(p.ann_id)]
    assert listed.json()["items"][0]["lockedUntil"] == seen.json()["lockedUntil"]
    assert str(p.ann_id) not in {item["id"] for item in others.json()["items"]}
    assert {item["lockedUntil"] for item in others.json()["items"]} == {None}
    for refused in (bob_reads, bob_lists, bob_unlocks):
        assert_problem(refused, 403, "insufficient-scope")
    assert still_locked_out.status_code == 429
    assert unlocked.status_code == 200, unlocked.text
    assert unlocked.json() == {**seen.json(), "lockedUntil": None}
    assert logged_in.status_code == 200, logged_in.text
    assert reread.json()["lockedUntil"] is None
    [event] = [line for line in logs if line["event"] == "user_unlocked"]
    assert event["log_level"] == "info"
    assert (event["user_id"], event["admin_id"]) == (str(p.ann_id), str(p.admin_id))
    assert event["was_locked"] is True
    assert "ann@example.com" not in repr(logs)


async def test_an_unlock_clears_the_count_too_and_leaves_the_address_count(database_url, serve_app):
    async with identity(database_url, serve_app) as p:
        admin = await p.bearer("admin@example.com", scope=scopes.USERS_ADMIN)
        for _ in range(ACCOUNT_MAX_FAILURES - 1):  # one short of the lock
            await login(p.auth, "ann@example.com", WRONG)
        unlocked = await p.users.post(f"/v1/users/{p.ann_id}:unlock", headers=admin)
        # Had the count survived, the first of these would lock the account.
        after = [
            await login(p.auth, "ann@example.com", WRONG) for _ in range(ACCOUNT_MAX_FAILURES - 1)
        ]
        logged_in = await login(p.auth, "ann@example.com")
        rows = (await execute(p.auth_app, select(Throttle.key, Throttle.failures))).all()

    assert (unlocked.status_code, unlocked.json()["lockedUntil"]) == (200, None)
    assert [r.status_code for r in after] == [400] * (ACCOUNT_MAX_FAILURES - 1)
    assert logged_in.status_code == 200, logged_in.text
    # The successful login cleared the account's count; the address keeps every failure.
    assert [(row.key, row.failures) for row in rows] == [
        ("address:127.0.0.1", 2 * (ACCOUNT_MAX_FAILURES - 1))
    ]


# --- Without the auth service: locks arranged as rows --------------------------------------------


@pytest.fixture
async def users(database_url, token_issuer) -> AsyncIterator[UserService]:
    async with running(database_url, token_issuer) as service:
        yield service


async def lock(users: UserService, key: str, *, minutes: int, failures: int = 5) -> None:
    """A `login_throttles` row for `key`, locked until `minutes` from now (in the past when
    negative), or only counting (`minutes=0`)."""
    await users.sql(
        "INSERT INTO login_throttles (key, failures, locked_until) VALUES (:key, :failures, "
        "CASE WHEN :minutes = 0 THEN NULL ELSE now() + make_interval(mins => :minutes) END)",
        key=key,
        failures=failures,
        minutes=minutes,
    )


async def test_users_are_listed_by_whether_a_lock_holds_them_now(users):
    [admin_id] = await users.add_users("admin@example.com", role=Role.ADMIN)
    admin = users.bearer(admin_id, scopes.USERS_ADMIN)
    names = ["locked", "expired", "counting", "free"]
    ids = dict(zip(names, await users.add_users(*(f"{n}@example.com" for n in names)), strict=True))
    await lock(users, "account:locked@example.com", minutes=10)
    await lock(users, "account:expired@example.com", minutes=-1)
    await lock(users, "account:counting@example.com", minutes=0, failures=3)
    await lock(users, "address:127.0.0.1", minutes=10)  # an address's lock is no user's
    await lock(users, "account:nobody@example.com", minutes=10)  # an email with no account

    every = await users.client.get("/v1/users", headers=admin)
    locked = await users.client.get("/v1/users", params={"locked": True}, headers=admin)
    unlocked = await users.client.get(
        "/v1/users", params={"locked": False, "limit": 2}, headers=admin
    )
    next_page = await users.client.get(
        "/v1/users",
        params={"locked": False, "limit": 2, "cursor": unlocked.json()["nextCursor"]},
        headers=admin,
    )
    mine = await users.client.get("/v1/users/me", headers=users.bearer(ids["locked"]))

    by_id = {item["id"]: item["lockedUntil"] for item in every.json()["items"]}
    assert len(by_id) == 5
    assert [until is not None for until in by_id.values()].count(True) == 1
    assert by_id[str(ids["locked"])] is not None
    assert [item["id"] for item in locked.json()["items"]] == [str(ids["locked"])]
    assert locked.json()["nextCursor"] is None
    pages = unlocked.json()["items"] + next_page.json()["items"]
    assert {item["id"] for item in pages} == {
        str(admin_id),
        str(ids["expired"]),
        str(ids["counting"]),
        str(ids["free"]),
    }
    assert next_page.json()["nextCursor"] is None
    # The owner sees their own lock: the token endpoint's 429 tells them as much already.
    assert mine.json()["lockedUntil"] == by_id[str(ids["locked"])]


async def test_unlocking_is_idempotent_and_needs_a_known_user(users):
    [admin_id, ann] = await users.add_users("admin@example.com", "ann@example.com")
    await users.sql("UPDATE users SET role = 'admin' WHERE id = :id", id=admin_id)
    admin = users.bearer(admin_id, scopes.USERS_ADMIN)
    await lock(users, "address:127.0.0.1", minutes=10)

    with structlog.testing.capture_logs() as logs:
        first = await users.client.post(f"/v1/users/{ann}:unlock", headers=admin)
        again = await users.client.post(f"/v1/users/{ann}:unlock", headers=admin)
    unknown = await users.client.post(f"/v1/users/{uuid.uuid4()}:unlock", headers=admin)
    malformed = await users.client.post("/v1/users/ann:unlock", headers=admin)
    rows = await users.sql("SELECT key FROM login_throttles")

    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json() == again.json()
    assert (first.json()["id"], first.json()["lockedUntil"]) == (str(ann), None)
    assert [line["was_locked"] for line in logs if line["event"] == "user_unlocked"] == [
        False,
        False,
    ]
    assert_problem(unknown, 404, "user-not-found")
    assert_invalid(malformed, "path.userId")
    assert [row.key for row in rows] == ["address:127.0.0.1"]


async def test_the_locked_filter_takes_a_boolean(users):
    [admin_id] = await users.add_users("admin@example.com", role=Role.ADMIN)

    response = await users.client.get(
        "/v1/users", params={"locked": "maybe"}, headers=users.bearer(admin_id, scopes.USERS_ADMIN)
    )

    assert_invalid(response, "query.locked", "bool_parsing")
