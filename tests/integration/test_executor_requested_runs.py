"""Runs a person asks for, end to end: the owner works through the job service's API while a
real scheduler and executor run the jobs against loopback targets. A FAILED job, fixed with
PATCH, runs again with `:run` (a one-time job completes, a recurring one carries on with its
schedule); a PAUSED job run with `:run` runs once, retries included, and is PAUSED again with
its regular occurrences not running; resumed during that run, it carries on with its schedule."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from executor_support import Target, owner_api, platform
from job_service_support import JobService
from scheduler_support import db_now, eventually, executions

from libs.scheduling.states import ExecutionStatus

FAST_RETRY = {"maxAttempts": 3, "initialBackoffSeconds": 0.2, "maxBackoffSeconds": 1}


async def until(api: JobService, job_id: str, condition: Callable[[dict], bool], what: str):
    """The job as the API shows it, once `condition` holds."""

    async def check() -> dict | None:
        response = await api.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        current = response.json()
        return current if condition(current) else None

    return await eventually(check, what=f"job {job_id}: {what}")


def in_status(*statuses: str) -> Callable[[dict], bool]:
    return lambda job: job["status"] in statuses


async def act(api: JobService, job: dict, action: str, **kwargs: Any) -> dict:
    response = await api.post(f"/v1/jobs/{job['id']}:{action}", **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


async def attempts(p, job_id: str) -> list[tuple[int, str]]:
    return [(e.attempt, e.status) for e in await executions(p.sessions, uuid.UUID(job_id))]


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_fixed_failed_jobs_run_again_when_run_now(
    database_url, kafka_bootstrap_servers, unique_name, serve_app, token_issuer
):
    broken, fixed = Target(400), Target(200)
    async with (
        broken.serving(serve_app),
        fixed.serving(serve_app),
        platform(database_url, kafka_bootstrap_servers, unique_name) as p,
        owner_api(database_url, token_issuer) as api,
    ):
        once = await api.created(
            name="once", type="http", payload={"url": broken.url}, schedule={"kind": "once"}
        )
        recurring = await api.created(
            name="hourly", type="http", payload={"url": broken.url},
            schedule={"kind": "fixed_rate", "intervalSeconds": 3600, "maxRuns": 1},
        )  # fmt: skip
        failed_once = await until(api, once["id"], in_status("FAILED"), "failed")
        failed_recurring = await until(api, recurring["id"], in_status("FAILED"), "failed")

        # Fixed: still FAILED, nothing runs.
        fixed_once = await api.edit(failed_once, {"payload": {"url": fixed.url}})
        fixed_recurring = await api.edit(
            failed_recurring,
            {
                "payload": {"url": fixed.url},
                "schedule": {"kind": "fixed_rate", "intervalSeconds": 3600, "maxRuns": 5},
            },
        )
        assert (fixed_once["status"], fixed_recurring["status"]) == ("FAILED", "FAILED")
        ran = [await act(api, job, "run") for job in (fixed_once, fixed_recurring)]
        assert [(j["status"], j["attempt"]) for j in ran] == [("SCHEDULED", 1)] * 2

        done = await until(api, once["id"], in_status("COMPLETED"), "completed")
        carried_on = await until(
            api, recurring["id"], lambda j: j["status"] == "SCHEDULED" and j["runCount"] == 2,
            "scheduled at its next occurrence after the run",
        )  # fmt: skip
        assert done["runCount"] == 2  # the occurrence given up on, and this run
        now = await db_now(p.sessions)
        assert now < instant(carried_on["nextRunAt"]) <= now + timedelta(hours=1)
        for job in (once, recurring):
            assert await attempts(p, job["id"]) == [
                (1, ExecutionStatus.FAILED), (1, ExecutionStatus.SUCCEEDED),
            ]  # fmt: skip
        assert (len(broken.seen), len(fixed.seen)) == (2, 2)


async def test_a_paused_job_run_now_runs_once_and_is_paused_again(
    database_url, kafka_bootstrap_servers, unique_name, serve_app, token_issuer
):
    flaky, witness = Target(503, 200), Target(200)
    async with (
        flaky.serving(serve_app),
        witness.serving(serve_app),
        platform(database_url, kafka_bootstrap_servers, unique_name) as p,
        owner_api(database_url, token_issuer) as api,
    ):
        start = await db_now(p.sessions) + timedelta(seconds=5)
        job = await api.created(
            name="every 2 s", type="http", payload={"url": flaky.url}, retryPolicy=FAST_RETRY,
            schedule={"kind": "fixed_rate", "intervalSeconds": 2, "startAt": start.isoformat()},
        )  # fmt: skip
        paused = await act(api, job, "pause")

        ran = await act(api, paused, "run")
        assert (ran["status"], ran["pauseAfterRun"]) == ("SCHEDULED", True)
        again = await until(api, job["id"], in_status("PAUSED"), "paused again after the run")

        # The run's failed attempt was retried within it; then the job went back to PAUSED,
        # its next regular occurrence pending.
        assert await attempts(p, job["id"]) == [
            (1, ExecutionStatus.FAILED), (2, ExecutionStatus.SUCCEEDED),
        ]  # fmt: skip
        assert (again["pauseAfterRun"], again["statusReason"], again["runCount"]) == (
            False, None, 1,
        )  # fmt: skip
        pending = instant(again["nextRunAt"])
        assert pending >= start
        # A job due a second after that occurrence runs: the platform was at work past it, and
        # the paused job's schedule did not fire.
        witness_job = await api.created(
            name="witness", type="http", payload={"url": witness.url},
            schedule={"kind": "once", "at": (pending + timedelta(seconds=1)).isoformat()},
        )  # fmt: skip
        await until(api, witness_job["id"], in_status("COMPLETED"), "the witness run")
        still = (await api.get(f"/v1/jobs/{job['id']}")).json()
        assert (still["status"], still["nextRunAt"]) == ("PAUSED", again["nextRunAt"])
        assert len(await attempts(p, job["id"])) == 2 and len(flaky.seen) == 2


async def test_a_resume_during_the_run_of_a_paused_job_keeps_it_on_its_schedule(
    database_url, kafka_bootstrap_servers, unique_name, serve_app, token_issuer
):
    slow = Target(200)
    slow.hold = asyncio.Event()
    async with (
        slow.serving(serve_app),
        platform(database_url, kafka_bootstrap_servers, unique_name) as p,
        owner_api(database_url, token_issuer) as api,
    ):
        start = await db_now(p.sessions) + timedelta(hours=1)
        job = await api.created(
            name="hourly", type="http", payload={"url": slow.url},
            schedule={"kind": "fixed_rate", "intervalSeconds": 3600, "startAt": start.isoformat()},
        )  # fmt: skip
        await act(api, await act(api, job, "pause"), "run")
        await asyncio.wait_for(slow.arrived.wait(), timeout=30)

        resumed = await act(api, job, "resume")
        assert (resumed["status"], resumed["pauseAfterRun"]) == ("RUNNING", False)
        slow.hold.set()

        after = await until(api, job["id"], lambda j: j["runCount"] == 1, "the run recorded")
        assert (after["status"], after["pauseAfterRun"]) == ("SCHEDULED", False)
        assert instant(after["nextRunAt"]) == start  # its regular schedule, from its start
        assert await attempts(p, job["id"]) == [(1, ExecutionStatus.SUCCEEDED)]
