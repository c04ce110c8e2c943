"""Attempts counted per key in fixed windows, with a lock at a limit: every query of
`login_throttles`, which both limits of the platform use (failed logins per email and per client
address in the auth service, registrations per client address in the user service).

A key is a kind and a value (`account:<email>`, `address:<ip>`, `registration:<ip>`). The
attempt that brings a key's count in its window to the limit locks the key for a while; callers
refuse attempts while a key is locked, and do not count them, so a lock ends when it says it
ends. Times are the database's, so every copy of a service agrees. Nothing here commits.

An account's key is read and cleared by the user service too: an admin sees the lock on the
user and can lift it (`POST /v1/users/{userId}:unlock`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, case, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from libs.store import models

UNKNOWN_ADDRESS = "unknown"  # an ASGI server that does not report the peer
# Failed logins per account are keyed by the email as typed (normalised), not by user id, so
# an email with no account is throttled exactly like one with an account.
ACCOUNT_PREFIX = "account:"

Throttle = models.LoginThrottle


def address_key(kind: str, address: str | None) -> str:
    """The key of a client address for the limit named `kind`."""
    return f"{kind}:{address or UNKNOWN_ADDRESS}"


def account_key(email: str) -> str:
    """The key of the failed logins of the account with `email` (normalised)."""
    return ACCOUNT_PREFIX + email


def _locks(key: str | ColumnElement[str]) -> ColumnElement[bool]:
    """Whether a row is the one of `key` and locks it now."""
    return (Throttle.key == key) & (Throttle.locked_until > func.now())


def locks_account(email: ColumnElement[str]) -> ColumnElement[bool]:
    """Whether a row locks the account whose email is `email` (a column of another table) now:
    the condition that joins an account to its lock."""
    return _locks(ACCOUNT_PREFIX + email)


async def locked_until(session: AsyncSession, key: str) -> datetime | None:
    """When the lock of `key` ends, or None when `key` is not locked now."""
    return await session.scalar(select(Throttle.locked_until).where(_locks(key)))


async def retry_after_s(session: AsyncSession, keys: Iterable[str]) -> int | None:
    """Whole seconds until none of `keys` is locked, or None when none is locked now."""
    remaining = await session.scalar(
        select(func.max(Throttle.locked_until) - func.now()).where(
            Throttle.key.in_(list(keys)), Throttle.locked_until > func.now()
        )
    )
    if remaining is None:
        return None
    return max(1, math.ceil(remaining.total_seconds()))


async def count(
    session: AsyncSession, key: str, *, window_s: int, limit: int, lockout_s: int
) -> int:
    """Count one attempt for `key` in its fixed window, locking the key for `lockout_s` when
    the count reaches `limit`; the count in the window, this attempt included.

    One statement (an upsert), so concurrent attempts all count. An attempt after the window
    ended starts a new window.
    """
    window = timedelta(seconds=window_s)
    lock = func.now() + timedelta(seconds=lockout_s)
    stale = Throttle.window_started_at <= func.now() - window
    counted = case((stale, 1), else_=Throttle.failures + 1)
    statement = insert(Throttle).values(
        key=key,
        failures=1,
        window_started_at=func.now(),
        locked_until=lock if limit <= 1 else None,
    )
    statement = statement.on_conflict_do_update(
        index_elements=[Throttle.key],
        set_={
            "failures": counted,
            "window_started_at": case((stale, func.now()), else_=Throttle.window_started_at),
            "locked_until": case((counted >= limit, lock), else_=Throttle.locked_until),
            "updated_at": func.now(),
        },
    ).returning(Throttle.failures)
    return (await session.execute(statement)).scalar_one()


async def clear(session: AsyncSession, key: str) -> bool:
    """Forget `key`'s count and lock; whether it was locked."""
    was_locked = await session.scalar(
        delete(Throttle).where(Throttle.key == key).returning(Throttle.locked_until > func.now())
    )
    return bool(was_locked)
