"""Waking a loop early: PostgreSQL `LISTEN` on a channel of `libs.contracts.channels`.

The job service sends `NOTIFY scheduler_jobs_due` when it writes a `next_run_at`, and a
dispatcher sleeping until a later time wakes at once; a scheduler sends `NOTIFY
executor_dispatches_published` once a batch is on the broker, and idle executors fetch it.
Notifications are only a hint (a missed one costs at most the listener's regular wait), so the
listener keeps one dedicated connection, checks it every few seconds, and reconnects with a
backoff when it is lost, ringing after each reconnection in case something was missed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from libs.infra import db, log, loops

CHECK_TIMEOUT_S = 5.0


class Wakeup:
    """An alarm a loop sleeps on: rung by a notification or a stop request."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.rings = 0  # how often it was rung: a loop tells a ring after a point in time by it

    def ring(self) -> None:
        self.rings += 1
        self._event.set()

    def clear(self) -> None:
        """Forget earlier rings; call before looking for due work, so that a ring after the
        look is not lost."""
        self._event.clear()

    async def sleep(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True when woken early."""
        if self._event.is_set():
            return True
        try:
            async with asyncio.timeout(max(0.0, seconds)):
                await self._event.wait()
        except TimeoutError:
            return False
        return True


_NOTIFY = text("SELECT pg_notify(:channel, :payload)")
# A transaction that only notifies does not wait for the WAL to reach the disk at its commit: a
# notification is delivered at commit all the same, and one lost in a crash is a hint lost,
# while the flush would delay every listener by a disk write.
_NOTIFY_UNFLUSHED = text(
    "SELECT set_config('synchronous_commit', 'off', true), pg_notify(:channel, :payload)"
)


async def send(session: AsyncSession, channel: str, payload: str) -> None:
    """Notify `channel` when the session's transaction commits (and never if it rolls back)."""
    await session.execute(_NOTIFY, {"channel": channel, "payload": payload})


async def notify(sessions: async_sessionmaker[AsyncSession], channel: str, payload: str) -> None:
    """Send one notification now, in a transaction of its own (a hint: the caller decides what
    a failure costs)."""
    async with db.transaction(sessions) as session:
        await session.execute(_NOTIFY_UNFLUSHED, {"channel": channel, "payload": payload})


def asyncpg_dsn(database_url: str) -> str:
    """The service's libpq-style URL as asyncpg's `connect` reads it (`sslmode` included)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class Listener:
    """Rings `wakeup` on every notification on `channel` (whose payload is `payload`, when
    given), until `stop` is set."""

    def __init__(
        self,
        database_url: str,
        wakeup: Wakeup,
        *,
        check_interval_s: float,
        backoff: loops.ErrorBackoff,
        report: loops.Report,
        application_name: str,
        channel: str,
        payload: str | None = None,
    ):
        self._dsn = asyncpg_dsn(database_url)
        self._wakeup = wakeup
        self._check_interval_s = check_interval_s
        self._backoff = backoff
        self._report = report
        self._application_name = application_name[:63]
        self.channel = channel
        self._payload = payload
        self.listening = asyncio.Event()  # set while a connection listens (tests wait on it)

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if self._payload is None or payload == self._payload:
            self._wakeup.ring()

    async def run(self, stop: asyncio.Event) -> None:
        async def listen_until_lost() -> float:
            with db.translate_errors():  # a lost connection is the database's transient fault
                await self._listen(stop)
            return 0.0

        await loops.run(listen_until_lost, stop=stop, backoff=self._backoff, report=self._report)

    async def _listen(self, stop: asyncio.Event) -> None:
        conn = await asyncpg.connect(
            self._dsn,
            timeout=CHECK_TIMEOUT_S,
            server_settings={"application_name": self._application_name},
        )
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        try:
            await conn.add_listener(self.channel, self._notified)
            self.listening.set()
            self._wakeup.ring()  # anything written while we were not listening is due now
            log.get().info("listener_listening", channel=self.channel)
            while not stop.is_set():
                if lost.is_set():
                    raise ConnectionResetError("the listening connection was closed")
                if await loops.pause(stop, self._check_interval_s):
                    return
                # A half-open connection (a network partition) never reports itself closed.
                await conn.fetchval("SELECT 1", timeout=CHECK_TIMEOUT_S)
        finally:
            self.listening.clear()
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await asyncio.wait_for(conn.close(), CHECK_TIMEOUT_S)
            if not conn.is_closed():
                conn.terminate()
