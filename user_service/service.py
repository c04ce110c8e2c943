"""Decisions of the user service: who may do what, which rule a request breaks, what follows
from a change (revoked refresh tokens). Queries are in `repository`; the transaction belongs to
the request that calls these functions and commits at its edge.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from libs.contracts import cursors
from libs.infra import log
from libs.scheduling.states import Role
from libs.security import emails, opaque, passwords, throttles
from libs.security.tokens import Principal
from libs.store import models
from user_service import errors, password_policy, repository
from user_service.settings import Settings

CLIENT_ID_PREFIX = "sa_"
CLIENT_ID_BYTES = 16  # 22 URL-safe characters after the prefix

Account = TypeVar("Account", models.User, models.ServiceAccount)


# --- Who is asking ------------------------------------------------------------------------------


def _subject(principal: Principal) -> uuid.UUID:
    try:
        return uuid.UUID(principal.subject)
    except ValueError:
        raise errors.AccountGone from None  # no account of ours has such an id


def _active(account: Account | None) -> Account:
    """`account` if it exists and is enabled; the error that says which it is not otherwise."""
    if account is None:
        raise errors.AccountGone
    if account.disabled_at is not None:
        raise errors.AccountDisabled("the account this token was issued for is disabled")
    return account


async def current_user(session: AsyncSession, principal: Principal) -> models.User:
    """The enabled user the token speaks for.

    A service account's token: `UserPrincipalRequired` (403). An account deleted since the
    token was issued: `AccountGone` (401, the token no longer identifies anyone); one disabled
    since: `AccountDisabled` (403, the token is fine but the account may not act).
    """
    if not principal.is_user:
        raise errors.UserPrincipalRequired
    return _active(await repository.get_user(session, _subject(principal)))


async def require_admin(session: AsyncSession, principal: Principal) -> None:
    """The token's `users:admin` scope is honoured only while its principal still may act:
    a user who is still an enabled admin, or an enabled service account. Scopes are fixed when
    a token is issued; a demotion or a disabling takes effect at once, not at its expiry."""
    if principal.is_user:
        user = await current_user(session, principal)
        if user.role != Role.ADMIN:
            raise errors.AdminRoleRequired("the token's user is no longer an admin")
    else:
        _active(await repository.get_service_account(session, _subject(principal)))


def _is_self(principal: Principal, user_id: uuid.UUID) -> bool:
    return principal.is_user and principal.subject == str(user_id)


# --- Passwords ----------------------------------------------------------------------------------


async def hash_new_password(
    hasher: passwords.Hasher, password: str, *, email: str, field: str
) -> str:
    """The hash of `password` once it passes the policy for the account with `email`;
    `PasswordRejected` naming `field` otherwise. Touches no database: call it outside a
    transaction, so no connection waits on the hasher."""
    violation = password_policy.violation(password, email)
    if violation is not None:
        raise errors.PasswordRejected(field, password_policy.MESSAGES[violation], violation)
    try:
        return await hasher.hash(password)
    except passwords.HasherBusy:
        raise errors.HashingBusy from None


async def verify_password(hasher: passwords.Hasher, user: models.User, password: str) -> None:
    """`WrongPassword` unless `password` is the user's."""
    try:
        matches, _ = await hasher.verify_and_update(password, user.password_hash)
    except passwords.HasherBusy:
        raise errors.HashingBusy from None
    if not matches:
        log.get().info("password_change_refused", user_id=str(user.id))
        raise errors.WrongPassword


async def store_password(session: AsyncSession, user: models.User, new_hash: str) -> None:
    """Replace the hash `user` was read with by `new_hash` and revoke every refresh token of
    the user. The replacement is conditional on the old hash: had another change landed since
    `user` was read, the one verified here is stale (`PasswordChangedMeanwhile`)."""
    changed = await repository.replace_password(
        session, user.id, old_hash=user.password_hash, new_hash=new_hash
    )
    if changed is None:
        _active(await repository.get_user(session, user.id))
        raise errors.PasswordChangedMeanwhile
    revoked = await repository.revoke_user_refresh_tokens(session, user.id)
    log.get().info("password_changed", user_id=str(user.id), refresh_tokens_revoked=revoked)


# --- Users --------------------------------------------------------------------------------------


async def admit_registration(
    session: AsyncSession, settings: Settings, address: str | None
) -> None:
    """Count a registration from the client `address`; `RegistrationsLocked` when the address
    has reached its limit (then nothing is counted: the refusal is raised inside the
    transaction, which rolls back)."""
    key = throttles.address_key("registration", address)
    retry_after = await throttles.retry_after_s(session, [key])
    if retry_after is None:
        counted = await throttles.count(
            session,
            key,
            window_s=settings.registration_window_s,
            limit=settings.registration_max_per_address,
            lockout_s=settings.registration_window_s,
        )
        if counted <= settings.registration_max_per_address:
            return
        retry_after = settings.registration_window_s  # others reached the limit meanwhile
    log.get().info("registration_locked", address=address)
    raise errors.RegistrationsLocked(retry_after)


async def register(
    session: AsyncSession, *, email: str, display_name: str, password_hash: str
) -> None:
    """A new user with the role `user`, unless the address is taken: then nothing changes,
    and the caller answers as if the user had been created, so that registering tells nobody
    which emails have accounts (ADR 0010)."""
    user = await repository.register_user(
        session, email=email, password_hash=password_hash, display_name=display_name
    )
    if user is None:
        log.get().info("registration_email_taken")
        return
    log.get().info("user_registered", user_id=str(user.id))


async def update_profile(
    session: AsyncSession, principal: Principal, *, display_name: str
) -> models.User:
    user = await current_user(session, principal)
    updated = await repository.update_display_name(session, user.id, display_name)
    if updated is None:  # disabled or deleted between the two statements
        _active(await repository.get_user(session, user.id))
        raise errors.AccountDisabled
    return updated


def _position(cursor: str | None) -> cursors.TimedPosition | None:
    if cursor is None:
        return None
    try:
        return cursors.decode_timed(cursor)
    except cursors.Malformed:
        raise errors.InvalidCursor from None


def _next_cursor(rows: Sequence[models.User | models.ServiceAccount], limit: int) -> str | None:
    """The cursor after the page, when a row beyond it was fetched (lists fetch limit + 1)."""
    if len(rows) <= limit:
        return None
    last = rows[limit - 1]
    return cursors.encode(last.created_at, last.id)


async def list_users(
    session: AsyncSession,
    principal: Principal,
    *,
    cursor: str | None,
    email_prefix: str | None,
    locked: bool | None,
    limit: int,
) -> tuple[Sequence[tuple[models.User, datetime | None]], str | None]:
    """One page of users in creation order, each with the end of its login lock (None when not
    locked), and the cursor of the next page (None at the end). `locked`: only the users locked
    now (True) or only the others (False)."""
    await require_admin(session, principal)
    rows = await repository.list_users(
        session,
        after=_position(cursor),
        # Stored emails are lower case; a prefix typed otherwise still finds them.
        email_prefix=emails.normalise(email_prefix) if email_prefix else None,
        locked=locked,
        limit=limit + 1,
    )
    return rows[:limit], _next_cursor([user for user, _ in rows], limit)


async def get_user(session: AsyncSession, principal: Principal, user_id: uuid.UUID) -> models.User:
    await require_admin(session, principal)
    user = await repository.get_user(session, user_id)
    if user is None:
        raise errors.UserNotFound
    return user


async def login_lock(session: AsyncSession, user: models.User) -> datetime | None:
    """When the lock failed logins put on the user's account ends; None when there is none.

    The lock that matters is the account's key (its email), which refuses the right password
    from anywhere; an address's lock is about the address, not the user.
    """
    return await throttles.locked_until(session, throttles.account_key(user.email))


async def unlock_user(
    session: AsyncSession, principal: Principal, user_id: uuid.UUID
) -> models.User:
    """Forget the failed logins counted against the user's account and lift its lock, so the
    owner can log in at once; idempotent. `UserNotFound` for no such user.

    Only the account's key is cleared: an address's lock is not the owner's (nothing ties an
    address to an account), and lifting it would give whoever guesses from there a fresh
    budget against every account. Its count, under a higher limit, is left as it is.
    """
    await require_admin(session, principal)
    user = await repository.get_user(session, user_id)
    if user is None:
        raise errors.UserNotFound
    was_locked = await throttles.clear(session, throttles.account_key(user.email))
    log.get().info(
        "user_unlocked",
        user_id=str(user_id),
        admin_id=principal.subject,
        admin_kind=principal.kind,
        was_locked=was_locked,
    )
    return user


async def change_role(
    session: AsyncSession, principal: Principal, user_id: uuid.UUID, role: Role
) -> models.User:
    """Set the user's role. Refused: an admin demoting themselves (`SelfLockout`), the demotion
    of the last enabled admin (`LastAdmin`). A demoted user's refresh tokens are revoked, so
    the scopes of the old role end with the access tokens already issued."""
    await repository.lock_admins(session)
    await require_admin(session, principal)
    if role != Role.ADMIN and _is_self(principal, user_id):
        raise errors.SelfLockout("another admin must change your role")
    user = await repository.get_user(session, user_id)
    if user is None:
        raise errors.UserNotFound
    if user.role == role:
        return user
    updated = await repository.set_role(session, user_id, role)
    if updated is None:
        raise errors.LastAdmin("promote another user to admin first")
    if role != Role.ADMIN:
        await repository.revoke_user_refresh_tokens(session, user_id)
    log.get().info("user_role_changed", user_id=str(user_id), role=role.value)
    return updated


async def disable_user(
    session: AsyncSession, principal: Principal, user_id: uuid.UUID
) -> models.User:
    """Disable the user and revoke their refresh tokens; idempotent. Refused for oneself
    (`SelfLockout`) and for the last enabled admin (`LastAdmin`)."""
    await repository.lock_admins(session)
    await require_admin(session, principal)
    if _is_self(principal, user_id):
        raise errors.SelfLockout("another admin must disable your account")
    disabled = await repository.disable_user(session, user_id)
    if disabled is None:
        if await repository.get_user(session, user_id) is None:
            raise errors.UserNotFound
        raise errors.LastAdmin("promote another user to admin first")
    revoked = await repository.revoke_user_refresh_tokens(session, user_id)
    log.get().info("user_disabled", user_id=str(user_id), refresh_tokens_revoked=revoked)
    return disabled


async def enable_user(
    session: AsyncSession, principal: Principal, user_id: uuid.UUID
) -> models.User:
    await require_admin(session, principal)
    enabled = await repository.enable_user(session, user_id)
    if enabled is None:
        raise errors.UserNotFound
    log.get().info("user_enabled", user_id=str(user_id))
    return enabled


# --- Service accounts ---------------------------------------------------------------------------


async def create_service_account(
    session: AsyncSession, principal: Principal, *, name: str, scopes: list[str]
) -> tuple[models.ServiceAccount, str]:
    """A new service account and its secret, which exists only in this answer."""
    await require_admin(session, principal)
    secret = opaque.new()
    account = await repository.create_service_account(
        session,
        client_id=CLIENT_ID_PREFIX + secrets.token_urlsafe(CLIENT_ID_BYTES),
        name=name,
        secret_hash=opaque.digest(secret),
        scopes=scopes,
        created_by=_subject(principal) if principal.is_user else None,
    )
    log.get().info("service_account_created", service_account_id=str(account.id))
    return account, secret


async def list_service_accounts(
    session: AsyncSession, principal: Principal, *, cursor: str | None, limit: int
) -> tuple[Sequence[models.ServiceAccount], str | None]:
    await require_admin(session, principal)
    rows = await repository.list_service_accounts(session, after=_position(cursor), limit=limit + 1)
    return rows[:limit], _next_cursor(rows, limit)


async def get_service_account(
    session: AsyncSession, principal: Principal, account_id: uuid.UUID
) -> models.ServiceAccount:
    await require_admin(session, principal)
    account = await repository.get_service_account(session, account_id)
    if account is None:
        raise errors.ServiceAccountNotFound
    return account


async def rotate_secret(
    session: AsyncSession, principal: Principal, account_id: uuid.UUID
) -> tuple[models.ServiceAccount, str]:
    """A new secret (the old one stops working at once) and revoked refresh tokens."""
    await require_admin(session, principal)
    secret = opaque.new()
    account = await repository.replace_service_account_secret(
        session, account_id, opaque.digest(secret)
    )
    if account is None:
        raise errors.ServiceAccountNotFound
    await repository.revoke_service_account_refresh_tokens(session, account_id)
    log.get().info("service_account_secret_rotated", service_account_id=str(account_id))
    return account, secret


async def set_service_account_disabled(
    session: AsyncSession, principal: Principal, account_id: uuid.UUID, *, disabled: bool
) -> models.ServiceAccount:
    """Disable (revoking its refresh tokens) or enable the account; idempotent."""
    await require_admin(session, principal)
    account = await repository.set_service_account_disabled(session, account_id, disabled=disabled)
    if account is None:
        raise errors.ServiceAccountNotFound
    if disabled:
        await repository.revoke_service_account_refresh_tokens(session, account_id)
    event = "service_account_disabled" if disabled else "service_account_enabled"
    log.get().info(event, service_account_id=str(account_id))
    return account
