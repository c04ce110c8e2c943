"""A worker's node heartbeat: its row in `nodes` kept fresh while it runs (`libs.store.nodes`), so
the nodes list shows who is alive, and deleted on a clean shutdown; the rows of its service's nodes
killed without one are purged by the survivors once stale.

What differs between the services is passed in: metadata read afresh at every beat (what an
executor has in hand) and more work for the beat's transaction (the scheduler counts its due
backlog).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from libs.infra import db, errors, log, loops
from libs.store import nodes


class Heartbeat:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        node: nodes.NodeInfo,
        interval_s: float,
        expiry_s: float,
        backoff: loops.ErrorBackoff,
        report: loops.Report,
        live_metadata: Mapping[str, Callable[[], Any]] | None = None,
        with_beat: Callable[[AsyncSession], Awaitable[None]] | None = None,
    ):
        self._sessions = sessions
        self.node = node
        self._interval_s = interval_s
        self._expiry_s = expiry_s
        self._backoff = backoff
        self._report = report
        self._live_metadata = dict(live_metadata or {})
        self._with_beat = with_beat

    async def run(self, stop: asyncio.Event) -> None:
        """Beat every `interval_s` until `stop`; after an error, again within `interval_s`."""
        await loops.run(
            self._beat_then_wait,
            stop=stop,
            backoff=self._backoff,
            report=self._report,
            max_error_delay_s=self._interval_s,
        )

    async def _beat_then_wait(self) -> float:
        await self.beat()
        return self._interval_s

    async def beat(self) -> None:
        """Refresh this node's row and purge stale ones (and the service's own work of a beat),
        in one transaction."""
        for key, read in self._live_metadata.items():
            self.node.metadata[key] = read()
        async with db.transaction(self._sessions) as session:
            await nodes.write_heartbeat(session, self.node)
            purged = await nodes.purge_stale_nodes(
                session, service=self.node.service, older_than_s=self._expiry_s
            )
            if self._with_beat is not None:
                await self._with_beat(session)
        for node_id in purged:
            log.get().info("stale_node_removed", stale_node_id=node_id)

    async def remove(self) -> None:
        """Delete this node's row (clean shutdown); a failure is logged, the row then expires."""
        try:
            async with asyncio.timeout(nodes.REMOVE_TIMEOUT_S):
                async with db.transaction(self._sessions) as session:
                    await nodes.delete_node(session, self.node.node_id)
        except Exception as exc:
            errors.log_fault("node_row_not_removed", exc)
