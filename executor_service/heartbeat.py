"""Node heartbeats of an executor: its row in `nodes` kept fresh (with what it has in hand),
removed on a clean shutdown; the rows of executors killed without one are purged once stale."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from executor_service.metrics import ExecutorMetrics
from executor_service.settings import Settings
from executor_service.strategy import describe
from libs import db, log, loops, nodes


class Heartbeat:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        metrics: ExecutorMetrics,
        in_flight: Callable[[], int],
    ):
        self._sessions = sessions
        self._settings = settings
        self._metrics = metrics
        self._in_flight = in_flight
        self.node = nodes.this_node(
            settings.service_name,
            settings.node_id,
            {
                "consumer_group": settings.consumer_group,
                "dispatch_topic": settings.kafka_dispatch_topic,
                "max_in_flight": settings.max_in_flight,
            },
        )

    async def run(self, stop: asyncio.Event) -> None:
        settings = self._settings
        backoff = loops.ErrorBackoff(settings.error_backoff_initial_s, settings.error_backoff_max_s)
        while not stop.is_set():
            try:
                await self.beat()
                backoff.reset()
                delay = settings.heartbeat_interval_s
            except Exception as exc:
                delay = min(backoff.next_delay(), settings.heartbeat_interval_s)
                self._metrics.loop_errors.labels("heartbeat").inc()
                log.get().warning("heartbeat_failed", error=describe(exc), retry_in_s=delay)
            if await loops.pause(stop, delay):
                break

    async def beat(self) -> None:
        node = self.node
        node.metadata["in_flight"] = self._in_flight()
        async with db.unit_of_work(self._sessions) as session:
            await nodes.write_heartbeat(session, node)
            purged = await nodes.purge_stale_nodes(
                session, service=node.service, older_than_s=self._settings.node_expiry_s
            )
        for node_id in purged:
            log.get().info("stale_node_removed", stale_node_id=node_id)

    async def remove(self) -> None:
        try:
            async with asyncio.timeout(nodes.REMOVE_TIMEOUT_S):
                async with db.unit_of_work(self._sessions) as session:
                    await nodes.delete_node(session, self.node.node_id)
        except Exception as exc:
            log.get().warning("node_row_not_removed", error=describe(exc))
