"""Delivery guarantees of the executor on a real broker and database: a duplicate delivery runs
nothing, a malformed message is skipped without stalling its partition, offsets reach the end
only once outcomes are stored, an outcome whose job moved on is fenced off (and not logged as a
finished execution), and executors joining and sharing the partitions run every occurrence
exactly once."""

from __future__ import annotations

import asyncio
import collections
import uuid
from datetime import timedelta

import structlog.testing
from aiokafka import TopicPartition
from executor_support import (
    Target,
    attempt_under_way,
    executor_settings,
    platform,
    running_executor,
)
from scheduler_support import db_now, eventually, executions, insert_jobs, job, job_row, once

from libs.contracts import messages
from libs.infra import kafka
from libs.scheduling.states import ExecutionStatus, JobStatus


async def committed_to_end(p, settings) -> bool:
    """Whether the executors' group has committed every partition of the dispatch topic up to
    its end."""
    consumer = kafka.create_consumer(settings, group_id=settings.consumer_group)
    await kafka.start(consumer)
    try:
        topic = settings.kafka_dispatch_topic
        partitions = [TopicPartition(topic, n) for n in consumer.partitions_for_topic(topic)]
        ends = await consumer.end_offsets(partitions)
        for partition in partitions:
            if (await consumer.committed(partition) or 0) < ends[partition]:
                return False
        return True
    finally:
        await consumer.stop()


async def claimed_as_a_scheduler_does(p, url: str) -> tuple[uuid.UUID, uuid.UUID, bytes]:
    """An http job to `url`, claimed as a scheduler claims it (RUNNING, its execution
    DISPATCHED) but not published: its id, its execution's and its dispatch message."""
    later = await db_now(p.sessions) + timedelta(hours=1)  # no scheduler claims it
    [job_id] = await insert_jobs(
        p.sessions,
        [job_row(next_run_at=later, schedule_spec=once(later), type="http",
                 payload={"url": url})],
    )  # fmt: skip
    [claimed] = await p.sql(
        "UPDATE jobs SET status = 'RUNNING', lease_version = 1, "
        "lease_expires_at = now() + interval '1 minute' WHERE id = :id "
        "RETURNING owner_id, payload, next_run_at, timeout_s",
        id=job_id,
    )
    [execution] = await p.sql(
        "INSERT INTO executions (job_id, scheduled_for, attempt, lease_version, status) "
        "VALUES (:id, :at, 1, 1, 'DISPATCHED') RETURNING id",
        id=job_id,
        at=claimed.next_run_at,
    )
    dispatch = messages.DispatchMessage(
        execution_id=execution.id,
        job_id=job_id,
        owner_id=claimed.owner_id,
        lease_version=1,
        type="http",
        payload=claimed.payload,
        scheduled_for=claimed.next_run_at,
        attempt=1,
        deadline=later,
        timeout_s=claimed.timeout_s,
        trace_id=messages.new_trace_id(),
    )
    return job_id, execution.id, kafka.encode(messages.dispatch_envelope(dispatch, producer="test"))


async def test_a_redelivered_dispatch_runs_nothing_twice(
    database_url, kafka_bootstrap_servers, unique_name, serve_app
):
    async with (
        Target(200).serving(serve_app) as target,
        platform(database_url, kafka_bootstrap_servers, unique_name) as p,
    ):
        settings = p.executor_settings
        job_id = await p.due_now(type="http", payload={"url": target.url})

        async def completed():
            return (await job(p.sessions, job_id)).status == JobStatus.COMPLETED

        await eventually(completed, what="the job completing")
        # Read the dispatch back and deliver it again, as the broker may after a rebalance.
        reader = kafka.create_consumer(
            settings, settings.kafka_dispatch_topic, group_id=f"{unique_name}-reader"
        )
        await kafka.start(reader)
        try:
            records = []

            async def read():
                batch = await reader.getmany(timeout_ms=200)
                records.extend(r for rs in batch.values() for r in rs)
                return records

            [record] = await eventually(read, what="the dispatch")
        finally:
            await reader.stop()
        for _ in range(2):
            acks = await p.producer.send_all(
                settings.kafka_dispatch_topic,
                [(record.key.decode(), record.value)], timeout_s=10,
            )  # fmt: skip
            assert not isinstance(acks[0], Exception)

        async def skipped():
            metric = p.executors[0].engine.metrics.skipped.labels("duplicate")
            return metric._value.get() >= 2

        await eventually(skipped, what="both copies skipped")
        await eventually(lambda: committed_to_end(p, settings), what="offsets at the end")
        assert len(target.seen) == 1
        assert len(await executions(p.sessions, job_id)) == 1


async def test_a_malformed_message_is_skipped_and_the_partition_goes_on(
    database_url, kafka_bootstrap_servers, unique_name
):
    async with platform(
        database_url,
        kafka_bootstrap_servers,
        unique_name,
        scheduler={"kafka_dispatch_partitions": 1},
    ) as p:
        settings = p.executor_settings
        acks = await p.producer.send_all(
            settings.kafka_dispatch_topic, [("junk", b"not json")], timeout_s=10
        )
        assert not isinstance(acks[0], Exception)
        job_id = await p.due_now()

        async def completed():
            return (await job(p.sessions, job_id)).status == JobStatus.COMPLETED

        await eventually(completed, what="the job after the junk completing")
        assert p.executors[0].engine.metrics.skipped.labels("malformed")._value.get() == 1
        await eventually(lambda: committed_to_end(p, settings), what="offsets past the junk")


async def test_an_outcome_whose_job_moved_on_is_fenced_off(
    database_url, kafka_bootstrap_servers, unique_name, serve_app
):
    with structlog.testing.capture_logs() as logs:
        async with attempt_under_way(
            database_url, kafka_bootstrap_servers, unique_name, serve_app
        ) as (p, target, job_id):
            # What lease recovery does to an executor that stalled: the execution is LOST and
            # the job, under a new fencing token, belongs to someone else.
            later = await db_now(p.sessions) + timedelta(hours=1)
            await p.sql(
                "UPDATE executions SET status = 'LOST', finished_at = now() WHERE job_id = :j",
                j=job_id,
            )
            await p.sql(
                "UPDATE jobs SET status = 'SCHEDULED', lease_version = lease_version + 1, "
                "next_run_at = :later, lease_expires_at = NULL WHERE id = :j",
                j=job_id,
                later=later,
            )
            target.hold.set()
            fenced = p.executors[0].engine.metrics.fenced_off

            async def stored():
                return fenced._value.get() >= 1

            await eventually(stored, what="the stale outcome reaching the database")
            row = await job(p.sessions, job_id)
            assert (row.status, row.lease_version, row.next_run_at) == (
                JobStatus.SCHEDULED,
                2,
                later,
            )
            assert row.run_count == 0
            [execution] = await executions(p.sessions, job_id)
            assert execution.status == ExecutionStatus.LOST

    # Logged as refused, never as a finished execution.
    events = [entry["event"] for entry in logs]
    assert "outcome_fenced_off" in events
    assert "execution_finished" not in events


async def test_executors_joining_share_the_work_and_run_each_occurrence_once(
    database_url, kafka_bootstrap_servers, unique_name
):
    async with platform(
        database_url,
        kafka_bootstrap_servers,
        unique_name,
        scheduler={"kafka_dispatch_partitions": 4},
    ) as p:
        now = await db_now(p.sessions)
        # A stream of occurrences over four seconds; a second executor joins in the middle,
        # which makes the group rebalance while work is in hand.
        rows = [
            job_row(next_run_at=now + timedelta(milliseconds=10 * i), schedule_spec=once(now))
            for i in range(400)
        ]
        ids = await insert_jobs(p.sessions, rows)
        second = executor_settings(
            p.scheduler_settings, consumer_group=p.executor_settings.consumer_group
        )
        async with running_executor(second):

            async def all_done():
                [row] = await p.sql(
                    "SELECT count(*) AS n FROM jobs WHERE id = ANY(:ids) AND status = 'COMPLETED'",
                    ids=ids,
                )
                return row.n == len(ids)

            await eventually(all_done, deadline_s=60, what="every job completed")
            more = [
                job_row(next_run_at=await db_now(p.sessions), schedule_spec=once(now))
                for _ in range(200)
            ]
            ids += await insert_jobs(p.sessions, more)
            await eventually(all_done, deadline_s=60, what="the later jobs completed")
        rows = await p.sql(
            "SELECT job_id, status, worker FROM executions WHERE job_id = ANY(:ids)", ids=ids
        )
        per_job = collections.Counter(r.job_id for r in rows)
        assert set(per_job.values()) == {1}
        assert len(per_job) == len(ids)
        assert {r.status for r in rows} == {ExecutionStatus.SUCCEEDED}
        assert {r.worker for r in rows} == {p.executor_settings.node_id, second.node_id}


async def test_a_slow_target_holds_only_its_own_slot_and_in_flight_is_bounded(
    database_url, kafka_bootstrap_servers, unique_name, serve_app
):
    slow = Target(200)
    slow.hold = asyncio.Event()
    async with (
        slow.serving(serve_app),
        platform(
            database_url,
            kafka_bootstrap_servers,
            unique_name,
            scheduler={"kafka_dispatch_partitions": 1},
            executor={"max_in_flight": 3},
        ) as p,
    ):
        engine = p.executors[0].engine
        now = await db_now(p.sessions)
        held = await insert_jobs(
            p.sessions,
            [
                job_row(next_run_at=now, schedule_spec=once(now), type="http",
                        payload={"url": slow.url})
                for _ in range(2)
            ],
        )  # fmt: skip

        async def both_held():
            return len(slow.seen) == 2

        await eventually(both_held, what="both slow requests in flight")
        # Behind them on the same partition: one slot is left, so these run one at a time
        # while the slow ones hold theirs.
        quick = await insert_jobs(
            p.sessions, [job_row(next_run_at=now, schedule_spec=once(now)) for _ in range(5)]
        )
        seen_in_flight = []

        async def quick_done():
            seen_in_flight.append(engine.in_flight)
            [row] = await p.sql(
                "SELECT count(*) AS n FROM jobs WHERE id = ANY(:ids) AND status = 'COMPLETED'",
                ids=quick,
            )
            return row.n == len(quick)

        await eventually(quick_done, what="the quick jobs completing past the slow ones")
        assert max(seen_in_flight) <= 3
        assert {(await job(p.sessions, j)).status for j in held} == {JobStatus.RUNNING}
        slow.hold.set()
        for job_id in held:

            async def completed(job_id=job_id):
                return (await job(p.sessions, job_id)).status == JobStatus.COMPLETED

            await eventually(completed, what="the slow jobs completing once released")
        executed = engine.metrics.executions
        assert executed.labels("http", "succeeded")._value.get() == 2
        assert executed.labels("log", "succeeded")._value.get() == 5
        [node] = await p.sql(
            "SELECT * FROM nodes WHERE node_id = :n", n=p.executor_settings.node_id
        )
        assert node.service == "executor_service"
        assert node.metadata["max_in_flight"] == 3


async def test_copies_of_a_dispatch_in_one_fetch_run_it_once(
    database_url, kafka_bootstrap_servers, unique_name, serve_app
):
    """The broker delivers a message twice and both copies arrive in the same fetch: the claim
    of that batch starts the execution once, and the copy is skipped."""
    async with (
        Target(200).serving(serve_app) as target,
        platform(database_url, kafka_bootstrap_servers, unique_name) as p,
    ):
        settings = p.executor_settings
        job_id, execution_id, value = await claimed_as_a_scheduler_does(p, target.url)
        acks = await p.producer.send_all(
            settings.kafka_dispatch_topic, [(str(job_id), value)] * 2, timeout_s=10
        )
        assert not any(isinstance(a, Exception) for a in acks)

        async def completed():
            return (await job(p.sessions, job_id)).status == JobStatus.COMPLETED

        await eventually(completed, what="the job completing")
        await eventually(lambda: committed_to_end(p, settings), what="offsets at the end")
        assert len(target.seen) == 1
        [stored] = await executions(p.sessions, job_id)
        assert (stored.id, stored.status) == (execution_id, ExecutionStatus.SUCCEEDED)
        assert p.executors[0].engine.metrics.skipped.labels("duplicate")._value.get() == 1


async def test_a_job_is_dispatched_ahead_and_started_when_it_is_due(
    database_url, kafka_bootstrap_servers, unique_name, serve_app
):
    """With a lookahead, the scheduler claims and publishes a job before it is due and the
    executor claims it at once, but the attempt starts when the job is due, not before."""
    lookahead_s = 1.0
    async with (
        Target(200).serving(serve_app) as target,
        platform(
            database_url,
            kafka_bootstrap_servers,
            unique_name,
            scheduler={"dispatch_lookahead_s": lookahead_s},
        ) as p,
    ):
        due = await db_now(p.sessions) + timedelta(seconds=1.5)
        [job_id] = await insert_jobs(
            p.sessions,
            [job_row(next_run_at=due, schedule_spec=once(due), type="http",
                     payload={"url": target.url})],
        )  # fmt: skip
        await asyncio.wait_for(target.arrived.wait(), timeout=30)
        [execution] = await executions(p.sessions, job_id)
        [seen] = target.seen
    # Claimed when the job entered the window, well before it was due...
    assert execution.created_at <= due - timedelta(seconds=lookahead_s / 2)
    # ...started by the executor's claim as of its due time, and run no earlier.
    assert execution.started_at == due
    assert due <= seen.at < due + timedelta(seconds=lookahead_s / 2)
