"""Composition of the executor service: its engine and heartbeat over the resources of its
lifespan.

The service has no public API: `libs.infra.web` serves its health, readiness and metrics. The
lifespan builds the database engine and the producer (whose checks `/readyz` runs), the
strategies of every job type (a plug-in that cannot be built stops the start), then starts the
engine and the heartbeat. On SIGTERM the engine stops fetching, lets what runs finish (or
interrupts it at `shutdown_grace_s`), records the outcomes, commits offsets and leaves the
group; then the node's row is removed and the strategies, producer and engine are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from functools import partial

from fastapi import FastAPI

from executor_service.executor import SHUTDOWN_FINISH_S, Executor
from executor_service.metrics import ExecutorMetrics
from executor_service.registry import Strategies
from executor_service.settings import Settings
from executor_service.strategy import Resources
from libs.contracts import channels
from libs.infra import loops, resources, web
from libs.infra.heartbeat import Heartbeat
from libs.infra.notifications import Listener, Wakeup
from libs.scheduling import job_types
from libs.store import nodes

SERVICE = "executor"  # the prefix of its loops' log events
STRATEGIES_CLOSE_S = 1.0  # at shutdown, for plug-ins to close what they hold


@dataclass
class Running:
    """The running parts of one executor process (on `app.state.executor`)."""

    engine: Executor
    heartbeat: Heartbeat
    listener: Listener
    strategies: Strategies
    supervisor: loops.Supervisor = field(default_factory=lambda: loops.Supervisor(SERVICE))

    def start(self) -> None:
        stop = self.supervisor.stopping
        self.supervisor.start("dispatch-listener", self.listener.run(stop))
        self.supervisor.start("executor", self.engine.run())
        self.supervisor.start("heartbeat", self.heartbeat.run(stop))

    def checks(self) -> dict[str, web.Check]:
        return {"consumer": self.engine.check}

    async def shutdown(self, grace_s: float) -> None:
        self.engine.stop()
        # The engine's own drain is bounded by the grace period plus SHUTDOWN_FINISH_S for
        # recording the interrupted attempts and leaving the group.
        await self.supervisor.stop(grace_s + SHUTDOWN_FINISH_S + 1)
        await self.heartbeat.remove()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STRATEGIES_CLOSE_S):
                await self.strategies.close()


def this_node(settings: Settings) -> nodes.NodeInfo:
    return nodes.this_node(
        settings.service_name,
        settings.node_id,
        {
            "consumer_group": settings.consumer_group,
            "dispatch_topic": settings.kafka_dispatch_topic,
            "max_in_flight": settings.max_in_flight,
        },
    )


def build_executor(app: FastAPI, settings: Settings) -> Running:
    """The engine over the engine and producer already on `app.state`, running the job types
    read now (plug-ins included)."""
    metrics = ExecutorMetrics(app.state.metrics.registry)
    sessions = app.state.sessions
    types = job_types.load()
    strategies = Strategies.build(
        Resources(settings=settings, sessions=sessions, producer=app.state.producer), types
    )
    wakeup = Wakeup()
    listener = Listener(
        settings.database_url.get_secret_value(),
        wakeup,
        channel=channels.DISPATCHES_PUBLISHED,
        payload=settings.kafka_dispatch_topic,
        check_interval_s=settings.heartbeat_interval_s,
        backoff=loops.ErrorBackoff(settings.error_backoff_initial_s, settings.error_backoff_max_s),
        report=loops.ErrorReport(metrics.loop_errors, "listener", "dispatch_listener_lost"),
        application_name=f"{settings.service_name}:{settings.node_id}:listen",
    )
    engine = Executor(
        settings=settings,
        sessions=sessions,
        producer=app.state.producer,
        types=types,
        strategies=strategies,
        metrics=metrics,
        wakeup=wakeup,
        listening=listener.listening.is_set,
    )
    heartbeat = Heartbeat(
        sessions=sessions,
        node=this_node(settings),
        interval_s=settings.heartbeat_interval_s,
        expiry_s=settings.node_expiry_s,
        backoff=loops.ErrorBackoff(settings.error_backoff_initial_s, settings.error_backoff_max_s),
        report=loops.ErrorReport(metrics.loop_errors, "heartbeat", "heartbeat_failed"),
        live_metadata={"in_flight": lambda: engine.in_flight},
    )
    return Running(engine=engine, heartbeat=heartbeat, listener=listener, strategies=strategies)


def create_app(settings: Settings) -> FastAPI:
    return resources.worker_app(
        settings,
        title="Executor service",
        name="executor",
        build=partial(build_executor, settings=settings),
        grace_s=settings.shutdown_grace_s,
    )
