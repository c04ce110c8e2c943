"""Every query of the console: its sessions table, `console_sessions` (libs.store.models).

The database clock decides whether a session has ended, as it decides everything else.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from libs.store.models import ConsoleSession

PURGE_BATCH = 100  # ended sessions deleted at most per sign-in


async def create_session(
    session: AsyncSession,
    *,
    key_hash: bytes,
    account_id: uuid.UUID,
    email: str,
    role: str,
    scopes: list[str],
    csrf_token: str,
    sealed_tokens: bytes,
    lifetime_s: int,
) -> None:
    session.add(
        ConsoleSession(
            key_hash=key_hash,
            account_id=account_id,
            email=email,
            role=role,
            scopes=scopes,
            csrf_token=csrf_token,
            sealed_tokens=sealed_tokens,
            expires_at=func.now() + timedelta(seconds=lifetime_s),
        )
    )
    await session.flush()


def _alive(idle_s: int) -> ColumnElement[bool]:
    return (ConsoleSession.expires_at > func.now()) & (
        ConsoleSession.last_seen_at > func.now() - timedelta(seconds=idle_s)
    )


async def touch_session(
    session: AsyncSession, key_hash: bytes, *, idle_s: int
) -> ConsoleSession | None:
    """The session if it has not ended, its `last_seen_at` now; None if it has ended."""
    statement = (
        update(ConsoleSession)
        .where(ConsoleSession.key_hash == key_hash, _alive(idle_s))
        .values(last_seen_at=func.now())
        .returning(ConsoleSession)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def lock_session(session: AsyncSession, key_hash: bytes) -> ConsoleSession | None:
    """The session, its row locked until the transaction ends (`FOR UPDATE`): the one place
    its tokens are renewed, so that two requests never spend one refresh token twice."""
    statement = select(ConsoleSession).where(ConsoleSession.key_hash == key_hash).with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def store_tokens(session: AsyncSession, key_hash: bytes, sealed_tokens: bytes) -> None:
    await session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.key_hash == key_hash)
        .values(sealed_tokens=sealed_tokens)
    )


async def delete_session(session: AsyncSession, key_hash: bytes) -> ConsoleSession | None:
    """Delete the session; returns what it was (None: there was none)."""
    statement = (
        delete(ConsoleSession).where(ConsoleSession.key_hash == key_hash).returning(ConsoleSession)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def purge_ended_sessions(session: AsyncSession, *, idle_s: int) -> int:
    """Delete up to `PURGE_BATCH` ended sessions (ones another process is using are skipped);
    returns how many."""
    ended = (
        select(ConsoleSession.key_hash)
        .where(~_alive(idle_s))
        .limit(PURGE_BATCH)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        delete(ConsoleSession).where(ConsoleSession.key_hash.in_(ended.scalar_subquery()))
    )
    return result.rowcount or 0
