"""An executor process killed in the middle of a job loses nothing, and one stopped with SIGTERM
finishes its job before it leaves.

Real `python -m scheduler_service` and `python -m executor_service` processes run against the
test's database and broker; an `http` job calls a real HTTP server on loopback that records
every request. SIGKILL: the first request is held unanswered, the executor is killed, a second
executor joins the group; the lease expires, lease recovery marks the attempt LOST and
re-dispatches it, and the second executor completes it, the target seeing both attempts under
one idempotency key. SIGTERM: the executor lets the running attempt finish, records it, removes
its node row and exits cleanly.
"""

from __future__ import annotations

import asyncio
import signal
import time

import asyncpg
from crash_platform import (
    SHUTDOWN_GRACE_S,
    Platform,
    Target,
    dsn,
    insert_http_job,
    wait_assigned,
)
from service_process import START_DEADLINE_S, tail, wait_for

from libs.security import webhooks

# --- the tests ---------------------------------------------------------------------------------


async def test_a_killed_executor_loses_its_attempt_and_a_successor_completes_the_occurrence(
    database_url, kafka_bootstrap_servers, unique_name, serve_app, tmp_path
):
    platform = Platform(database_url, kafka_bootstrap_servers, f"{unique_name}.dispatch", tmp_path)
    target = Target(hold_first=True)
    conn = await asyncpg.connect(dsn(database_url))
    try:
        async with serve_app(target.app()) as base_url:
            try:
                await asyncio.to_thread(platform.scheduler, "scheduler")
                victim = await asyncio.to_thread(platform.executor, "victim")
                await wait_assigned(victim, START_DEADLINE_S)
                job_id = await insert_http_job(conn, f"{base_url}/hook")

                async def first_request_arrived() -> bool:
                    return len(target.requests) >= 1

                await wait_for(first_request_arrived, 15, "the first attempt's request")
                victim.proc.send_signal(signal.SIGKILL)
                victim.proc.wait(10)
                killed_at = time.monotonic()
                survivor = await asyncio.to_thread(platform.executor, "survivor")

                async def job_finished() -> bool:
                    status = await conn.fetchval("SELECT status FROM jobs WHERE id = $1", job_id)
                    return status in ("COMPLETED", "FAILED")

                await wait_for(job_finished, 45, "the job finished")
                took_s = time.monotonic() - killed_at
            finally:
                # The held request's handler must end for the server to stop.
                target.release.set()

        job = await conn.fetchrow("SELECT status, run_count FROM jobs WHERE id = $1", job_id)
        executions = await conn.fetch(
            "SELECT id, attempt, status, error_kind, scheduled_for, worker FROM executions "
            "WHERE job_id = $1 ORDER BY attempt",
            job_id,
        )
        assert (job["status"], job["run_count"]) == ("COMPLETED", 1), (job, executions)
        assert [(e["attempt"], e["status"], e["error_kind"], e["worker"]) for e in executions] == [
            (1, "LOST", "lease_expired", "victim"),
            (2, "SUCCEEDED", None, "survivor"),
        ]
        assert executions[0]["scheduled_for"] == executions[1]["scheduled_for"]

        # The target saw the occurrence twice, under one key it can deduplicate on.
        assert len(target.requests) == 2
        keys = {(h["idempotency-key"], h[webhooks.ID_HEADER]) for h, _ in target.requests}
        assert len(keys) == 1
        idempotency_key, webhook_id = keys.pop()
        assert idempotency_key == webhook_id
        assert {body for _, body in target.requests} == {b'{"report":"nightly"}'}
        assert target.answered == 1
        # The victim's message, never committed, was redelivered to the survivor, whose claim
        # found its execution started already: it was skipped, not run a second time.
        skipped = [e["execution_id"] for e in survivor.events("dispatch_skipped")]
        assert skipped == [str(executions[0]["id"])]
        print(f"completed {took_s:.1f} s after the kill")
    finally:
        platform.stop_all()
        await conn.close()


async def test_sigterm_lets_the_running_attempt_finish_and_removes_the_node(
    database_url, kafka_bootstrap_servers, unique_name, serve_app, tmp_path
):
    platform = Platform(database_url, kafka_bootstrap_servers, f"{unique_name}.dispatch", tmp_path)
    target = Target(delay_s=1.0)
    conn = await asyncpg.connect(dsn(database_url))
    try:
        async with serve_app(target.app()) as base_url:
            await asyncio.to_thread(platform.scheduler, "scheduler")
            executor = await asyncio.to_thread(platform.executor, "leaving")
            await wait_assigned(executor, START_DEADLINE_S)
            assert await conn.fetchval("SELECT count(*) FROM nodes WHERE node_id = 'leaving'") == 1
            job_id = await insert_http_job(conn, f"{base_url}/hook")

            async def request_arrived() -> bool:
                return len(target.requests) >= 1

            await wait_for(request_arrived, 15, "the attempt's request")
            stopping_at = time.monotonic()
            executor.proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(executor.proc.wait, SHUTDOWN_GRACE_S + 5)
            took_s = time.monotonic() - stopping_at

        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert code in (0, -signal.SIGTERM), tail(executor)
        assert took_s < SHUTDOWN_GRACE_S
        execution = await conn.fetchrow(
            "SELECT status, worker, finished_at FROM executions WHERE job_id = $1", job_id
        )
        assert (execution["status"], execution["worker"]) == ("SUCCEEDED", "leaving")
        job = await conn.fetchrow("SELECT status, run_count FROM jobs WHERE id = $1", job_id)
        assert (job["status"], job["run_count"]) == ("COMPLETED", 1)
        assert target.answered == 1 and len(target.requests) == 1
        assert await conn.fetchval("SELECT count(*) FROM nodes WHERE node_id = 'leaving'") == 0
        assert executor.events("executor_stopped")[-1]["unfinished"] == 0
        print(f"exited with {code} {took_s:.1f} s after SIGTERM")
    finally:
        platform.stop_all()
        await conn.close()
