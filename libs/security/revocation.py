"""Revocation of access tokens: whether the account a token speaks for still stands behind it.

A signature proves who issued a token, not that its account may still use it. Each user and
service account has a `token_generation`, which the user service raises in the transaction of
every change that must end the account's earlier tokens: disabling or enabling it, a user's
role or password change, a service account's secret rotation. The auth service writes the
generation it read into every token it issues (`libs.security.tokens.GENERATION_CLAIM`). A token is
honoured only while its account exists, is enabled, and still has the token's generation.

Every API process keeps what it read of an account for less than `max_staleness_s`, so most
requests cost no query, and a change reaches every process within that bound: an entry's age
counts from the start of the read that made it, so the read's own time is inside the bound.
A token of a newer generation than the one kept makes the process read again at once, so a
token issued right after a change is never refused because of the cache. Concurrent requests
that find no entry for one account share one read.

While the database is unavailable an expired entry cannot be read again, and the request
fails as any query would (503 with Retry-After, `libs.contracts.problems`): a token is never
honoured past the bound because the check could not run.
"""

from __future__ import annotations

import asyncio
import enum
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from libs.infra import db
from libs.security.tokens import Principal, PrincipalKind
from libs.store import models

MAX_ENTRIES = 10_000  # accounts one process remembers; the least recently used go first

Key = tuple[PrincipalKind, uuid.UUID]
_ACCOUNTS = {"user": models.User, "service_account": models.ServiceAccount}


class Verdict(enum.Enum):
    HONOURED = "honoured"
    GONE = "gone"  # no such account: deleted, or the subject is no account id at all
    DISABLED = "disabled"
    REVOKED = "revoked"  # the account's generation moved on since the token was issued


@dataclass(frozen=True, slots=True)
class Standing:
    """What a verifier needs to know of an account."""

    enabled: bool
    generation: int


async def read_standing(
    session: AsyncSession, kind: PrincipalKind, account_id: uuid.UUID
) -> Standing | None:
    """The account's standing now, or None when there is no such account."""
    account = _ACCOUNTS[kind]
    row = (
        await session.execute(
            select(account.disabled_at.is_(None), account.token_generation).where(
                account.id == account_id
            )
        )
    ).one_or_none()
    return None if row is None else Standing(enabled=row[0], generation=row[1])


def judge(standing: Standing | None, generation: int) -> Verdict:
    """Whether a token of `generation` is honoured for an account of `standing`."""
    if standing is None:
        return Verdict.GONE
    if not standing.enabled:
        return Verdict.DISABLED
    if generation != standing.generation:
        return Verdict.REVOKED
    return Verdict.HONOURED


@dataclass(frozen=True, slots=True)
class _Entry:
    read_at: float  # when the read that made it began (the cache's clock)
    standing: Standing | None


class StandingCache:
    """Account standings read from the database, each kept less than `max_staleness_s`."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        max_staleness_s: float,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._sessions = sessions
        self._max_staleness_s = max_staleness_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        self._reads: dict[Key, asyncio.Task[Standing | None]] = {}

    async def verdict(self, principal: Principal) -> Verdict:
        """Whether `principal`'s token is still honoured. Raises what the database raises when
        it must be read and cannot be."""
        try:
            key: Key = (principal.kind, uuid.UUID(principal.subject))
        except ValueError:
            return Verdict.GONE
        entry = self._fresh(key)
        standing = entry.standing if entry is not None else await self._shared_read(key)
        if standing is not None and principal.generation > standing.generation:
            # The token is newer than what was read: the account changed since. Read it again,
            # alone, since a shared read may have begun before the change.
            standing = await self._read(key)
        return judge(standing, principal.generation)

    def _fresh(self, key: Key) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None or self._clock() - entry.read_at >= self._max_staleness_s:
            return None
        self._entries.move_to_end(key)
        return entry

    async def _shared_read(self, key: Key) -> Standing | None:
        task = self._reads.get(key)
        if task is None:
            task = asyncio.create_task(self._read(key))
            self._reads[key] = task
            task.add_done_callback(partial(self._read_done, key))
        # Shielded: a request that goes away does not cancel the read the others wait for.
        return await asyncio.shield(task)

    def _read_done(self, key: Key, task: asyncio.Task[Standing | None]) -> None:
        if self._reads.get(key) is task:
            del self._reads[key]
        if not task.cancelled():
            task.exception()  # its waiters got it; retrieved here in case all went away

    async def _read(self, key: Key) -> Standing | None:
        started = self._clock()
        async with db.unit_of_work(self._sessions) as session:
            standing = await read_standing(session, *key)
        current = self._entries.get(key)
        if current is None or current.read_at <= started:  # never replace a later read
            self._entries[key] = _Entry(started, standing)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return standing
