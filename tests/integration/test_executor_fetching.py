"""When executors fetch, on a real broker and database: an idle executor leaves the broker alone
until a scheduler says it published (NOTIFY), and then fetches at once."""

from __future__ import annotations

import asyncio
import time

from executor_support import Target, platform
from scheduler_support import eventually, executions, job
from test_executor_delivery import claimed_as_a_scheduler_does

from libs.contracts import channels
from libs.infra import notifications
from libs.scheduling.states import ExecutionStatus, JobStatus

NEVER_S = 300.0  # the idle interval: no round starts without a notification within a test
QUIET_S = 1.5  # what an idle executor is watched for


async def idle(p) -> None:
    """Wait until the executor listens for notifications and its start round is over."""
    [running] = p.executors

    async def quiet() -> bool:
        return running.listener.listening.is_set() and not running.engine.fetching

    await eventually(quiet, what="the executor listening, and idle")


async def test_an_idle_executor_fetches_only_when_told_that_dispatches_were_published(
    database_url, kafka_bootstrap_servers, unique_name, serve_app
):
    async with (
        Target(200).serving(serve_app) as target,
        platform(
            database_url,
            kafka_bootstrap_servers,
            unique_name,
            executor={"fetch_idle_interval_s": NEVER_S},
        ) as p,
    ):
        await idle(p)
        topic = p.executor_settings.kafka_dispatch_topic
        job_id, execution_id, value = await claimed_as_a_scheduler_does(p, target.url)
        [ack] = await p.producer.send_all(topic, [(str(job_id), value)], timeout_s=10)
        assert not isinstance(ack, Exception)

        # Not told, or told of another deployment's topic: the message waits, unfetched.
        await notifications.notify(p.sessions, channels.DISPATCHES_PUBLISHED, f"{topic}.other")
        await asyncio.sleep(QUIET_S)
        assert not p.executors[0].engine.fetching
        [stored] = await executions(p.sessions, job_id)
        assert stored.status == ExecutionStatus.DISPATCHED
        assert target.seen == []

        told = time.monotonic()
        await notifications.notify(p.sessions, channels.DISPATCHES_PUBLISHED, topic)

        async def completed() -> bool:
            return (await job(p.sessions, job_id)).status == JobStatus.COMPLETED

        await eventually(completed, what="the job completing once told")
        assert time.monotonic() - told < 5
        assert len(target.seen) == 1
        [stored] = await executions(p.sessions, job_id)
        assert (stored.id, stored.status) == (execution_id, ExecutionStatus.SUCCEEDED)

        async def round_over() -> bool:
            return not p.executors[0].engine.fetching

        await eventually(round_over, what="the round over again")


async def test_a_job_due_now_reaches_an_idle_executor_through_the_schedulers_notification(
    database_url, kafka_bootstrap_servers, unique_name
):
    async with platform(
        database_url,
        kafka_bootstrap_servers,
        unique_name,
        executor={"fetch_idle_interval_s": NEVER_S},
    ) as p:
        await idle(p)
        job_id = await p.due_now()

        async def completed() -> bool:
            return (await job(p.sessions, job_id)).status == JobStatus.COMPLETED

        await eventually(completed, deadline_s=10, what="the job completing")
        [stored] = await executions(p.sessions, job_id)
        assert stored.status == ExecutionStatus.SUCCEEDED
