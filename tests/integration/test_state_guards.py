"""Every state-changing statement of the scheduler, the executor and the occurrence store obeys
the transition table: a job (or an execution) in a state the move may not start from is left
exactly as it was, and the function says so (nothing back); from an allowed state the move is
made. The states come from `libs.scheduling.states`, so a new state is covered without touching this
file.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from scheduler_support import ago, insert_jobs, job_row, sql
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from executor_service import repository as executor_repository
from libs.infra import db
from libs.scheduling import occurrences, states
from libs.scheduling.states import ExecutionStatus, JobStatus
from libs.store import occurrence_store
from scheduler_service import repository as scheduler_repository

VERSION = 3  # the fencing token of the jobs' current lease
LEASE_S = 30.0

_CLAIM_FROM = states.platform_job_sources(JobStatus.RUNNING)
_FAIL_FROM = states.platform_job_sources(JobStatus.FAILED)
_WITHDRAWN_FROM = states.WITHDRAWN_JOB_MOVE[0]
_START_FROM = states.execution_sources(ExecutionStatus.RUNNING)
_LOST_FROM = states.execution_sources(ExecutionStatus.LOST)


def _not(allowed: frozenset[Any] | set[Any], machine: type) -> list[Any]:
    return [s for s in machine if s not in allowed]


def _one_of(allowed: frozenset[Any] | set[Any]) -> Any:
    return sorted(allowed)[0]


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = db.create_engine(database_url)
    try:
        yield db.session_factory(engine)
    finally:
        await db.dispose(engine)


async def _job(sessions, status: JobStatus, *, lease_in_s: float = 3600, **extra) -> uuid.UUID:
    """A job in `status`, due a while ago, under lease `VERSION` (expired if `lease_in_s` < 0)."""
    row = job_row(
        next_run_at=ago(120),
        status=status.value,
        lease_version=VERSION,
        lease_expires_at=ago(-lease_in_s),
        **extra,
    )
    [job_id] = await insert_jobs(sessions, [row])
    return job_id


async def _execution(sessions, job_id: uuid.UUID, status: ExecutionStatus) -> uuid.UUID:
    [row] = await sql(
        sessions,
        "INSERT INTO executions (job_id, scheduled_for, attempt, lease_version, status) "
        "VALUES (:job_id, now() - interval '2 minutes', 1, :version, :status) RETURNING id",
        job_id=job_id,
        version=VERSION,
        status=status.value,
    )
    return row.id


async def _rows(sessions, job_id: uuid.UUID) -> tuple[dict, list[dict]]:
    """The job's row and its executions' rows, to show that nothing changed."""
    [job] = await sql(sessions, "SELECT * FROM jobs WHERE id = :id", id=job_id)
    executions = await sql(
        sessions, "SELECT * FROM executions WHERE job_id = :id ORDER BY id", id=job_id
    )
    return dict(job._mapping), [dict(e._mapping) for e in executions]


async def _job_status(sessions, job_id: uuid.UUID) -> str:
    [row] = await sql(sessions, "SELECT status FROM jobs WHERE id = :id", id=job_id)
    return row.status


async def _execution_status(sessions, execution_id: uuid.UUID) -> str | None:
    rows = await sql(sessions, "SELECT status FROM executions WHERE id = :id", id=execution_id)
    return rows[0].status if rows else None


# --- Scheduler: claims, misfire skip, fail -----------------------------------------------------


async def _claim_due(sessions) -> scheduler_repository.Claim:
    async with db.unit_of_work(sessions) as session:
        return await scheduler_repository.claim_due_jobs(
            session, batch=10, lease_s=LEASE_S, node_id="guards"
        )


@pytest.mark.parametrize("status", _not(_CLAIM_FROM, JobStatus), ids=str)
async def test_a_claim_takes_no_job_it_may_not_make_running(sessions, status) -> None:
    job_id = await _job(sessions, status)
    before = await _rows(sessions, job_id)

    claim = await _claim_due(sessions)

    assert (claim.claimed, claim.late) == ([], [])
    assert await _rows(sessions, job_id) == before


async def test_a_claim_makes_a_due_job_running(sessions) -> None:
    job_id = await _job(sessions, _one_of(_CLAIM_FROM), misfire_grace_s=3600)
    claim = await _claim_due(sessions)
    assert [c.job_id for c in claim.claimed] == [job_id]
    assert await _job_status(sessions, job_id) == JobStatus.RUNNING


async def _claim_occurrences(sessions, job_id) -> list[scheduler_repository.Claimed]:
    async with db.unit_of_work(sessions) as session:
        return await scheduler_repository.claim_occurrences(
            session, [(job_id, VERSION, ago(60))], lease_s=LEASE_S, node_id="guards"
        )


@pytest.mark.parametrize("status", _not(_CLAIM_FROM, JobStatus), ids=str)
async def test_a_late_claim_takes_no_job_it_may_not_make_running(sessions, status) -> None:
    job_id = await _job(sessions, status)
    before = await _rows(sessions, job_id)
    assert await _claim_occurrences(sessions, job_id) == []
    assert await _rows(sessions, job_id) == before


async def test_a_late_claim_makes_the_job_running(sessions) -> None:
    job_id = await _job(sessions, _one_of(_CLAIM_FROM))
    assert [c.job_id for c in await _claim_occurrences(sessions, job_id)] == [job_id]
    assert await _job_status(sessions, job_id) == JobStatus.RUNNING


async def _skip(sessions, job_id) -> list[uuid.UUID]:
    skip = scheduler_repository.Skip(job_id, VERSION, ago(-60), JobStatus.SCHEDULED)
    async with db.unit_of_work(sessions) as session:
        return await scheduler_repository.skip_occurrences(session, [skip])


@pytest.mark.parametrize("status", _not({JobStatus.SCHEDULED}, JobStatus), ids=str)
async def test_a_misfire_skip_moves_only_a_scheduled_job(sessions, status) -> None:
    job_id = await _job(sessions, status)
    before = await _rows(sessions, job_id)
    assert await _skip(sessions, job_id) == []
    assert await _rows(sessions, job_id) == before


async def test_a_misfire_skip_moves_a_scheduled_job_on(sessions) -> None:
    job_id = await _job(sessions, JobStatus.SCHEDULED)
    assert await _skip(sessions, job_id) == [job_id]


def test_a_misfire_skip_refuses_a_target_the_platform_may_not_reach() -> None:
    for status in JobStatus:
        if status is JobStatus.SCHEDULED or states.platform_may_move(JobStatus.SCHEDULED, status):
            continue
        with pytest.raises(ValueError, match="does not move"):
            scheduler_repository.Skip(uuid.uuid4(), VERSION, None, status)


async def _fail(sessions, job_id) -> list[uuid.UUID]:
    async with db.unit_of_work(sessions) as session:
        return await scheduler_repository.fail_jobs(session, [(job_id, VERSION)])


@pytest.mark.parametrize("status", _not(_FAIL_FROM, JobStatus), ids=str)
async def test_only_a_job_the_platform_may_fail_is_failed(sessions, status) -> None:
    job_id = await _job(sessions, status)
    before = await _rows(sessions, job_id)
    assert await _fail(sessions, job_id) == []
    assert await _rows(sessions, job_id) == before


async def test_a_job_with_an_unreadable_schedule_is_failed(sessions) -> None:
    job_id = await _job(sessions, _one_of(_FAIL_FROM))
    assert await _fail(sessions, job_id) == [job_id]
    assert await _job_status(sessions, job_id) == JobStatus.FAILED


# --- Scheduler: withdrawals (hand-back, redispatch of an unstarted dispatch) -------------------


async def _hand_back(sessions, execution_id) -> list[uuid.UUID]:
    async with db.unit_of_work(sessions) as session:
        return await scheduler_repository.hand_back(session, [(execution_id, VERSION)])


@pytest.mark.parametrize("status", _not({_WITHDRAWN_FROM}, JobStatus), ids=str)
async def test_a_hand_back_leaves_a_job_that_is_not_running(sessions, status) -> None:
    job_id = await _job(sessions, status)
    execution_id = await _execution(sessions, job_id, ExecutionStatus.DISPATCHED)
    before = await _rows(sessions, job_id)
    assert await _hand_back(sessions, execution_id) == []
    assert await _rows(sessions, job_id) == before


@pytest.mark.parametrize("status", _not(states.WITHDRAWABLE_EXECUTIONS, ExecutionStatus), ids=str)
async def test_a_hand_back_withdraws_no_execution_that_started(sessions, status) -> None:
    job_id = await _job(sessions, _WITHDRAWN_FROM)
    execution_id = await _execution(sessions, job_id, status)
    before = await _rows(sessions, job_id)
    assert await _hand_back(sessions, execution_id) == []
    assert await _rows(sessions, job_id) == before


async def test_a_hand_back_withdraws_an_unstarted_dispatch(sessions) -> None:
    job_id = await _job(sessions, _WITHDRAWN_FROM)
    execution_id = await _execution(sessions, job_id, _one_of(states.WITHDRAWABLE_EXECUTIONS))
    assert await _hand_back(sessions, execution_id) == [job_id]
    assert await _job_status(sessions, job_id) == states.WITHDRAWN_JOB_MOVE[1]
    assert await _execution_status(sessions, execution_id) is None  # deleted, not moved


async def _redispatch(sessions) -> list[scheduler_repository.Redispatched]:
    async with db.unit_of_work(sessions) as session:
        return await scheduler_repository.redispatch_unstarted(session, batch=10)


@pytest.mark.parametrize("status", _not({_WITHDRAWN_FROM}, JobStatus), ids=str)
async def test_a_redispatch_leaves_a_job_that_is_not_running(sessions, status) -> None:
    job_id = await _job(sessions, status, lease_in_s=-60)
    await _execution(sessions, job_id, ExecutionStatus.DISPATCHED)
    before = await _rows(sessions, job_id)
    assert await _redispatch(sessions) == []
    assert await _rows(sessions, job_id) == before


@pytest.mark.parametrize("status", _not(states.WITHDRAWABLE_EXECUTIONS, ExecutionStatus), ids=str)
async def test_a_redispatch_withdraws_no_execution_that_started(sessions, status) -> None:
    job_id = await _job(sessions, _WITHDRAWN_FROM, lease_in_s=-60)
    await _execution(sessions, job_id, status)
    before = await _rows(sessions, job_id)
    assert await _redispatch(sessions) == []
    assert await _rows(sessions, job_id) == before


async def test_a_redispatch_withdraws_an_unstarted_dispatch(sessions) -> None:
    job_id = await _job(sessions, _WITHDRAWN_FROM, lease_in_s=-60)
    execution_id = await _execution(sessions, job_id, _one_of(states.WITHDRAWABLE_EXECUTIONS))
    assert [r.job_id for r in await _redispatch(sessions)] == [job_id]
    assert await _job_status(sessions, job_id) == states.WITHDRAWN_JOB_MOVE[1]
    assert await _execution_status(sessions, execution_id) is None


# --- Scheduler: lease expiry ------------------------------------------------------------------


async def _expire(sessions) -> scheduler_repository.Expiry:
    async with db.unit_of_work(sessions) as session:
        return await scheduler_repository.recover_expired_leases(session, batch=10)


@pytest.mark.parametrize("status", _not({occurrence_store.SOURCE}, JobStatus), ids=str)
async def test_lease_expiry_leaves_a_job_that_is_not_running(sessions, status) -> None:
    job_id = await _job(sessions, status, lease_in_s=-60)
    await _execution(sessions, job_id, ExecutionStatus.RUNNING)
    before = await _rows(sessions, job_id)
    assert (await _expire(sessions)).expired == []
    assert await _rows(sessions, job_id) == before


@pytest.mark.parametrize(
    "status",
    # An unstarted dispatch is a redispatch's to withdraw, never lost.
    _not(_LOST_FROM | states.UNSTARTED_EXECUTIONS, ExecutionStatus),
    ids=str,
)
async def test_lease_expiry_marks_no_finished_execution_lost(sessions, status) -> None:
    job_id = await _job(sessions, occurrence_store.SOURCE, lease_in_s=-60)
    await _execution(sessions, job_id, status)
    before = await _rows(sessions, job_id)
    [expired] = (await _expire(sessions)).expired
    assert expired.execution_id is None
    assert await _rows(sessions, job_id) == before


async def test_lease_expiry_marks_a_running_execution_lost(sessions) -> None:
    job_id = await _job(sessions, occurrence_store.SOURCE, lease_in_s=-60)
    execution_id = await _execution(sessions, job_id, ExecutionStatus.RUNNING)
    [expired] = (await _expire(sessions)).expired
    assert expired.execution_id == execution_id
    assert await _execution_status(sessions, execution_id) == ExecutionStatus.LOST


# --- Occurrence store: a RUNNING job moved on --------------------------------------------------


def _next(status: JobStatus) -> occurrences.Next:
    terminal = status in states.JOB_TERMINAL
    return occurrences.Next(
        status,
        None if terminal else ago(-60),
        1,
        1,
        occurrences.Outcome.COMPLETED if terminal else occurrences.Outcome.NEXT,
        dead_letter=False,
    )


async def _move(sessions, job_id) -> set[uuid.UUID]:
    move = occurrence_store.Move.of(job_id, VERSION, _next(JobStatus.SCHEDULED), nominal=ago(120))
    async with db.unit_of_work(sessions) as session:
        return await occurrence_store.move_running(session, [move], recorded=True, notify=True)


@pytest.mark.parametrize("status", _not({occurrence_store.SOURCE}, JobStatus), ids=str)
async def test_a_move_leaves_a_job_that_is_not_running(sessions, status) -> None:
    job_id = await _job(sessions, status)
    before = await _rows(sessions, job_id)
    assert await _move(sessions, job_id) == set()
    assert await _rows(sessions, job_id) == before


async def test_a_move_moves_a_running_job_on(sessions) -> None:
    job_id = await _job(sessions, occurrence_store.SOURCE)
    assert await _move(sessions, job_id) == {job_id}
    assert await _job_status(sessions, job_id) == JobStatus.SCHEDULED


def test_a_move_refuses_a_target_the_platform_may_not_reach_from_running() -> None:
    for status in JobStatus:
        if states.platform_may_move(occurrence_store.SOURCE, status):
            continue
        with pytest.raises(ValueError, match="does not move"):
            occurrence_store.Move.of(uuid.uuid4(), VERSION, _next(status), nominal=ago(0))


# --- Executor: the claim, finishing executions --------------------------------------------------


async def _start(sessions, job_id, execution_id) -> executor_repository.Claim:
    dispatch = executor_repository.Dispatch(execution_id, job_id, VERSION)
    async with db.unit_of_work(sessions) as session:
        return await executor_repository.claim(session, [dispatch], worker="guards", margin_s=5)


@pytest.mark.parametrize("status", _not(_START_FROM, ExecutionStatus), ids=str)
async def test_the_executor_starts_no_execution_that_is_not_dispatched(sessions, status) -> None:
    job_id = await _job(sessions, JobStatus.RUNNING)
    execution_id = await _execution(sessions, job_id, status)
    _, executions = await _rows(sessions, job_id)
    assert (await _start(sessions, job_id, execution_id)).started == frozenset()
    # The execution is as it was, its running lease included.
    assert (await _rows(sessions, job_id))[1] == executions


@pytest.mark.parametrize("status", _not({JobStatus.RUNNING}, JobStatus), ids=str)
async def test_the_executor_starts_nothing_of_a_job_that_is_not_running(sessions, status) -> None:
    job_id = await _job(sessions, status)
    execution_id = await _execution(sessions, job_id, _one_of(_START_FROM))
    job, _ = await _rows(sessions, job_id)
    assert (await _start(sessions, job_id, execution_id)).started == frozenset()
    # The job is left as it was; its dispatch, superseded, will never run.
    assert (await _rows(sessions, job_id))[0] == job
    assert await _execution_status(sessions, execution_id) == ExecutionStatus.LOST


async def test_the_executor_starts_a_dispatched_execution(sessions) -> None:
    job_id = await _job(sessions, JobStatus.RUNNING)
    execution_id = await _execution(sessions, job_id, _one_of(_START_FROM))
    job, _ = await _rows(sessions, job_id)
    assert (await _start(sessions, job_id, execution_id)).started == {execution_id}
    # Started with a running lease of the job's timeout plus the margin (5 s) of its own; the
    # job's row, only locked, keeps its dispatch lease.
    [started] = (await _rows(sessions, job_id))[1]
    assert started["status"] == ExecutionStatus.RUNNING
    running_lease = started["lease_expires_at"] - started["started_at"]
    assert running_lease == timedelta(seconds=job["timeout_s"] + 5)
    assert (await _rows(sessions, job_id))[0] == job


async def _finish(sessions, job_id, execution_id) -> set[uuid.UUID]:
    finished = executor_repository.Finished(execution_id, ExecutionStatus.SUCCEEDED, None, None)
    async with db.unit_of_work(sessions) as session:
        locked = await executor_repository.lock_and_finish(session, [(job_id, VERSION)], [finished])
    return set(locked.recorded)


@pytest.mark.parametrize(
    "status", _not(states.execution_sources(ExecutionStatus.SUCCEEDED), ExecutionStatus), ids=str
)
async def test_an_outcome_is_recorded_only_on_a_running_execution(sessions, status) -> None:
    job_id = await _job(sessions, JobStatus.RUNNING)
    execution_id = await _execution(sessions, job_id, status)
    before = await _rows(sessions, job_id)
    assert await _finish(sessions, job_id, execution_id) == set()
    assert await _rows(sessions, job_id) == before


async def test_an_outcome_is_recorded_on_a_running_execution(sessions) -> None:
    job_id = await _job(sessions, JobStatus.RUNNING)
    execution_id = await _execution(sessions, job_id, ExecutionStatus.RUNNING)
    assert await _finish(sessions, job_id, execution_id) == {execution_id}
    assert await _execution_status(sessions, execution_id) == ExecutionStatus.SUCCEEDED


def test_an_outcome_refuses_a_state_that_does_not_end_a_running_execution() -> None:
    for status in ExecutionStatus:
        if states.can_transition(ExecutionStatus.RUNNING, status):
            continue
        with pytest.raises(ValueError, match="does not end"):
            executor_repository.Finished(uuid.uuid4(), status, None, None)
