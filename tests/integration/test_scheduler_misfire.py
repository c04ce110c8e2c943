"""Misfire policies at claim time: occurrences late beyond their grace are skipped, run once or
all caught up, one occurrence in flight at a time; those within their grace run as normal."""

from __future__ import annotations

from datetime import timedelta

from scheduler_support import (
    db_now,
    dispatch_batch,
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

from libs.scheduling.states import JobStatus

GRACE_S = 30
INTERVAL_S = 60


def misfires(parts, policy: str) -> float:
    registry = parts.app.state.metrics.registry
    return registry.get_sample_value("scheduler_misfires_total", {"policy": policy}) or 0.0


async def finish_occurrence(parts, job_id, *, next_run_at) -> None:
    """What an executor does when an occurrence ends: the execution succeeds, and the job,
    under the same fencing token, is scheduled at the occurrence after the one it ran."""
    await sql(
        parts.sessions,
        "UPDATE executions SET status = 'SUCCEEDED', finished_at = now() "
        "WHERE job_id = :id AND status = 'DISPATCHED'",
        id=job_id,
    )
    await sql(
        parts.sessions,
        "UPDATE jobs SET status = 'SCHEDULED', next_run_at = :next, run_count = run_count + 1, "
        "lease_expires_at = NULL, last_finished_at = now() WHERE id = :id AND status = 'RUNNING'",
        id=job_id,
        next=next_run_at,
    )


async def late_job(parts, policy: str, *, missed: int = 9, grace_s: int = GRACE_S):
    """A job every minute whose occurrence `missed` minutes ago was never dispatched."""
    now = await db_now(parts.sessions)
    anchor = now - timedelta(seconds=INTERVAL_S * (missed + 1) + 5)
    first_missed = anchor + timedelta(seconds=INTERVAL_S)
    row = job_row(
        next_run_at=first_missed,
        schedule_spec=fixed_rate(INTERVAL_S, anchor=anchor),
        misfire_policy=policy,
        misfire_grace_s=grace_s,
    )
    [job_id] = await insert_jobs(parts.sessions, [row])
    return job_id, anchor, first_missed


async def test_skip_moves_a_late_job_to_its_next_occurrence_without_running_it(
    database_url, kafka_bootstrap_servers, unique_name
):
    async with scheduler_parts(
        settings_for(database_url, kafka_bootstrap_servers, unique_name)
    ) as parts:
        job_id, anchor, _ = await late_job(parts, "skip")
        result = await dispatch_batch(parts.scheduler().dispatcher)
        now = await db_now(parts.sessions)

        assert (result.locked, result.published) == (1, 0)
        row = await job(parts.sessions, job_id)
        assert row.status == JobStatus.SCHEDULED
        assert now < row.next_run_at <= now + timedelta(seconds=INTERVAL_S)
        assert (row.next_run_at - anchor).total_seconds() % INTERVAL_S == 0
        assert (row.attempt, row.lease_version, row.run_count) == (1, 0, 0)
        assert await executions(parts.sessions, job_id) == []
        assert misfires(parts, "skip") == 1


async def test_a_skipped_run_requested_on_a_paused_job_leaves_it_paused_at_its_next_occurrence(
    database_url, kafka_bootstrap_servers, unique_name
):
    # A person ran the paused job (run-now), and no scheduler claimed it within its grace.
    async with scheduler_parts(
        settings_for(database_url, kafka_bootstrap_servers, unique_name)
    ) as parts:
        job_id, anchor, _ = await late_job(parts, "skip")
        await sql(
            parts.sessions, "UPDATE jobs SET pause_after_run = true WHERE id = :id", id=job_id
        )

        result = await dispatch_batch(parts.scheduler().dispatcher)

        now = await db_now(parts.sessions)
        assert (result.locked, result.published) == (1, 0)
        row = await job(parts.sessions, job_id)
        assert (row.status, row.pause_after_run) == (JobStatus.PAUSED, False)
        assert now < row.next_run_at <= now + timedelta(seconds=INTERVAL_S)
        assert (row.next_run_at - anchor).total_seconds() % INTERVAL_S == 0
        assert await executions(parts.sessions, job_id) == []


async def test_skip_completes_a_late_job_with_no_occurrence_left(
    database_url, kafka_bootstrap_servers, unique_name
):
    async with scheduler_parts(
        settings_for(database_url, kafka_bootstrap_servers, unique_name)
    ) as parts:
        now = await db_now(parts.sessions)
        at = now - timedelta(seconds=10)
        row = job_row(
            next_run_at=at, schedule_spec=once(at), misfire_policy="skip", misfire_grace_s=1
        )
        [job_id] = await insert_jobs(parts.sessions, [row])
        await dispatch_batch(parts.scheduler().dispatcher)
        stored = await job(parts.sessions, job_id)
        assert (stored.status, stored.next_run_at) == (JobStatus.COMPLETED, None)
        assert await executions(parts.sessions, job_id) == []


async def test_run_once_runs_the_missed_occurrence_once_then_resumes_after_now(
    database_url, kafka_bootstrap_servers, unique_name
):
    async with scheduler_parts(
        settings_for(database_url, kafka_bootstrap_servers, unique_name)
    ) as parts:
        job_id, anchor, first_missed = await late_job(parts, "run_once")
        dispatcher = parts.scheduler().dispatcher

        assert (await dispatch_batch(dispatcher)).published == 1
        [execution] = await executions(parts.sessions, job_id)
        assert execution.scheduled_for == first_missed
        assert (await job(parts.sessions, job_id)).status == JobStatus.RUNNING
        assert misfires(parts, "run_once") == 1

        # The executor schedules the occurrence after the one it ran: missed too, and already
        # due when the run was claimed. run_once has had its run: it is skipped, not run.
        await finish_occurrence(
            parts, job_id, next_run_at=first_missed + timedelta(seconds=INTERVAL_S)
        )
        assert (await dispatch_batch(dispatcher)).published == 0
        now = await db_now(parts.sessions)
        row = await job(parts.sessions, job_id)
        assert row.status == JobStatus.SCHEDULED
        assert now < row.next_run_at <= now + timedelta(seconds=INTERVAL_S)
        assert (row.next_run_at - anchor).total_seconds() % INTERVAL_S == 0
        assert len(await executions(parts.sessions, job_id)) == 1


async def test_run_all_catches_up_every_missed_occurrence_one_at_a_time(
    database_url, kafka_bootstrap_servers, unique_name
):
    async with scheduler_parts(
        settings_for(database_url, kafka_bootstrap_servers, unique_name)
    ) as parts:
        job_id, _, first_missed = await late_job(parts, "run_all", missed=3)
        dispatcher = parts.scheduler().dispatcher
        now = await db_now(parts.sessions)

        dispatched = []
        occurrence = first_missed
        while occurrence <= now:
            assert (await dispatch_batch(dispatcher)).published == 1
            # One occurrence in flight at a time: nothing more while it runs.
            assert (await dispatch_batch(dispatcher)).locked == 0
            dispatched.append(occurrence)
            occurrence += timedelta(seconds=INTERVAL_S)
            await finish_occurrence(parts, job_id, next_run_at=occurrence)

        runs = await executions(parts.sessions, job_id)
        assert [e.scheduled_for for e in runs] == dispatched
        assert len(dispatched) == 4  # the occurrence 3 minutes before the first, and 3 more
        assert misfires(parts, "run_all") >= 3


async def test_an_occurrence_late_within_its_grace_runs_as_normal(
    database_url, kafka_bootstrap_servers, unique_name
):
    async with scheduler_parts(
        settings_for(database_url, kafka_bootstrap_servers, unique_name)
    ) as parts:
        now = await db_now(parts.sessions)
        rows = [
            job_row(
                next_run_at=now - timedelta(seconds=10), misfire_policy=policy, misfire_grace_s=60
            )
            for policy in ("skip", "run_once", "run_all")
        ]
        ids = await insert_jobs(parts.sessions, rows)
        assert (await dispatch_batch(parts.scheduler().dispatcher)).published == 3
        for job_id, row in zip(ids, rows, strict=True):
            [execution] = await executions(parts.sessions, job_id)
            assert execution.scheduled_for == row["next_run_at"]
        assert sum(misfires(parts, p) for p in ("skip", "run_once", "run_all")) == 0


async def test_a_job_whose_stored_schedule_cannot_be_read_fails_instead_of_blocking(
    database_url, kafka_bootstrap_servers, unique_name
):
    async with scheduler_parts(
        settings_for(database_url, kafka_bootstrap_servers, unique_name)
    ) as parts:
        now = await db_now(parts.sessions)
        broken = job_row(next_run_at=now - timedelta(hours=1), misfire_grace_s=1)
        broken["schedule"] = {"kind": "fixed_rate", "interval_s": "often"}
        healthy = job_row(next_run_at=now - timedelta(seconds=1))
        broken_id, healthy_id = await insert_jobs(parts.sessions, [broken, healthy])

        assert (await dispatch_batch(parts.scheduler().dispatcher)).published == 1
        assert (await job(parts.sessions, broken_id)).status == JobStatus.FAILED
        assert (await job(parts.sessions, healthy_id)).status == JobStatus.RUNNING
