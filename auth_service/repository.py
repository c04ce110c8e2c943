"""Every query of the auth service: accounts (read), refresh tokens and signing keys (login
throttles: `libs.security.throttles`).

Times that decide anything (expiry, lockout, key activation) come from the database clock, so
every copy of the service agrees on them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from libs.scheduling.states import SigningKeyStatus
from libs.store import models

# Serializes signing-key creation and rotation across processes (an arbitrary, fixed key).
SIGNING_KEYS_LOCK = 0x5C_AD_02


async def database_now(session: AsyncSession) -> datetime:
    """The database's clock (the transaction's start, as `now()` everywhere in it)."""
    return (await session.execute(select(func.now()))).scalar_one()


# --- Accounts ---------------------------------------------------------------------------------


async def user_by_email(session: AsyncSession, email: str) -> models.User | None:
    return await session.scalar(select(models.User).where(models.User.email == email))


async def user_by_id(session: AsyncSession, user_id: uuid.UUID) -> models.User | None:
    return await session.get(models.User, user_id)


async def replace_password_hash(
    session: AsyncSession, user_id: uuid.UUID, *, old: str, new: str
) -> bool:
    """Store a rehash of the same password, unless the password changed meanwhile.

    `password_changed_at` stays: the password is the same, only its hash parameters are new.
    """
    result = await session.execute(
        update(models.User)
        .where(models.User.id == user_id, models.User.password_hash == old)
        .values(password_hash=new)
        .returning(models.User.id)
    )
    return result.scalar_one_or_none() is not None


async def service_account_by_client_id(
    session: AsyncSession, client_id: str
) -> models.ServiceAccount | None:
    return await session.scalar(
        select(models.ServiceAccount).where(models.ServiceAccount.client_id == client_id)
    )


async def service_account_by_id(
    session: AsyncSession, account_id: uuid.UUID
) -> models.ServiceAccount | None:
    return await session.get(models.ServiceAccount, account_id)


# --- Refresh tokens ---------------------------------------------------------------------------


async def insert_refresh_token(
    session: AsyncSession,
    *,
    token_hash: str,
    family_id: uuid.UUID,
    user_id: uuid.UUID | None,
    service_account_id: uuid.UUID | None,
    scopes: Iterable[str],
    token_generation: int,
    ttl_s: int,
) -> uuid.UUID:
    """Insert a refresh token expiring `ttl_s` after now (database clock), honoured while its
    account's token generation is `token_generation`; return its id."""
    table = models.RefreshToken
    return (
        await session.execute(
            insert(table)
            .values(
                token_hash=token_hash,
                family_id=family_id,
                user_id=user_id,
                service_account_id=service_account_id,
                scopes=sorted(scopes),
                token_generation=token_generation,
                expires_at=func.now() + timedelta(seconds=ttl_s),
            )
            .returning(table.id)
        )
    ).scalar_one()


async def lock_refresh_token(
    session: AsyncSession, token_hash: str
) -> tuple[models.RefreshToken, datetime] | None:
    """The refresh token with this hash, row-locked until the transaction ends, and `now()`.

    A second request presenting the same token waits here, then sees what the first did.
    """
    row = (
        await session.execute(
            select(models.RefreshToken, func.now())
            .where(models.RefreshToken.token_hash == token_hash)
            .with_for_update()
        )
    ).one_or_none()
    return None if row is None else (row[0], row[1])


async def mark_refresh_token_rotated(
    session: AsyncSession, token_id: uuid.UUID, *, replaced_by: uuid.UUID
) -> None:
    await session.execute(
        update(models.RefreshToken)
        .where(models.RefreshToken.id == token_id)
        .values(rotated_at=func.now(), replaced_by=replaced_by)
    )


async def revoke_refresh_family(session: AsyncSession, family_id: uuid.UUID) -> int:
    """Revoke every token of the family not revoked yet; return how many."""
    result = await session.execute(
        update(models.RefreshToken)
        .where(models.RefreshToken.family_id == family_id, models.RefreshToken.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(models.RefreshToken.id)
    )
    return len(result.all())


async def revoke_refresh_family_of(session: AsyncSession, token_hash: str) -> uuid.UUID | None:
    """Revoke the family of the token with this hash; return the family, None if unknown."""
    family_id = await session.scalar(
        select(models.RefreshToken.family_id).where(models.RefreshToken.token_hash == token_hash)
    )
    if family_id is not None:
        await revoke_refresh_family(session, family_id)
    return family_id


# --- Signing keys -----------------------------------------------------------------------------


async def lock_signing_keys(session: AsyncSession) -> None:
    """Hold a transaction-scoped lock so that two processes never create or rotate at once."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SIGNING_KEYS_LOCK})


async def active_signing_key(session: AsyncSession) -> models.SigningKey | None:
    return await session.scalar(
        select(models.SigningKey).where(models.SigningKey.status == SigningKeyStatus.ACTIVE)
    )


async def signing_key_status(session: AsyncSession, kid: str) -> str | None:
    return await session.scalar(
        select(models.SigningKey.status).where(models.SigningKey.kid == kid)
    )


async def previous_key_exists(session: AsyncSession) -> bool:
    found = await session.scalar(
        select(models.SigningKey.kid)
        .where(models.SigningKey.status == SigningKeyStatus.PREVIOUS)
        .limit(1)
    )
    return found is not None


async def published_jwks(session: AsyncSession) -> list[dict[str, Any]]:
    """The public JWKs of the active and previous keys (never retired ones), active first."""
    rows = await session.scalars(
        select(models.SigningKey.public_jwk)
        .where(models.SigningKey.status.in_([SigningKeyStatus.ACTIVE, SigningKeyStatus.PREVIOUS]))
        .order_by(
            (models.SigningKey.status == SigningKeyStatus.ACTIVE).desc(),
            models.SigningKey.activated_at.desc().nulls_last(),
        )
    )
    return list(rows)


async def insert_active_signing_key(
    session: AsyncSession,
    *,
    kid: str,
    algorithm: str,
    public_jwk: dict[str, Any],
    private_key_pem: str | None,
) -> None:
    """Make `kid` the active key: a new row, or an existing one (a configured file's key that
    was active before) brought back. The caller has demoted the old active key first."""
    table = models.SigningKey
    statement = insert(table).values(
        kid=kid,
        algorithm=algorithm,
        status=SigningKeyStatus.ACTIVE,
        public_jwk=public_jwk,
        private_key_pem=private_key_pem,
        activated_at=func.now(),
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[table.kid],
            set_={
                "status": SigningKeyStatus.ACTIVE,
                "private_key_pem": private_key_pem,
                "activated_at": func.now(),
                "retired_at": None,
            },
        )
    )


async def publish_previous_signing_key(
    session: AsyncSession, *, kid: str, algorithm: str, public_jwk: dict[str, Any]
) -> None:
    """Publish a configured previous key (public part only), unless it is the active one."""
    table = models.SigningKey
    statement = insert(table).values(
        kid=kid, algorithm=algorithm, status=SigningKeyStatus.PREVIOUS, public_jwk=public_jwk
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[table.kid],
            set_={"status": SigningKeyStatus.PREVIOUS, "retired_at": None},
            where=table.status != SigningKeyStatus.ACTIVE,
        )
    )


async def retire_previous_signing_keys(session: AsyncSession) -> list[str]:
    """previous -> retired; return the kids retired."""
    result = await session.execute(
        update(models.SigningKey)
        .where(models.SigningKey.status == SigningKeyStatus.PREVIOUS)
        .values(status=SigningKeyStatus.RETIRED, retired_at=func.now())
        .returning(models.SigningKey.kid)
    )
    return list(result.scalars())


async def demote_active_signing_key(session: AsyncSession) -> str | None:
    """active -> previous; return the kid demoted, None when there was no active key."""
    result = await session.execute(
        update(models.SigningKey)
        .where(models.SigningKey.status == SigningKeyStatus.ACTIVE)
        .values(status=SigningKeyStatus.PREVIOUS)
        .returning(models.SigningKey.kid)
    )
    return result.scalar_one_or_none()
