"""The executor end to end on a real database, broker and loopback HTTP servers, with a real
scheduler dispatching: each built-in type runs, failures are classified and retried or dead-
lettered, duplicates run once, stale outcomes are fenced off, and recurring jobs of every
schedule kind run their sequence and stop at their end."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from executor_support import Target, platform
from scheduler_support import db_now, eventually, executions, insert_jobs, job, job_row

from libs.contracts import messages
from libs.infra import kafka
from libs.scheduling import schedule
from libs.scheduling.states import ExecutionStatus, JobStatus
from libs.security import webhooks

FAST_RETRY = {"max_attempts": 3, "initial_backoff_s": 0.2, "multiplier": 2, "max_backoff_s": 1}


def spec(value: schedule.Schedule) -> dict:
    return schedule.normalise(value, datetime.now(UTC)).model_dump(mode="json")


async def finished(p, job_id: uuid.UUID, *statuses: JobStatus):
    async def check():
        row = await job(p.sessions, job_id)
        return row if row.status in statuses else None

    return await eventually(check, what=f"job {job_id} in {statuses}")


async def test_a_log_job_runs_once_and_completes(
    database_url, kafka_bootstrap_servers, unique_name
):
    async with platform(database_url, kafka_bootstrap_servers, unique_name) as p:
        job_id = await p.due_now(type="log")
        row = await finished(p, job_id, JobStatus.COMPLETED)
        assert row.run_count == 1
        assert row.next_run_at is None and row.lease_expires_at is None
        assert row.last_finished_at is not None
        [execution] = await executions(p.sessions, job_id)
        assert execution.status == ExecutionStatus.SUCCEEDED
        assert execution.worker == p.executor_settings.node_id
        assert execution.started_at <= execution.finished_at


async def test_an_http_job_is_signed_and_carries_the_occurrence_key(
    database_url, kafka_bootstrap_servers, unique_name, serve_app
):
    async with (
        Target(204).serving(serve_app) as target,
        platform(database_url, kafka_bootstrap_servers, unique_name) as p,
    ):
        payload = {"url": target.url, "method": "POST", "body": {"n": 1}, "expectedStatus": ["204"]}
        job_id = await p.due_now(type="http", payload=payload)
        row = await finished(p, job_id, JobStatus.COMPLETED)
        [seen] = target.seen
        assert json.loads(seen.body) == {"n": 1}
        assert seen.headers["webhook-id"] == seen.headers["idempotency-key"]
        [secret] = await p.sql(
            "SELECT secret FROM webhook_secrets WHERE owner_id = :o", o=row.owner_id
        )
        webhooks.verify(
            secret.secret, seen.headers, seen.body, now=int(datetime.now(UTC).timestamp())
        )


async def test_a_kafka_job_publishes_its_payload(
    database_url, kafka_bootstrap_servers, unique_name
):
    topic = f"{unique_name}.out"
    async with platform(database_url, kafka_bootstrap_servers, unique_name) as p:
        consumer = kafka.create_consumer(p.executor_settings, topic, group_id=f"{unique_name}-r")
        payload = {"topic": topic, "key": "k-1", "value": {"a": [1, 2]}, "headers": {"h": "v"}}
        job_id = await p.due_now(type="kafka", payload=payload)
        await finished(p, job_id, JobStatus.COMPLETED)
        await kafka.start(consumer)
        try:
            records = []

            async def received():
                batch = await consumer.getmany(timeout_ms=200)
                records.extend(r for rs in batch.values() for r in rs)
                return records

            [record] = await eventually(received, what="the published message")
        finally:
            await consumer.stop()
        assert json.loads(record.value) == {"a": [1, 2]}
        assert record.key == b"k-1"
        headers = dict(record.headers)
        assert headers["h"] == b"v"
        assert headers["idempotency-key"].startswith(b"occ_")


async def test_a_kafka_job_may_not_write_to_the_platform_topics(
    database_url, kafka_bootstrap_servers, unique_name
):
    async with platform(database_url, kafka_bootstrap_servers, unique_name) as p:
        payload = {"topic": p.scheduler_settings.kafka_dispatch_topic, "value": {"forged": True}}
        job_id = await p.due_now(type="kafka", payload=payload)
        await finished(p, job_id, JobStatus.FAILED)
        [execution] = await executions(p.sessions, job_id)
        assert execution.error_kind == "topic_not_allowed"


async def test_transient_failures_are_retried_with_backoff_under_one_key(
    database_url, kafka_bootstrap_servers, unique_name, serve_app
):
    async with (
        Target(503, 429, 200).serving(serve_app) as target,
        platform(database_url, kafka_bootstrap_servers, unique_name) as p,
    ):
        job_id = await p.due_now(type="http", payload={"url": target.url}, retry_policy=FAST_RETRY)
        row = await finished(p, job_id, JobStatus.COMPLETED)
        runs = await executions(p.sessions, job_id)
        assert [(e.attempt, e.status, e.error_kind) for e in runs] == [
            (1, ExecutionStatus.FAILED, "http_5xx"),
            (2, ExecutionStatus.FAILED, "http_429"),
            (3, ExecutionStatus.SUCCEEDED, None),
        ]
        assert row.run_count == 1
        assert {s.headers["idempotency-key"] for s in target.seen} == {
            target.seen[0].headers["webhook-id"]
        }
        # Full jitter: each retry is scheduled within [0, cap) of the failure, cap = 0.2 * 2^(n-1),
        # and dispatched again through Kafka. The scheduler's sleep adds at most its cap (0.2 s).
        for failed, retry, cap in ((runs[0], runs[1], 0.2), (runs[1], runs[2], 0.4)):
            assert retry.scheduled_for == runs[0].scheduled_for  # the same occurrence
            waited = (retry.started_at - failed.finished_at).total_seconds()
            assert 0 <= waited < cap + 1.0


async def test_permanent_failures_are_dead_lettered_at_once(
    database_url, kafka_bootstrap_servers, unique_name, serve_app
):
    async with (
        Target(404).serving(serve_app) as target,
        platform(database_url, kafka_bootstrap_servers, unique_name) as p,
    ):
        dead = kafka.create_consumer(
            p.executor_settings,
            p.executor_settings.kafka_dead_letter_topic,
            group_id=f"{unique_name}-dlq",
        )
        job_id = await p.due_now(type="http", payload={"url": target.url}, retry_policy=FAST_RETRY)
        row = await finished(p, job_id, JobStatus.FAILED)
        [execution] = await executions(p.sessions, job_id)
        assert (execution.status, execution.error_kind) == (ExecutionStatus.FAILED, "http_4xx")
        assert len(target.seen) == 1
        [letter] = await p.sql("SELECT * FROM dead_letters WHERE job_id = :j", j=job_id)
        assert (letter.reason, letter.attempts, letter.execution_id) == (
            "permanent",
            1,
            execution.id,
        )
        assert letter.owner_id == row.owner_id
        await kafka.start(dead)
        try:
            found = []

            async def published():
                batch = await dead.getmany(timeout_ms=200)
                for records in batch.values():
                    for record in records:
                        envelope = kafka.decode(record.value)
                        found.append(envelope)
                return found

            [envelope] = await eventually(published, what="the dead-letter message")
        finally:
            await dead.stop()
        assert envelope.type == messages.DEAD_LETTER_TYPE
        assert envelope.payload["dead_letter_id"] == str(letter.id)
        assert envelope.payload["reason"] == "permanent"


async def test_exhausted_retries_dead_letter_and_a_recurring_job_moves_on(
    database_url, kafka_bootstrap_servers, unique_name, serve_app
):
    async with (
        Target(500).serving(serve_app) as target,
        platform(database_url, kafka_bootstrap_servers, unique_name) as p,
    ):
        now = await db_now(p.sessions)
        every_hour = spec(schedule.FixedRate(interval_s=3600, anchor=now))
        [job_id] = await insert_jobs(
            p.sessions,
            [
                job_row(
                    next_run_at=now,
                    schedule_spec=every_hour,
                    type="http",
                    payload={"url": target.url},
                    retry_policy={**FAST_RETRY, "max_attempts": 2},
                )
            ],
        )

        async def moved_on():
            row = await job(p.sessions, job_id)
            return row if row.status == JobStatus.SCHEDULED and row.run_count == 1 else None

        row = await eventually(moved_on, what="the job moving on to its next occurrence")
        assert row.next_run_at == now + timedelta(hours=1)
        assert row.attempt == 1
        assert [e.attempt for e in await executions(p.sessions, job_id)] == [1, 2]
        assert len(target.seen) == 2
        [letter] = await p.sql("SELECT * FROM dead_letters WHERE job_id = :j", j=job_id)
        assert (letter.reason, letter.attempts) == ("exhausted", 2)


async def test_a_job_past_its_timeout_is_cancelled_and_retried(
    database_url, kafka_bootstrap_servers, unique_name, serve_app
):
    target = Target(200)
    target.hold = asyncio.Event()
    async with (
        target.serving(serve_app),
        platform(database_url, kafka_bootstrap_servers, unique_name) as p,
    ):
        job_id = await p.due_now(
            type="http",
            payload={"url": target.url},
            timeout_s=1,
            retry_policy={**FAST_RETRY, "max_attempts": 2},
        )
        row = await finished(p, job_id, JobStatus.FAILED)
        target.hold.set()
        runs = await executions(p.sessions, job_id)
        assert [(e.status, e.error_kind) for e in runs] == [
            (ExecutionStatus.TIMED_OUT, "timeout"),
            (ExecutionStatus.TIMED_OUT, "timeout"),
        ]
        for e in runs:
            assert 1.0 <= (e.finished_at - e.started_at).total_seconds() < 3.0
        assert row.run_count == 1


async def test_a_payload_no_longer_valid_fails_without_a_retry(
    database_url, kafka_bootstrap_servers, unique_name
):
    async with platform(database_url, kafka_bootstrap_servers, unique_name) as p:
        job_id = await p.due_now(type="log", payload={"message": ""}, retry_policy=FAST_RETRY)
        await finished(p, job_id, JobStatus.FAILED)
        [execution] = await executions(p.sessions, job_id)
        assert execution.error_kind == "validation"
        assert "payload.message" in execution.error


async def test_recurring_jobs_of_every_kind_run_their_sequence_and_stop_at_their_end(
    database_url, kafka_bootstrap_servers, unique_name
):
    async with platform(database_url, kafka_bootstrap_servers, unique_name) as p:
        now = (await db_now(p.sessions)).replace(microsecond=0) + timedelta(seconds=1)
        rate = spec(schedule.FixedRate(interval_s=1, anchor=now, max_runs=3))
        cron = spec(schedule.Cron(expression="* * * * * ?", end_at=now + timedelta(seconds=2.5)))
        delay = spec(schedule.FixedDelay(delay_s=1, max_runs=3))
        daily = schedule.Calendar(
            every=1, unit="days", anchor=now - timedelta(days=3), timezone="Europe/London"
        )
        ids = await insert_jobs(
            p.sessions,
            [
                job_row(next_run_at=now, schedule_spec=rate),
                job_row(next_run_at=now, schedule_spec=cron),
                job_row(next_run_at=now, schedule_spec=delay),
                job_row(next_run_at=now, schedule_spec=spec(daily)),
            ],
        )
        rate_id, cron_id, delay_id, daily_id = ids
        for job_id in (rate_id, cron_id, delay_id):
            await finished(p, job_id, JobStatus.COMPLETED)

        runs = await executions(p.sessions, rate_id)
        assert [e.scheduled_for for e in runs] == [now + timedelta(seconds=n) for n in range(3)]
        assert (await job(p.sessions, rate_id)).run_count == 3

        runs = await executions(p.sessions, cron_id)
        assert [e.scheduled_for for e in runs] == [now + timedelta(seconds=n) for n in range(3)]

        runs = await executions(p.sessions, delay_id)
        assert len(runs) == 3
        for previous, following in itertools.pairwise(runs):
            assert following.scheduled_for == previous.finished_at + timedelta(seconds=1)

        async def daily_ran():
            row = await job(p.sessions, daily_id)
            return row if row.run_count == 1 and row.status == JobStatus.SCHEDULED else None

        row = await eventually(daily_ran, what="the calendar job's first run")
        expected = schedule.next_fire(daily, after=now, runs=1)
        assert row.next_run_at == expected
        assert (
            expected.astimezone(ZoneInfo("Europe/London")).time()
            == now.astimezone(ZoneInfo("Europe/London")).time()
        )
        assert (await executions(p.sessions, daily_id))[0].status == ExecutionStatus.SUCCEEDED


async def test_a_targets_retry_after_raises_the_backoff(
    database_url, kafka_bootstrap_servers, unique_name, serve_app
):
    target = Target(503, 200)
    target.headers = {"Retry-After": "2"}
    async with (
        target.serving(serve_app),
        platform(database_url, kafka_bootstrap_servers, unique_name) as p,
    ):
        policy = {**FAST_RETRY, "max_backoff_s": 60}  # FAST_RETRY's cap (1 s) would bound it
        job_id = await p.due_now(type="http", payload={"url": target.url}, retry_policy=policy)
        await finished(p, job_id, JobStatus.COMPLETED)
        failed, retried = await executions(p.sessions, job_id)
        # The policy alone would retry within 0.2 s; the target asked for 2 s.
        assert (retried.started_at - failed.finished_at).total_seconds() >= 2.0
