"""The user service's own-account API on a real database: registration and its rules, the
profile, password changes, and who may call these endpoints at all. Administration:
test_user_service_admin.py; service accounts: test_user_service_accounts.py; the harness:
user_service_support.py."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pwdlib import PasswordHash
from user_service_support import (
    PASSWORD,
    UserService,
    assert_invalid,
    assert_problem,
    running,
)

from libs.security import passwords

OTHER_PASSWORD = "another long passphrase"
HELD = "holds the only slot"
HELD_DEADLINE_S = 30  # the longest a held hash waits for its release


@pytest.fixture
async def users(database_url, token_issuer) -> AsyncIterator[UserService]:
    async with running(database_url, token_issuer) as service:
        yield service


async def add_user(users: UserService, email: str) -> uuid.UUID:
    [user_id] = await users.add_users(email)
    return user_id


# --- Registration ------------------------------------------------------------------------------


async def test_registration_creates_an_enabled_user_with_a_normalised_email(users):
    response = await users.register("  Ann.Lee@Example.COM ")

    assert response.status_code == 202
    # Only the email to log in with: the answer is the same for a taken email.
    assert response.json() == {"email": "ann.lee@example.com"}
    assert "location" not in response.headers
    assert PASSWORD not in response.text
    [row] = await users.sql(
        "SELECT email, password_hash, role, display_name, disabled_at FROM users"
    )
    assert (row.email, row.role) == ("ann.lee@example.com", "user")
    assert (row.display_name, row.disabled_at) == ("Ann", None)
    assert row.password_hash.startswith("$argon2id$")
    assert passwords.new_hasher().verify(PASSWORD, row.password_hash)
    assert row.password_hash not in response.text


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("elevenchars", "too_short"),
        ("ü" * 11, "too_short"),  # 22 bytes, but 11 code points
        ("x" * 1025, "too_long"),
        ("ann.lee.smith@example.com", "matches_email"),
        ("ANN.LEE.SMITH@EXAMPLE.COM", "matches_email"),
        ("Ann.Lee.Smith", "matches_email"),  # the local part, in another case
        ("PassWord1234", "common"),
        ("QWERTYUIOPAS", "common"),
    ],
    ids=[
        "too-short",
        "too-short-in-code-points",
        "too-long",
        "equals-email",
        "equals-email-in-another-case",
        "equals-local-part",
        "deny-listed-in-another-case",
        "deny-listed-upper-case",
    ],
)
async def test_registration_applies_the_password_policy(users, password, code):
    response = await users.register("ann.lee.smith@example.com", password)

    assert_invalid(response, "body.password", code)
    assert password not in response.text
    assert await users.user_count() == 0


@pytest.mark.parametrize(
    "email",
    [
        "no-at-sign.example.com",
        "two@@example.com",
        "a@b@example.com",
        "@example.com",
        "ann@localhost",
        "ann@example.",
        "ann@.example.com",
        "ann@example..com",
        "ann lee@example.com",
        "ann@exa\tmple.com",
        "",
        "a" * 243 + "@example.com",  # 255 characters
    ],
)
async def test_registration_refuses_a_malformed_email(users, email):
    response = await users.register(email)

    assert_invalid(response, "body.email")
    assert await users.user_count() == 0


async def test_an_email_of_254_characters_is_accepted(users):
    response = await users.register("a" * 242 + "@example.com")

    assert response.status_code == 202
    assert await users.user_count() == 1


async def test_registering_a_taken_email_is_answered_as_a_free_one_and_changes_nothing(users):
    first = await users.register("ann@example.com")
    [before] = await users.sql("SELECT * FROM users")
    second = await users.register("ANN@Example.com", OTHER_PASSWORD, display_name="Mallory")

    # Nothing in the answer says the email had an account (ADR 0010).
    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json() == second.json()
    assert first.headers.keys() - {"x-request-id"} == second.headers.keys() - {"x-request-id"}
    [after] = await users.sql("SELECT * FROM users")
    assert after == before
    assert passwords.new_hasher().verify(PASSWORD, after.password_hash)


async def test_two_concurrent_registrations_of_one_email_make_one_user(users):
    responses = await asyncio.gather(
        users.register("race@example.com"), users.register("Race@Example.com", OTHER_PASSWORD)
    )

    assert [r.status_code for r in responses] == [202, 202]
    assert await users.user_count() == 1


async def test_registrations_are_limited_per_client_address(database_url, token_issuer):
    async with running(
        database_url, token_issuer, registration_max_per_address=3, registration_window_s=600
    ) as users:
        admitted = [await users.register(f"user{n}@example.com") for n in range(3)]
        refused = await users.register("user3@example.com")
        taken = await users.register("user0@example.com")
        elsewhere = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=users.app, client=("192.0.2.9", 40_000)),
            base_url="http://users",
        )
        async with elsewhere:
            body = {"email": "user4@example.com", "password": PASSWORD, "displayName": "Ann"}
            other_address = await elsewhere.post("/v1/users", json=body)
        count = await users.user_count()

    assert [r.status_code for r in admitted] == [202, 202, 202]
    for response in (refused, taken):
        assert_problem(response, 429, "too-many-registrations")
        assert 0 < int(response.headers["retry-after"]) <= 600
    assert other_address.status_code == 202
    assert count == 4


@pytest.mark.parametrize("field", ["role", "isAdmin", "is_admin", "passwrd"])
async def test_registration_refuses_unknown_fields(users, field):
    response = await users.register("ann@example.com", **{field: "admin"})

    assert_invalid(response, f"body.{field}", "extra_forbidden")
    assert await users.user_count() == 0


async def test_registration_refuses_a_nul_byte(users):
    response = await users.register("ann@example.com", display_name="Ann\x00Lee")

    assert_invalid(response, "body.displayName")
    assert await users.user_count() == 0


async def test_registration_refuses_a_lone_surrogate(users):
    # Written by hand: a JSON encoder would not produce an unpaired \ud800 escape.
    body = '{"email": "ann@example.com", "password": "abc\\ud800defghijkl", "displayName": "A"}'

    response = await users.client.post(
        "/v1/users", content=body, headers={"content-type": "application/json"}
    )

    assert_invalid(response, "body.password")
    assert await users.user_count() == 0


@pytest.mark.parametrize("display_name", ["", "   ", "Ann\nLee", "x" * 101])
async def test_registration_refuses_a_blank_or_unprintable_display_name(users, display_name):
    response = await users.register("ann@example.com", display_name=display_name)

    assert_invalid(response, "body.displayName")
    assert await users.user_count() == 0


async def test_registration_is_refused_with_retry_after_while_the_hasher_is_full(
    database_url, token_issuer, monkeypatch
):
    # The hash in the only slot lasts until the registration has been answered: argon2 alone
    # could end first on a busy machine and free the slot.
    released = threading.Event()
    hash_password = PasswordHash.hash

    def held(self: PasswordHash, password: str, *args: Any, **kwargs: Any) -> str:
        if password == HELD:
            released.wait(HELD_DEADLINE_S)
        return hash_password(self, password, *args, **kwargs)

    monkeypatch.setattr(PasswordHash, "hash", held)
    async with running(
        database_url, token_issuer, max_concurrent_hashes=1, max_waiting_hashes=1
    ) as users:
        hasher: passwords.Hasher = users.app.state.hasher
        running_hash = asyncio.create_task(hasher.hash(HELD))
        waiting_hash = asyncio.create_task(hasher.hash("takes the only waiting place"))
        await asyncio.sleep(0)  # one turn of the loop: both reach the hasher; no timing involved

        try:
            response = await users.register("ann@example.com")
        finally:
            released.set()
        await asyncio.gather(running_hash, waiting_hash)
        assert_problem(response, 503, "busy")
        assert response.headers["retry-after"] == "1"
        assert await users.user_count() == 0


# --- Who may use /v1/users/me -------------------------------------------------------------------


async def test_me_requires_a_bearer_token(users):
    response = await users.client.get("/v1/users/me")

    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer ")


async def test_me_refuses_a_service_account(users):
    account_id = await users.add_service_account("jobs:read")
    response = await users.client.get(
        "/v1/users/me", headers=users.bearer(account_id, principal="service_account")
    )

    assert_problem(response, 403, "user-principal-required")


async def test_me_refuses_a_token_of_a_deleted_account_as_unauthenticated(users):
    user_id = await add_user(users, "gone@example.com")
    await users.sql("DELETE FROM users WHERE id = :id", id=user_id)

    response = await users.client.get("/v1/users/me", headers=users.bearer(user_id))

    assert_problem(response, 401, "unauthenticated")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_me_refuses_a_token_whose_subject_is_no_account_id(users):
    response = await users.client.get("/v1/users/me", headers=users.bearer("not-a-uuid"))

    assert_problem(response, 401, "unauthenticated")


async def test_me_refuses_a_disabled_account(users):
    user_id = await add_user(users, "off@example.com")
    await users.sql("UPDATE users SET disabled_at = now() WHERE id = :id", id=user_id)

    read = await users.client.get("/v1/users/me", headers=users.bearer(user_id))
    patch = await users.client.patch(
        "/v1/users/me", json={"displayName": "X"}, headers=users.bearer(user_id)
    )

    assert_problem(read, 403, "account-disabled")
    assert_problem(patch, 403, "account-disabled")
    [row] = await users.sql("SELECT display_name FROM users WHERE id = :id", id=user_id)
    assert row.display_name == "U"


# --- Profile ------------------------------------------------------------------------------------


async def test_profile_is_read_and_updated(users):
    await users.register("ann@example.com")
    [row] = await users.sql("SELECT id FROM users")
    headers = users.bearer(row.id, "jobs:read")

    read = await users.client.get("/v1/users/me", headers=headers)
    updated = await users.client.patch(
        "/v1/users/me", json={"displayName": "  Ann Lee  "}, headers=headers
    )
    # The Python name is accepted too, as everywhere on the platform.
    renamed = await users.client.patch(
        "/v1/users/me", json={"display_name": "Ann"}, headers=headers
    )
    reread = await users.client.get("/v1/users/me", headers=headers)

    assert read.status_code == 200
    assert read.json() == {
        "id": str(row.id),
        "email": "ann@example.com",
        "displayName": "Ann",
        "role": "user",
        "createdAt": read.json()["createdAt"],
        "disabled": False,
        "lockedUntil": None,
    }
    assert updated.status_code == 200
    assert updated.json() == {**read.json(), "displayName": "Ann Lee"}
    assert (renamed.status_code, renamed.json()) == (200, read.json())
    assert reread.json() == read.json()


async def test_profile_update_refuses_other_fields(users):
    user_id = await add_user(users, "ann@example.com")

    response = await users.client.patch(
        "/v1/users/me", json={"displayName": "A", "role": "admin"}, headers=users.bearer(user_id)
    )

    assert_invalid(response, "body.role", "extra_forbidden")
    [row] = await users.sql("SELECT display_name, role FROM users WHERE id = :id", id=user_id)
    assert (row.display_name, row.role) == ("U", "user")


# --- Password change ----------------------------------------------------------------------------


async def password_row(users: UserService, user_id: uuid.UUID) -> Any:
    [row] = await users.sql(
        "SELECT password_hash, password_changed_at FROM users WHERE id = :id", id=user_id
    )
    return row


async def test_password_change_with_a_wrong_current_password_is_forbidden(users):
    user_id = await add_user(users, "ann@example.com")
    before = await password_row(users, user_id)

    response = await users.client.post(
        "/v1/users/me:changePassword",
        json={"currentPassword": "not the password", "newPassword": OTHER_PASSWORD},
        headers=users.bearer(user_id),
    )

    assert_problem(response, 403, "wrong-password")
    assert await password_row(users, user_id) == before


async def test_password_change_applies_the_policy_to_the_new_password(users):
    user_id = await add_user(users, "ann@example.com")
    before = await password_row(users, user_id)

    response = await users.client.post(
        "/v1/users/me:changePassword",
        json={"currentPassword": PASSWORD, "newPassword": "Ann@Example.com"},
        headers=users.bearer(user_id),
    )

    assert_invalid(response, "body.newPassword", "matches_email")
    assert await password_row(users, user_id) == before


async def test_password_change_stores_a_new_hash_and_revokes_the_users_refresh_tokens(users):
    user_id = await add_user(users, "ann@example.com")
    other_id = await add_user(users, "bob@example.com")
    mine = [await users.add_refresh_token(user_id=user_id) for _ in range(2)]
    already_revoked = await users.add_refresh_token(user_id=user_id)
    await users.sql(
        "UPDATE refresh_tokens SET revoked_at = '2000-01-01Z' WHERE id = :id", id=already_revoked
    )
    theirs = await users.add_refresh_token(user_id=other_id)
    before = await password_row(users, user_id)

    response = await users.client.post(
        "/v1/users/me:changePassword",
        json={"currentPassword": PASSWORD, "newPassword": OTHER_PASSWORD},
        headers=users.bearer(user_id),
    )

    assert response.status_code == 204
    after = await password_row(users, user_id)
    assert after.password_hash != before.password_hash
    assert passwords.new_hasher().verify(OTHER_PASSWORD, after.password_hash)
    assert not passwords.new_hasher().verify(PASSWORD, after.password_hash)
    assert after.password_changed_at > before.password_changed_at
    revoked = {
        row.id: row.revoked_at
        for row in await users.sql("SELECT id, revoked_at FROM refresh_tokens")
    }
    assert all(revoked[token] is not None for token in mine)
    assert revoked[already_revoked].year == 2000  # the first revocation is kept
    assert revoked[theirs] is None


async def test_a_password_change_ends_the_users_earlier_tokens_not_those_issued_after_it(
    database_url, token_issuer
):
    # Read on every request, so that this process sees the change at once (the bound on
    # other processes: test_revocation.py).
    async with running(database_url, token_issuer, auth_revocation_max_staleness_s=0) as users:
        user_id = await add_user(users, "ann@example.com")
        earlier = users.bearer(user_id)
        changed = await users.client.post(
            "/v1/users/me:changePassword",
            json={"currentPassword": PASSWORD, "newPassword": OTHER_PASSWORD},
            headers=earlier,
        )
        generation = await users.token_generation(user_id)
        refused = await users.client.get("/v1/users/me", headers=earlier)
        later = users.bearer(user_id, generation=generation)
        honoured = await users.client.get("/v1/users/me", headers=later)

    assert changed.status_code == 204
    assert generation == 1
    assert_problem(refused, 401, "unauthenticated")
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert honoured.status_code == 200, honoured.text


async def test_password_change_refuses_a_current_password_over_the_limit(users):
    user_id = await add_user(users, "ann@example.com")

    response = await users.client.post(
        "/v1/users/me:changePassword",
        json={"currentPassword": "x" * 1025, "newPassword": OTHER_PASSWORD},
        headers=users.bearer(user_id),
    )

    assert_invalid(response, "body.currentPassword")


async def test_two_concurrent_password_changes_have_one_winner(users):
    user_id = await add_user(users, "ann@example.com")
    candidates = ["first new passphrase", "second new passphrase"]

    responses = await asyncio.gather(
        *(
            users.client.post(
                "/v1/users/me:changePassword",
                json={"currentPassword": PASSWORD, "newPassword": new},
                headers=users.bearer(user_id),
            )
            for new in candidates
        )
    )

    statuses = [r.status_code for r in responses]
    assert statuses.count(204) == 1
    # The loser verified the old password before the winner stored the new one (409), or
    # after, when the old one no longer matched (403): either way it changed nothing.
    [loser] = [r for r in responses if r.status_code != 204]
    assert loser.status_code in (403, 409), loser.text
    winner = candidates[statuses.index(204)]
    stored = (await password_row(users, user_id)).password_hash
    assert passwords.new_hasher().verify(winner, stored)
