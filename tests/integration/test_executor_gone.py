"""A target answering 410 Gone stops the calls: its job is paused with a visible reason, and
nothing calls the target again until the job's owner resumes it. End to end: a real scheduler
and executor, loopback targets, and the job service's API where the owner sees and resumes."""

from __future__ import annotations

import asyncio
import uuid

from executor_support import Platform, Target, owner_api, platform
from scheduler_support import (
    db_now,
    eventually,
    executions,
    fixed_rate,
    insert_jobs,
    job,
    job_row,
    once,
)

from libs.scheduling.states import ExecutionStatus, JobStatus

GONE = "target answered 410 Gone"


async def http_job(p: Platform, owner: uuid.UUID, url: str, *, every_s: int | None) -> uuid.UUID:
    """An http job of `owner` due now: every `every_s` seconds, or once."""
    now = await db_now(p.sessions)
    spec = once(now) if every_s is None else fixed_rate(every_s, anchor=now)
    [job_id] = await insert_jobs(
        p.sessions,
        [
            job_row(
                next_run_at=now,
                schedule_spec=spec,
                owner_id=owner,
                type="http",
                payload={"url": url},
                retry_policy={
                    "max_attempts": 3,
                    "initial_backoff_s": 0.2,
                    "multiplier": 2,
                    "max_backoff_s": 1,
                },
            )
        ],
    )
    return job_id


async def paused(p: Platform, job_id: uuid.UUID):
    async def check():
        row = await job(p.sessions, job_id)
        return row if row.status == JobStatus.PAUSED else None

    return await eventually(check, what=f"job {job_id} paused")


async def assert_paused_for_410(p: Platform, job_id: uuid.UUID):
    """The job as the executor left it: paused with its reason, the refused occurrence pending
    (not counted, not dead-lettered), its execution failed for good as `gone`."""
    row = await paused(p, job_id)
    assert row.status_reason == GONE
    [execution] = await executions(p.sessions, job_id)
    assert (execution.status, execution.error_kind) == (ExecutionStatus.FAILED, "gone")
    assert execution.error.startswith("HTTP 410")
    assert row.next_run_at == execution.scheduled_for
    assert (row.run_count, row.attempt, row.lease_expires_at) == (0, 1, None)
    assert await p.sql("SELECT id FROM dead_letters WHERE job_id = :j", j=job_id) == []
    return row


async def test_a_recurring_job_whose_target_answers_410_is_paused_until_resumed(
    database_url, kafka_bootstrap_servers, unique_name, serve_app, token_issuer
):
    gone = Target(410, 200)  # 410 until the owner resumes the job: then the hook is back
    control = Target(200)
    async with (
        gone.serving(serve_app),
        control.serving(serve_app),
        platform(database_url, kafka_bootstrap_servers, unique_name) as p,
        owner_api(database_url, token_issuer) as api,
    ):
        job_id = await http_job(p, api.owner, gone.url, every_s=1)
        await http_job(p, api.owner, control.url, every_s=1)

        await assert_paused_for_410(p, job_id)
        # Time passes with the platform at work: the control job, due every second, runs
        # twice more; the paused job's target hears nothing more.
        calls = len(control.seen)

        async def control_ran_twice_more() -> bool:
            return len(control.seen) >= calls + 2

        await eventually(control_ran_twice_more, what="two more runs of the control job")
        assert len(gone.seen) == 1

        shown = await api.get(f"/v1/jobs/{job_id}")
        assert shown.status_code == 200, shown.text
        assert (shown.json()["status"], shown.json()["statusReason"]) == ("PAUSED", GONE)
        listed = await api.get("/v1/jobs", params={"status": "PAUSED"})
        assert [(j["id"], j["statusReason"]) for j in listed.json()["items"]] == [
            (str(job_id), GONE)
        ]

        resumed = await api.post(f"/v1/jobs/{job_id}:resume")
        assert resumed.status_code == 200, resumed.text
        assert (resumed.json()["status"], resumed.json()["statusReason"]) == ("SCHEDULED", None)

        async def ran_again():
            row = await job(p.sessions, job_id)
            return row if row.run_count >= 1 else None

        row = await eventually(ran_again, what="the resumed job running again")
        assert len(gone.seen) >= 2
        assert row.status in (JobStatus.SCHEDULED, JobStatus.RUNNING)
        assert row.status_reason is None


async def test_a_one_time_job_is_paused_too_and_runs_once_edited_and_resumed(
    database_url, kafka_bootstrap_servers, unique_name, serve_app, token_issuer
):
    gone = Target(410)
    moved = Target(200)
    async with (
        gone.serving(serve_app),
        moved.serving(serve_app),
        platform(database_url, kafka_bootstrap_servers, unique_name) as p,
        owner_api(database_url, token_issuer) as api,
    ):
        job_id = await http_job(p, api.owner, gone.url, every_s=None)
        row = await assert_paused_for_410(p, job_id)

        # The owner points the job at the hook's new address: it stays paused, and says why.
        patched = await api.client.patch(
            f"/v1/jobs/{job_id}",
            json={"payload": {"url": moved.url}},
            headers={**api.bearer(), "if-match": f'"{row.version}"'},
        )
        assert patched.status_code == 200, patched.text
        assert (patched.json()["status"], patched.json()["statusReason"]) == ("PAUSED", GONE)

        resumed = await api.post(f"/v1/jobs/{job_id}:resume")
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["statusReason"] is None

        async def completed():
            current = await job(p.sessions, job_id)
            return current if current.status == JobStatus.COMPLETED else None

        row = await eventually(completed, what="the resumed one-time job completing")
        assert (len(gone.seen), len(moved.seen), row.run_count) == (1, 1, 1)
        assert row.status_reason is None
        assert [e.error_kind for e in await executions(p.sessions, job_id)] == ["gone", None]


async def test_a_410_after_the_owner_paused_the_job_leaves_the_owners_pause_alone(
    database_url, kafka_bootstrap_servers, unique_name, serve_app, token_issuer
):
    gone = Target(410)
    gone.hold = asyncio.Event()
    async with (
        gone.serving(serve_app),
        platform(database_url, kafka_bootstrap_servers, unique_name) as p,
        owner_api(database_url, token_issuer) as api,
    ):
        job_id = await http_job(p, api.owner, gone.url, every_s=60)
        await asyncio.wait_for(gone.arrived.wait(), timeout=30)
        owners_pause = await api.post(f"/v1/jobs/{job_id}:pause")
        assert owners_pause.status_code == 200, owners_pause.text
        gone.hold.set()

        async def recorded():
            found = await executions(p.sessions, job_id)
            return found if found and found[0].status != ExecutionStatus.RUNNING else None

        [execution] = await eventually(recorded, what="the 410 recorded on its execution")
        assert (execution.status, execution.error_kind) == (ExecutionStatus.FAILED, "gone")
        # The outcome was fenced off: the job is the owner's pause, with no platform reason.
        row = await job(p.sessions, job_id)
        assert (row.status, row.status_reason) == (JobStatus.PAUSED, None)
