"""Brute-force limits, password rehashing and the cap on concurrent hashes of the password
grant, against a real PostgreSQL and real argon2id."""

from __future__ import annotations

import asyncio

from auth_support import (
    PASSWORD,
    add_user,
    assert_oauth_problem,
    auth_app,
    client_of,
    execute,
    login,
    running,
)
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import select

from libs.security import passwords
from libs.store import models

WRONG = "not the password"


async def failures(app, key: str) -> int | None:
    row = await execute(
        app, select(models.LoginThrottle.failures).where(models.LoginThrottle.key == key)
    )
    return row.scalar_one_or_none()


async def test_an_account_is_locked_after_its_limit_and_an_unknown_email_alike(database_url):
    app = auth_app(database_url, account_max_failures=3, login_lockout_s=600)
    async with running(app) as client:
        await add_user(app, "ada@example.com")
        known = [await login(client, "ada@example.com", WRONG) for _ in range(3)]
        unknown = [await login(client, "nobody@example.com", WRONG) for _ in range(3)]
        locked_known = await login(client, "ada@example.com", WRONG)
        locked_unknown = await login(client, "nobody@example.com", WRONG)
        right_password = await login(client, "Ada@example.com", PASSWORD)
        other_account = await login(client, "other@example.com", WRONG)

    for response in known + unknown:
        assert_oauth_problem(response, 400, "invalid_grant")
    for response in (locked_known, locked_unknown, right_password):
        assert_oauth_problem(response, 429, "temporarily_unavailable")
        assert 0 < int(response.headers["retry-after"]) <= 600
        assert response.headers["cache-control"] == "no-store"
    # Identical answers: nothing says which email has an account.
    assert locked_known.json() == locked_unknown.json() == right_password.json()
    assert_oauth_problem(other_account, 400, "invalid_grant")


async def test_attempts_refused_by_a_lock_are_not_counted(database_url):
    app = auth_app(database_url, account_max_failures=2)
    async with running(app) as client:
        for _ in range(4):
            await login(client, "nobody@example.com", WRONG)
        counted = await failures(app, "account:nobody@example.com")

    assert counted == 2


async def test_a_successful_login_resets_the_account_count(database_url):
    app = auth_app(database_url, account_max_failures=3)
    async with running(app) as client:
        await add_user(app, "ada@example.com")
        for _ in range(2):
            await login(client, "ada@example.com", WRONG)
        success = await login(client, "ada@example.com")
        after_reset = await failures(app, "account:ada@example.com")
        for _ in range(2):
            await login(client, "ada@example.com", WRONG)
        still_open = await login(client, "ada@example.com")

    assert success.status_code == 200
    assert after_reset is None
    assert still_open.status_code == 200, still_open.text


async def test_an_address_is_locked_after_its_limit_whatever_the_emails(database_url):
    app = auth_app(database_url, account_max_failures=100, address_max_failures=3)
    async with running(app, address="203.0.113.7") as client:
        await add_user(app, "ada@example.com")
        for n in range(3):
            assert (await login(client, f"guess{n}@example.com", WRONG)).status_code == 400
        locked = await login(client, "ada@example.com", PASSWORD)
        async with client_of(app, address="198.51.100.1") as elsewhere:
            other_address = await login(elsewhere, "ada@example.com", PASSWORD)

    assert_oauth_problem(locked, 429, "temporarily_unavailable")
    assert int(locked.headers["retry-after"]) > 0
    assert other_address.status_code == 200, other_address.text


async def test_concurrent_failures_are_all_counted(database_url):
    app = auth_app(database_url, account_max_failures=100, max_concurrent_hashes=2)
    async with running(app) as client:
        await asyncio.gather(*(login(client, "nobody@example.com", WRONG) for _ in range(8)))
        account = await failures(app, "account:nobody@example.com")
        address = await failures(app, "address:127.0.0.1")

    assert account == address == 8


async def test_a_hash_with_old_parameters_is_replaced_at_login(database_url):
    weaker = PasswordHash((Argon2Hasher(memory_cost=8 * 1024, time_cost=1, parallelism=1),))
    old_hash = weaker.hash(PASSWORD)
    app = auth_app(database_url)
    async with running(app) as client:
        user_id = await add_user(app, "ada@example.com", password_hash=old_hash)
        before = (await execute(app, select(models.User).where(models.User.id == user_id))).scalar()
        response = await login(client, "ada@example.com")
        after = (await execute(app, select(models.User).where(models.User.id == user_id))).scalar()
        again = await login(client, "ada@example.com")

    assert response.status_code == 200, response.text
    assert after.password_hash != old_hash
    assert f"m={passwords.MEMORY_COST_KIB},t={passwords.TIME_COST}" in after.password_hash
    assert passwords.new_hasher().verify(PASSWORD, after.password_hash)
    # A rehash is not a password change: refresh tokens issued before it stay valid.
    assert after.password_changed_at == before.password_changed_at
    assert again.status_code == 200


async def test_logins_beyond_the_hashing_capacity_get_503_with_retry_after(database_url):
    app = auth_app(database_url, max_concurrent_hashes=1, max_waiting_hashes=0)
    async with running(app) as client:
        await add_user(app, "ada@example.com")
        answers = await asyncio.gather(*(login(client, "ada@example.com") for _ in range(6)))
        # Refused logins were not counted as failures.
        counted = await failures(app, "account:ada@example.com")

    statuses = [a.status_code for a in answers]
    assert 200 in statuses
    assert 503 in statuses
    assert set(statuses) == {200, 503}
    busy = next(a for a in answers if a.status_code == 503)
    assert_oauth_problem(busy, 503, "temporarily_unavailable")
    assert busy.headers["retry-after"] == "1"
    assert counted is None
