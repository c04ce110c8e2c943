"""The scheduler service as its process runs it: the lifespan starts the loops and stops them
cleanly, each node keeps a heartbeat row, the NOTIFY listener survives a lost connection, and
readiness and metrics are served."""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import UTC, datetime, timedelta

import httpx
from scheduler_support import (
    Dispatches,
    db_now,
    eventually,
    insert_jobs,
    job_row,
    scheduler_parts,
    settings_for,
    sql,
)

from libs.contracts import channels
from libs.store import nodes
from scheduler_service import app as scheduler_app


async def node_rows(sessions) -> list:
    return await sql(sessions, "SELECT * FROM nodes ORDER BY node_id")


async def test_the_service_dispatches_keeps_a_heartbeat_and_leaves_cleanly(
    database_url, kafka_bootstrap_servers, unique_name, serve_app
):
    settings = settings_for(database_url, kafka_bootstrap_servers, unique_name)
    app = scheduler_app.create_app(settings)
    async with scheduler_parts(settings, producer=False) as observer:
        now = await db_now(observer.sessions)
        await insert_jobs(observer.sessions, [job_row(next_run_at=now) for _ in range(20)])
        async with serve_app(app) as base_url, Dispatches(settings, f"{unique_name}-g") as c:
            await c.until(20)
            [node] = await eventually(lambda: node_rows(observer.sessions), what="node row")
            assert (node.node_id, node.service) == (settings.node_id, "scheduler_service")
            assert (node.hostname, node.pid) == (socket.gethostname(), os.getpid())
            assert node.version == nodes.package_version()
            assert node.metadata == {"dispatch_topic": settings.kafka_dispatch_topic}

            async def beat_again() -> bool:
                [again] = await node_rows(observer.sessions)
                return again.last_heartbeat_at > node.last_heartbeat_at

            await eventually(beat_again, what="a later heartbeat")

            async with httpx.AsyncClient(base_url=base_url) as client:
                ready = await client.get("/readyz")
                metrics = (await client.get("/metrics")).text
            assert ready.status_code == 200
            assert ready.json()["checks"] == {"database": "ok", "kafka": "ok"}
            assert "scheduler_dispatched_total 20.0" in metrics
            assert "scheduler_dispatch_lag_seconds_count 20.0" in metrics
            for name in (
                "scheduler_due_backlog",
                "scheduler_batch_size_bucket",
                "scheduler_publish_seconds_bucket",
                "scheduler_handbacks_total",
            ):
                assert name in metrics
        # The server stopped (the lifespan's exit): the loops are done and the row is gone.
        assert await node_rows(observer.sessions) == []
        assert all(task.done() for task in app.state.scheduler.supervisor.tasks)


async def test_a_stale_node_is_purged_by_the_survivors(
    database_url, kafka_bootstrap_servers, unique_name
):
    settings = settings_for(database_url, kafka_bootstrap_servers, unique_name, node_expiry_s=60)
    async with scheduler_parts(settings, producer=False) as parts:
        old = datetime.now(UTC) - timedelta(minutes=5)
        for node_id, service in (("killed", "scheduler_service"), ("executor", "executor_service")):
            await sql(
                parts.sessions,
                "INSERT INTO nodes (node_id, service, hostname, pid, version, started_at, "
                "last_heartbeat_at) VALUES (:id, :service, 'h', 1, 'v', :old, :old)",
                id=node_id,
                service=service,
                old=old,
            )
        await parts.scheduler().heartbeat.beat()
        rows = [n.node_id for n in await node_rows(parts.sessions)]
        # Its own row is written; the other service's stale row is that service's to purge.
        assert sorted(rows) == sorted(["executor", settings.node_id])


async def test_the_listener_reconnects_when_its_connection_is_killed(
    database_url, kafka_bootstrap_servers, unique_name
):
    settings = settings_for(database_url, kafka_bootstrap_servers, unique_name)
    async with scheduler_parts(settings, producer=False) as parts:
        scheduler = parts.scheduler()
        listener_name = f"{settings.service_name}:{settings.node_id}:listen"[:63]
        stop = asyncio.Event()
        listening = asyncio.create_task(scheduler.listener.run(stop))
        try:
            await eventually(_is_set(scheduler.listener.listening), what="listening")
            listeners = "SELECT pid FROM pg_stat_activity WHERE application_name = :name"
            [before] = await sql(parts.sessions, listeners, name=listener_name)
            await sql(parts.sessions, "SELECT pg_terminate_backend(:pid)", pid=before.pid)

            async def listening_again() -> bool:
                rows = await sql(parts.sessions, listeners, name=listener_name)
                new = [r for r in rows if r.pid != before.pid]
                return bool(new) and scheduler.listener.listening.is_set()

            await eventually(listening_again, what="listening again")
            # And a notification still rings the dispatcher's alarm.
            scheduler.dispatcher._wakeup.clear()
            await sql(parts.sessions, "SELECT pg_notify(:c, 'x')", c=channels.JOBS_DUE)
            assert await scheduler.dispatcher._wakeup.sleep(5)
        finally:
            stop.set()
            await listening


async def test_a_database_outage_is_survived_by_the_dispatch_loop(
    database_url, kafka_bootstrap_servers, unique_name
):
    """Every connection of the scheduler's pool is killed under it: the loop logs, backs off,
    and dispatches what becomes due afterwards without being restarted."""
    settings = settings_for(database_url, kafka_bootstrap_servers, unique_name)
    async with scheduler_parts(settings) as parts, Dispatches(settings, f"{unique_name}-g") as c:
        scheduler = parts.scheduler()
        running = asyncio.create_task(scheduler.dispatcher.run())
        try:
            await eventually(_is_set(scheduler.dispatcher.sleeping), what="asleep")
            await sql(
                parts.sessions,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = :name AND pid <> pg_backend_pid()",
                name=f"{settings.service_name}:{settings.node_id}"[:63],
            )
            now = await db_now(parts.sessions)
            await insert_jobs(parts.sessions, [job_row(next_run_at=now)])
            await c.until(1, deadline_s=15)
        finally:
            scheduler.dispatcher.stop()
            await running


def _is_set(event: asyncio.Event):
    async def check() -> bool:
        return event.is_set()

    return check
