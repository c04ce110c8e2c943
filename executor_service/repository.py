"""Every query of the executor service.

Both transactions lock the jobs' rows first (in id order) and their executions' rows second,
as the scheduler's lease recovery does, so an outcome and a recovery of the same job never
deadlock and never interleave. Every change is guarded by the states `libs.scheduling.states` allows
it from: the claim by the execution still being DISPATCHED, an outcome by the execution still being
RUNNING and by the job still being RUNNING under the dispatch's fencing token (the job's move is
`libs.store.occurrence_store`'s, shared with lease recovery). Zero rows back is an answer (a
duplicate delivery; a successor took over), never an error. Nothing here commits; the caller's unit
of work does.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from libs.scheduling import backoff, occurrences, schedule, states
from libs.scheduling.occurrences import UnreadableSchedule
from libs.scheduling.states import ExecutionStatus, JobStatus

SUPERSEDED_KIND = "superseded"
SUPERSEDED = "the job was paused, cancelled or taken over before this dispatch started"
# An outcome is recorded on an execution this executor started, and ends it.
_OUTCOME_SOURCE = ExecutionStatus.RUNNING


@dataclass(frozen=True, slots=True)
class Dispatch:
    """What a claim needs of one dispatch message."""

    execution_id: uuid.UUID
    job_id: uuid.UUID
    lease_version: int
    due_at: datetime | None = None  # when it is to start; None: at once


@dataclass(frozen=True, slots=True)
class Claim:
    db_now: datetime  # the database clock at the claim: the executions' `started_at`
    started: frozenset[uuid.UUID]  # executions now RUNNING here


# A start, and a dispatch superseded before it started (LOST, never run), each from its one state.
_START_SOURCE = states.only(states.execution_sources(ExecutionStatus.RUNNING))
_SUPERSEDED_SOURCE = states.only(
    states.execution_sources(ExecutionStatus.LOST) & states.UNSTARTED_EXECUTIONS
)


# 1. lock the jobs in id order; 2. start the DISPATCHED executions of those still RUNNING under
# the dispatch's token, each with its running lease: the job's timeout plus the margin from its
# start (now, or its due time when it was dispatched ahead). The job's row is only locked, not
# written: its lease stays the dispatch lease, and recovery reads a started execution's own
# (an update of the job would change an indexed column and write an entry in each of its
# indexes; this one changes none, and stays heap-only). 3. an execution whose job moved on
# before it started (paused, cancelled, deleted) will never run: it is marked LOST rather than
# left DISPATCHED for ever.
_CLAIM = text("""
WITH wanted AS (
    SELECT * FROM unnest(CAST(:execution_ids AS uuid[]), CAST(:job_ids AS uuid[]),
                         CAST(:versions AS bigint[]), CAST(:due_ats AS timestamptz[]))
        AS w(execution_id, job_id, lease_version, due_at)
), locked AS (
    SELECT j.id, j.lease_version, j.status, j.timeout_s FROM jobs AS j
    WHERE j.id IN (SELECT job_id FROM wanted)
    ORDER BY j.id
    FOR UPDATE
), current AS (
    SELECT w.*, greatest(now(), w.due_at) AS starts, l.timeout_s
    FROM wanted AS w JOIN locked AS l
        ON l.id = w.job_id AND l.lease_version = w.lease_version
       AND l.status = CAST(:job_in_flight AS text)
), started AS (
    UPDATE executions AS e
    SET status = CAST(:started_status AS text), worker = :worker, started_at = c.starts,
        lease_expires_at = c.starts
            + make_interval(secs => c.timeout_s + CAST(:margin_s AS double precision))
    FROM current AS c
    WHERE e.id = c.execution_id AND e.job_id = c.job_id AND e.lease_version = c.lease_version
      AND e.status = CAST(:start_source AS text)
    RETURNING e.id
), superseded AS (
    UPDATE executions AS e
    SET status = CAST(:superseded_status AS text), finished_at = now(),
        error_kind = :superseded_kind, error = :superseded
    FROM wanted AS w
    WHERE e.id = w.execution_id AND e.status = CAST(:superseded_source AS text)
      AND NOT EXISTS (SELECT 1 FROM current AS c WHERE c.execution_id = w.execution_id)
    RETURNING e.id
)
-- The clock once the changes are made (not `now()`, the transaction's start): what the
-- executor holds a dispatch published ahead by, so an error here starts it late by as much. Read
-- in the outer query: a target list is evaluated left to right, and the subqueries that run the
-- changes would otherwise come after it (OFFSET 0 keeps the inner query from being merged).
SELECT clock_timestamp() AS db_now, c.*
FROM (SELECT (SELECT count(*) FROM superseded) AS superseded,
             COALESCE((SELECT array_agg(id) FROM started), '{}') AS started
      OFFSET 0) AS c
""")


async def claim(
    session: AsyncSession, dispatches: Sequence[Dispatch], *, worker: str, margin_s: float
) -> Claim:
    """Start each dispatch's execution (DISPATCHED -> RUNNING) whose job is still RUNNING under
    the dispatch's fencing token, with a running lease of the job's timeout plus `margin_s` from
    its start (its `due_at` when later than now: the caller holds it until then, and that is its
    `started_at`). A dispatch not started is a duplicate delivery, or one overtaken by its
    job."""
    row = (
        await session.execute(
            _CLAIM,
            {
                "execution_ids": [d.execution_id for d in dispatches],
                "job_ids": [d.job_id for d in dispatches],
                "versions": [d.lease_version for d in dispatches],
                "due_ats": [d.due_at for d in dispatches],
                "worker": worker,
                "margin_s": margin_s,
                "superseded_kind": SUPERSEDED_KIND,
                "superseded": SUPERSEDED,
                "job_in_flight": JobStatus.RUNNING.value,
                "started_status": ExecutionStatus.RUNNING.value,
                "start_source": _START_SOURCE,
                "superseded_status": ExecutionStatus.LOST.value,
                "superseded_source": _SUPERSEDED_SOURCE,
            },
        )
    ).one()
    return Claim(db_now=row.db_now, started=frozenset(row.started))


@dataclass(frozen=True, slots=True)
class Running:
    """A job locked for its outcome, still RUNNING under the fencing token of the dispatch."""

    job_id: uuid.UUID
    owner_id: uuid.UUID
    schedule: schedule.Schedule | UnreadableSchedule
    retry_policy: backoff.RetryPolicy
    run_count: int
    attempt: int
    payload: dict[str, Any]
    pause_after_run: bool  # run on request while PAUSED: PAUSED again when it moves on
    occurrence_at: datetime | None  # the nominal time of the occurrence in flight (its claim's)


@dataclass(frozen=True, slots=True)
class Finished:
    """An execution's outcome."""

    execution_id: uuid.UUID
    status: ExecutionStatus
    error_kind: str | None
    error: str | None
    # When the attempt ended, by the database's clock; None: when it is recorded. Never later
    # than that, nor earlier than the execution's start.
    ended_at: datetime | None = None

    def __post_init__(self) -> None:
        if not states.can_transition(_OUTCOME_SOURCE, self.status):
            raise ValueError(f"an outcome does not end an execution as {self.status}")


@dataclass(frozen=True, slots=True)
class Recorded:
    """What one outcome batch's first statement did: the jobs it locked that are still RUNNING
    under their dispatch's token, and the executions whose outcome it recorded."""

    db_now: datetime | None  # the database's now; None when it found no row at all
    running: dict[uuid.UUID, Running]
    # The executions whose outcome it recorded, each with the `finished_at` it recorded: when
    # the attempt ended, which is what the job's next state is decided at.
    recorded: dict[uuid.UUID, datetime]


# One statement, one round trip: 1. lock the batch's jobs in id order (lease recovery's order);
# 2. only then (the gate counts every locked row before the first execution is read) record
# each outcome on its execution if it is still RUNNING (lease recovery may have marked it LOST
# meanwhile). The jobs' rows come back for the caller to decide their moves, the executions
# recorded beside them (as one UNION ALL, told apart by `recorded`).
_LOCK_AND_FINISH = text("""
WITH locked AS (
    SELECT j.id, j.owner_id, j.schedule, j.retry_policy, j.run_count, j.attempt, j.payload,
           j.lease_version, j.status, j.pause_after_run, j.occurrence_at
    FROM jobs AS j
    WHERE j.id = ANY(CAST(:job_ids AS uuid[]))
    ORDER BY j.id
    FOR UPDATE
), finished AS (
    UPDATE executions AS e
    SET status = u.status, error_kind = u.error_kind, error = u.error,
        finished_at = greatest(e.started_at, least(now(), coalesce(u.ended_at, now())))
    FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]), CAST(:kinds AS text[]),
                CAST(:errors AS text[]), CAST(:ended AS timestamptz[]))
         AS u(id, status, error_kind, error, ended_at)
    WHERE e.id = u.id AND e.status = CAST(:source AS text)
      AND (SELECT count(*) FROM locked) >= 0
    RETURNING e.id, e.finished_at
)
SELECT now() AS db_now, l.*, NULL::uuid AS recorded, NULL::timestamptz AS finished_at
FROM locked AS l
UNION ALL
SELECT now(), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, f.id,
       f.finished_at
FROM finished AS f
""")


async def lock_and_finish(
    session: AsyncSession,
    tokens: Sequence[tuple[uuid.UUID, int]],
    outcomes: Sequence[Finished],
) -> Recorded:
    """Lock the jobs of `(job_id, lease_version)` outcomes (in id order), then record each
    outcome on its execution if that is still RUNNING. Returns the database's now, the jobs
    still RUNNING under their outcome's token (only their outcome may move them on) and the
    executions recorded."""
    wanted = dict(tokens)
    rows = (
        await session.execute(
            _LOCK_AND_FINISH,
            {
                "job_ids": list(wanted),
                "ids": [o.execution_id for o in outcomes],
                "statuses": [o.status.value for o in outcomes],
                "kinds": [o.error_kind for o in outcomes],
                "errors": [o.error for o in outcomes],
                "ended": [o.ended_at for o in outcomes],
                "source": _OUTCOME_SOURCE.value,
            },
        )
    ).all()
    running = {
        row.id: Running(
            job_id=row.id,
            owner_id=row.owner_id,
            schedule=occurrences.read_schedule(row.schedule),
            retry_policy=backoff.RetryPolicy.load(row.retry_policy),
            run_count=row.run_count,
            attempt=row.attempt,
            payload=row.payload,
            pause_after_run=row.pause_after_run,
            occurrence_at=row.occurrence_at,
        )
        for row in rows
        if row.recorded is None
        and row.status == JobStatus.RUNNING
        and row.lease_version == wanted[row.id]
    }
    return Recorded(
        db_now=rows[0].db_now if rows else None,
        running=running,
        recorded={row.recorded: row.finished_at for row in rows if row.recorded is not None},
    )
