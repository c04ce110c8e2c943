"""Every state change of `job_service.repository`, called directly on a real database, from every
job state: where `libs.scheduling.states` does not allow the move the function refuses it (None
back, the row unchanged), where it does the move is made.

The expected states are derived from `libs.scheduling.states`, and from the one rule a request adds
to it (a dead letter's replay leaves a PAUSED job alone, `repository.REPLAYABLE`), so a new state or
a changed move is covered here without editing this module; tests/unit/test_states.py spells the
table out. The requests as the API answers them: test_job_service_changes.py,
test_job_service_reruns.py and test_job_service_history.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from job_service_support import JobService, running
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from job_service import repository
from libs.infra import db
from libs.scheduling import states
from libs.scheduling.states import JobStatus
from libs.store import models

Change = Callable[[AsyncSession, uuid.UUID], Awaitable[models.Job | None]]
# Columns some states require (CHECK constraints: a SCHEDULED job has a next run, a RUNNING one
# a lease), set by every move made here so that the table alone decides what is refused.
IN_AN_HOUR = func.now() + timedelta(hours=1)
REQUIRED_COLUMNS = {"next_run_at": IN_AN_HOUR, "lease_expires_at": IN_AN_HOUR}

# A person's ways into SCHEDULED: by the table's own rule, the moves the platform does not make.
REQUESTED_INTO_SCHEDULED = {
    s
    for s in states.job_sources(JobStatus.SCHEDULED)
    if not states.platform_may_move(s, JobStatus.SCHEDULED)
}
# Resume revives a job (PAUSED, FAILED) by one of those ways; run-now too, or keeps a SCHEDULED
# job SCHEDULED (no transition: only its next run moves); a replay as run-now does, except on a
# PAUSED job.
RESUMABLE = REQUESTED_INTO_SCHEDULED
RUNNABLE = REQUESTED_INTO_SCHEDULED | {JobStatus.SCHEDULED}
REPLAYABLE = RUNNABLE - {JobStatus.PAUSED}


@pytest.fixture
async def jobs(database_url, token_issuer):
    async with running(database_url, token_issuer) as service:
        yield service


async def job_in(jobs: JobService, status: JobStatus) -> uuid.UUID:
    """A job of `jobs.owner` put in `status` as the platform leaves a job there: leased while
    RUNNING, without a next run once finished (`states.JOB_TERMINAL`)."""
    job_id = uuid.UUID((await jobs.created())["id"])
    await jobs.sql(
        "UPDATE jobs SET status = :status,"
        " lease_expires_at = CASE WHEN CAST(:leased AS boolean)"
        " THEN now() + interval '1 minute' END,"
        " next_run_at = CASE WHEN CAST(:finished AS boolean) THEN NULL ELSE next_run_at END"
        " WHERE id = :id",
        status=str(status),
        leased=status == JobStatus.RUNNING,
        finished=status in states.JOB_TERMINAL,
        id=job_id,
    )
    return job_id


async def stored(jobs: JobService, job_id: uuid.UUID) -> Any:
    [row] = await jobs.sql("SELECT * FROM jobs WHERE id = :id", id=job_id)
    return row


async def change(jobs: JobService, job_id: uuid.UUID, call: Change) -> models.Job | None:
    """What `call` returns in a transaction of its own, committed."""
    async with db.unit_of_work(jobs.app.state.sessions) as session:
        return await call(session, job_id)


async def assert_refused(jobs: JobService, job_id: uuid.UUID, call: Change) -> None:
    before = await stored(jobs, job_id)

    assert await change(jobs, job_id, call) is None
    assert await stored(jobs, job_id) == before


# --- transition_job: pause, cancel, resume -----------------------------------------------------


@pytest.mark.parametrize("status", list(JobStatus), ids=str)
@pytest.mark.parametrize("target", list(JobStatus), ids=str)
async def test_transition_job_moves_only_along_the_table(jobs, target, status):
    job_id = await job_in(jobs, status)
    before = await stored(jobs, job_id)

    async def call(session: AsyncSession, job_id: uuid.UUID) -> models.Job | None:
        return await repository.transition_job(
            session, job_id, jobs.owner, target, values=REQUIRED_COLUMNS
        )

    if not states.can_transition(status, target):
        await assert_refused(jobs, job_id, call)
        return
    moved = await change(jobs, job_id, call)
    assert moved is not None
    assert (moved.status, moved.version) == (target, before.version + 1)
    assert (moved.status_reason, moved.pause_after_run) == (None, False)


@pytest.mark.parametrize("status", list(JobStatus), ids=str)
@pytest.mark.parametrize("target", [JobStatus.SCHEDULED, JobStatus.COMPLETED], ids=str)
async def test_resume_moves_only_from_the_resumable_states(jobs, target, status):
    """Back on its schedule (SCHEDULED), or COMPLETED when it has no occurrence left, as the
    service resumes a job: the table's sources narrowed to a person's ways into SCHEDULED."""
    job_id = await job_in(jobs, status)
    before = await stored(jobs, job_id)

    async def call(session: AsyncSession, job_id: uuid.UUID) -> models.Job | None:
        return await repository.transition_job(
            session,
            job_id,
            jobs.owner,
            target,
            sources=repository.RESUMABLE,
            values={**REQUIRED_COLUMNS, "attempt": 1},
        )

    if status not in states.job_sources(target) & RESUMABLE:
        await assert_refused(jobs, job_id, call)
        return
    moved = await change(jobs, job_id, call)
    assert moved is not None
    assert (moved.status, moved.version, moved.attempt) == (target, before.version + 1, 1)


# --- run_now, replay_job ----------------------------------------------------------------------


@pytest.mark.parametrize("status", list(JobStatus), ids=str)
async def test_run_now_makes_a_job_due_only_from_the_runnable_states(jobs, status):
    job_id = await job_in(jobs, status)
    before = await stored(jobs, job_id)

    async def call(session: AsyncSession, job_id: uuid.UUID) -> models.Job | None:
        return await repository.run_now(session, job_id, jobs.owner)

    if status not in RUNNABLE:
        await assert_refused(jobs, job_id, call)
        return
    ran = await change(jobs, job_id, call)
    assert ran is not None
    assert (ran.status, ran.version) == (JobStatus.SCHEDULED, before.version + 1)
    # Only a job run while PAUSED goes back to PAUSED after the run.
    assert ran.pause_after_run is (status == JobStatus.PAUSED)


@pytest.mark.parametrize("status", list(JobStatus), ids=str)
async def test_replay_makes_a_job_due_only_from_the_replayable_states(jobs, status):
    job_id = await job_in(jobs, status)
    before = await stored(jobs, job_id)

    if status not in REPLAYABLE:
        await assert_refused(jobs, job_id, repository.replay_job)
        return
    replayed = await change(jobs, job_id, repository.replay_job)
    assert replayed is not None
    assert (replayed.status, replayed.version) == (JobStatus.SCHEDULED, before.version + 1)
    assert replayed.attempt == 1


# --- update_job, delete_job: no transition ------------------------------------------------------


@pytest.mark.parametrize("status", list(JobStatus), ids=str)
async def test_update_changes_a_job_only_while_it_has_a_way_out(jobs, status):
    """An update keeps the status; a job the table lets out of no state (COMPLETED, CANCELLED)
    is a record and is never changed."""
    job_id = await job_in(jobs, status)
    before = await stored(jobs, job_id)

    async def call(session: AsyncSession, job_id: uuid.UUID) -> models.Job | None:
        return await repository.update_job(
            session, job_id, version=before.version, status=status, values={"name": "changed"}
        )

    if not states.JOB_TRANSITIONS[status]:
        await assert_refused(jobs, job_id, call)
        return
    updated = await change(jobs, job_id, call)
    assert updated is not None
    assert (updated.status, updated.version, updated.name) == (
        status,
        before.version + 1,
        "changed",
    )


@pytest.mark.parametrize("status", list(JobStatus), ids=str)
async def test_delete_hides_a_job_in_any_state_and_cancels_it_only_where_the_table_allows(
    jobs, status
):
    """Deleting is refused in no state; where CANCELLED is no move of the table, the job keeps
    the state it finished in."""
    job_id = await job_in(jobs, status)
    before = await stored(jobs, job_id)

    async def call(session: AsyncSession, job_id: uuid.UUID) -> models.Job | None:
        return await repository.delete_job(session, job_id, jobs.owner)

    deleted = await change(jobs, job_id, call)

    assert deleted is not None
    cancelled = states.can_transition(status, JobStatus.CANCELLED)
    assert deleted.status == (JobStatus.CANCELLED if cancelled else status)
    assert (deleted.version, deleted.next_run_at) == (before.version + 1, None)
    assert deleted.deleted_at is not None
