"""HTTP side of the executor service: no public API; health, readiness and metrics only.

The lifespan builds the database engine and the producer (whose checks `/readyz` runs), the
strategies of every job type (a plug-in that cannot be built stops the start), then starts the
engine and the heartbeat. On SIGTERM the engine stops fetching, lets what runs finish (or
interrupts it at `shutdown_grace_s`), records the outcomes, commits offsets and leaves the
group; then the node's row is removed and the strategies, producer and engine are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

from fastapi import FastAPI

from executor_service.executor import SHUTDOWN_FINISH_S, Executor
from executor_service.heartbeat import Heartbeat
from executor_service.metrics import ExecutorMetrics
from executor_service.registry import Strategies
from executor_service.settings import Settings
from executor_service.strategy import Resources
from libs import job_types, log, resources, web

STRATEGIES_CLOSE_S = 1.0  # at shutdown, for plug-ins to close what they hold


@dataclass
class Running:
    """The running parts of one executor process (on `app.state.executor`)."""

    engine: Executor
    heartbeat: Heartbeat
    strategies: Strategies
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self.tasks = [
            asyncio.create_task(self.engine.run(), name="executor"),
            asyncio.create_task(self.heartbeat.run(self.stop), name="heartbeat"),
        ]

    async def shutdown(self, grace_s: float) -> None:
        self.engine.stop()
        self.stop.set()
        # The engine's own drain is bounded by the grace period plus SHUTDOWN_FINISH_S for
        # recording the interrupted attempts and leaving the group.
        timeout_s = grace_s + SHUTDOWN_FINISH_S + 1
        done, pending = await asyncio.wait(self.tasks, timeout=timeout_s)
        for task in pending:
            log.get().warning("executor_loop_cancelled", loop=task.get_name())
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.get().error("executor_loop_crashed", loop=task.get_name(),
                                exc_info=task.exception())  # fmt: skip
        await self.heartbeat.remove()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STRATEGIES_CLOSE_S):
                await self.strategies.close()


def build_executor(app: FastAPI, settings: Settings) -> Running:
    """The engine over the engine and producer already on `app.state`, running the job types
    read now (plug-ins included)."""
    metrics = ExecutorMetrics(app.state.metrics.registry)
    sessions = app.state.sessions
    types = job_types.load()
    strategies = Strategies.build(
        Resources(settings=settings, sessions=sessions, producer=app.state.producer), types
    )
    engine = Executor(
        settings=settings,
        sessions=sessions,
        producer=app.state.producer,
        types=types,
        strategies=strategies,
        metrics=metrics,
    )
    heartbeat = Heartbeat(
        sessions=sessions, settings=settings, metrics=metrics, in_flight=lambda: engine.in_flight
    )
    return Running(engine=engine, heartbeat=heartbeat, strategies=strategies)


@asynccontextmanager
async def executor_loops(app: FastAPI, settings: Settings) -> AsyncIterator[dict[str, web.Check]]:
    running = build_executor(app, settings)
    app.state.executor = running
    running.start()
    try:
        yield {"consumer": running.engine.check}
    finally:
        await running.shutdown(settings.shutdown_grace_s)


def create_app(settings: Settings) -> FastAPI:
    return web.create_app(
        settings,
        title="Executor service",
        lifespan=lambda app: resources.all_of(
            app,
            partial(resources.database, settings=settings),
            partial(resources.kafka_producer, settings=settings),
            partial(executor_loops, settings=settings),
        ),
    )
