"""The dispatch loop on a real database and broker: due by the database clock, published once
with everything an executor needs, raced by several schedulers without a duplicate or a loss,
and woken early by NOTIFY."""

from __future__ import annotations

import asyncio
import collections
import time
from datetime import timedelta

from scheduler_support import (
    Dispatches,
    ago,
    db_now,
    dispatch_batch,
    eventually,
    executions,
    insert_jobs,
    job,
    job_row,
    scheduler_parts,
    settings_for,
    sql,
)
from sqlalchemy import insert, text

from libs.contracts import channels
from libs.infra import db
from libs.scheduling.states import ExecutionStatus, JobStatus
from libs.store import models


async def test_a_due_job_is_claimed_and_published_with_its_fencing_token(
    database_url, kafka_bootstrap_servers, unique_name
):
    settings = settings_for(database_url, kafka_bootstrap_servers, unique_name)
    async with scheduler_parts(settings) as parts:
        now = await db_now(parts.sessions)
        [due] = await insert_jobs(parts.sessions, [job_row(next_run_at=now - timedelta(seconds=1))])
        [later] = await insert_jobs(parts.sessions, [job_row(next_run_at=now + timedelta(hours=1))])
        scheduler = parts.scheduler()

        result = await dispatch_batch(scheduler.dispatcher)

        assert (result.locked, result.published, result.handed_back) == (1, 1, 0)
        row = await job(parts.sessions, due)
        assert row.status == JobStatus.RUNNING
        assert row.lease_version == 1
        assert row.leased_by == settings.node_id
        lease = row.lease_expires_at - row.last_run_at
        assert lease == timedelta(seconds=settings.dispatch_lease_s)
        [execution] = await executions(parts.sessions, due)
        assert execution.status == ExecutionStatus.DISPATCHED
        assert (execution.scheduled_for, execution.attempt, execution.lease_version) == (
            row.next_run_at,
            1,
            1,
        )
        assert (await job(parts.sessions, later)).status == JobStatus.SCHEDULED

        async with Dispatches(settings, f"{unique_name}-g") as consumer:
            [message] = await consumer.until(1)
        assert message.execution_id == execution.id
        assert message.job_id == due
        assert message.owner_id == row.owner_id
        assert message.lease_version == 1
        assert (message.type, message.payload) == ("log", {"message": "x"})
        assert message.scheduled_for == row.next_run_at
        assert message.deadline == row.lease_expires_at
        assert message.timeout_s == row.timeout_s
        assert len(message.trace_id) == 32

        # Nothing else is due: a second batch claims nothing.
        again = await dispatch_batch(scheduler.dispatcher)
        assert (again.locked, again.published) == (0, 0)


async def test_due_is_decided_by_the_database_clock(
    database_url, kafka_bootstrap_servers, unique_name
):
    settings = settings_for(database_url, kafka_bootstrap_servers, unique_name)
    async with scheduler_parts(settings) as parts:
        now = await db_now(parts.sessions)
        # Due a moment from now by the database's clock: not yet, whatever this node believes.
        [soon] = await insert_jobs(
            parts.sessions, [job_row(next_run_at=now + timedelta(seconds=2))]
        )
        dispatcher = parts.scheduler().dispatcher
        batch = await dispatcher.claim_batch()
        assert batch.locked == 0
        # The claim says when the job left is due, by the same clock.
        assert batch.next_due is not None
        assert 0 < (batch.next_due - batch.db_now).total_seconds() <= 2

        async def dispatched() -> bool:
            return (await dispatch_batch(dispatcher)).published == 1

        await eventually(dispatched, deadline_s=10)
        [execution] = await executions(parts.sessions, soon)
        # Claimed at most the lookahead before it is due, by the database's clock.
        lookahead = timedelta(seconds=settings.dispatch_lookahead_s)
        assert execution.dispatched_at >= execution.scheduled_for - lookahead


async def test_deleted_and_unscheduled_jobs_are_not_dispatched(
    database_url, kafka_bootstrap_servers, unique_name
):
    settings = settings_for(database_url, kafka_bootstrap_servers, unique_name)
    async with scheduler_parts(settings) as parts:
        past = ago(5)
        ids = await insert_jobs(
            parts.sessions,
            [
                job_row(next_run_at=past, deleted_at=past),
                job_row(next_run_at=past, status=JobStatus.PAUSED.value),
                job_row(next_run_at=past, status=JobStatus.CANCELLED.value),
            ],
        )
        result = await dispatch_batch(parts.scheduler().dispatcher)
        assert result.locked == 0
        assert await sql(parts.sessions, "SELECT id FROM executions") == []
        assert [(await job(parts.sessions, i)).lease_version for i in ids] == [0, 0, 0]


async def test_racing_dispatchers_dispatch_every_occurrence_exactly_once(
    database_url, kafka_bootstrap_servers, unique_name
):
    """Three schedulers, each with its own engine and producer, race over 2,400 due jobs in
    batches of 100: every job is dispatched once, every execution published once."""
    jobs = 2_400
    racers = [
        settings_for(database_url, kafka_bootstrap_servers, unique_name, dispatch_batch_size=100)
        for _ in range(3)
    ]
    async with (
        scheduler_parts(racers[0]) as first,
        scheduler_parts(racers[1]) as second,
        scheduler_parts(racers[2]) as third,
    ):
        now = await db_now(first.sessions)
        rows = [job_row(next_run_at=now - timedelta(milliseconds=i)) for i in range(jobs)]
        ids = set(await insert_jobs(first.sessions, rows))
        schedulers = [p.scheduler() for p in (first, second, third)]
        runs = [asyncio.create_task(s.dispatcher.run()) for s in schedulers]
        try:
            async with Dispatches(racers[0], f"{unique_name}-g") as consumer:
                received = await consumer.until(jobs, deadline_s=60)
                # Anything extra would have arrived with the rest: look a little longer.
                deadline = time.monotonic() + 1
                while time.monotonic() < deadline:
                    await consumer.poll()
        finally:
            for s in schedulers:
                s.dispatcher.stop()
            await asyncio.gather(*runs)

        rows = await sql(
            first.sessions,
            "SELECT e.id, e.job_id, e.lease_version, e.status, j.leased_by "
            "FROM executions e JOIN jobs j ON j.id = e.job_id",
        )
        by_execution = collections.Counter(m.execution_id for m in consumer.received)
        assert len(received) == jobs
        assert max(by_execution.values()) == 1
        assert set(by_execution) == {r.id for r in rows}
        assert {m.job_id for m in received} == ids
        assert len(rows) == jobs and {r.job_id for r in rows} == ids
        assert {(r.status, r.lease_version) for r in rows} == {(ExecutionStatus.DISPATCHED, 1)}
        # The work was shared: every scheduler claimed some of it.
        claimers = collections.Counter(r.leased_by for r in rows)
        assert set(claimers) == {s.node_id for s in racers}
        statuses = await sql(first.sessions, "SELECT DISTINCT status FROM jobs")
        assert [s.status for s in statuses] == [JobStatus.RUNNING]


async def test_a_notify_wakes_a_sleeping_dispatcher_long_before_its_cap(
    database_url, kafka_bootstrap_servers, unique_name
):
    settings = settings_for(
        database_url, kafka_bootstrap_servers, unique_name, dispatch_max_sleep_s=30.0
    )
    async with scheduler_parts(settings) as parts, Dispatches(settings, f"{unique_name}-g") as c:
        scheduler = parts.scheduler()
        stop = asyncio.Event()
        listening = asyncio.create_task(scheduler.listener.run(stop))
        running = asyncio.create_task(scheduler.dispatcher.run())
        try:
            await eventually(_is_set(scheduler.listener.listening), what="listening")
            await eventually(_is_set(scheduler.dispatcher.sleeping), what="asleep")
            now = await db_now(parts.sessions)
            written = time.monotonic()
            await _insert_and_notify(parts.sessions, job_row(next_run_at=now), channels.JOBS_DUE)
            await c.until(1, deadline_s=5)
            assert c.received_at[0] - written < 2.0
        finally:
            scheduler.dispatcher.stop()
            stop.set()
            await asyncio.gather(running, listening)


async def test_a_sleeping_dispatcher_wakes_at_the_earliest_next_run(
    database_url, kafka_bootstrap_servers, unique_name
):
    """Without a NOTIFY, the dispatcher still sleeps only until the earliest next_run_at."""
    settings = settings_for(
        database_url, kafka_bootstrap_servers, unique_name, dispatch_max_sleep_s=30.0
    )
    async with scheduler_parts(settings) as parts, Dispatches(settings, f"{unique_name}-g") as c:
        now = await db_now(parts.sessions)
        await insert_jobs(parts.sessions, [job_row(next_run_at=now + timedelta(seconds=1))])
        started = time.monotonic()
        scheduler = parts.scheduler()
        running = asyncio.create_task(scheduler.dispatcher.run())
        try:
            await c.until(1, deadline_s=10)
            assert c.received_at[0] - started < 3.0
        finally:
            scheduler.dispatcher.stop()
            await running


def _is_set(event: asyncio.Event):
    async def check() -> bool:
        return event.is_set()

    return check


async def _insert_and_notify(sessions, row, channel: str) -> None:
    """As the job service writes a job: the row and the NOTIFY in one transaction."""
    async with db.unit_of_work(sessions) as session:
        await session.execute(insert(models.Job), [row])
        await session.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": channel, "payload": row["next_run_at"].isoformat()},
        )
