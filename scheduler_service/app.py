"""Composition of the scheduler service: its loops over the resources of its lifespan.

The service has no public API: `libs.infra.web` serves its health, readiness and metrics. The
lifespan builds the database engine and the producer (whose checks `/readyz` runs), then starts
the scheduler's loops: dispatch, lease recovery, heartbeat and the NOTIFY listener. On SIGTERM
it stops them in the order that loses nothing: the dispatcher stops claiming and finishes its
batch (published or handed back), the other loops stop, this node's heartbeat row is deleted,
and only then are the producer and the engine closed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from libs.contracts import channels
from libs.infra import loops, resources, web
from libs.infra.heartbeat import Heartbeat
from libs.infra.notifications import Listener, Wakeup
from libs.store import nodes
from scheduler_service import repository
from scheduler_service.dispatcher import Dispatcher
from scheduler_service.metrics import SchedulerMetrics
from scheduler_service.recovery import Recovery
from scheduler_service.settings import Settings

SERVICE = "scheduler"  # the prefix of its loops' log events
BACKLOG_COUNT_CAP = 1_000_000  # due jobs counted exactly; beyond, the gauge shows this


@dataclass
class Scheduler:
    """The running loops of one scheduler process (on `app.state.scheduler`)."""

    dispatcher: Dispatcher
    recovery: Recovery
    heartbeat: Heartbeat
    listener: Listener
    supervisor: loops.Supervisor = field(default_factory=lambda: loops.Supervisor(SERVICE))

    def start(self) -> None:
        stop = self.supervisor.stopping
        self.supervisor.start("due-listener", self.listener.run(stop))
        self.supervisor.start("heartbeat", self.heartbeat.run(stop))
        self.supervisor.start("lease-recovery", self.recovery.run(stop))
        self.supervisor.start("dispatcher", self.dispatcher.run())

    def checks(self) -> dict[str, web.Check]:
        return {}  # the database's and the producer's are the scheduler's

    async def shutdown(self, grace_s: float) -> None:
        self.dispatcher.stop()
        await self.supervisor.stop(grace_s)
        await self.heartbeat.remove()


def this_node(settings: Settings) -> nodes.NodeInfo:
    return nodes.this_node(
        settings.service_name,
        settings.node_id,
        {"dispatch_topic": settings.kafka_dispatch_topic},
    )


def build_scheduler(app: FastAPI, settings: Settings) -> Scheduler:
    """The loops over the engine and producer already on `app.state`."""
    metrics = SchedulerMetrics(app.state.metrics.registry)
    wakeup = Wakeup()
    sessions = app.state.sessions

    def backoff() -> loops.ErrorBackoff:
        return loops.ErrorBackoff(settings.error_backoff_initial_s, settings.error_backoff_max_s)

    async def count_backlog(session: AsyncSession) -> None:
        metrics.due_backlog.set(await repository.count_due(session, cap=BACKLOG_COUNT_CAP))

    return Scheduler(
        dispatcher=Dispatcher(
            sessions=sessions,
            producer=app.state.producer,
            settings=settings,
            metrics=metrics,
            wakeup=wakeup,
        ),
        recovery=Recovery(sessions=sessions, settings=settings, metrics=metrics, wakeup=wakeup),
        heartbeat=Heartbeat(
            sessions=sessions,
            node=this_node(settings),
            interval_s=settings.heartbeat_interval_s,
            expiry_s=settings.node_expiry_s,
            backoff=backoff(),
            report=loops.ErrorReport.of_service(SERVICE, "heartbeat", metrics.loop_errors),
            with_beat=count_backlog,
        ),
        listener=Listener(
            settings.database_url.get_secret_value(),
            wakeup,
            channel=channels.JOBS_DUE,
            check_interval_s=settings.heartbeat_interval_s,
            backoff=backoff(),
            report=loops.ErrorReport(metrics.loop_errors, "listener", "due_listener_lost"),
            application_name=f"{settings.service_name}:{settings.node_id}:listen",
        ),
    )


def create_app(settings: Settings) -> FastAPI:
    return resources.worker_app(
        settings,
        title="Scheduler service",
        name="scheduler",
        build=partial(build_scheduler, settings=settings),
        grace_s=settings.shutdown_grace_s,
    )
