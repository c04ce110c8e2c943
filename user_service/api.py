"""HTTP routes of the user service: registration, profiles, roles, login locks and service
accounts. Actions other than reading and changing a resource are custom methods
(`POST /v1/users/{userId}:disable`), as in the job service.

Each route opens the request's unit of work and commits it at its end; password hashing
happens outside it, so no database connection waits on the hasher.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from libs.contracts import cursors
from libs.infra import db, resources, web
from libs.security import auth, emails, passwords, scopes
from libs.security.tokens import Principal
from libs.store import models
from user_service import schemas, service
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
UserId = Annotated[uuid.UUID, Path(alias="userId", description="The user's id.")]
AccountId = Annotated[uuid.UUID, Path(alias="accountId", description="The service account's id.")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Items per page.")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=cursors.MAX_LENGTH,
        description="`nextCursor` of the previous page; omit for the first page.",
    ),
]
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


async def _user(session: AsyncSession, user: models.User) -> schemas.User:
    """The user as answered: with the lock failed logins hold on the account now."""
    return schemas.User.of(user, locked_until=await service.login_lock(session, user))


@users.get("/me")
async def read_me(principal: Authenticated, sessions: Sessions) -> schemas.User:
    """One's own account, `lockedUntil` included: the owner learns nothing the token endpoint
    does not already answer (429), and sees why logins elsewhere are refused."""
    async with db.unit_of_work(sessions) as session:
        user = await service.current_user(session, principal)
        return await _user(session, user)


@users.patch("/me")
async def update_me(
    body: schemas.ProfileUpdate, principal: Authenticated, sessions: Sessions
) -> schemas.User:
    async with db.unit_of_work(sessions) as session:
        user = await service.update_profile(session, principal, display_name=body.display_name)
        return await _user(session, user)


@users.post("/me:changePassword", status_code=204)
async def change_my_password(
    body: schemas.PasswordChange, principal: Authenticated, sessions: Sessions, hasher: Hasher
) -> None:
    """Change one's own password: `currentPassword` must be right, `newPassword` must pass the
    password policy (422 naming `body.newPassword` otherwise). Every refresh token of the user
    is revoked, and earlier access tokens end within seconds."""
    # Two short transactions around the hashing, not one held open through it; the second
    # stores the new hash only if the one verified is still current.
    async with db.unit_of_work(sessions) as session:
        user = await service.current_user(session, principal)
    await service.verify_password(hasher, user, body.current_password)
    new_hash = await service.hash_new_password(
        hasher, body.new_password, email=user.email, field="body.newPassword"
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
    locked: Annotated[
        bool | None,
        Query(
            description="`true`: only users whom failed logins lock out now (`lockedUntil` set); "
            "`false`: only the others."
        ),
    ] = None,
) -> schemas.UserPage:
    """Users in creation order, a page at a time, each with `lockedUntil`."""
    async with db.unit_of_work(sessions) as session:
        rows, next_cursor = await service.list_users(
            session, principal, cursor=cursor, email_prefix=email, locked=locked, limit=limit
        )
    items = [schemas.User.of(user, locked_until=until) for user, until in rows]
    return schemas.UserPage(items=items, next_cursor=next_cursor)


# Declared before `/{userId}`, whose `{userId}` would also match `<id>:disable`.
@users.post("/{userId}:disable")
async def disable_user(user_id: UserId, principal: Admin, sessions: Sessions) -> schemas.User:
    """Disable the user and revoke their tokens; idempotent. Refused for oneself and for the
    last enabled admin (409)."""
    async with db.unit_of_work(sessions) as session:
        user = await service.disable_user(session, principal, user_id)
        return await _user(session, user)


@users.post("/{userId}:enable")
async def enable_user(user_id: UserId, principal: Admin, sessions: Sessions) -> schemas.User:
    """Enable the user; idempotent."""
    async with db.unit_of_work(sessions) as session:
        user = await service.enable_user(session, principal, user_id)
        return await _user(session, user)


@users.post("/{userId}:unlock")
async def unlock_user(user_id: UserId, principal: Admin, sessions: Sessions) -> schemas.User:
    """Lift the lock failed logins put on the user's account (`lockedUntil`) and forget their
    count, so the owner can log in at once; idempotent (an unlocked account answers 200 and
    nothing changes). Locks of client addresses are left as they are: they hold whoever
    guesses from that address, whichever account it tries."""
    async with db.unit_of_work(sessions) as session:
        user = await service.unlock_user(session, principal, user_id)
        return await _user(session, user)


@users.get("/{userId}")
async def read_user(user_id: UserId, principal: Admin, sessions: Sessions) -> schemas.User:
    async with db.unit_of_work(sessions) as session:
        user = await service.get_user(session, principal, user_id)
        return await _user(session, user)


@users.patch("/{userId}")
async def update_user(
    user_id: UserId, body: schemas.RoleUpdate, principal: Admin, sessions: Sessions
) -> schemas.User:
    """Change the user's role. Refused: demoting oneself, or the last enabled admin (409)."""
    async with db.unit_of_work(sessions) as session:
        user = await service.change_role(session, principal, user_id, body.role)
        return await _user(session, user)


# --- Service accounts ---------------------------------------------------------------------------


@accounts.post("", status_code=201)
async def create_service_account(
    body: schemas.ServiceAccountCreation, principal: Admin, sessions: Sessions, response: Response
) -> schemas.ServiceAccountWithSecret:
    """A new service account; its `clientSecret` is in this answer only."""
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


# Declared before `/{accountId}`, whose `{accountId}` would also match `<id>:disable`.
@accounts.post("/{accountId}:rotateSecret")
async def rotate_service_account_secret(
    account_id: AccountId, principal: Admin, sessions: Sessions, response: Response
) -> schemas.ServiceAccountWithSecret:
    """A new `clientSecret`, in this answer only; the old one stops working at once and the
    account's refresh tokens are revoked."""
    async with db.unit_of_work(sessions) as session:
        account, secret = await service.rotate_secret(session, principal, account_id)
    response.headers.update(NO_STORE)
    return schemas.ServiceAccountWithSecret.with_secret(account, secret)


@accounts.post("/{accountId}:disable")
async def disable_service_account(
    account_id: AccountId, principal: Admin, sessions: Sessions
) -> schemas.ServiceAccount:
    """Disable the account and revoke its tokens; idempotent."""
    async with db.unit_of_work(sessions) as session:
        account = await service.set_service_account_disabled(
            session, principal, account_id, disabled=True
        )
    return schemas.ServiceAccount.of(account)


@accounts.post("/{accountId}:enable")
async def enable_service_account(
    account_id: AccountId, principal: Admin, sessions: Sessions
) -> schemas.ServiceAccount:
    """Enable the account; idempotent."""
    async with db.unit_of_work(sessions) as session:
        account = await service.set_service_account_disabled(
            session, principal, account_id, disabled=False
        )
    return schemas.ServiceAccount.of(account)


@accounts.get("/{accountId}")
async def read_service_account(
    account_id: AccountId, principal: Admin, sessions: Sessions
) -> schemas.ServiceAccount:
    async with db.unit_of_work(sessions) as session:
        account = await service.get_service_account(session, principal, account_id)
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
