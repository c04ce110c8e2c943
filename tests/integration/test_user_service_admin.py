"""The user service's administration of users on a real database: listing page by page,
roles, disabling, and the guards that keep the platform from losing its last admin.
Service accounts: test_user_service_accounts.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from user_service_support import UserService, assert_invalid, assert_problem, running

from libs.scheduling.states import Role
from libs.security import scopes

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
    return users.bearer(admin_id, ADMIN, "jobs:read")


# --- Who may administer -------------------------------------------------------------------------

ADMIN_REQUESTS = [
    ("GET", "/v1/users", None),
    ("GET", "/v1/users/{id}", None),
    ("PATCH", "/v1/users/{id}", {"role": "admin"}),
    ("POST", "/v1/users/{id}:disable", None),
    ("POST", "/v1/users/{id}:enable", None),
    ("POST", "/v1/users/{id}:unlock", None),
    ("POST", "/v1/service-accounts", {"name": "ci", "scopes": ["jobs:read"]}),
    ("GET", "/v1/service-accounts", None),
    ("GET", "/v1/service-accounts/{id}", None),
    ("POST", "/v1/service-accounts/{id}:rotateSecret", None),
    ("POST", "/v1/service-accounts/{id}:disable", None),
    ("POST", "/v1/service-accounts/{id}:enable", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_REQUESTS)
async def test_admin_endpoints_require_a_token(users, method, path, body):
    response = await users.client.request(method, path.format(id=uuid.uuid4()), json=body)

    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer ")


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_REQUESTS)
async def test_admin_endpoints_require_the_users_admin_scope(users, method, path, body):
    [user_id] = await users.add_users("ann@example.com")
    headers = users.bearer(user_id, "jobs:read", "jobs:write", "jobs:run")

    response = await users.client.request(
        method, path.format(id=user_id), json=body, headers=headers
    )

    assert_problem(response, 403, "insufficient-scope")
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert await users.role_and_disabled_at(user_id) == ("user", None)


async def test_a_users_admin_scope_is_not_honoured_once_the_user_is_no_longer_an_admin(users):
    [former] = await users.add_users("former@example.com")  # role user, token says admin

    response = await users.client.get("/v1/users", headers=users.bearer(former, ADMIN))

    assert_problem(response, 403, "admin-role-required")


async def test_a_disabled_admins_token_is_refused(users):
    [other] = await users.add_users("other@example.com", role=Role.ADMIN)
    await users.sql("UPDATE users SET disabled_at = now() WHERE id = :id", id=other)

    response = await users.client.get("/v1/users", headers=users.bearer(other, ADMIN))

    assert_problem(response, 403, "account-disabled")


# --- Paths -------------------------------------------------------------------------------------

# Actions are custom methods (`<resource>:<verb>`) since the API was made consistent with the job
# service's; the paths they had before answer 404.
FORMER_ACTION_PATHS = [
    "/v1/users/me/password",
    "/v1/users/{user}/disable",
    "/v1/users/{user}/enable",
    "/v1/service-accounts/{account}/rotate-secret",
    "/v1/service-accounts/{account}/disable",
    "/v1/service-accounts/{account}/enable",
]


@pytest.mark.parametrize("path", FORMER_ACTION_PATHS)
async def test_the_former_action_paths_are_gone(users, admin, admin_id, path):
    account = await users.add_service_account("jobs:read")
    body = {"currentPassword": "correct horse battery", "newPassword": "a new long passphrase"}

    response = await users.client.post(
        path.format(user=admin_id, account=account), json=body, headers=admin
    )

    assert_problem(response, 404, "not-found")
    assert await users.role_and_disabled_at(admin_id) == ("admin", None)


async def test_a_path_parameter_is_named_as_the_path_names_it(users, admin):
    user = await users.client.post("/v1/users/12345:disable", headers=admin)
    account = await users.client.post("/v1/service-accounts/12345:rotateSecret", headers=admin)

    assert_invalid(user, "path.userId")
    assert_invalid(account, "path.accountId")


# --- Listing ------------------------------------------------------------------------------------


async def test_users_are_listed_in_pages_without_gaps_or_duplicates(users, admin):
    # Four share one created_at (one transaction): the id breaks the tie.
    await users.add_users(*(f"batch{i}@example.com" for i in range(4)))
    for i in range(3):
        await users.add_users(f"single{i}@example.com")
    expected = [row.id for row in await users.sql("SELECT id FROM users ORDER BY created_at, id")]
    assert len(expected) == 8  # the admin and seven users

    pages, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        response = await users.client.get("/v1/users", params=params, headers=admin)
        assert response.status_code == 200
        pages.append([uuid.UUID(item["id"]) for item in response.json()["items"]])
        cursor = response.json()["nextCursor"]
        if cursor is None:
            break

    assert [len(page) for page in pages] == [3, 3, 2]
    assert [user_id for page in pages for user_id in page] == expected


async def test_a_full_last_page_is_followed_by_no_cursor(users, admin):
    await users.add_users("ann@example.com")  # with the admin: exactly one page of two

    response = await users.client.get("/v1/users", params={"limit": 2}, headers=admin)

    assert len(response.json()["items"]) == 2
    assert response.json()["nextCursor"] is None


async def test_users_are_filtered_by_email_prefix(users, admin):
    await users.add_users("ops-ann@example.com", "ops-bob@example.com", "dev@example.com")
    await users.add_users("op_x@example.com")  # '_' must not act as a LIKE wildcard

    response = await users.client.get("/v1/users", params={"email": "OPS-"}, headers=admin)
    wildcard = await users.client.get("/v1/users", params={"email": "op_"}, headers=admin)

    emails = [item["email"] for item in response.json()["items"]]
    assert sorted(emails) == ["ops-ann@example.com", "ops-bob@example.com"]
    assert [item["email"] for item in wildcard.json()["items"]] == ["op_x@example.com"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "query.limit"),
        ({"limit": 201}, "query.limit"),
        ({"cursor": "not-a-cursor"}, "query.cursor"),
        ({"cursor": "W10"}, "query.cursor"),  # base64 of "[]"
        ({"email": "a\x00b"}, "query.email"),
    ],
)
async def test_listing_refuses_bad_parameters(users, params, field, admin):
    response = await users.client.get("/v1/users", params=params, headers=admin)

    assert_invalid(response, field)


# --- One user -----------------------------------------------------------------------------------


async def test_a_user_is_read_by_id(users, admin):
    [user_id] = await users.add_users("ann@example.com")

    found = await users.client.get(f"/v1/users/{user_id}", headers=admin)
    unknown = await users.client.get(f"/v1/users/{uuid.uuid4()}", headers=admin)
    malformed = await users.client.get("/v1/users/12345", headers=admin)

    assert found.status_code == 200
    assert found.json()["email"] == "ann@example.com"
    assert "password_hash" not in found.json()
    assert_problem(unknown, 404, "user-not-found")
    assert_invalid(malformed, "path.userId")


async def test_a_user_is_promoted_then_demoted_losing_their_refresh_tokens(users, admin):
    [user_id] = await users.add_users("ann@example.com")
    token = await users.add_refresh_token(user_id=user_id)

    promoted = await users.client.patch(
        f"/v1/users/{user_id}", json={"role": "admin"}, headers=admin
    )
    kept = await users.revoked_at(token) is not None
    demoted = await users.client.patch(f"/v1/users/{user_id}", json={"role": "user"}, headers=admin)

    assert (promoted.status_code, promoted.json()["role"]) == (200, "admin")
    assert kept is False
    assert (demoted.status_code, demoted.json()["role"]) == (200, "user")
    assert await users.revoked_at(token) is not None
    assert await users.role_and_disabled_at(user_id) == ("user", None)


@pytest.mark.parametrize(
    ("body", "field"),
    [({"role": "root"}, "body.role"), ({"role": "admin", "scopes": ["x"]}, "body.scopes")],
)
async def test_a_role_change_refuses_bad_bodies(users, body, field, admin):
    [user_id] = await users.add_users("ann@example.com")

    response = await users.client.patch(f"/v1/users/{user_id}", json=body, headers=admin)

    assert_invalid(response, field)
    assert await users.role_and_disabled_at(user_id) == ("user", None)


async def test_an_unknown_user_cannot_change_role(users, admin):
    response = await users.client.patch(
        f"/v1/users/{uuid.uuid4()}", json={"role": "admin"}, headers=admin
    )

    assert_problem(response, 404, "user-not-found")


async def test_a_user_is_disabled_losing_their_refresh_tokens_then_enabled(
    database_url, token_issuer
):
    # Read on every request, so that this process sees each change at once.
    async with running(database_url, token_issuer, auth_revocation_max_staleness_s=0) as users:
        [admin_id] = await users.add_users("admin@example.com", role=Role.ADMIN)
        admin = users.bearer(admin_id, ADMIN)
        [user_id] = await users.add_users("ann@example.com")
        token = await users.add_refresh_token(user_id=user_id)
        me = users.bearer(user_id, "jobs:read")

        disabled = await users.client.post(f"/v1/users/{user_id}:disable", headers=admin)
        _, disabled_at = await users.role_and_disabled_at(user_id)
        again = await users.client.post(f"/v1/users/{user_id}:disable", headers=admin)
        refused = await users.client.get("/v1/users/me", headers=me)
        enabled = await users.client.post(f"/v1/users/{user_id}:enable", headers=admin)
        still_refused = await users.client.get("/v1/users/me", headers=me)
        generation = await users.token_generation(user_id)
        allowed = await users.client.get(
            "/v1/users/me", headers=users.bearer(user_id, "jobs:read", generation=generation)
        )
        revoked_at = await users.revoked_at(token)
        role_and_disabled_at = await users.role_and_disabled_at(user_id)

    assert (disabled.status_code, disabled.json()["disabled"]) == (200, True)
    assert revoked_at is not None
    assert again.status_code == 200
    assert disabled_at is not None
    assert_problem(refused, 403, "account-disabled")
    assert (enabled.status_code, enabled.json()["disabled"]) == (200, False)
    # Enabling does not bring back the tokens the disabling ended; a new login's token works.
    assert_problem(still_refused, 401, "unauthenticated")
    assert allowed.status_code == 200, allowed.text
    assert role_and_disabled_at == ("user", None)


@pytest.mark.parametrize(
    ("role", "new_role"), [(Role.USER, Role.ADMIN), (Role.ADMIN, Role.USER)], ids=["up", "down"]
)
async def test_a_role_change_ends_the_users_earlier_tokens(
    database_url, token_issuer, role, new_role
):
    # Read on every request, so that this process sees the change at once (the bound on
    # other processes: test_revocation.py).
    async with running(database_url, token_issuer, auth_revocation_max_staleness_s=0) as users:
        [admin_id] = await users.add_users("admin@example.com", role=Role.ADMIN)
        [user_id] = await users.add_users("ann@example.com", role=role)
        earlier = users.bearer(user_id, "jobs:read")
        before = await users.client.get("/v1/users/me", headers=earlier)
        changed = await users.client.patch(
            f"/v1/users/{user_id}", json={"role": new_role}, headers=users.bearer(admin_id, ADMIN)
        )
        after = await users.client.get("/v1/users/me", headers=earlier)

    assert before.status_code == 200
    assert changed.status_code == 200, changed.text
    assert_problem(after, 401, "unauthenticated")
    assert 'error="invalid_token"' in after.headers["www-authenticate"]


async def test_each_change_of_a_users_standing_raises_their_generation_once(users, admin):
    [user_id] = await users.add_users("ann@example.com")
    steps = [
        ("PATCH", "", {"role": "user"}, 0),  # the role they have: nothing changes
        ("POST", ":disable", None, 1),
        ("POST", ":disable", None, 1),  # disabled already
        ("POST", ":enable", None, 2),
        ("POST", ":enable", None, 2),  # enabled already
        ("PATCH", "", {"role": "admin"}, 3),
        ("PATCH", "", {"role": "admin"}, 3),
    ]

    generations = []
    for method, suffix, body, _ in steps:
        response = await users.client.request(
            method, f"/v1/users/{user_id}{suffix}", json=body, headers=admin
        )
        assert response.status_code == 200, response.text
        generations.append(await users.token_generation(user_id))

    assert generations == [expected for *_, expected in steps]


async def test_an_unknown_user_cannot_be_disabled_or_enabled(users, admin):
    for action in ("disable", "enable"):
        response = await users.client.post(f"/v1/users/{uuid.uuid4()}:{action}", headers=admin)
        assert_problem(response, 404, "user-not-found")


# --- Never without an admin ---------------------------------------------------------------------


async def test_an_admin_cannot_demote_or_disable_themselves(users, admin, admin_id):
    [other] = await users.add_users("other-admin@example.com", role=Role.ADMIN)
    me = admin_id

    demote = await users.client.patch(f"/v1/users/{me}", json={"role": "user"}, headers=admin)
    disable = await users.client.post(f"/v1/users/{me}:disable", headers=admin)

    assert_problem(demote, 409, "self-lockout")
    assert_problem(disable, 409, "self-lockout")
    assert await users.role_and_disabled_at(me) == ("admin", None)
    assert await users.role_and_disabled_at(other) == ("admin", None)


async def test_the_last_admin_cannot_be_demoted_or_disabled_by_a_service_account(
    users, admin, admin_id
):
    created = await users.client.post(
        "/v1/service-accounts", json={"name": "ops", "scopes": [ADMIN]}, headers=admin
    )
    robot = users.bearer(created.json()["id"], ADMIN, principal="service_account")
    admin = admin_id

    demote = await users.client.patch(f"/v1/users/{admin}", json={"role": "user"}, headers=robot)
    disable = await users.client.post(f"/v1/users/{admin}:disable", headers=robot)

    assert_problem(demote, 409, "last-admin")
    assert_problem(disable, 409, "last-admin")
    assert await users.role_and_disabled_at(admin) == ("admin", None)


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(users, admin, admin_id):
    [other] = await users.add_users("other-admin@example.com", role=Role.ADMIN)
    theirs = users.bearer(other, ADMIN)

    responses = await asyncio.gather(
        users.client.patch(f"/v1/users/{other}", json={"role": "user"}, headers=admin),
        users.client.patch(f"/v1/users/{admin_id}", json={"role": "user"}, headers=theirs),
    )

    assert sorted(r.status_code for r in responses) == [200, 403]
    roles = {row.role for row in await users.sql("SELECT role FROM users")}
    assert roles == {"admin", "user"}
