"""Every query of the user service.

State changes are guarded updates (`UPDATE ... WHERE id = :id AND <guard> RETURNING`): None
back means the guard did not hold, and the caller names the reason. Nothing here commits; the
request that holds the session does.

Every change that must end an account's earlier tokens (disabling, enabling, a role, password
or secret change) raises its `token_generation` in the same statement (`libs.security.revocation`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, case, exists, func, insert, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from libs.contracts import cursors
from libs.scheduling.states import Role
from libs.security import throttles
from libs.store import models
from user_service import errors

# Serializes changes to the set of active admins across processes (an arbitrary, fixed
# advisory-lock key): the first admin's creation, and every demotion, disabling and role check
# of an acting admin, so two admins cannot remove each other at the same instant.
ADMINS_LOCK = 0x5C_AD_01
EMAIL_UNIQUE = "uq_users_email"
UNIQUE_VIOLATION = "23505"

User = models.User
ServiceAccount = models.ServiceAccount
RefreshToken = models.RefreshToken
Throttle = models.LoginThrottle
# Re-read what an UPDATE ... RETURNING gives back even if the session holds the row already.
_FRESH = {"populate_existing": True}


def _next_generation(
    account: type[models.User] | type[models.ServiceAccount], *, unless: ColumnElement[bool]
) -> ColumnElement[int]:
    """The account's token generation, raised by one unless `unless` holds (a change that
    changes nothing, such as disabling a disabled account, ends no token)."""
    return case((unless, account.token_generation), else_=account.token_generation + 1)


# --- Users -------------------------------------------------------------------------------------


async def lock_admins(session: AsyncSession) -> None:
    """Hold, until the transaction ends, the lock every change to the set of admins takes."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADMINS_LOCK})


async def admin_exists(session: AsyncSession) -> bool:
    return bool(await session.scalar(select(exists().where(User.role == Role.ADMIN))))


async def create_user(
    session: AsyncSession, *, email: str, password_hash: str, display_name: str, role: Role
) -> models.User:
    """Insert a user whose `email` is already normalised.

    Raises `errors.EmailUnavailable` when the address is taken: the unique constraint decides,
    so two concurrent registrations of one address cannot both succeed.
    """
    statement = (
        insert(User)
        .values(email=email, password_hash=password_hash, display_name=display_name, role=role)
        .returning(User)
    )
    try:
        return (await session.scalars(statement)).one()
    except IntegrityError as exc:
        if _violated_constraint(exc) == EMAIL_UNIQUE:
            raise errors.EmailUnavailable from exc
        raise


async def register_user(
    session: AsyncSession, *, email: str, password_hash: str, display_name: str
) -> models.User | None:
    """Insert a user with the role `user` and an already normalised `email`; None, and nothing
    written, when the address is taken (the unique constraint decides, so of two concurrent
    registrations of one address one gets None)."""
    statement = (
        pg_insert(User)
        .values(email=email, password_hash=password_hash, display_name=display_name)
        .on_conflict_do_nothing(constraint=EMAIL_UNIQUE)
        .returning(User)
    )
    return await session.scalar(statement, execution_options=_FRESH)


def _violated_constraint(exc: IntegrityError) -> str | None:
    """The unique constraint `exc` reports, from asyncpg's error under SQLAlchemy's."""
    if getattr(exc.orig, "sqlstate", None) != UNIQUE_VIOLATION:
        return None
    return getattr(exc.orig.__cause__, "constraint_name", None)


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> models.User | None:
    return await session.get(User, user_id, populate_existing=True)


async def list_users(
    session: AsyncSession,
    *,
    after: cursors.TimedPosition | None,
    email_prefix: str | None,
    locked: bool | None,
    limit: int,
) -> Sequence[tuple[models.User, datetime | None]]:
    """Users in `(created_at, id)` order, after `after`, whose email starts with the prefix,
    each with the end of its login lock (`libs.security.throttles`; None when not locked now).
    `locked`: only the users locked now (True), only the others (False)."""
    statement = (
        select(User, Throttle.locked_until)
        .outerjoin(Throttle, throttles.locks_account(User.email))
        .order_by(User.created_at, User.id)
        .limit(limit)
    )
    if locked is not None:
        statement = statement.where(Throttle.key.is_not(None) if locked else Throttle.key.is_(None))
    if after is not None:
        statement = statement.where(tuple_(User.created_at, User.id) > tuple_(*after))
    if email_prefix:
        statement = statement.where(User.email.startswith(email_prefix, autoescape=True))
    return (await session.execute(statement)).all()


async def update_display_name(
    session: AsyncSession, user_id: uuid.UUID, display_name: str
) -> models.User | None:
    """None when the user does not exist or is disabled."""
    statement = (
        update(User)
        .where(User.id == user_id, User.disabled_at.is_(None))
        .values(display_name=display_name)
        .returning(User)
    )
    return await session.scalar(statement, execution_options=_FRESH)


async def replace_password(
    session: AsyncSession, user_id: uuid.UUID, *, old_hash: str, new_hash: str
) -> models.User | None:
    """Store `new_hash` if the stored hash is still `old_hash` (the one the caller verified
    against) and the user is enabled; None otherwise."""
    statement = (
        update(User)
        .where(User.id == user_id, User.password_hash == old_hash, User.disabled_at.is_(None))
        .values(
            password_hash=new_hash,
            password_changed_at=func.now(),
            token_generation=User.token_generation + 1,
        )
        .returning(User)
    )
    return await session.scalar(statement, execution_options=_FRESH)


def _keeps_an_active_admin(user_id: uuid.UUID) -> ColumnElement[bool]:
    """Guard for a change that takes `user_id` out of the active admins: it is not one, or
    another remains."""
    other = aliased(User)
    another_admin = exists().where(
        other.role == Role.ADMIN, other.disabled_at.is_(None), other.id != user_id
    )
    return (User.role != Role.ADMIN) | User.disabled_at.is_not(None) | another_admin


async def set_role(session: AsyncSession, user_id: uuid.UUID, role: Role) -> models.User | None:
    """None when the user does not exist, or is the last active admin and `role` is not admin."""
    statement = (
        update(User)
        .where(User.id == user_id)
        .values(role=role, token_generation=_next_generation(User, unless=User.role == role))
        .returning(User)
    )
    if role != Role.ADMIN:
        statement = statement.where(_keeps_an_active_admin(user_id))
    return await session.scalar(statement, execution_options=_FRESH)


async def disable_user(session: AsyncSession, user_id: uuid.UUID) -> models.User | None:
    """Disable the user (keeping the first instant if already disabled). None when the user
    does not exist or is the last active admin."""
    statement = (
        update(User)
        .where(User.id == user_id, _keeps_an_active_admin(user_id))
        .values(
            disabled_at=func.coalesce(User.disabled_at, func.now()),
            token_generation=_next_generation(User, unless=User.disabled_at.is_not(None)),
        )
        .returning(User)
    )
    return await session.scalar(statement, execution_options=_FRESH)


async def enable_user(session: AsyncSession, user_id: uuid.UUID) -> models.User | None:
    """Enable the user. The generation rises with it, so that a token issued after the enabling
    is newer than anything a verifier kept from while the account was disabled."""
    statement = (
        update(User)
        .where(User.id == user_id)
        .values(
            disabled_at=None,
            token_generation=_next_generation(User, unless=User.disabled_at.is_(None)),
        )
        .returning(User)
    )
    return await session.scalar(statement, execution_options=_FRESH)


# --- Refresh tokens ----------------------------------------------------------------------------


async def revoke_user_refresh_tokens(session: AsyncSession, user_id: uuid.UUID) -> int:
    """Revoke every live refresh token of the user; how many were."""
    return await _revoke(session, RefreshToken.user_id == user_id)


async def revoke_service_account_refresh_tokens(
    session: AsyncSession, account_id: uuid.UUID
) -> int:
    return await _revoke(session, RefreshToken.service_account_id == account_id)


async def _revoke(session: AsyncSession, whose: ColumnElement[bool]) -> int:
    statement = (
        update(RefreshToken)
        .where(whose, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(RefreshToken.id)
        .execution_options(synchronize_session=False)
    )
    return len((await session.scalars(statement)).all())


# --- Service accounts --------------------------------------------------------------------------


async def create_service_account(
    session: AsyncSession,
    *,
    client_id: str,
    name: str,
    secret_hash: str,
    scopes: list[str],
    created_by: uuid.UUID | None,
) -> models.ServiceAccount:
    statement = (
        insert(ServiceAccount)
        .values(
            client_id=client_id,
            name=name,
            secret_hash=secret_hash,
            scopes=scopes,
            created_by=created_by,
        )
        .returning(ServiceAccount)
    )
    return (await session.scalars(statement)).one()


async def get_service_account(
    session: AsyncSession, account_id: uuid.UUID
) -> models.ServiceAccount | None:
    return await session.get(ServiceAccount, account_id, populate_existing=True)


async def list_service_accounts(
    session: AsyncSession, *, after: cursors.TimedPosition | None, limit: int
) -> Sequence[models.ServiceAccount]:
    statement = (
        select(ServiceAccount).order_by(ServiceAccount.created_at, ServiceAccount.id).limit(limit)
    )
    if after is not None:
        statement = statement.where(
            tuple_(ServiceAccount.created_at, ServiceAccount.id) > tuple_(*after)
        )
    return (await session.scalars(statement)).all()


async def replace_service_account_secret(
    session: AsyncSession, account_id: uuid.UUID, secret_hash: str
) -> models.ServiceAccount | None:
    """Store the new secret's digest; the old secret stops matching at once."""
    statement = (
        update(ServiceAccount)
        .where(ServiceAccount.id == account_id)
        .values(
            secret_hash=secret_hash,
            secret_rotated_at=func.now(),
            token_generation=ServiceAccount.token_generation + 1,
        )
        .returning(ServiceAccount)
    )
    return await session.scalar(statement, execution_options=_FRESH)


async def set_service_account_disabled(
    session: AsyncSession, account_id: uuid.UUID, *, disabled: bool
) -> models.ServiceAccount | None:
    """Disable (keeping the first instant if already disabled) or enable; None if absent."""
    was_disabled = ServiceAccount.disabled_at.is_not(None)
    disabled_at = func.coalesce(ServiceAccount.disabled_at, func.now()) if disabled else None
    unchanged = was_disabled if disabled else ~was_disabled
    statement = (
        update(ServiceAccount)
        .where(ServiceAccount.id == account_id)
        .values(
            disabled_at=disabled_at,
            token_generation=_next_generation(ServiceAccount, unless=unchanged),
        )
        .returning(ServiceAccount)
    )
    return await session.scalar(statement, execution_options=_FRESH)
