"""The platform survives its broker: restarted empty, or gone while an executor shuts down.

Real scheduler and executor processes run over the test's database and a broker of the test's
own, which the test kills (SIGKILL) and starts again on the same port with nothing in it: no
topics, no messages, no committed offsets, no producer ids. The oracle is what a real HTTP
target received (each request carries the occurrence's idempotency key) and what the database
recorded: every job ran once, to completion, with its first attempt (a broker fault uses none
of a job's attempts), and the platform recovered by itself within a stated time.
"""

from __future__ import annotations

import asyncio
import collections
import signal
import time

import asyncpg
import httpx
from crash_platform import Platform, Target, dsn, insert_http_job, wait_assigned
from service_process import START_DEADLINE_S, Service, tail, wait_for

from libs.store import migrate
from schedctl import embedded

JOBS_PER_PHASE = 20
# After the broker is back, every job (those created while it was away included) completes
# within this: a producer rebuilt at the scheduler's next try (error backoff at most 1 s here),
# dispatches lost with the broker re-dispatched when their lease (3 s) expires.
RECOVERY_DEADLINE_S = 45
FAULT_SETTINGS = {"ERROR_BACKOFF_MAX_S": "1"}


def ready(service: Service) -> bool:
    port = service.events("service_started")[-1]["port"]
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


async def becomes(service: Service, wanted: bool, deadline_s: float) -> None:
    async def reached() -> bool:
        return await asyncio.to_thread(ready, service) is wanted

    await wait_for(reached, deadline_s, f"{service.name} /readyz {'200' if wanted else '503'}")


async def insert_jobs(conn: asyncpg.Connection, url: str, count: int) -> list:
    # One attempt each: a job that used an attempt on the fault would end FAILED.
    return [await insert_http_job(conn, url, max_attempts=1) for _ in range(count)]


async def test_a_broker_restarted_empty_stalls_nothing_and_costs_no_attempt(
    database_url, unique_name, serve_app, tmp_path
):
    broker = embedded.EmbeddedBroker(embedded.free_port(), log_path=tmp_path / "broker.log")
    broker.start()
    platform = Platform(
        database_url,
        broker.bootstrap_servers,
        f"{unique_name}.dispatch",
        tmp_path,
        partitions=2,
        settings=FAULT_SETTINGS,
    )
    target = Target()
    conn = await asyncpg.connect(dsn(database_url))
    try:
        async with serve_app(target.app()) as base_url:
            url = f"{base_url}/hook"
            scheduler = await asyncio.to_thread(
                platform.scheduler, "scheduler", DISPATCH_LEASE_S="3"
            )
            # Two executors, one partition each: one that sat silent on its partition after the
            # restart would leave half the jobs undone.
            executors = [
                await asyncio.to_thread(platform.executor, name) for name in ("first", "second")
            ]
            for executor in executors:
                await wait_assigned(executor, START_DEADLINE_S)
            jobs = await insert_jobs(conn, url, JOBS_PER_PHASE)
            await wait_for(lambda: completed(conn, jobs), 30, "the first jobs completed")

            broker.proc.send_signal(signal.SIGKILL)
            broker.proc.wait(10)
            broker.proc = None
            jobs += await insert_jobs(conn, url, JOBS_PER_PHASE)  # while the broker is away
            await becomes(scheduler, False, 20)

            broker.start()  # same port, nothing in it
            back_at = time.monotonic()
            jobs += await insert_jobs(conn, url, JOBS_PER_PHASE)
            await wait_for(lambda: completed(conn, jobs), RECOVERY_DEADLINE_S, "every job done")
            took_s = time.monotonic() - back_at
            await becomes(scheduler, True, 15)
            for executor in executors:
                await becomes(executor, True, 15)

        rows = await conn.fetch(
            "SELECT j.status, j.attempt, e.status AS execution, e.attempt AS tried "
            "FROM jobs j JOIN executions e ON e.job_id = j.id WHERE j.id = ANY($1)",
            jobs,
        )
        assert len(rows) == len(jobs), "one execution per job"
        assert {(r["status"], r["execution"], r["tried"]) for r in rows} == {
            ("COMPLETED", "SUCCEEDED", 1)
        }
        assert await conn.fetchval("SELECT count(*) FROM dead_letters") == 0
        keys = collections.Counter(h["idempotency-key"] for h, _ in target.requests)
        assert len(keys) == len(jobs) and set(keys.values()) == {1}, "each job ran once"
        # The scheduler backed off while the broker was away, instead of claiming and handing
        # back in a tight loop.
        handed_back = sum(e["count"] for e in scheduler.events("dispatch_handed_back"))
        assert handed_back <= 3 * JOBS_PER_PHASE, handed_back
        assert scheduler.events("producer_rebuilt")
        print(f"every job completed {took_s:.1f} s after the broker came back")
    finally:
        platform.stop_all()
        broker.stop()
        await conn.close()


async def completed(conn: asyncpg.Connection, jobs: list) -> bool:
    done = await conn.fetchval(
        "SELECT count(*) FROM jobs WHERE id = ANY($1) AND status IN ('COMPLETED', 'FAILED')", jobs
    )
    return done == len(jobs)


async def test_an_executor_stops_within_its_grace_with_broker_and_database_gone(
    unique_name, serve_app, tmp_path
):
    """Its own PostgreSQL and broker, both killed while its producer still holds a dead letter
    it could not publish and its outcome writer is stuck: SIGTERM ends the process within the
    grace period plus the fixed time for leaving (`shutdown.grace.s` + 10 s)."""
    postgres = embedded.EmbeddedPostgres(
        tmp_path / "pg", embedded.free_port(), log_path=tmp_path / "pg.log", for_tests=True
    )
    postgres.start()
    broker = embedded.EmbeddedBroker(embedded.free_port(), log_path=tmp_path / "broker.log")
    broker.start()
    database_url = postgres.url
    await asyncio.to_thread(migrate.upgrade, database_url)
    grace_s = 2
    platform = Platform(
        database_url,
        broker.bootstrap_servers,
        f"{unique_name}.dispatch",
        tmp_path,
        settings={**FAULT_SETTINGS, "SHUTDOWN_GRACE_S": str(grace_s)},
    )
    target = Target(hold_first=True, held_status=400)  # held, then refused: a dead letter
    conn = await asyncpg.connect(dsn(database_url))
    try:
        async with serve_app(target.app()) as base_url:
            await asyncio.to_thread(platform.scheduler, "scheduler")
            executor = await asyncio.to_thread(platform.executor, "executor")
            await wait_assigned(executor, START_DEADLINE_S)
            await insert_http_job(conn, f"{base_url}/hook", timeout_s=60)

            async def request_arrived() -> bool:
                return len(target.requests) >= 1

            await wait_for(request_arrived, 15, "the attempt's request")
            kill(broker.proc)
            target.release.set()

            async def dead_lettered() -> bool:
                return await conn.fetchval("SELECT count(*) FROM dead_letters") == 1

            await wait_for(dead_lettered, 15, "the dead letter stored, its publish pending")
            await conn.close()
            kill(postgres.proc)
            stopping_at = time.monotonic()
            executor.proc.send_signal(signal.SIGTERM)
            bound_s = grace_s + 10 + 3  # and 3 s for the process itself to start and end
            code = await asyncio.to_thread(executor.proc.wait, bound_s + 30)
            took_s = time.monotonic() - stopping_at
        assert took_s <= bound_s, f"{took_s:.1f} s: {tail(executor)}"
        assert code in (0, -signal.SIGTERM), tail(executor)
        print(f"exited {took_s:.1f} s after SIGTERM with its database and broker gone")
    finally:
        target.release.set()
        platform.stop_all()
        broker.proc = broker.proc if broker.proc and broker.proc.poll() is None else None
        broker.stop()
        postgres.proc = postgres.proc if postgres.proc and postgres.proc.poll() is None else None
        postgres.stop()


def kill(proc) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
