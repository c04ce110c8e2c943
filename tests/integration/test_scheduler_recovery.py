"""Lease recovery and hand-back: a dispatch nobody started is dispatched again with the same
attempt; an attempt whose executor vanished is recovered under the retry policy; what failed to
publish is handed back at once; all are fenced by the lease version."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import asyncpg
import pytest
from scheduler_support import (
    Dispatches,
    db_now,
    dispatch_batch,
    eventually,
    executions,
    fixed_rate,
    insert_jobs,
    job,
    job_row,
    once,
    scheduler_parts,
    settings_for,
    sql,
)

from libs.contracts import channels
from libs.infra import db, kafka
from libs.infra.errors import BrokerUnavailable
from libs.infra.notifications import Wakeup
from libs.scheduling.states import ExecutionStatus, JobStatus
from schedctl import embedded
from scheduler_service import repository
from scheduler_service.dispatcher import Dispatcher
from scheduler_service.metrics import SchedulerMetrics

# A dispatch claimed ahead must be started within its lease: the window stays shorter.
SHORT_LEASE = {"dispatch_lease_s": 0.3, "dispatch_lookahead_s": 0.1}
TIMEOUT_S = 1  # the job's own timeout: with SHORT_LEASE, leases of 1.3 s


def recoveries(parts, outcome: str) -> float:
    registry = parts.app.state.metrics.registry
    value = registry.get_sample_value("scheduler_lease_recoveries_total", {"outcome": outcome})
    return value or 0.0


async def recovered(recovery, count: int = 1):
    """Run recovery until `count` expired leases were found (they expire on their own)."""
    found = 0

    async def enough() -> bool:
        nonlocal found
        found += await recovery.recover_batch()
        return found >= count

    await eventually(enough, deadline_s=10, what=f"{count} recovered leases")


async def started(parts, job_id, *, lease_s: float | None = 0.3) -> None:
    """Start the job's DISPATCHED execution as an executor's claim does, with a short running
    lease (None: none, as a start before migration 0013 left it)."""
    await sql(
        parts.sessions,
        "UPDATE executions SET status = 'RUNNING', worker = 'gone', started_at = now(), "
        "lease_expires_at = now() + make_interval(secs => :s) "
        "WHERE job_id = :id AND status = 'DISPATCHED' RETURNING id",
        id=job_id,
        s=lease_s,
    )


async def set_lease(parts, table: str, job_id, seconds: float) -> None:
    """The lease of the job's row in `table` (jobs: the dispatch lease; executions: the running
    lease) to expire `seconds` from now (in the past when negative)."""
    column = "id" if table == "jobs" else "job_id"
    await sql(
        parts.sessions,
        f"UPDATE {table} SET lease_expires_at = now() + make_interval(secs => :s) "  # noqa: S608
        f"WHERE {column} = :id RETURNING 1",
        id=job_id,
        s=seconds,
    )


async def test_a_started_attempt_is_held_by_its_running_lease_not_by_the_dispatch_lease(
    database_url, kafka_bootstrap_servers, unique_name
):
    settings = settings_for(database_url, kafka_bootstrap_servers, unique_name, **SHORT_LEASE)
    async with scheduler_parts(settings) as parts:
        now = await db_now(parts.sessions)
        rows = [job_row(next_run_at=now, timeout_s=TIMEOUT_S) for _ in range(2)]
        current, older = await insert_jobs(parts.sessions, rows)
        scheduler = parts.scheduler()
        assert (await dispatch_batch(scheduler.dispatcher)).published == 2
        await started(parts, current, lease_s=60)
        # Started before the running lease was the execution's: its start extended the job's.
        await started(parts, older, lease_s=None)
        await set_lease(parts, "jobs", older, 60)
        await set_lease(parts, "jobs", current, -1)  # the dispatch lease, long over

        assert await scheduler.recovery.recover_batch() == 0
        for job_id in (current, older):
            [execution] = await executions(parts.sessions, job_id)
            assert execution.status == ExecutionStatus.RUNNING

        await set_lease(parts, "executions", current, -1)
        await set_lease(parts, "jobs", older, -1)
        assert await scheduler.recovery.recover_batch() == 2
        for job_id in (current, older):
            [execution] = await executions(parts.sessions, job_id)
            assert execution.status == ExecutionStatus.LOST


async def test_a_dispatch_nobody_started_is_dispatched_again_without_using_an_attempt(
    database_url, kafka_bootstrap_servers, unique_name
):
    settings = settings_for(database_url, kafka_bootstrap_servers, unique_name, **SHORT_LEASE)
    async with scheduler_parts(settings) as parts:
        now = await db_now(parts.sessions)
        row = job_row(next_run_at=now, timeout_s=TIMEOUT_S, retry_policy={"max_attempts": 1})
        [job_id] = await insert_jobs(parts.sessions, [row])
        scheduler = parts.scheduler()
        assert (await dispatch_batch(scheduler.dispatcher)).published == 1
        [first] = await executions(parts.sessions, job_id)
        wakeup = scheduler.dispatcher._wakeup  # the recovery's too (app.build_scheduler)
        rings = wakeup.rings
        listener = await asyncpg.connect(database_url)
        heard: asyncio.Queue[str] = asyncio.Queue()
        await listener.add_listener(channels.JOBS_DUE, lambda *args: heard.put_nowait(args[3]))
        try:
            await recovered(scheduler.recovery)
            async with asyncio.timeout(5):
                payload = await heard.get()
        finally:
            await listener.close()
        # The dispatcher is told at once, not left to its capped sleep, and so is every other
        # scheduler: the job is due again now.
        assert wakeup.rings == rings + 1
        assert now < datetime.fromisoformat(payload) <= await db_now(parts.sessions)

        stored = await job(parts.sessions, job_id)
        assert (stored.status, stored.next_run_at) == (JobStatus.SCHEDULED, row["next_run_at"])
        assert (stored.attempt, stored.lease_version, stored.run_count) == (1, 1, 0)
        assert (stored.lease_expires_at, stored.leased_by, stored.last_run_at) == (None,) * 3
        assert await executions(parts.sessions, job_id) == []
        assert await sql(parts.sessions, "SELECT 1 FROM dead_letters") == []
        assert recoveries(parts, "redispatch") == 1

        # Dispatched again at once, with the same attempt (of the one it has) and a new token.
        assert (await dispatch_batch(scheduler.dispatcher)).published == 1
        [again] = await executions(parts.sessions, job_id)
        assert (again.attempt, again.lease_version, again.status) == (1, 2, "DISPATCHED")
        assert again.scheduled_for == first.scheduled_for
        async with Dispatches(settings, f"{unique_name}-g") as consumer:
            messages = await consumer.until(2)
        assert [(m.execution_id, m.attempt, m.lease_version) for m in messages] == [
            (first.id, 1, 1),
            (again.id, 1, 2),
        ]


async def test_an_undone_claim_does_not_make_run_once_skip_its_occurrence(
    database_url, kafka_bootstrap_servers, unique_name
):
    """A claim that never ran is no run: a lost dispatch found late beyond the job's grace
    still runs once under `run_once`, rather than counting as the misfire episode's run."""
    settings = settings_for(
        database_url, kafka_bootstrap_servers, unique_name, dispatch_lease_s=1.5
    )
    async with scheduler_parts(settings) as parts:
        now = await db_now(parts.sessions)
        row = job_row(
            next_run_at=now,
            schedule_spec=fixed_rate(60, anchor=now),
            misfire_grace_s=1,
            timeout_s=TIMEOUT_S,
        )
        [job_id] = await insert_jobs(parts.sessions, [row])
        scheduler = parts.scheduler()
        await scheduler.dispatcher.claim_batch()  # a scheduler that dies before publishing

        await recovered(scheduler.recovery)
        assert (await job(parts.sessions, job_id)).last_run_at is None

        assert (await dispatch_batch(scheduler.dispatcher)).published == 1
        [execution] = await executions(parts.sessions, job_id)
        assert execution.scheduled_for == row["next_run_at"]
        registry = parts.app.state.metrics.registry
        assert registry.get_sample_value("scheduler_misfires_total", {"policy": "run_once"}) == 1


async def test_an_attempt_whose_executor_vanished_is_recovered_and_retried(
    database_url, kafka_bootstrap_servers, unique_name
):
    settings = settings_for(database_url, kafka_bootstrap_servers, unique_name, **SHORT_LEASE)
    policy = {"max_attempts": 3, "initial_backoff_s": 0.5, "multiplier": 2, "max_backoff_s": 10}
    async with scheduler_parts(settings) as parts:
        now = await db_now(parts.sessions)
        row = job_row(next_run_at=now, timeout_s=TIMEOUT_S, retry_policy=policy)
        [job_id] = await insert_jobs(parts.sessions, [row])
        scheduler = parts.scheduler()
        assert (await dispatch_batch(scheduler.dispatcher)).published == 1
        [first] = await executions(parts.sessions, job_id)
        await started(parts, job_id)

        await recovered(scheduler.recovery)

        recovered_at = await db_now(parts.sessions)
        stored = await job(parts.sessions, job_id)
        assert stored.status == JobStatus.SCHEDULED
        assert (stored.attempt, stored.lease_version, stored.run_count) == (2, 1, 0)
        assert (stored.lease_expires_at, stored.leased_by) == (None, None)
        # Full jitter: anywhere from now to the first backoff window (0.5 s) from now.
        assert recovered_at - timedelta(seconds=1) < stored.next_run_at
        assert stored.next_run_at <= recovered_at + timedelta(seconds=0.5)
        [lost] = await executions(parts.sessions, job_id)
        assert (lost.id, lost.status, lost.error) == (
            first.id,
            ExecutionStatus.LOST,
            "lease expired",
        )
        assert lost.error_kind == "lease_expired" and lost.finished_at is not None
        assert recoveries(parts, "retry") == 1

        # The retry is dispatched like any due job: attempt 2, the next fencing token.
        async def redispatched() -> bool:
            return (await dispatch_batch(scheduler.dispatcher)).published == 1

        await eventually(redispatched, deadline_s=5)
        retry = (await executions(parts.sessions, job_id))[-1]
        assert (retry.attempt, retry.lease_version, retry.status) == (2, 2, "DISPATCHED")
        async with Dispatches(settings, f"{unique_name}-g") as consumer:
            messages = await consumer.until(2)
        assert [(m.execution_id, m.attempt, m.lease_version) for m in messages] == [
            (first.id, 1, 1),
            (retry.id, 2, 2),
        ]


async def test_exhausted_attempts_move_a_recurring_job_to_its_next_occurrence(
    database_url, kafka_bootstrap_servers, unique_name
):
    settings = settings_for(database_url, kafka_bootstrap_servers, unique_name, **SHORT_LEASE)
    async with scheduler_parts(settings) as parts:
        now = await db_now(parts.sessions)
        anchor = now - timedelta(seconds=1)
        row = job_row(
            next_run_at=anchor,
            schedule_spec=fixed_rate(60, anchor=anchor),
            timeout_s=TIMEOUT_S,
            retry_policy={"max_attempts": 1},
        )
        [job_id] = await insert_jobs(parts.sessions, [row])
        scheduler = parts.scheduler()
        await dispatch_batch(scheduler.dispatcher)
        await started(parts, job_id)

        await recovered(scheduler.recovery)

        stored = await job(parts.sessions, job_id)
        assert stored.status == JobStatus.SCHEDULED
        assert stored.next_run_at == anchor + timedelta(seconds=60)
        assert (stored.attempt, stored.run_count) == (1, 1)
        [letter] = await sql(parts.sessions, "SELECT * FROM dead_letters")
        [lost] = await executions(parts.sessions, job_id)
        assert (letter.job_id, letter.execution_id, letter.attempts) == (job_id, lost.id, 1)
        assert (letter.owner_id, letter.payload) == (row["owner_id"], row["payload"])
        assert recoveries(parts, "next") == 1


async def test_a_lost_run_requested_on_a_paused_job_is_retried_then_pauses_it_again(
    database_url, kafka_bootstrap_servers, unique_name
):
    settings = settings_for(database_url, kafka_bootstrap_servers, unique_name, **SHORT_LEASE)
    async with scheduler_parts(settings) as parts:
        now = await db_now(parts.sessions)
        anchor = now - timedelta(seconds=1)
        row = job_row(
            next_run_at=anchor,
            schedule_spec=fixed_rate(60, anchor=anchor),
            timeout_s=TIMEOUT_S,
            retry_policy={"max_attempts": 2, "initial_backoff_s": 0},
            pause_after_run=True,  # as run-now leaves a paused job
        )
        [job_id] = await insert_jobs(parts.sessions, [row])
        scheduler = parts.scheduler()

        await dispatch_batch(scheduler.dispatcher)
        await started(parts, job_id)
        await recovered(scheduler.recovery)
        retrying = await job(parts.sessions, job_id)
        await eventually(lambda: _published(scheduler.dispatcher), deadline_s=5, what="retry")
        await started(parts, job_id)
        await recovered(scheduler.recovery)

        assert (retrying.status, retrying.attempt, retrying.pause_after_run) == (
            JobStatus.SCHEDULED, 2, True,
        )  # fmt: skip
        stored = await job(parts.sessions, job_id)
        assert (stored.status, stored.pause_after_run) == (JobStatus.PAUSED, False)
        assert stored.next_run_at == anchor + timedelta(seconds=60)
        assert (stored.attempt, stored.run_count, stored.status_reason) == (1, 1, None)
        assert len(await sql(parts.sessions, "SELECT 1 FROM dead_letters")) == 1


async def test_exhausted_attempts_fail_a_job_with_no_next_occurrence(
    database_url, kafka_bootstrap_servers, unique_name
):
    settings = settings_for(database_url, kafka_bootstrap_servers, unique_name, **SHORT_LEASE)
    async with scheduler_parts(settings) as parts:
        now = await db_now(parts.sessions)
        row = job_row(
            next_run_at=now,
            schedule_spec=once(now),
            timeout_s=TIMEOUT_S,
            retry_policy={"max_attempts": 2, "initial_backoff_s": 0},
        )
        [job_id] = await insert_jobs(parts.sessions, [row])
        scheduler = parts.scheduler()
        for _ in range(2):  # the first try, then its one retry, both lost
            await eventually(
                lambda: _published(scheduler.dispatcher), deadline_s=5, what="dispatched"
            )
            await started(parts, job_id)
            await recovered(scheduler.recovery)

        stored = await job(parts.sessions, job_id)
        assert (stored.status, stored.next_run_at, stored.attempt) == (JobStatus.FAILED, None, 2)
        assert [e.status for e in await executions(parts.sessions, job_id)] == ["LOST", "LOST"]
        assert len(await sql(parts.sessions, "SELECT 1 FROM dead_letters")) == 1
        assert recoveries(parts, "retry") == recoveries(parts, "failed") == 1


async def test_racing_recoverers_recover_each_expired_lease_once(
    database_url, kafka_bootstrap_servers, unique_name
):
    jobs = 600
    settings = settings_for(
        database_url, kafka_bootstrap_servers, unique_name, recovery_batch_size=50, **SHORT_LEASE
    )
    async with scheduler_parts(settings) as first, scheduler_parts(settings) as second:
        now = await db_now(first.sessions)
        rows = [job_row(next_run_at=now, timeout_s=TIMEOUT_S) for _ in range(jobs)]
        await insert_jobs(first.sessions, rows)
        dispatcher = first.scheduler().dispatcher
        while (await dispatch_batch(dispatcher)).locked:
            pass
        expired = "SELECT 1 FROM jobs WHERE lease_expires_at < now() HAVING count(*) = :n"
        await eventually(
            lambda: sql(first.sessions, expired, n=jobs), deadline_s=10, what="all expired"
        )

        found = await asyncio.gather(
            *(_recover_all(p.scheduler().recovery) for p in (first, second))
        )

        assert sum(found) == jobs
        [counts] = await sql(
            first.sessions,
            "SELECT count(*) FILTER (WHERE status = 'SCHEDULED' AND attempt = 1) AS again, "
            "(SELECT count(*) FROM executions) AS executions FROM jobs",
        )
        assert (counts.again, counts.executions) == (jobs, 0)
        assert recoveries(first, "redispatch") + recoveries(second, "redispatch") == jobs


async def _recover_all(recovery) -> int:
    total = 0
    while found := await recovery.recover_batch():
        total += found
    return total


async def _published(dispatcher) -> bool:
    return (await dispatch_batch(dispatcher)).published > 0


# --- Publishing fails --------------------------------------------------------------------------


async def test_what_cannot_be_published_is_handed_back_at_once(
    database_url, kafka_bootstrap_servers, unique_name
):
    """A scheduler whose broker is a dead port: the batch is claimed, not acknowledged within the
    publish timeout, and handed back: SCHEDULED again, no DISPATCHED row left behind."""
    settings = settings_for(
        database_url,
        f"127.0.0.1:{embedded.free_port()}",
        unique_name,
        dispatch_publish_timeout_s=0.5,
        kafka_request_timeout_ms=1000,
    )
    async with scheduler_parts(settings, producer=False) as parts:
        now = await db_now(parts.sessions)
        rows = [job_row(next_run_at=now - timedelta(seconds=i)) for i in range(5)]
        ids = await insert_jobs(parts.sessions, rows)
        producer = kafka.Producer(settings)  # never started: nothing listens there
        metrics = SchedulerMetrics(parts.app.state.metrics.registry)
        dispatcher = Dispatcher(
            sessions=parts.sessions,
            producer=producer,
            settings=settings,
            metrics=metrics,
            wakeup=Wakeup(),
        )
        with pytest.raises(BrokerUnavailable, match="5 of 5 dispatches not published"):
            await dispatch_batch(dispatcher)

        for job_id, row in zip(ids, rows, strict=True):
            stored = await job(parts.sessions, job_id)
            assert (stored.status, stored.next_run_at) == (JobStatus.SCHEDULED, row["next_run_at"])
            assert (stored.lease_expires_at, stored.leased_by) == (None, None)
            assert stored.lease_version == 1  # the token of the undone claim is never reused
        assert await sql(parts.sessions, "SELECT id FROM executions") == []
        registry = parts.app.state.metrics.registry
        assert registry.get_sample_value("scheduler_handbacks_total") == 5


async def test_a_broker_that_goes_away_mid_run_gets_its_batch_handed_back(
    database_url, kafka_bootstrap_servers, unique_name, tmp_path
):
    broker = embedded.EmbeddedBroker(embedded.free_port(), log_path=tmp_path / "broker.log")
    broker.start()
    settings = settings_for(
        database_url, broker.bootstrap_servers, unique_name, dispatch_publish_timeout_s=1.0
    )
    try:
        async with scheduler_parts(settings, producer=False) as parts:
            producer = kafka.Producer(settings)
            await producer.start()
            dispatcher = Dispatcher(
                sessions=parts.sessions,
                producer=producer,
                settings=settings,
                metrics=SchedulerMetrics(parts.app.state.metrics.registry),
                wakeup=Wakeup(),
            )
            try:
                now = await db_now(parts.sessions)
                [sent] = await insert_jobs(parts.sessions, [job_row(next_run_at=now)])
                assert (await dispatch_batch(dispatcher)).published == 1
                broker.stop()
                [kept] = await insert_jobs(parts.sessions, [job_row(next_run_at=now)])
                with pytest.raises(BrokerUnavailable):
                    await dispatch_batch(dispatcher)
                assert (await job(parts.sessions, sent)).status == JobStatus.RUNNING
                assert (await job(parts.sessions, kept)).status == JobStatus.SCHEDULED
                assert await executions(parts.sessions, kept) == []
            finally:
                await producer.stop(timeout_s=2)
    finally:
        broker.stop()


async def test_a_hand_back_does_nothing_once_the_lease_moved_on(
    database_url, kafka_bootstrap_servers, unique_name
):
    settings = settings_for(database_url, kafka_bootstrap_servers, unique_name, **SHORT_LEASE)
    async with scheduler_parts(settings) as parts:
        now = await db_now(parts.sessions)
        policy = {"max_attempts": 3, "initial_backoff_s": 0}
        row = job_row(next_run_at=now, timeout_s=TIMEOUT_S, retry_policy=policy)
        [job_id] = await insert_jobs(parts.sessions, [row])
        scheduler = parts.scheduler()
        await dispatch_batch(scheduler.dispatcher)
        [stale] = await executions(parts.sessions, job_id)
        # The lease expires unstarted and the job is claimed again: its token is now 2.
        await recovered(scheduler.recovery)
        await eventually(lambda: _published(scheduler.dispatcher), deadline_s=5)
        current = (await executions(parts.sessions, job_id))[-1]
        assert current.lease_version == 2

        async def hand_back(dispatches):
            async with db.transaction(parts.sessions) as session:
                return await repository.hand_back(session, dispatches)

        # The stale claim's hand-back, and one naming the current execution with the old token.
        assert await hand_back([(stale.id, 1)]) == []
        assert await hand_back([(current.id, 1)]) == []
        stored = await job(parts.sessions, job_id)
        assert (stored.status, stored.lease_version) == (JobStatus.RUNNING, 2)
        statuses = [(e.id, e.status) for e in await executions(parts.sessions, job_id)]
        assert statuses == [(current.id, "DISPATCHED")]

        # With the current token it is handed back.
        assert await hand_back([(current.id, 2)]) == [job_id]
        assert (await job(parts.sessions, job_id)).status == JobStatus.SCHEDULED
        assert await executions(parts.sessions, job_id) == []
