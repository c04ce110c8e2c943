"""HTTP side of the scheduler service: no public API; health, readiness and metrics only.

The lifespan builds the database engine and the producer (whose checks `/readyz` runs), then
starts the scheduler's loops: dispatch, lease recovery, heartbeat and the NOTIFY listener. On
SIGTERM it stops them in the order that loses nothing: the dispatcher stops claiming and
finishes its batch (published or handed back), the other loops stop, this node's heartbeat row
is deleted, and only then are the producer and the engine closed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

from fastapi import FastAPI

from libs import log, loops, resources, web
from scheduler_service.dispatcher import Dispatcher
from scheduler_service.heartbeat import Heartbeat
from scheduler_service.metrics import SchedulerMetrics
from scheduler_service.recovery import Recovery
from scheduler_service.settings import Settings
from scheduler_service.wakeup import DueListener, Wakeup


@dataclass
class Scheduler:
    """The running loops of one scheduler process (on `app.state.scheduler`)."""

    dispatcher: Dispatcher
    recovery: Recovery
    heartbeat: Heartbeat
    listener: DueListener
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self.tasks = [
            asyncio.create_task(self.listener.run(self.stop), name="due-listener"),
            asyncio.create_task(self.heartbeat.run(self.stop), name="heartbeat"),
            asyncio.create_task(self.recovery.run(self.stop), name="lease-recovery"),
            asyncio.create_task(self.dispatcher.run(), name="dispatcher"),
        ]

    async def shutdown(self, grace_s: float) -> None:
        self.dispatcher.stop()
        self.stop.set()
        done, pending = await asyncio.wait(self.tasks, timeout=grace_s)
        for task in pending:  # only a loop stuck past the grace period
            log.get().warning("scheduler_loop_cancelled", loop=task.get_name())
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.get().error("scheduler_loop_crashed", loop=task.get_name(),
                                exc_info=task.exception())  # fmt: skip
        await self.heartbeat.remove()


def build_scheduler(app: FastAPI, settings: Settings) -> Scheduler:
    """The loops over the engine and producer already on `app.state`."""
    metrics = SchedulerMetrics(app.state.metrics.registry)
    wakeup = Wakeup()
    sessions = app.state.sessions
    backoff = loops.ErrorBackoff(settings.error_backoff_initial_s, settings.error_backoff_max_s)
    return Scheduler(
        dispatcher=Dispatcher(
            sessions=sessions,
            producer=app.state.producer,
            settings=settings,
            metrics=metrics,
            wakeup=wakeup,
        ),
        recovery=Recovery(sessions=sessions, settings=settings, metrics=metrics),
        heartbeat=Heartbeat(sessions=sessions, settings=settings, metrics=metrics),
        listener=DueListener(
            settings.database_url.get_secret_value(),
            wakeup,
            check_interval_s=settings.heartbeat_interval_s,
            backoff=backoff,
            application_name=f"{settings.service_name}:{settings.node_id}:listen",
        ),
    )


@asynccontextmanager
async def scheduler_loops(app: FastAPI, settings: Settings) -> AsyncIterator[dict[str, web.Check]]:
    scheduler = build_scheduler(app, settings)
    app.state.scheduler = scheduler
    scheduler.start()
    try:
        yield {}
    finally:
        await scheduler.shutdown(settings.shutdown_grace_s)


def create_app(settings: Settings) -> FastAPI:
    return web.create_app(
        settings,
        title="Scheduler service",
        lifespan=lambda app: resources.all_of(
            app,
            partial(resources.database, settings=settings),
            partial(resources.kafka_producer, settings=settings),
            partial(scheduler_loops, settings=settings),
        ),
    )
