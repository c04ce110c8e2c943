"""Executors joining and leaving hand partitions over promptly, even while attempts run.

A joining member gets its share without the others waiting for the attempts they run, and a
member stopped with SIGTERM leaves the group at once, so the jobs due on its partitions are run
by the others while its own attempt goes on within its grace period. On the embedded broker a
rebalance itself takes about 5 s (it holds a join that long); members learn of one within their
heartbeat interval (1 s).
"""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import datetime

import asyncpg
from crash_platform import SHUTDOWN_GRACE_S, Platform, Target, dsn, insert_http_job
from service_process import START_DEADLINE_S, Service, tail, wait_for

PARTITIONS = 2
HELD_TIMEOUT_S = 60  # the held attempt runs until the test releases it
# A member used to hold its partitions until its running attempts ended, up to the grace
# period (10 s here), both when draining them at a rebalance and when shutting down; then the
# rebalance's own 5 s: 15 s at least. These bounds are well under that.
HAND_OVER_S = 12


def owns(executor: Service, partitions: int) -> bool:
    assigned = executor.events("partitions_assigned")
    return bool(assigned) and len(assigned[-1]["partitions"]) == partitions


def logged_at(entry: dict) -> datetime:
    return datetime.fromisoformat(entry["timestamp"])


async def test_partitions_move_without_waiting_for_running_attempts(
    database_url, kafka_bootstrap_servers, unique_name, serve_app, tmp_path
):
    platform = Platform(
        database_url,
        kafka_bootstrap_servers,
        f"{unique_name}.dispatch",
        tmp_path,
        partitions=PARTITIONS,
    )
    target = Target(hold_first=True)
    conn = await asyncpg.connect(dsn(database_url))
    try:
        async with serve_app(target.app()) as base_url:
            url = f"{base_url}/hook"
            await asyncio.to_thread(platform.scheduler, "scheduler")
            first = await asyncio.to_thread(platform.executor, "first")

            async def first_owns_all() -> bool:
                return owns(first, PARTITIONS)

            await wait_for(first_owns_all, START_DEADLINE_S, "first assigned")
            held = await insert_http_job(conn, url, timeout_s=HELD_TIMEOUT_S)

            async def held_arrived() -> bool:
                return len(target.requests) >= 1

            await wait_for(held_arrived, 15, "the held attempt's request")

            # A member joins while the first runs an attempt.
            second = await asyncio.to_thread(platform.executor, "second")

            async def second_owns(count: int) -> bool:
                return owns(second, count)

            await wait_for(lambda: second_owns(1), HAND_OVER_S, "the joiner's share")
            joined = second.events("configuration_loaded")[0]
            joined_s = logged_at(second.events("partitions_assigned")[-1]) - logged_at(joined)
            assert joined_s.total_seconds() < HAND_OVER_S, joined_s

            # The first leaves while its attempt is still held.
            first.proc.send_signal(signal.SIGTERM)
            leaving_at = time.monotonic()
            await wait_for(lambda: second_owns(PARTITIONS), HAND_OVER_S, "the leaver's share")
            handed_s = time.monotonic() - leaving_at
            jobs = [await insert_http_job(conn, url) for _ in range(6)]

            async def done() -> bool:
                finished = await conn.fetchval(
                    "SELECT count(*) FROM jobs WHERE id = ANY($1) AND status = 'COMPLETED'", jobs
                )
                return finished == len(jobs)

            await wait_for(done, HAND_OVER_S, "the jobs due after the leave")
            assert first.proc.poll() is None, "the leaver is still finishing its attempt"
            target.release.set()  # answered 503: retried, by the second
            code = await asyncio.to_thread(first.proc.wait, SHUTDOWN_GRACE_S + 10)

            async def held_done() -> bool:
                status = await conn.fetchval("SELECT status FROM jobs WHERE id = $1", held)
                return status == "COMPLETED"

            await wait_for(held_done, 30, "the held job completed")
        assert code in (0, -signal.SIGTERM), tail(first)
        workers = await conn.fetch(
            "SELECT DISTINCT worker FROM executions WHERE job_id = ANY($1)", jobs
        )
        assert {w["worker"] for w in workers} == {"second"}
        print(
            f"the joiner's share came {joined_s.total_seconds():.1f} s after it started, "
            f"the leaver's {handed_s:.1f} s after SIGTERM"
        )
    finally:
        target.release.set()
        platform.stop_all()
        await conn.close()
