"""The token and revocation endpoints against a real PostgreSQL: the three grants, the access
token every service verifies, refresh-token rotation and reuse, revocation, disabled accounts
and the request checks. Brute-force limits: test_auth_throttle.py; keys: test_auth_keys.py."""

from __future__ import annotations

import asyncio

import jwt
from auth_support import (
    NO_STORE,
    PASSWORD,
    TOKEN_PATH,
    add_service_account,
    add_user,
    assert_oauth_problem,
    auth_app,
    basic,
    execute,
    login,
    refresh,
    running,
    settings_for,
    verifier,
)
from sqlalchemy import func, select, text, update

from libs.scheduling.states import Role
from libs.security import opaque, scopes, tokens
from libs.store import models

USER_SCOPES = "jobs:read jobs:run jobs:write"
ALL_SCOPES = "jobs:read jobs:run jobs:write users:admin"


# --- Password grant and the access token ------------------------------------------------------


async def test_password_login_issues_an_access_token_the_verifier_accepts(database_url):
    settings = settings_for(database_url)
    app = auth_app(database_url)
    async with running(app) as client:
        user_id = await add_user(app, "ada@example.com")
        response = await login(client, " Ada@Example.COM ")
        principal = await verifier(client, settings).verify(response.json()["access_token"])

    assert response.status_code == 200, response.text
    assert {k: response.headers[k] for k in NO_STORE} == NO_STORE
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope", "refresh_token"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["scope"] == USER_SCOPES

    header = jwt.get_unverified_header(body["access_token"])
    assert header == {"alg": "ES256", "kid": header["kid"], "typ": "at+jwt"}
    assert header["kid"]
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert set(claims) == {
        "iss", "aud", "sub", "exp", "iat", "nbf", "jti", "scope", "principal", "generation"
    }  # fmt: skip
    assert claims["iss"] == settings.auth_issuer
    assert claims["aud"] == settings.auth_audience
    assert claims["sub"] == str(user_id)
    assert claims["exp"] - claims["iat"] == 900
    assert claims["nbf"] == claims["iat"]
    assert claims["scope"] == USER_SCOPES
    assert claims[tokens.PRINCIPAL_CLAIM] == "user"
    assert claims[tokens.GENERATION_CLAIM] == 0  # a new account's
    assert principal == tokens.Principal(
        subject=str(user_id),
        kind="user",
        scopes=scopes.ROLE_SCOPES[Role.USER],
        token_id=claims["jti"],
        expires_at=claims["exp"],
        generation=0,
    )


async def test_each_token_has_its_own_jti_and_the_ttl_follows_the_setting(database_url):
    app = auth_app(database_url, access_token_ttl_s=120)
    async with running(app) as client:
        await add_user(app, "ada@example.com")
        first, second = [(await login(client, "ada@example.com")).json() for _ in range(2)]

    claims = [
        jwt.decode(t["access_token"], options={"verify_signature": False}) for t in (first, second)
    ]
    assert claims[0]["jti"] != claims[1]["jti"]
    assert first["expires_in"] == 120 == claims[0]["exp"] - claims[0]["iat"]
    assert first["refresh_token"] != second["refresh_token"]


async def test_an_admin_gets_every_scope_and_a_user_the_job_scopes(database_url):
    app = auth_app(database_url)
    async with running(app) as client:
        await add_user(app, "root@example.com", role=Role.ADMIN)
        await add_user(app, "ada@example.com")
        admin = await login(client, "root@example.com")
        user = await login(client, "ada@example.com")

    assert admin.json()["scope"] == ALL_SCOPES
    assert user.json()["scope"] == USER_SCOPES


async def test_requested_scopes_are_narrowed_to_what_the_role_allows(database_url):
    app = auth_app(database_url)
    async with running(app) as client:
        await add_user(app, "ada@example.com")
        narrowed = await login(client, "ada@example.com", scope="jobs:read users:admin")
        only_admin = await login(client, "ada@example.com", scope="users:admin")
        unknown = await login(client, "ada@example.com", scope="jobs:read jobs:delete")
        malformed = await login(client, "ada@example.com", scope='jobs:read  "x"')

    assert narrowed.status_code == 200
    assert narrowed.json()["scope"] == "jobs:read"
    assert_oauth_problem(only_admin, 400, "invalid_scope")
    assert "jobs:delete" in assert_oauth_problem(unknown, 400, "invalid_scope")["detail"]
    assert_oauth_problem(malformed, 400, "invalid_scope")


async def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(database_url):
    app = auth_app(database_url)
    async with running(app) as client:
        await add_user(app, "ada@example.com")
        wrong = await login(client, "ada@example.com", "not the password")
        unknown = await login(client, "nobody@example.com", PASSWORD)

    assert_oauth_problem(wrong, 400, "invalid_grant")
    assert wrong.json() == unknown.json()
    assert PASSWORD not in wrong.text


async def test_a_disabled_user_cannot_log_in(database_url):
    app = auth_app(database_url)
    async with running(app) as client:
        await add_user(app, "ada@example.com", disabled=True)
        response = await login(client, "ada@example.com")

    assert_oauth_problem(response, 400, "invalid_grant")


async def test_a_disabled_account_with_its_right_password_is_answered_as_a_wrong_password(
    database_url,
):
    app = auth_app(database_url)
    async with running(app) as client:
        await add_user(app, "ada@example.com", disabled=True)
        await add_user(app, "bob@example.com")
        disabled = await login(client, "ada@example.com", PASSWORD)
        wrong = await login(client, "bob@example.com", "not the password")
        counted = await execute(
            app, select(models.LoginThrottle.key, models.LoginThrottle.failures)
        )

    assert_oauth_problem(disabled, 400, "invalid_grant")
    assert disabled.json() == wrong.json()
    assert dict(disabled.headers.items()).keys() == dict(wrong.headers.items()).keys()
    # Counted as a failure too, so the lockout does not tell the right password either.
    assert dict(counted.all()) == {
        "account:ada@example.com": 1,
        "account:bob@example.com": 1,
        "address:127.0.0.1": 2,
    }


# --- Client-credentials grant -----------------------------------------------------------------


async def test_client_credentials_by_basic_and_by_form(database_url):
    settings = settings_for(database_url)
    app = auth_app(database_url)
    secret = opaque.new()
    async with running(app) as client:
        account_id = await add_service_account(app, "ci bot", secret, ["jobs:read", "jobs:run"])
        by_basic = await client.post(
            TOKEN_PATH, data={"grant_type": "client_credentials"}, headers=basic("ci bot", secret)
        )
        by_form = await client.post(
            TOKEN_PATH,
            data={
                "grant_type": "client_credentials",
                "client_id": "ci bot",
                "client_secret": secret,
                "scope": "jobs:read",
            },
        )
        principal = await verifier(client, settings).verify(by_basic.json()["access_token"])

    assert by_basic.status_code == 200, by_basic.text
    assert set(by_basic.json()) == {"access_token", "token_type", "expires_in", "scope"}
    assert by_basic.json()["scope"] == "jobs:read jobs:run"
    assert by_form.status_code == 200, by_form.text
    assert by_form.json()["scope"] == "jobs:read"
    assert principal.subject == str(account_id)
    assert principal.kind == "service_account"
    assert principal.scopes == {"jobs:read", "jobs:run"}


async def test_a_wrong_secret_or_unknown_client_is_invalid_client_with_a_basic_challenge(
    database_url,
):
    app = auth_app(database_url)
    async with running(app) as client:
        await add_service_account(app, "ci", opaque.new(), ["jobs:read"])
        wrong = await client.post(
            TOKEN_PATH, data={"grant_type": "client_credentials"}, headers=basic("ci", "nope")
        )
        unknown = await client.post(
            TOKEN_PATH,
            data={"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"},
        )
        missing = await client.post(TOKEN_PATH, data={"grant_type": "client_credentials"})
        malformed = await client.post(
            TOKEN_PATH,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": "Basic !!"},
        )

    for response in (wrong, unknown, missing, malformed):
        assert_oauth_problem(response, 401, "invalid_client")
        assert response.headers["www-authenticate"].startswith("Basic ")
    assert wrong.json() == unknown.json()


async def test_a_disabled_service_account_cannot_log_in(database_url):
    app = auth_app(database_url)
    secret = opaque.new()
    async with running(app) as client:
        await add_service_account(app, "ci", secret, ["jobs:read"], disabled=True)
        response = await client.post(
            TOKEN_PATH, data={"grant_type": "client_credentials"}, headers=basic("ci", secret)
        )

    assert_oauth_problem(response, 401, "invalid_client")


async def test_client_authentication_in_two_ways_at_once_is_refused(database_url):
    app = auth_app(database_url)
    secret = opaque.new()
    async with running(app) as client:
        await add_service_account(app, "ci", secret, ["jobs:read"])
        response = await client.post(
            TOKEN_PATH,
            data={"grant_type": "client_credentials", "client_secret": secret},
            headers=basic("ci", secret),
        )

    assert_oauth_problem(response, 400, "invalid_request")


# --- Refresh tokens ---------------------------------------------------------------------------


async def test_a_refresh_rotates_the_token_and_reuse_revokes_the_family(database_url):
    app = auth_app(database_url)
    async with running(app) as client:
        await add_user(app, "ada@example.com")
        first = (await login(client, "ada@example.com")).json()["refresh_token"]
        rotated = await refresh(client, first)
        second = rotated.json()["refresh_token"]
        third = (await refresh(client, second)).json()["refresh_token"]
        reused = await refresh(client, first)
        newest = await refresh(client, third)
        rows = (await execute(app, select(models.RefreshToken))).scalars().all()

    assert rotated.status_code == 200, rotated.text
    assert set(rotated.json()) == {
        "access_token", "token_type", "expires_in", "scope", "refresh_token"
    }  # fmt: skip
    assert rotated.json()["scope"] == USER_SCOPES
    assert len({first, second, third}) == 3
    assert_oauth_problem(reused, 400, "invalid_grant")
    # The family's newest token was revoked with the rest: the thief and the victim both out.
    assert_oauth_problem(newest, 400, "invalid_grant")
    assert len(rows) == 3
    assert len({row.family_id for row in rows}) == 1
    assert all(row.revoked_at is not None for row in rows)
    by_hash = {row.token_hash: row for row in rows}
    assert by_hash[opaque.digest(first)].replaced_by == by_hash[opaque.digest(second)].id
    assert by_hash[opaque.digest(first)].rotated_at is not None
    assert by_hash[opaque.digest(third)].rotated_at is None
    # Only digests are stored.
    assert not {first, second, third} & set(by_hash)


async def test_a_refresh_may_only_narrow_the_scope(database_url):
    app = auth_app(database_url)
    async with running(app) as client:
        await add_user(app, "ada@example.com")
        token = (await login(client, "ada@example.com", scope="jobs:read jobs:write")).json()
        widened = await refresh(client, token["refresh_token"], scope="jobs:read jobs:run")
        narrowed = await refresh(client, token["refresh_token"], scope="jobs:read")
        again = await refresh(client, narrowed.json()["refresh_token"])

    assert_oauth_problem(widened, 400, "invalid_scope")
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["scope"] == "jobs:read"
    # The refresh token keeps the scope granted at login (RFC 6749 section 6).
    assert again.json()["scope"] == "jobs:read jobs:write"


async def test_concurrent_refreshes_of_one_token_let_exactly_one_through(database_url):
    app = auth_app(database_url)
    async with running(app) as client:
        await add_user(app, "ada@example.com")
        token = (await login(client, "ada@example.com")).json()["refresh_token"]
        answers = await asyncio.gather(*(refresh(client, token) for _ in range(2)))
        rows = (await execute(app, select(models.RefreshToken))).scalars().all()

    assert sorted(a.status_code for a in answers) == [200, 400]
    loser = next(a for a in answers if a.status_code == 400)
    assert_oauth_problem(loser, 400, "invalid_grant")
    # One rotation happened: the presented token and the one that replaced it.
    assert len(rows) == 2


async def test_an_unknown_or_expired_refresh_token_is_invalid_grant(database_url):
    app = auth_app(database_url)
    async with running(app) as client:
        await add_user(app, "ada@example.com")
        token = (await login(client, "ada@example.com")).json()["refresh_token"]
        await execute(
            app,
            update(models.RefreshToken).values(
                issued_at=func.now() - text("interval '2 days'"),
                expires_at=func.now() - text("interval '1 day'"),
            ),
        )
        expired = await refresh(client, token)
        unknown = await refresh(client, opaque.new())

    assert "expired" in assert_oauth_problem(expired, 400, "invalid_grant")["detail"]
    assert_oauth_problem(unknown, 400, "invalid_grant")


async def test_a_disabled_user_cannot_refresh(database_url):
    app = auth_app(database_url)
    async with running(app) as client:
        user_id = await add_user(app, "ada@example.com")
        token = (await login(client, "ada@example.com")).json()["refresh_token"]
        await execute(
            app,
            update(models.User).where(models.User.id == user_id).values(disabled_at=func.now()),
        )
        response = await refresh(client, token)

    assert_oauth_problem(response, 400, "invalid_grant")


async def test_a_refresh_token_issued_before_a_password_change_is_refused(database_url):
    app = auth_app(database_url)
    async with running(app) as client:
        user_id = await add_user(app, "ada@example.com")
        token = (await login(client, "ada@example.com")).json()["refresh_token"]
        await execute(  # as the user service changes a password
            app,
            update(models.User)
            .where(models.User.id == user_id)
            .values(
                password_changed_at=func.now(), token_generation=models.User.token_generation + 1
            ),
        )
        refused = await refresh(client, token)
        fresh = (await login(client, "ada@example.com")).json()["refresh_token"]
        accepted = await refresh(client, fresh)

    assert_oauth_problem(refused, 400, "invalid_grant")
    assert accepted.status_code == 200, accepted.text


async def test_a_demoted_admin_loses_the_admin_scope_at_the_next_refresh(database_url):
    app = auth_app(database_url)
    async with running(app) as client:
        user_id = await add_user(app, "root@example.com", role=Role.ADMIN)
        token = (await login(client, "root@example.com")).json()["refresh_token"]
        await execute(
            app, update(models.User).where(models.User.id == user_id).values(role=Role.USER)
        )
        response = await refresh(client, token)

    assert response.json()["scope"] == USER_SCOPES


# --- Revocation -------------------------------------------------------------------------------


async def test_revocation_logs_out_the_whole_family(database_url):
    app = auth_app(database_url)
    async with running(app) as client:
        await add_user(app, "ada@example.com")
        first = (await login(client, "ada@example.com")).json()["refresh_token"]
        second = (await refresh(client, first)).json()["refresh_token"]
        other = (await login(client, "ada@example.com")).json()["refresh_token"]
        revoked = await client.post(
            "/oauth/revoke", data={"token": second, "token_type_hint": "refresh_token"}
        )
        after = await refresh(client, second)
        unrelated = await refresh(client, other)
        unknown = await client.post("/oauth/revoke", data={"token": opaque.new()})
        malformed = await client.post("/oauth/revoke", data={"token_type_hint": "access_token"})

    assert revoked.status_code == 200
    assert revoked.headers["cache-control"] == "no-store"
    assert_oauth_problem(after, 400, "invalid_grant")
    assert unrelated.status_code == 200, "another login's family is not touched"
    assert unknown.status_code == 200
    assert_oauth_problem(malformed, 400, "invalid_request")


# --- Request checks ---------------------------------------------------------------------------


async def test_malformed_token_requests_are_refused_as_invalid_request(database_url):
    app = auth_app(database_url)
    async with running(app) as client:
        no_grant = await client.post(TOKEN_PATH, data={"username": "a"})
        unsupported = await client.post(TOKEN_PATH, data={"grant_type": "implicit"})
        missing_password = await client.post(
            TOKEN_PATH, data={"grant_type": "password", "username": "a@example.com"}
        )
        repeated = await client.post(
            TOKEN_PATH,
            content=b"grant_type=password&username=a&username=b&password=x",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        json_body = await client.post(TOKEN_PATH, json={"grant_type": "password"})
        nul = await client.post(
            TOKEN_PATH, data={"grant_type": "password", "username": "a\x00", "password": "x"}
        )
        too_large = await client.post(
            TOKEN_PATH, data={"grant_type": "password", "padding": "x" * 10_000}
        )

    assert_oauth_problem(no_grant, 400, "invalid_request")
    assert_oauth_problem(unsupported, 400, "unsupported_grant_type")
    assert "password" in assert_oauth_problem(missing_password, 400, "invalid_request")["detail"]
    assert "username" in assert_oauth_problem(repeated, 400, "invalid_request")["detail"]
    assert_oauth_problem(json_body, 400, "invalid_request")
    assert_oauth_problem(nul, 400, "invalid_request")
    assert_oauth_problem(too_large, 413, "invalid_request")
    assert no_grant.headers["cache-control"] == "no-store"


async def test_the_metadata_names_the_endpoints(database_url):
    app = auth_app(database_url, auth_issuer="https://auth.example.com")
    async with running(app) as client:
        metadata = (await client.get("/.well-known/oauth-authorization-server")).json()

    assert metadata["issuer"] == "https://auth.example.com"
    assert metadata["token_endpoint"] == "https://auth.example.com/oauth/token"
    assert metadata["revocation_endpoint"] == "https://auth.example.com/oauth/revoke"
    assert metadata["jwks_uri"] == "https://auth.example.com/.well-known/jwks.json"
    assert set(metadata["grant_types_supported"]) == {
        "password", "client_credentials", "refresh_token"
    }  # fmt: skip
    assert set(metadata["scopes_supported"]) == scopes.ALL


async def test_readiness_includes_the_database(database_url):
    app = auth_app(database_url)
    async with running(app) as client:
        ready = await client.get("/readyz")

    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok"}
