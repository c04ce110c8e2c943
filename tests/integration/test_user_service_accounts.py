"""Service accounts through the user service on a real database: created with a secret shown
once and stored as a digest, listed without it, rotated, disabled and enabled."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from user_service_support import UserService, assert_invalid, assert_problem, running

from libs.scheduling.states import Role
from libs.security import opaque, scopes

ADMIN = scopes.USERS_ADMIN


@pytest.fixture
async def users(database_url, token_issuer) -> AsyncIterator[UserService]:
    async with running(database_url, token_issuer) as service:
        yield service


@pytest.fixture
async def admin_id(users) -> uuid.UUID:
    [user_id] = await users.add_users("admin@example.com", role=Role.ADMIN)
    return user_id


@pytest.fixture
def admin(users, admin_id) -> dict[str, str]:
    """Headers of the admin's requests."""
    return users.bearer(admin_id, ADMIN)


async def create_account(users: UserService, admin: dict, **body: Any) -> httpx.Response:
    body = {"name": "ci pipeline", "scopes": ["jobs:write", "jobs:read"], **body}
    return await users.client.post("/v1/service-accounts", json=body, headers=admin)


async def stored_secret_hash(users: UserService, account_id: str) -> str:
    [row] = await users.sql(
        "SELECT secret_hash FROM service_accounts WHERE id = :id", id=uuid.UUID(account_id)
    )
    return row.secret_hash


async def test_a_service_account_is_created_with_a_secret_shown_once(users, admin, admin_id):
    response = await create_account(users, admin)

    assert response.status_code == 201
    created = response.json()
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["location"] == f"/v1/service-accounts/{created['id']}"
    assert created["clientId"].startswith("sa_")
    assert (created["name"], created["scopes"]) == ("ci pipeline", ["jobs:read", "jobs:write"])
    assert (created["disabled"], created["createdBy"]) == (False, str(admin_id))
    secret = created["clientSecret"]
    stored = await stored_secret_hash(users, created["id"])
    assert stored == opaque.digest(secret)
    assert opaque.matches(secret, stored)
    assert stored != secret

    listed = await users.client.get("/v1/service-accounts", headers=admin)
    read = await users.client.get(f"/v1/service-accounts/{created['id']}", headers=admin)
    for answer in (listed, read):
        assert answer.status_code == 200
        assert secret not in answer.text
        assert stored not in answer.text
        assert "clientSecret" not in answer.text
    assert [item["id"] for item in listed.json()["items"]] == [created["id"]]
    assert read.json() == {k: v for k, v in created.items() if k != "clientSecret"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scopes": ["jobs:read", "jobs:delete"]}, "body.scopes"),
        ({"scopes": []}, "body.scopes"),
        ({"name": "  "}, "body.name"),
        ({"secret": "mine"}, "body.secret"),
    ],
    ids=["unknown-scope", "no-scope", "blank-name", "unknown-field"],
)
async def test_a_service_account_is_not_created_from_a_bad_body(users, admin, body, field):
    response = await create_account(users, admin, **body)

    assert_invalid(response, field)
    assert await users.sql("SELECT id FROM service_accounts") == []


async def test_rotating_a_secret_replaces_it_and_revokes_refresh_tokens(users, admin):
    created = (await create_account(users, admin)).json()
    account_id = created["id"]
    token = await users.add_refresh_token(service_account_id=uuid.UUID(account_id))

    response = await users.client.post(
        f"/v1/service-accounts/{account_id}:rotateSecret", headers=admin
    )

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    rotated = response.json()
    assert rotated["clientId"] == created["clientId"]
    assert rotated["secretRotatedAt"] is not None
    stored = await stored_secret_hash(users, account_id)
    assert opaque.matches(rotated["clientSecret"], stored)
    assert not opaque.matches(created["clientSecret"], stored)
    assert await users.revoked_at(token) is not None


async def test_a_service_account_is_disabled_losing_its_refresh_tokens_then_enabled(users, admin):
    account_id = (await create_account(users, admin)).json()["id"]
    token = await users.add_refresh_token(service_account_id=uuid.UUID(account_id))
    path = f"/v1/service-accounts/{account_id}"

    disabled = await users.client.post(f"{path}:disable", headers=admin)
    revoked = await users.revoked_at(token) is not None
    enabled = await users.client.post(f"{path}:enable", headers=admin)

    assert (disabled.status_code, disabled.json()["disabled"]) == (200, True)
    assert revoked
    assert (enabled.status_code, enabled.json()["disabled"]) == (200, False)


async def test_a_disabled_service_account_cannot_administer(users, admin):
    account_id = (await create_account(users, admin, scopes=[ADMIN])).json()["id"]
    await users.client.post(f"/v1/service-accounts/{account_id}:disable", headers=admin)
    robot = users.bearer(account_id, ADMIN, principal="service_account")

    response = await users.client.get("/v1/users", headers=robot)

    assert_problem(response, 403, "account-disabled")


async def test_a_rotated_service_accounts_earlier_tokens_end(database_url, token_issuer):
    # Read on every request, so that this process sees the change at once (the bound on
    # other processes: test_revocation.py).
    async with running(database_url, token_issuer, auth_revocation_max_staleness_s=0) as users:
        [admin_id] = await users.add_users("admin@example.com", role=Role.ADMIN)
        admin = users.bearer(admin_id, ADMIN)
        account_id = (await create_account(users, admin, scopes=[ADMIN])).json()["id"]
        earlier = users.bearer(account_id, ADMIN, principal="service_account")
        before = await users.client.get("/v1/users", headers=earlier)
        rotated = await users.client.post(
            f"/v1/service-accounts/{account_id}:rotateSecret", headers=admin
        )
        after = await users.client.get("/v1/users", headers=earlier)

    assert before.status_code == 200
    assert rotated.status_code == 200
    assert_problem(after, 401, "unauthenticated")


async def test_each_change_of_a_service_accounts_standing_raises_its_generation_once(users, admin):
    account_id = (await create_account(users, admin)).json()["id"]
    steps = [
        ("rotateSecret", 1),
        ("disable", 2),
        ("disable", 2),  # disabled already
        ("enable", 3),
        ("enable", 3),  # enabled already
        ("rotateSecret", 4),
    ]

    generations = []
    for action, _ in steps:
        response = await users.client.post(
            f"/v1/service-accounts/{account_id}:{action}", headers=admin
        )
        assert response.status_code == 200, response.text
        generations.append(await users.token_generation(account_id, "service_accounts"))

    assert generations == [expected for _, expected in steps]


@pytest.mark.parametrize("action", ["rotateSecret", "disable", "enable"])
async def test_an_unknown_service_account_is_not_found(users, action, admin):
    unknown = uuid.uuid4()

    read = await users.client.get(f"/v1/service-accounts/{unknown}", headers=admin)
    changed = await users.client.post(f"/v1/service-accounts/{unknown}:{action}", headers=admin)

    assert_problem(read, 404, "service-account-not-found")
    assert_problem(changed, 404, "service-account-not-found")


async def test_service_accounts_are_listed_in_pages(users, admin):
    created = [(await create_account(users, admin, name=f"sa {i}")).json()["id"] for i in range(3)]

    first = await users.client.get("/v1/service-accounts", params={"limit": 2}, headers=admin)
    second = await users.client.get(
        "/v1/service-accounts",
        params={"limit": 2, "cursor": first.json()["nextCursor"]},
        headers=admin,
    )

    ids = [item["id"] for page in (first, second) for item in page.json()["items"]]
    assert ids == created
    assert second.json()["nextCursor"] is None
