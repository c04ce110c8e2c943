"""Every query of the executor service.

Both transactions lock the jobs' rows first (in id order) and their executions' rows second,
as the scheduler's lease recovery does, so an outcome and a recovery of the same job never
deadlock and never interleave. Every change is guarded: the claim by the execution still being
DISPATCHED, an outcome by the job still being RUNNING under the dispatch's fencing token. Zero
rows back is an answer (a duplicate delivery; a successor took over), never an error. Nothing
here commits; the caller's unit of work does.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from libs import channels
from libs.states import ExecutionStatus, JobStatus

SUPERSEDED_KIND = "superseded"
SUPERSEDED = "the job was paused, cancelled or taken over before this dispatch started"


@dataclass(frozen=True, slots=True)
class Dispatch:
    """What a claim needs of one dispatch message."""

    execution_id: uuid.UUID
    job_id: uuid.UUID
    lease_version: int


@dataclass(frozen=True, slots=True)
class Claim:
    db_now: datetime  # the database clock at the claim: the executions' `started_at`
    started: frozenset[uuid.UUID]  # executions now RUNNING here


# 1. lock the jobs in id order; 2. extend the lease of those still RUNNING under the dispatch's
# token, to cover the job's timeout from now; 3. start their DISPATCHED executions; 4. an
# execution whose job moved on before it started (paused, cancelled, deleted) will never run:
# it is marked LOST rather than left DISPATCHED for ever.
_CLAIM = text("""
WITH wanted AS (
    SELECT * FROM unnest(CAST(:execution_ids AS uuid[]), CAST(:job_ids AS uuid[]),
                         CAST(:versions AS bigint[])) AS w(execution_id, job_id, lease_version)
), locked AS (
    SELECT j.id, j.lease_version, j.status, j.timeout_s FROM jobs AS j
    WHERE j.id IN (SELECT job_id FROM wanted)
    ORDER BY j.id
    FOR UPDATE
), current AS (
    SELECT w.* FROM wanted AS w JOIN locked AS l
        ON l.id = w.job_id AND l.lease_version = w.lease_version AND l.status = 'RUNNING'
), extended AS (
    UPDATE jobs AS j
    SET lease_expires_at = greatest(j.lease_expires_at,
            now() + make_interval(secs => j.timeout_s + CAST(:margin_s AS double precision))),
        updated_at = now()
    FROM (SELECT DISTINCT job_id FROM current) AS c
    WHERE j.id = c.job_id
    RETURNING j.id
), started AS (
    UPDATE executions AS e
    SET status = 'RUNNING', worker = :worker, started_at = now()
    FROM current AS c
    WHERE e.id = c.execution_id AND e.job_id = c.job_id AND e.lease_version = c.lease_version
      AND e.status = 'DISPATCHED'
    RETURNING e.id
), superseded AS (
    UPDATE executions AS e
    SET status = 'LOST', finished_at = now(), error_kind = :superseded_kind, error = :superseded
    FROM wanted AS w
    WHERE e.id = w.execution_id AND e.status = 'DISPATCHED'
      AND NOT EXISTS (SELECT 1 FROM current AS c WHERE c.execution_id = w.execution_id)
    RETURNING e.id
)
SELECT now() AS db_now, (SELECT count(*) FROM extended) AS extended,
       (SELECT count(*) FROM superseded) AS superseded,
       COALESCE((SELECT array_agg(id) FROM started), '{}') AS started
""")


async def claim(
    session: AsyncSession, dispatches: Sequence[Dispatch], *, worker: str, margin_s: float
) -> Claim:
    """Start each dispatch's execution (DISPATCHED -> RUNNING) whose job is still RUNNING under
    the dispatch's fencing token, extending the job's lease to cover its timeout plus
    `margin_s`. A dispatch not started is a duplicate delivery, or one overtaken by its job."""
    row = (
        await session.execute(
            _CLAIM,
            {
                "execution_ids": [d.execution_id for d in dispatches],
                "job_ids": [d.job_id for d in dispatches],
                "versions": [d.lease_version for d in dispatches],
                "worker": worker,
                "margin_s": margin_s,
                "superseded_kind": SUPERSEDED_KIND,
                "superseded": SUPERSEDED,
            },
        )
    ).one()
    return Claim(db_now=row.db_now, started=frozenset(row.started))


@dataclass(frozen=True, slots=True)
class Running:
    """A job locked for its outcome, still RUNNING under the fencing token of the dispatch."""

    job_id: uuid.UUID
    owner_id: uuid.UUID
    schedule: dict[str, Any]
    retry_policy: dict[str, Any]
    run_count: int
    attempt: int
    payload: dict[str, Any]
    pause_after_run: bool  # run on request while PAUSED: PAUSED again when it moves on


_LOCK_RUNNING = text("""
SELECT now() AS db_now, j.id, j.owner_id, j.schedule, j.retry_policy, j.run_count,
       j.attempt, j.payload, j.lease_version, j.status, j.pause_after_run
FROM jobs AS j
WHERE j.id = ANY(CAST(:ids AS uuid[]))
ORDER BY j.id
FOR UPDATE
""")


async def lock_jobs(
    session: AsyncSession, tokens: Sequence[tuple[uuid.UUID, int]]
) -> tuple[datetime | None, dict[uuid.UUID, Running]]:
    """Lock the jobs of `(job_id, lease_version)` outcomes (in id order) and return the
    database's now (None when none of the jobs exists any more) and those still RUNNING under
    that token: only their outcome may move them on."""
    wanted = dict(tokens)
    rows = (await session.execute(_LOCK_RUNNING, {"ids": list(wanted)})).all()
    db_now = rows[0].db_now if rows else None
    running = {
        row.id: Running(
            job_id=row.id,
            owner_id=row.owner_id,
            schedule=row.schedule,
            retry_policy=row.retry_policy,
            run_count=row.run_count,
            attempt=row.attempt,
            payload=row.payload,
            pause_after_run=row.pause_after_run,
        )
        for row in rows
        if row.status == JobStatus.RUNNING and row.lease_version == wanted[row.id]
    }
    return db_now, running


@dataclass(frozen=True, slots=True)
class Finished:
    """An execution's outcome."""

    execution_id: uuid.UUID
    status: ExecutionStatus
    error_kind: str | None
    error: str | None


_FINISH = text("""
UPDATE executions AS e
SET status = u.status, finished_at = now(), error_kind = u.error_kind, error = u.error
FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]), CAST(:kinds AS text[]),
            CAST(:errors AS text[])) AS u(id, status, error_kind, error)
WHERE e.id = u.id AND e.status = 'RUNNING'
RETURNING e.id
""")


async def finish_executions(session: AsyncSession, outcomes: Sequence[Finished]) -> set[uuid.UUID]:
    """Record each outcome on its execution if it is still RUNNING (lease recovery may have
    marked it LOST meanwhile); returns the executions recorded."""
    if not outcomes:
        return set()
    rows = await session.execute(
        _FINISH,
        {
            "ids": [o.execution_id for o in outcomes],
            "statuses": [o.status.value for o in outcomes],
            "kinds": [o.error_kind for o in outcomes],
            "errors": [o.error for o in outcomes],
        },
    )
    return {row.id for row in rows}


@dataclass(frozen=True, slots=True)
class Move:
    """A RUNNING job's next state (from `libs.occurrences`)."""

    job_id: uuid.UUID
    lease_version: int
    status: JobStatus
    next_run_at: datetime | None
    attempt: int
    run_count: int
    status_reason: str | None = None  # why the platform put the job in `status`, if it says


_MOVE = text("""
UPDATE jobs AS j
SET status = u.status, next_run_at = u.next_run_at, attempt = u.attempt,
    run_count = u.run_count, status_reason = u.status_reason, last_finished_at = now(),
    lease_expires_at = NULL, leased_by = NULL, updated_at = now(),
    -- A run requested on a PAUSED job lasts through its retries (SCHEDULED again), no longer.
    pause_after_run = j.pause_after_run AND u.status = 'SCHEDULED',
    -- A retry remembers the nominal time of the occurrence it retries (the right-hand side
    -- reads the row as it was: the occurrence that ran).
    occurrence_at = CASE WHEN u.attempt = 1 THEN NULL
                         WHEN j.attempt > 1 THEN coalesce(j.occurrence_at, j.next_run_at)
                         ELSE j.next_run_at END
FROM unnest(CAST(:ids AS uuid[]), CAST(:versions AS bigint[]), CAST(:statuses AS text[]),
            CAST(:nexts AS timestamptz[]), CAST(:attempts AS integer[]),
            CAST(:run_counts AS integer[]), CAST(:reasons AS text[]))
     AS u(id, lease_version, status, next_run_at, attempt, run_count, status_reason)
-- No `status = 'RUNNING'` here: `lock_jobs` locked these rows and checked it in this
-- transaction, and the condition would tempt the planner into scanning every RUNNING job
-- (the partial index ix_jobs_lease_expiry) instead of looking each id up.
WHERE j.id = u.id AND j.lease_version = u.lease_version
RETURNING j.id
""")
_NOTIFY = text("SELECT pg_notify(:channel, :earliest)")


async def move_jobs(session: AsyncSession, moves: Sequence[Move]) -> set[uuid.UUID]:
    """Apply each move to its job, locked by `lock_jobs` in this transaction and found RUNNING
    under the same token there, and tell sleeping schedulers (NOTIFY, delivered at commit)
    when a job is now due at a time (a PAUSED one is not due). Returns the jobs moved."""
    if not moves:
        return set()
    rows = await session.execute(
        _MOVE,
        {
            "ids": [m.job_id for m in moves],
            "versions": [m.lease_version for m in moves],
            "statuses": [m.status.value for m in moves],
            "nexts": [m.next_run_at for m in moves],
            "attempts": [m.attempt for m in moves],
            "run_counts": [m.run_count for m in moves],
            "reasons": [m.status_reason for m in moves],
        },
    )
    moved = {row.id for row in rows}
    nexts = [
        m.next_run_at
        for m in moves
        if m.job_id in moved and m.next_run_at is not None and m.status is JobStatus.SCHEDULED
    ]
    if nexts:
        await session.execute(
            _NOTIFY, {"channel": channels.JOBS_DUE, "earliest": min(nexts).isoformat()}
        )
    return moved


@dataclass(frozen=True, slots=True)
class DeadLetter:
    job_id: uuid.UUID
    execution_id: uuid.UUID
    owner_id: uuid.UUID
    reason: str
    error: str | None
    attempts: int
    payload: dict[str, Any]


_DEAD_LETTERS = text("""
INSERT INTO dead_letters (job_id, execution_id, owner_id, reason, error, attempts, payload)
SELECT * FROM unnest(CAST(:job_ids AS uuid[]), CAST(:execution_ids AS uuid[]),
                     CAST(:owner_ids AS uuid[]), CAST(:reasons AS text[]),
                     CAST(:errors AS text[]), CAST(:attempts AS integer[]),
                     CAST(:payloads AS jsonb[]))
RETURNING id, execution_id, created_at
""")


async def insert_dead_letters(
    session: AsyncSession, letters: Sequence[DeadLetter]
) -> dict[uuid.UUID, tuple[uuid.UUID, datetime]]:
    """A dead letter per occurrence given up on; returns `execution_id -> (id, created_at)`."""
    if not letters:
        return {}
    rows = await session.execute(
        _DEAD_LETTERS,
        {
            "job_ids": [d.job_id for d in letters],
            "execution_ids": [d.execution_id for d in letters],
            "owner_ids": [d.owner_id for d in letters],
            "reasons": [d.reason for d in letters],
            "errors": [d.error for d in letters],
            "attempts": [d.attempts for d in letters],
            "payloads": [json.dumps(d.payload) for d in letters],
        },
    )
    return {row.execution_id: (row.id, row.created_at) for row in rows}
