"""HTTP routes of the user service: registration, profiles, roles and service accounts.

Each route opens the request's unit of work and commits it at its end; password hashing
happens outside it, so no database connection waits on the hasher.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from libs import auth, db, emails, passwords, resources, scopes, web
from libs.tokens import Principal
from user_service import cursors, schemas, service
from user_service.settings import Settings

DEFAULT_PAGE = 50
MAX_PAGE = 200
NO_STORE = {"Cache-Control": "no-store"}  # answers that carry a secret


def _sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    return request.app.state.sessions


def _hasher(request: Request) -> passwords.Hasher:
    return request.app.state.hasher


Sessions = Annotated[async_sessionmaker[AsyncSession], Depends(_sessions)]
Hasher = Annotated[passwords.Hasher, Depends(_hasher)]
# Any valid token; the routes decide what its principal may do.
Authenticated = Annotated[Principal, Depends(auth.require())]
Admin = Annotated[Principal, Depends(auth.require(scopes.USERS_ADMIN))]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Cursor = Annotated[str | None, Query(max_length=cursors.MAX_LENGTH)]
# No NUL (PostgreSQL refuses it in text) nor other control characters.
EmailPrefix = Annotated[
    str | None, Query(max_length=emails.MAX_LENGTH, pattern=r"^[^\x00-\x1f\x7f]*$")
]

users = APIRouter(prefix="/v1/users", tags=["users"])
accounts = APIRouter(prefix="/v1/service-accounts", tags=["service accounts"])


# --- Registration and one's own account ---------------------------------------------------------


@users.post("", status_code=202)
async def register(
    body: schemas.Registration, request: Request, sessions: Sessions, hasher: Hasher
) -> schemas.RegistrationAccepted:
    """Register an account: 202 whether the email was free or already had an account (then
    nothing changes), so the answer tells nobody who has one. Log in to use the account."""
    settings: Settings = request.app.state.settings
    address = request.client.host if request.client else None
    async with db.unit_of_work(sessions) as session:
        await service.admit_registration(session, settings, address)
    password_hash = await service.hash_new_password(
        hasher, body.password, email=body.email, field="body.password"
    )
    async with db.unit_of_work(sessions) as session:
        await service.register(
            session, email=body.email, display_name=body.display_name, password_hash=password_hash
        )
    return schemas.RegistrationAccepted(email=body.email)


@users.get("/me")
async def read_me(principal: Authenticated, sessions: Sessions) -> schemas.User:
    async with db.unit_of_work(sessions) as session:
        user = await service.current_user(session, principal)
    return schemas.User.of(user)


@users.patch("/me")
async def update_me(
    body: schemas.ProfileUpdate, principal: Authenticated, sessions: Sessions
) -> schemas.User:
    async with db.unit_of_work(sessions) as session:
        user = await service.update_profile(session, principal, display_name=body.display_name)
    return schemas.User.of(user)


@users.post("/me/password", status_code=204)
async def change_my_password(
    body: schemas.PasswordChange, principal: Authenticated, sessions: Sessions, hasher: Hasher
) -> None:
    # Two short transactions around the hashing, not one held open through it; the second
    # stores the new hash only if the one verified is still current.
    async with db.unit_of_work(sessions) as session:
        user = await service.current_user(session, principal)
    await service.verify_password(hasher, user, body.current_password)
    new_hash = await service.hash_new_password(
        hasher, body.new_password, email=user.email, field="body.new_password"
    )
    async with db.unit_of_work(sessions) as session:
        await service.store_password(session, user, new_hash)


# --- Administration of users --------------------------------------------------------------------


@users.get("")
async def list_users(
    principal: Admin,
    sessions: Sessions,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
    email: EmailPrefix = None,
) -> schemas.UserPage:
    async with db.unit_of_work(sessions) as session:
        rows, next_cursor = await service.list_users(
            session, principal, cursor=cursor, email_prefix=email, limit=limit
        )
    return schemas.UserPage(items=[schemas.User.of(u) for u in rows], next_cursor=next_cursor)


@users.get("/{user_id}")
async def read_user(user_id: uuid.UUID, principal: Admin, sessions: Sessions) -> schemas.User:
    async with db.unit_of_work(sessions) as session:
        user = await service.get_user(session, principal, user_id)
    return schemas.User.of(user)


@users.patch("/{user_id}")
async def update_user(
    user_id: uuid.UUID, body: schemas.RoleUpdate, principal: Admin, sessions: Sessions
) -> schemas.User:
    async with db.unit_of_work(sessions) as session:
        user = await service.change_role(session, principal, user_id, body.role)
    return schemas.User.of(user)


@users.post("/{user_id}/disable")
async def disable_user(user_id: uuid.UUID, principal: Admin, sessions: Sessions) -> schemas.User:
    async with db.unit_of_work(sessions) as session:
        user = await service.disable_user(session, principal, user_id)
    return schemas.User.of(user)


@users.post("/{user_id}/enable")
async def enable_user(user_id: uuid.UUID, principal: Admin, sessions: Sessions) -> schemas.User:
    async with db.unit_of_work(sessions) as session:
        user = await service.enable_user(session, principal, user_id)
    return schemas.User.of(user)


# --- Service accounts ---------------------------------------------------------------------------


@accounts.post("", status_code=201)
async def create_service_account(
    body: schemas.ServiceAccountCreation, principal: Admin, sessions: Sessions, response: Response
) -> schemas.ServiceAccountWithSecret:
    async with db.unit_of_work(sessions) as session:
        account, secret = await service.create_service_account(
            session, principal, name=body.name, scopes=body.scopes
        )
    response.headers.update({**NO_STORE, "Location": f"/v1/service-accounts/{account.id}"})
    return schemas.ServiceAccountWithSecret.with_secret(account, secret)


@accounts.get("")
async def list_service_accounts(
    principal: Admin, sessions: Sessions, limit: Limit = DEFAULT_PAGE, cursor: Cursor = None
) -> schemas.ServiceAccountPage:
    async with db.unit_of_work(sessions) as session:
        rows, next_cursor = await service.list_service_accounts(
            session, principal, cursor=cursor, limit=limit
        )
    items = [schemas.ServiceAccount.of(a) for a in rows]
    return schemas.ServiceAccountPage(items=items, next_cursor=next_cursor)


@accounts.get("/{account_id}")
async def read_service_account(
    account_id: uuid.UUID, principal: Admin, sessions: Sessions
) -> schemas.ServiceAccount:
    async with db.unit_of_work(sessions) as session:
        account = await service.get_service_account(session, principal, account_id)
    return schemas.ServiceAccount.of(account)


@accounts.post("/{account_id}/rotate-secret")
async def rotate_service_account_secret(
    account_id: uuid.UUID, principal: Admin, sessions: Sessions, response: Response
) -> schemas.ServiceAccountWithSecret:
    async with db.unit_of_work(sessions) as session:
        account, secret = await service.rotate_secret(session, principal, account_id)
    response.headers.update(NO_STORE)
    return schemas.ServiceAccountWithSecret.with_secret(account, secret)


@accounts.post("/{account_id}/disable")
async def disable_service_account(
    account_id: uuid.UUID, principal: Admin, sessions: Sessions
) -> schemas.ServiceAccount:
    async with db.unit_of_work(sessions) as session:
        account = await service.set_service_account_disabled(
            session, principal, account_id, disabled=True
        )
    return schemas.ServiceAccount.of(account)


@accounts.post("/{account_id}/enable")
async def enable_service_account(
    account_id: uuid.UUID, principal: Admin, sessions: Sessions
) -> schemas.ServiceAccount:
    async with db.unit_of_work(sessions) as session:
        account = await service.set_service_account_disabled(
            session, principal, account_id, disabled=False
        )
    return schemas.ServiceAccount.of(account)


# --- The app ------------------------------------------------------------------------------------


@asynccontextmanager
async def _password_hasher(app: FastAPI, settings: Settings) -> AsyncIterator[dict[str, web.Check]]:
    """One hasher per process, so its concurrency cap holds for the whole process."""
    app.state.hasher = passwords.Hasher(
        max_concurrent=settings.max_concurrent_hashes, max_waiting=settings.max_waiting_hashes
    )
    yield {}


def create_app(settings: Settings) -> FastAPI:
    return web.create_app(
        settings,
        title="User service",
        lifespan=lambda app: resources.all_of(
            app,
            partial(resources.database, settings=settings),
            partial(resources.token_verifier, settings=settings),
            partial(_password_hasher, settings=settings),
        ),
        routers=[users, accounts],
    )
