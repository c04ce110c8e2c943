"""Password hashing: argon2id through pwdlib, with OWASP's recommended parameters, bounded.

19 MiB of memory, two passes, one lane (OWASP Password Storage Cheat Sheet). Each hash holds
19 MiB and a core for tens of milliseconds, so `Hasher` runs them in threads, at most
`max_concurrent` at once; past `max_waiting` callers queued behind those it refuses at once
(`HasherBusy`) instead of letting a flood of logins exhaust memory or queue without end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

MEMORY_COST_KIB = 19 * 1024
TIME_COST = 2
PARALLELISM = 1

T = TypeVar("T")


class HasherBusy(Exception):
    """Too many hashes are running or waiting; the caller should retry shortly."""


def new_hasher() -> PasswordHash:
    return PasswordHash(
        (Argon2Hasher(memory_cost=MEMORY_COST_KIB, time_cost=TIME_COST, parallelism=PARALLELISM),)
    )


class Hasher:
    def __init__(self, *, max_concurrent: int = 2, max_waiting: int = 64):
        self._hash = new_hasher()
        self._slots = asyncio.Semaphore(max_concurrent)
        self._max_waiting = max_waiting
        self._waiting = 0
        # Verified against when an account does not exist, so that the answer takes as long
        # as for one that does.
        self._dummy = self._hash.hash("not a password of anyone")

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        # Only a caller that would have to wait counts against `max_waiting`: with
        # `max_waiting=0` a free slot is still taken, and only a queue is refused.
        if self._slots.locked() and self._waiting >= self._max_waiting:
            raise HasherBusy
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        # The slot is released when the thread ends, not when the caller stops waiting: a
        # cancelled request must not let another hash start beside one still running.
        work = asyncio.ensure_future(asyncio.to_thread(function, *args))
        work.add_done_callback(lambda _: self._slots.release())
        return await asyncio.shield(work)

    async def hash(self, password: str) -> str:
        return await self._run(self._hash.hash, password)

    async def verify_and_update(self, password: str, stored: str) -> tuple[bool, str | None]:
        """Whether `password` matches `stored`, and a new hash when the parameters changed."""
        return await self._run(self._hash.verify_and_update, password, stored)

    async def verify_nothing(self, password: str) -> None:
        """Spend the time of a verification, for an account that does not exist."""
        await self._run(self._hash.verify, password, self._dummy)
