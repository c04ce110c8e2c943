"""Node heartbeats: each scheduler keeps a row in `nodes` fresh, so the nodes list shows who is
alive, and removes it on a clean shutdown. Killed nodes' rows are purged by the survivors once
stale. The same tick refreshes the due-backlog gauge."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from libs import log, loops, nodes
from scheduler_service import errors, loop, repository
from scheduler_service.metrics import SchedulerMetrics
from scheduler_service.settings import Settings

BACKLOG_COUNT_CAP = 1_000_000  # due jobs counted exactly; beyond, the gauge shows this


def this_node(settings: Settings) -> nodes.NodeInfo:
    return nodes.this_node(
        settings.service_name,
        settings.node_id,
        {"dispatch_topic": settings.kafka_dispatch_topic},
    )


class Heartbeat:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        metrics: SchedulerMetrics,
    ):
        self._sessions = sessions
        self._settings = settings
        self._metrics = metrics
        self.node = this_node(settings)

    async def run(self, stop: asyncio.Event) -> None:
        backoff = loops.ErrorBackoff(
            self._settings.error_backoff_initial_s, self._settings.error_backoff_max_s
        )
        while not stop.is_set():
            try:
                await self.beat()
                backoff.reset()
                delay = self._settings.heartbeat_interval_s
            except Exception as exc:
                delay = min(backoff.next_delay(), self._settings.heartbeat_interval_s)
                loop.report_error("heartbeat", exc, delay, self._metrics)
            if await loops.pause(stop, delay):
                break

    async def beat(self) -> None:
        """Refresh this node's row, purge stale ones, and count the due backlog."""
        async with repository.transaction(self._sessions) as session:
            await nodes.write_heartbeat(session, self.node)
            purged = await nodes.purge_stale_nodes(
                session,
                service=self._settings.service_name,
                older_than_s=self._settings.node_expiry_s,
            )
            backlog = await repository.count_due(session, cap=BACKLOG_COUNT_CAP)
        self._metrics.due_backlog.set(backlog)
        for node_id in purged:
            log.get().info("stale_node_removed", stale_node_id=node_id)

    async def remove(self) -> None:
        """Delete this node's row (clean shutdown); a failure is logged, the row then expires."""
        try:
            async with asyncio.timeout(nodes.REMOVE_TIMEOUT_S):
                async with repository.transaction(self._sessions) as session:
                    await nodes.delete_node(session, self.node.node_id)
        except (*errors.TRANSIENT, TimeoutError) as exc:
            log.get().warning("node_row_not_removed", error=str(exc)[:500])
