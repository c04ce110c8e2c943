"""Every query of the scheduler service.

The hot path (`claim_due_jobs`) is one statement: it locks due jobs with `FOR UPDATE SKIP LOCKED`
(so any number of schedulers take disjoint sets), marks the on-time ones RUNNING under a new
fencing token and inserts their execution rows, all set-based. Every later change to a job is
a guarded update (`... AND lease_version = :token AND status = ...`): zero rows back is an
answer (someone else moved the job on), never an error. Nothing here commits; the loop that
holds the session does. Driver errors become `DatabaseUnavailable` in `transaction`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from libs import channels, db, errors, states
from libs.states import ExecutionStatus, JobStatus

LEASE_EXPIRED = "lease expired"
LEASE_EXPIRED_KIND = "lease_expired"
# States a transition may start from, as the text[] a guarded update compares with.
_LOST_SOURCES = sorted(s.value for s in states.execution_sources(ExecutionStatus.LOST))
_FAILED_SOURCES = sorted(s.value for s in states.job_sources(JobStatus.FAILED))


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work (committed at the end of the block), driver errors translated
    (`libs.db.transaction`)."""
    async with db.transaction(sessions) as session:
        yield session


# --- Dispatch ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    """A job marked RUNNING by a claim, with what its dispatch message needs.

    `execution_id` is None when the occurrence had an execution row already (the unique key
    refused a second one): it must not be dispatched again.
    """

    job_id: uuid.UUID
    owner_id: uuid.UUID
    type: str
    payload: dict[str, Any]
    scheduled_for: datetime
    attempt: int
    lease_version: int
    lease_expires_at: datetime
    timeout_s: int
    execution_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class Late:
    """A due job locked by a claim but left SCHEDULED: late beyond its misfire grace."""

    job_id: uuid.UUID
    lease_version: int
    next_run_at: datetime
    attempt: int
    run_count: int
    last_run_at: datetime | None  # when the job's previous occurrence was claimed
    last_finished_at: datetime | None
    misfire_policy: str
    misfire_grace_s: int
    pause_after_run: bool  # a run requested on a PAUSED job: PAUSED again if it is skipped


@dataclass(frozen=True, slots=True)
class Claim:
    db_now: datetime  # the database clock at the claim: `now()` of its transaction
    claimed: list[Claimed]
    late: list[Late]


# The three CTEs' rows come back as one UNION ALL, told apart by `kind` and paired by job id
# in Python: joining them in SQL makes the planner, which estimates one row per CTE, compare
# every claimed row with every inserted one (most of a batch's time at 500 rows).
_CLAIM_DUE_SQL = """
WITH due AS (
    SELECT id, lease_version, next_run_at, attempt, run_count, last_run_at, last_finished_at,
           misfire_policy, misfire_grace_s, pause_after_run,
           next_run_at < now() - make_interval(secs => misfire_grace_s) AS late
    FROM jobs
    WHERE status = 'SCHEDULED' AND next_run_at <= now() AND deleted_at IS NULL
    ORDER BY next_run_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    -- The dispatch lease: time for the message to reach an executor, whose claim extends it
    -- to cover the job's timeout. A dispatch not started by then is re-dispatched.
    UPDATE jobs AS j
    SET status = 'RUNNING',
        lease_version = j.lease_version + 1,
        lease_expires_at = now() + make_interval(secs => CAST($2 AS double precision)),
        leased_by = $3,
        last_run_at = now(),
        updated_at = now()
    FROM due WHERE j.id = due.id AND NOT due.late
    -- A retry's execution keeps the nominal time of the occurrence it retries.
    RETURNING j.id, j.owner_id, j.type, j.payload,
              CASE WHEN j.attempt > 1 THEN coalesce(j.occurrence_at, j.next_run_at)
                   ELSE j.next_run_at END AS scheduled_for,
              j.attempt, j.lease_version, j.lease_expires_at, j.timeout_s
), inserted AS (
    INSERT INTO executions (job_id, scheduled_for, attempt, lease_version, status)
    SELECT id, scheduled_for, attempt, lease_version, 'DISPATCHED' FROM claimed
    ON CONFLICT ON CONSTRAINT uq_executions_occurrence DO NOTHING
    RETURNING id, job_id
)
SELECT 'claimed' AS kind, now() AS db_now, id AS job_id, owner_id, type, payload,
       scheduled_for AS next_run_at,
       attempt, lease_version, lease_expires_at, timeout_s, NULL::uuid AS execution_id,
       NULL::integer AS run_count, NULL::timestamptz AS last_run_at,
       NULL::timestamptz AS last_finished_at, NULL::text AS misfire_policy,
       NULL::integer AS misfire_grace_s, NULL::boolean AS pause_after_run
FROM claimed
UNION ALL
SELECT 'inserted', now(), job_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, id,
       NULL, NULL, NULL, NULL, NULL, NULL
FROM inserted
UNION ALL
SELECT 'late', now(), id, NULL, NULL, NULL, next_run_at, attempt, lease_version, NULL, NULL,
       NULL, run_count, last_run_at, last_finished_at, misfire_policy, misfire_grace_s,
       pause_after_run
FROM due WHERE late
"""

_NOW = text("SELECT now()")


def _claimed(row: Any, scheduled_for: datetime, execution_id: uuid.UUID | None) -> Claimed:
    return Claimed(
        job_id=row.job_id,
        owner_id=row.owner_id,
        type=row.type,
        payload=row.payload,
        scheduled_for=scheduled_for,
        attempt=row.attempt,
        lease_version=row.lease_version,
        lease_expires_at=row.lease_expires_at,
        timeout_s=row.timeout_s,
        execution_id=execution_id,
    )


async def claim_due_jobs(
    session: AsyncSession, *, batch: int, lease_s: float, node_id: str
) -> Claim:
    """Lock up to `batch` due jobs (by the database clock, oldest first, skipping rows another
    scheduler holds); claim the on-time ones (RUNNING, next fencing token, a dispatch lease of
    `lease_s`, an execution row each) and return the late ones still locked and
    SCHEDULED, for the misfire policy to decide in the same transaction."""
    # The first statement goes through SQLAlchemy: its asyncpg adapter sends BEGIN only with
    # a statement of its own, and the claim below must run inside the transaction, so that the
    # late jobs it returns stay locked until the misfire policy has decided them.
    db_now = (await session.execute(_NOW)).scalar_one()
    # Then through the session's own asyncpg connection (same transaction): SQLAlchemy's result
    # processing of a batch's rows costs as much as the statement's execution here.
    connection = await (await session.connection()).get_raw_connection()
    try:
        rows = await connection.driver_connection.fetch(_CLAIM_DUE_SQL, batch, lease_s, node_id)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise errors.DatabaseUnavailable(f"claim failed: {errors.describe(exc)}") from exc
    if not rows:
        return Claim(db_now=db_now, claimed=[], late=[])
    execution_ids = {
        row["job_id"]: row["execution_id"] for row in rows if row["kind"] == "inserted"
    }
    claimed = [
        Claimed(
            job_id=row["job_id"],
            owner_id=row["owner_id"],
            type=row["type"],
            payload=row["payload"],
            scheduled_for=row["next_run_at"],
            attempt=row["attempt"],
            lease_version=row["lease_version"],
            lease_expires_at=row["lease_expires_at"],
            timeout_s=row["timeout_s"],
            execution_id=execution_ids.get(row["job_id"]),
        )
        for row in rows
        if row["kind"] == "claimed"
    ]
    claimed.sort(key=lambda c: c.scheduled_for)
    late = [
        Late(
            job_id=row["job_id"],
            lease_version=row["lease_version"],
            next_run_at=row["next_run_at"],
            attempt=row["attempt"],
            run_count=row["run_count"],
            last_run_at=row["last_run_at"],
            last_finished_at=row["last_finished_at"],
            misfire_policy=row["misfire_policy"],
            misfire_grace_s=row["misfire_grace_s"],
            pause_after_run=row["pause_after_run"],
        )
        for row in rows
        if row["kind"] == "late"
    ]
    return Claim(db_now=db_now, claimed=claimed, late=late)


@dataclass(frozen=True, slots=True)
class StoredSchedule:
    schedule: dict[str, Any]
    run_count: int
    pause_after_run: bool


_SCHEDULES = text(
    "SELECT id, schedule, run_count, pause_after_run FROM jobs WHERE id = ANY(CAST(:ids AS uuid[]))"
)


async def load_schedules(
    session: AsyncSession, job_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, StoredSchedule]:
    """The stored schedule (JSONB), run count and `pause_after_run` of each job, for the rare
    paths that need schedule math."""
    if not job_ids:
        return {}
    rows = await session.execute(_SCHEDULES, {"ids": list(job_ids)})
    return {
        row.id: StoredSchedule(row.schedule, row.run_count, row.pause_after_run) for row in rows
    }


_CLAIM_OCCURRENCES = text("""
WITH wanted AS (
    SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:versions AS bigint[]),
                         CAST(:times AS timestamptz[])) AS w(id, lease_version, scheduled_for)
), claimed AS (
    UPDATE jobs AS j
    SET status = 'RUNNING',
        lease_version = j.lease_version + 1,
        lease_expires_at = now() + make_interval(secs => CAST(:lease_s AS double precision)),
        leased_by = :node_id,
        last_run_at = now(),
        updated_at = now(),
        next_run_at = w.scheduled_for
    FROM wanted AS w
    WHERE j.id = w.id AND j.lease_version = w.lease_version
      AND j.status = 'SCHEDULED'
    RETURNING j.id, j.owner_id, j.type, j.payload, j.next_run_at, j.attempt, j.lease_version,
        j.lease_expires_at, j.timeout_s
), inserted AS (
    INSERT INTO executions (job_id, scheduled_for, attempt, lease_version, status)
    SELECT id, next_run_at, attempt, lease_version, 'DISPATCHED' FROM claimed
    ON CONFLICT ON CONSTRAINT uq_executions_occurrence DO NOTHING
    RETURNING id, job_id
)
SELECT c.id AS job_id, c.owner_id, c.type, c.payload, c.next_run_at, c.attempt,
       c.lease_version, c.lease_expires_at, c.timeout_s, i.id AS execution_id
FROM claimed AS c LEFT JOIN inserted AS i ON i.job_id = c.id
""")


async def claim_occurrences(
    session: AsyncSession,
    occurrences: Sequence[tuple[uuid.UUID, int, datetime]],
    *,
    lease_s: float,
    node_id: str,
) -> list[Claimed]:
    """Claim each `(job_id, lease_version, scheduled_for)` (a late job its misfire policy runs)
    as `claim_due_jobs` claims an on-time one, `scheduled_for` becoming its `next_run_at`.
    A job whose token or state moved on is left out of the answer."""
    if not occurrences:
        return []
    ids, versions, times = (list(column) for column in zip(*occurrences, strict=True))
    rows = await session.execute(
        _CLAIM_OCCURRENCES,
        {"ids": ids, "versions": versions, "times": times, "lease_s": lease_s, "node_id": node_id},
    )
    return [_claimed(row, row.next_run_at, row.execution_id) for row in rows]


# The flag of a run requested on a PAUSED job survives only a move to SCHEDULED: a retry of
# that run. Every other move ends the run (`libs.occurrences` decided PAUSED, COMPLETED or
# FAILED). The right-hand side reads the row as it was.
_KEEP_PAUSE_AFTER_RUN = "pause_after_run = j.pause_after_run AND u.status = 'SCHEDULED'"

_MOVE_SCHEDULED = text(f"""
UPDATE jobs AS j
SET next_run_at = u.next_run_at, status = u.status, attempt = 1, updated_at = now(),
    {_KEEP_PAUSE_AFTER_RUN}
FROM unnest(CAST(:ids AS uuid[]), CAST(:versions AS bigint[]),
            CAST(:nexts AS timestamptz[]), CAST(:statuses AS text[]))
     AS u(id, lease_version, next_run_at, status)
WHERE j.id = u.id AND j.lease_version = u.lease_version AND j.status = 'SCHEDULED'
RETURNING j.id
""")  # noqa: S608 (a constant fragment)


@dataclass(frozen=True, slots=True)
class Skip:
    """A SCHEDULED job moving on to `next_run_at` as `status` (SCHEDULED, or PAUSED after a
    requested run; COMPLETED when `next_run_at` is None) without running its occurrence."""

    job_id: uuid.UUID
    lease_version: int
    next_run_at: datetime | None
    status: JobStatus


async def skip_occurrences(session: AsyncSession, moves: Sequence[Skip]) -> list[uuid.UUID]:
    """Move each SCHEDULED job on without running the occurrence it was due for (attempt back
    to 1). Returns the jobs moved; a job whose token or state moved on is not."""
    if not moves:
        return []
    rows = await session.execute(
        _MOVE_SCHEDULED,
        {
            "ids": [m.job_id for m in moves],
            "versions": [m.lease_version for m in moves],
            "nexts": [m.next_run_at for m in moves],
            "statuses": [m.status.value for m in moves],
        },
    )
    return [row.id for row in rows]


_FAIL_JOBS = text("""
UPDATE jobs AS j
SET status = 'FAILED', next_run_at = NULL, lease_expires_at = NULL,
    leased_by = NULL, pause_after_run = false, updated_at = now()
FROM unnest(CAST(:ids AS uuid[]), CAST(:versions AS bigint[])) AS u(id, lease_version)
WHERE j.id = u.id AND j.lease_version = u.lease_version
  AND j.status = ANY(CAST(:sources AS text[]))
RETURNING j.id
""")


async def fail_jobs(
    session: AsyncSession, jobs: Sequence[tuple[uuid.UUID, int]]
) -> list[uuid.UUID]:
    """FAIL each `(job_id, lease_version)` that may still fail (its schedule is unreadable)."""
    if not jobs:
        return []
    ids, versions = (list(column) for column in zip(*jobs, strict=True))
    rows = await session.execute(
        _FAIL_JOBS, {"ids": ids, "versions": versions, "sources": _FAILED_SOURCES}
    )
    return [row.id for row in rows]


# Undoing a claim whose DISPATCHED execution the statement deleted (CTE `gone`): the job is
# SCHEDULED again with its occurrence and attempt, and its `last_run_at` (when its previous
# occurrence was claimed, which the misfire rule `run_once` reads) goes back to the claim
# before, the newest execution left (an execution is created with its claim). The statement's
# snapshot still holds the deleted row, hence `gone` excluded.
_UNDO_CLAIM = """
    status = 'SCHEDULED', lease_expires_at = NULL, leased_by = NULL, updated_at = now(),
    last_run_at = (SELECT max(e.created_at) FROM executions AS e
                   WHERE e.job_id = j.id AND e.id NOT IN (SELECT id FROM gone))"""

_HAND_BACK = text(f"""
WITH gone AS (
    DELETE FROM executions AS e
    USING unnest(CAST(:executions AS uuid[]), CAST(:versions AS bigint[]))
              AS h(id, lease_version),
          jobs AS j
    WHERE e.id = h.id AND e.lease_version = h.lease_version
      AND e.status = 'DISPATCHED'
      AND j.id = e.job_id AND j.lease_version = h.lease_version
      AND j.status = 'RUNNING'
    RETURNING e.id, e.job_id, e.lease_version
)
UPDATE jobs AS j
SET {_UNDO_CLAIM}
FROM gone
WHERE j.id = gone.job_id AND j.lease_version = gone.lease_version
  AND j.status = 'RUNNING'
RETURNING j.id
""")  # noqa: S608 (a constant subquery)


async def hand_back(
    session: AsyncSession, dispatches: Sequence[tuple[uuid.UUID, int]]
) -> list[uuid.UUID]:
    """Undo the claims of `(execution_id, lease_version)` dispatches that were never published:
    each job back to SCHEDULED (its `next_run_at` and attempt unchanged, so it is due again at
    once, and no attempt is used) and its DISPATCHED execution row deleted, so the unique key
    does not refuse the re-dispatch.

    Guarded by the fencing token and by the execution still being DISPATCHED: a job whose lease
    moved on, or whose execution an executor started after all, is left alone. Returns the jobs
    handed back."""
    if not dispatches:
        return []
    executions, versions = (list(column) for column in zip(*dispatches, strict=True))
    rows = await session.execute(_HAND_BACK, {"executions": executions, "versions": versions})
    return [row.id for row in rows]


_NEXT_DUE_IN = text("""
SELECT EXTRACT(EPOCH FROM min(next_run_at) - now())::double precision
FROM jobs WHERE status = 'SCHEDULED' AND deleted_at IS NULL
""")


async def seconds_until_next_due(session: AsyncSession) -> float | None:
    """Seconds from the database's now to the earliest `next_run_at` of a SCHEDULED job
    (negative when one is due already); None when no job is scheduled."""
    return (await session.execute(_NEXT_DUE_IN)).scalar_one()


_COUNT_DUE = text("""
SELECT count(*) FROM (
    SELECT 1 FROM jobs
    WHERE status = 'SCHEDULED' AND next_run_at <= now() AND deleted_at IS NULL
    LIMIT :cap
) AS due
""")


async def count_due(session: AsyncSession, *, cap: int) -> int:
    """How many SCHEDULED jobs are due now, counted up to `cap` (a huge backlog is not worth
    counting exactly at every heartbeat)."""
    return (await session.execute(_COUNT_DUE, {"cap": cap})).scalar_one()


# --- Lease recovery ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expired:
    """A RUNNING job whose lease expired, locked, with its lost execution (if it had one)."""

    job_id: uuid.UUID
    owner_id: uuid.UUID
    lease_version: int
    next_run_at: datetime | None
    attempt: int
    run_count: int
    retry_policy: dict[str, Any]
    schedule: dict[str, Any]
    payload: dict[str, Any]
    pause_after_run: bool
    execution_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class Expiry:
    db_now: datetime
    expired: list[Expired]


_CLAIM_EXPIRED = text("""
WITH expired AS (
    -- `next_run_at` here is the nominal time of the occurrence that was running.
    SELECT id, owner_id, lease_version,
           CASE WHEN attempt > 1 THEN coalesce(occurrence_at, next_run_at)
                ELSE next_run_at END AS next_run_at,
           attempt, run_count, retry_policy, schedule, payload, pause_after_run
    FROM jobs AS j
    WHERE status = 'RUNNING' AND lease_expires_at < now()
      AND EXISTS (SELECT 1 FROM executions AS e
                  WHERE e.job_id = j.id AND e.lease_version = j.lease_version
                    AND e.status <> 'DISPATCHED')
    ORDER BY lease_expires_at
    LIMIT :batch
    FOR UPDATE SKIP LOCKED
), lost AS (
    UPDATE executions AS e
    SET status = 'LOST', finished_at = now(), error_kind = :error_kind,
        error = :error
    FROM expired AS x
    WHERE e.job_id = x.id AND e.lease_version = x.lease_version
      AND e.status = ANY(CAST(:sources AS text[]))
    RETURNING e.id, e.job_id
)
SELECT now() AS db_now, x.id AS job_id, x.owner_id, x.lease_version, x.next_run_at, x.attempt,
       x.run_count, x.retry_policy, x.schedule, x.payload, x.pause_after_run,
       lost.id AS execution_id
FROM expired AS x LEFT JOIN lost ON lost.job_id = x.id
""")


async def recover_expired_leases(session: AsyncSession, *, batch: int) -> Expiry:
    """Lock up to `batch` RUNNING jobs whose lease expired (by the database clock, skipping rows
    another scheduler holds) after their dispatch was started, and mark the execution of each
    one's current lease LOST. The jobs stay locked and RUNNING; `reschedule_running` says what
    becomes of them (the lost attempt counts)."""
    rows = (
        await session.execute(
            _CLAIM_EXPIRED,
            {
                "batch": batch,
                "sources": _LOST_SOURCES,
                "error_kind": LEASE_EXPIRED_KIND,
                "error": LEASE_EXPIRED,
            },
        )
    ).all()
    if not rows:
        return Expiry(db_now=(await session.execute(_NOW)).scalar_one(), expired=[])
    expired = {
        row.job_id: Expired(
            job_id=row.job_id,
            owner_id=row.owner_id,
            lease_version=row.lease_version,
            next_run_at=row.next_run_at,
            attempt=row.attempt,
            run_count=row.run_count,
            retry_policy=row.retry_policy,
            schedule=row.schedule,
            payload=row.payload,
            pause_after_run=row.pause_after_run,
            execution_id=row.execution_id,
        )
        for row in rows
    }
    return Expiry(db_now=rows[0].db_now, expired=list(expired.values()))


# A dispatch whose lease expired before any executor started it (the scheduler died before
# publishing, the broker lost the message, no executor took it in time): its claim is undone
# as a hand-back undoes it, so the job is dispatched again with the same attempt.
_REDISPATCH_UNSTARTED = text(f"""
WITH expired AS (
    SELECT j.id, j.lease_version FROM jobs AS j
    WHERE j.status = 'RUNNING' AND j.lease_expires_at < now()
      AND NOT EXISTS (SELECT 1 FROM executions AS e
                      WHERE e.job_id = j.id AND e.lease_version = j.lease_version
                        AND e.status <> 'DISPATCHED')
    ORDER BY j.lease_expires_at
    LIMIT :batch
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM executions AS e
    USING expired AS x
    WHERE e.job_id = x.id AND e.lease_version = x.lease_version AND e.status = 'DISPATCHED'
    RETURNING e.id, e.job_id
)
UPDATE jobs AS j
SET {_UNDO_CLAIM}
FROM expired AS x
WHERE j.id = x.id
RETURNING j.id, j.lease_version, j.next_run_at, j.attempt
""")  # noqa: S608 (a constant subquery)


@dataclass(frozen=True, slots=True)
class Redispatched:
    job_id: uuid.UUID
    lease_version: int  # of the undone claim
    next_run_at: datetime | None
    attempt: int


# The payload is the earliest time now due, ISO 8601 (`libs.channels`): now.
_NOTIFY_DUE = text("SELECT pg_notify(:channel, to_json(now()) #>> '{}')")


async def redispatch_unstarted(session: AsyncSession, *, batch: int) -> list[Redispatched]:
    """Undo up to `batch` claims whose dispatch lease expired with no executor having started
    the dispatch (by the database clock, skipping rows another scheduler holds): each job back
    to SCHEDULED at the same occurrence and attempt, due again at once, its DISPATCHED
    execution deleted. A copy of the dispatch that arrives later finds nothing to start."""
    rows = (await session.execute(_REDISPATCH_UNSTARTED, {"batch": batch})).all()
    if rows:  # due again now: every scheduler may look at once
        await session.execute(_NOTIFY_DUE, {"channel": channels.JOBS_DUE})
    return [Redispatched(row.id, row.lease_version, row.next_run_at, row.attempt) for row in rows]


@dataclass(frozen=True, slots=True)
class Reschedule:
    """What a RUNNING job becomes: SCHEDULED (or PAUSED, after a requested run) at
    `next_run_at` with `attempt`, or `status` (COMPLETED or FAILED) when `next_run_at` is None."""

    job_id: uuid.UUID
    lease_version: int
    status: JobStatus
    next_run_at: datetime | None
    attempt: int
    run_count: int


_RESCHEDULE = text(f"""
UPDATE jobs AS j
SET status = u.status, next_run_at = u.next_run_at, attempt = u.attempt,
    run_count = u.run_count, lease_expires_at = NULL, leased_by = NULL, updated_at = now(),
    {_KEEP_PAUSE_AFTER_RUN},
    -- A retry remembers the nominal time of the occurrence it retries (the right-hand side
    -- reads the row as it was: the occurrence that was running).
    occurrence_at = CASE WHEN u.attempt = 1 THEN NULL
                         WHEN j.attempt > 1 THEN coalesce(j.occurrence_at, j.next_run_at)
                         ELSE j.next_run_at END
FROM unnest(CAST(:ids AS uuid[]), CAST(:versions AS bigint[]), CAST(:statuses AS text[]),
            CAST(:nexts AS timestamptz[]), CAST(:attempts AS integer[]),
            CAST(:run_counts AS integer[]))
     AS u(id, lease_version, status, next_run_at, attempt, run_count)
WHERE j.id = u.id AND j.lease_version = u.lease_version AND j.status = 'RUNNING'
RETURNING j.id
""")  # noqa: S608 (a constant fragment)


async def reschedule_running(
    session: AsyncSession, changes: Sequence[Reschedule]
) -> list[uuid.UUID]:
    """Apply each change to its job if the job is still RUNNING under the same fencing token.
    Returns the jobs changed."""
    if not changes:
        return []
    rows = await session.execute(
        _RESCHEDULE,
        {
            "ids": [c.job_id for c in changes],
            "versions": [c.lease_version for c in changes],
            "statuses": [c.status.value for c in changes],
            "nexts": [c.next_run_at for c in changes],
            "attempts": [c.attempt for c in changes],
            "run_counts": [c.run_count for c in changes],
        },
    )
    return [row.id for row in rows]


_DEAD_LETTER = text("""
INSERT INTO dead_letters (job_id, execution_id, owner_id, reason, error, attempts, payload)
SELECT * FROM unnest(CAST(:job_ids AS uuid[]), CAST(:execution_ids AS uuid[]),
                     CAST(:owner_ids AS uuid[]), CAST(:reasons AS text[]),
                     CAST(:errors AS text[]), CAST(:attempts AS integer[]),
                     CAST(:payloads AS jsonb[]))
""")


async def insert_dead_letters(
    session: AsyncSession, jobs: Sequence[Expired], *, reason: str, error: str
) -> None:
    """A dead letter for each job given up on, with the payload it had."""
    if not jobs:
        return
    await session.execute(
        _DEAD_LETTER,
        {
            "job_ids": [j.job_id for j in jobs],
            "execution_ids": [j.execution_id for j in jobs],
            "owner_ids": [j.owner_id for j in jobs],
            "reasons": [reason] * len(jobs),
            "errors": [error] * len(jobs),
            "attempts": [j.attempt for j in jobs],
            "payloads": [json.dumps(j.payload) for j in jobs],
        },
    )
