"""Every query of the scheduler service.

The hot path (`claim_due_jobs`) is one statement: it locks due jobs with `FOR UPDATE SKIP LOCKED`
(so any number of schedulers take disjoint sets), marks the on-time ones RUNNING under a new
fencing token and inserts their execution rows, all set-based. Every later change to a job is
a guarded update (`... AND lease_version = :token AND status = ANY(:sources)`, the states
`libs.scheduling.states` allows the move from): zero rows back is an answer (someone else moved the
job on), never an error. A RUNNING job's move to its next state is `libs.store.occurrence_store`'s,
shared with the executor. Nothing here commits; the loop that holds the session does. Driver
errors become `DatabaseUnavailable` in the caller's `libs.infra.db.transaction`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from libs.contracts import channels
from libs.infra import errors, notifications
from libs.scheduling import backoff, occurrences, schedule, states
from libs.scheduling.occurrences import UnreadableSchedule
from libs.scheduling.states import ExecutionStatus, JobStatus
from libs.store import occurrence_store

LEASE_EXPIRED = "lease expired"
LEASE_EXPIRED_KIND = "lease_expired"
# States a transition may start from, as the text[] a guarded update compares with.
_LOST_SOURCES = states.bound(states.execution_sources(ExecutionStatus.LOST))
_FAILED_SOURCES = states.bound(states.platform_job_sources(JobStatus.FAILED))
_CLAIM_SOURCES = states.platform_job_sources(JobStatus.RUNNING)
_WITHDRAWN_FROM, _WITHDRAWN_TO = states.WITHDRAWN_JOB_MOVE
_WITHDRAWABLE = states.bound(states.WITHDRAWABLE_EXECUTIONS)
_UNSTARTED = states.bound(states.UNSTARTED_EXECUTIONS)


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
    due_at: datetime  # when the attempt is to start: its `next_run_at` at the claim
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
    # The earliest `next_run_at` of the SCHEDULED jobs the claim did not lock (None: none):
    # within the claim's window, one that another transaction holds.
    next_due: datetime | None = None


# The three CTEs' rows (and the next due time) come back as one UNION ALL, told apart by
# `kind` and paired by job id in Python: joining them in SQL makes the planner, which
# estimates one row per CTE, compare every claimed row with every inserted one (most of a
# batch's time at 500 rows).
_CLAIM_DUE_SQL = f"""
WITH due AS (
    SELECT id, lease_version, next_run_at, attempt, run_count, last_run_at, last_finished_at,
           misfire_policy, misfire_grace_s, pause_after_run,
           next_run_at < now() - make_interval(secs => misfire_grace_s) AS late
    FROM jobs
    WHERE status = CAST($6 AS text) AND deleted_at IS NULL
      AND next_run_at <= now() + make_interval(secs => CAST($7 AS double precision))
    ORDER BY next_run_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    -- The dispatch lease: time for the message to reach an executor, whose claim gives the
    -- attempt a running lease of its own. A dispatch not started by then is re-dispatched.
    UPDATE jobs AS j
    SET status = CAST($4 AS text),
        lease_version = j.lease_version + 1,
        lease_expires_at = now() + make_interval(secs => CAST($2 AS double precision)),
        leased_by = $3,
        last_run_at = now(),
        updated_at = now(),
        -- A retry's execution keeps the nominal time of the occurrence it retries.
        occurrence_at = {occurrence_store.nominal_time_at_claim("j.next_run_at")}
    FROM due WHERE j.id = due.id AND NOT due.late
    RETURNING j.id, j.owner_id, j.type, j.payload, j.occurrence_at AS scheduled_for,
              j.next_run_at AS due_at, j.attempt, j.lease_version, j.lease_expires_at,
              j.timeout_s
), inserted AS (
    INSERT INTO executions (job_id, scheduled_for, attempt, lease_version, status)
    SELECT id, scheduled_for, attempt, lease_version, CAST($5 AS text) FROM claimed
    ON CONFLICT ON CONSTRAINT uq_executions_occurrence DO NOTHING
    RETURNING id, job_id
)
SELECT 'claimed' AS kind, now() AS db_now, id AS job_id, owner_id, type, payload,
       scheduled_for AS next_run_at, due_at,
       attempt, lease_version, lease_expires_at, timeout_s, NULL::uuid AS execution_id,
       NULL::integer AS run_count, NULL::timestamptz AS last_run_at,
       NULL::timestamptz AS last_finished_at, NULL::text AS misfire_policy,
       NULL::integer AS misfire_grace_s, NULL::boolean AS pause_after_run
FROM claimed
UNION ALL
SELECT 'inserted', now(), job_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, id,
       NULL, NULL, NULL, NULL, NULL, NULL
FROM inserted
UNION ALL
SELECT 'late', now(), id, NULL, NULL, NULL, next_run_at, NULL, attempt, lease_version, NULL,
       NULL, NULL, run_count, last_run_at, last_finished_at, misfire_policy, misfire_grace_s,
       pause_after_run
FROM due WHERE late
UNION ALL
-- When the dispatcher is to look again: the earliest due time of the jobs this claim left
-- (one row, NULL when none). A job inside the window here is one another claim holds.
SELECT 'next', now(), NULL, NULL, NULL, NULL, NULL, min(next_run_at), NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM jobs
WHERE status = CAST($6 AS text) AND deleted_at IS NULL AND id NOT IN (SELECT id FROM due)
"""  # noqa: S608 (constant fragments)

_NOW = text("SELECT now()")
_CLAIMED = JobStatus.RUNNING.value
_DUE = states.only(_CLAIM_SOURCES)  # the one state a claim starts from
_DISPATCHED = ExecutionStatus.DISPATCHED.value


def _claimed(row: Any, scheduled_for: datetime, execution_id: uuid.UUID | None) -> Claimed:
    return Claimed(
        job_id=row.job_id,
        owner_id=row.owner_id,
        type=row.type,
        payload=row.payload,
        scheduled_for=scheduled_for,
        due_at=scheduled_for,
        attempt=row.attempt,
        lease_version=row.lease_version,
        lease_expires_at=row.lease_expires_at,
        timeout_s=row.timeout_s,
        execution_id=execution_id,
    )


async def claim_due_jobs(
    session: AsyncSession, *, batch: int, lease_s: float, node_id: str, lookahead_s: float = 0.0
) -> Claim:
    """Lock up to `batch` jobs due within `lookahead_s` (by the database clock, oldest first,
    skipping rows another scheduler holds); claim the on-time ones (RUNNING, next fencing token,
    a dispatch lease of `lease_s`, an execution row each) and return the late ones still locked
    and SCHEDULED, for the misfire policy to decide in the same transaction, and when the
    earliest job left is due."""
    # The first statement goes through SQLAlchemy: its asyncpg adapter sends BEGIN only with
    # a statement of its own, and the claim below must run inside the transaction, so that the
    # late jobs it returns stay locked until the misfire policy has decided them.
    db_now = (await session.execute(_NOW)).scalar_one()
    # Then through the session's own asyncpg connection (same transaction): SQLAlchemy's result
    # processing of a batch's rows costs as much as the statement's execution here.
    connection = await (await session.connection()).get_raw_connection()
    try:
        rows = await connection.driver_connection.fetch(
            _CLAIM_DUE_SQL, batch, lease_s, node_id, _CLAIMED, _DISPATCHED, _DUE, lookahead_s
        )
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise errors.DatabaseUnavailable(f"claim failed: {errors.describe(exc)}") from exc
    next_due = next(row["due_at"] for row in rows if row["kind"] == "next")
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
            due_at=row["due_at"],
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
    return Claim(db_now=db_now, claimed=claimed, late=late, next_due=next_due)


@dataclass(frozen=True, slots=True)
class StoredSchedule:
    schedule: schedule.Schedule | UnreadableSchedule
    run_count: int
    pause_after_run: bool


_SCHEDULES = text(
    "SELECT id, schedule, run_count, pause_after_run FROM jobs WHERE id = ANY(CAST(:ids AS uuid[]))"
)


async def load_schedules(
    session: AsyncSession, job_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, StoredSchedule]:
    """The schedule, run count and `pause_after_run` of each job, for the rare paths that need
    schedule math."""
    if not job_ids:
        return {}
    rows = await session.execute(_SCHEDULES, {"ids": list(job_ids)})
    return {
        row.id: StoredSchedule(
            occurrences.read_schedule(row.schedule), row.run_count, row.pause_after_run
        )
        for row in rows
    }


_CLAIM_OCCURRENCES = text(f"""
WITH wanted AS (
    SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:versions AS bigint[]),
                         CAST(:times AS timestamptz[])) AS w(id, lease_version, scheduled_for)
), claimed AS (
    UPDATE jobs AS j
    SET status = CAST(:target AS text),
        lease_version = j.lease_version + 1,
        lease_expires_at = now() + make_interval(secs => CAST(:lease_s AS double precision)),
        leased_by = :node_id,
        last_run_at = now(),
        updated_at = now(),
        next_run_at = w.scheduled_for,
        occurrence_at = {occurrence_store.nominal_time_at_claim("w.scheduled_for")}
    FROM wanted AS w
    WHERE j.id = w.id AND j.lease_version = w.lease_version
      AND j.status = ANY(CAST(:sources AS text[]))
    RETURNING j.id, j.owner_id, j.type, j.payload, j.next_run_at, j.attempt, j.lease_version,
        j.lease_expires_at, j.timeout_s
), inserted AS (
    INSERT INTO executions (job_id, scheduled_for, attempt, lease_version, status)
    SELECT id, next_run_at, attempt, lease_version, CAST(:dispatched AS text) FROM claimed
    ON CONFLICT ON CONSTRAINT uq_executions_occurrence DO NOTHING
    RETURNING id, job_id
)
SELECT c.id AS job_id, c.owner_id, c.type, c.payload, c.next_run_at, c.attempt,
       c.lease_version, c.lease_expires_at, c.timeout_s, i.id AS execution_id
FROM claimed AS c LEFT JOIN inserted AS i ON i.job_id = c.id
""")  # noqa: S608 (a constant fragment)


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
        {
            "ids": ids,
            "versions": versions,
            "times": times,
            "lease_s": lease_s,
            "node_id": node_id,
            "target": _CLAIMED,
            "sources": states.bound(_CLAIM_SOURCES),
            "dispatched": _DISPATCHED,
        },
    )
    return [_claimed(row, row.next_run_at, row.execution_id) for row in rows]


# The source state is compared row by row, as the token is (`libs.store.occurrence_store`'s move).
_MOVE_SCHEDULED = text(f"""
UPDATE jobs AS j
SET next_run_at = u.next_run_at, status = u.status, attempt = 1, updated_at = now(),
    {occurrence_store.KEEP_PAUSE_AFTER_RUN}
FROM unnest(CAST(:ids AS uuid[]), CAST(:versions AS bigint[]), CAST(:sources AS text[]),
            CAST(:nexts AS timestamptz[]), CAST(:statuses AS text[]))
     AS u(id, lease_version, source, next_run_at, status)
WHERE j.id = u.id AND j.lease_version = u.lease_version AND j.status = u.source
RETURNING j.id
""")  # noqa: S608 (a constant fragment)
_SKIP_SOURCE = JobStatus.SCHEDULED


@dataclass(frozen=True, slots=True)
class Skip:
    """A SCHEDULED job moving on to `next_run_at` as `status` (SCHEDULED, or PAUSED after a
    requested run; COMPLETED when `next_run_at` is None) without running its occurrence."""

    job_id: uuid.UUID
    lease_version: int
    next_run_at: datetime | None
    status: JobStatus

    def __post_init__(self) -> None:
        # Staying SCHEDULED is an update (the job moves on in time), not a transition.
        if self.status is not _SKIP_SOURCE and not states.platform_may_move(
            _SKIP_SOURCE, self.status
        ):
            raise ValueError(f"the platform does not move a job {_SKIP_SOURCE} -> {self.status}")


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
            "sources": [_SKIP_SOURCE.value] * len(moves),
            "nexts": [m.next_run_at for m in moves],
            "statuses": [m.status.value for m in moves],
            "scheduled": JobStatus.SCHEDULED.value,
        },
    )
    return [row.id for row in rows]


_FAIL_JOBS = text("""
UPDATE jobs AS j
SET status = CAST(:target AS text), next_run_at = NULL, lease_expires_at = NULL,
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
        _FAIL_JOBS,
        {
            "ids": ids,
            "versions": versions,
            "target": JobStatus.FAILED.value,
            "sources": _FAILED_SOURCES,
        },
    )
    return [row.id for row in rows]


# Undoing a claim whose DISPATCHED execution the statement deleted (CTE `gone`): the dispatch
# is withdrawn (`libs.scheduling.states.WITHDRAWN_JOB_MOVE`), the job SCHEDULED again with its
# occurrence and attempt, and its `last_run_at` (when its previous occurrence was claimed, which the
# misfire rule `run_once` reads) goes back to the claim before, the newest execution left (an
# execution is created with its claim). The statement's snapshot still holds the deleted row,
# hence `gone` excluded.
_UNDO_CLAIM = """
    status = CAST(:withdrawn_to AS text), lease_expires_at = NULL, leased_by = NULL,
    updated_at = now(),
    last_run_at = (SELECT max(e.created_at) FROM executions AS e
                   WHERE e.job_id = j.id AND e.id NOT IN (SELECT id FROM gone))"""

# The parameters of a withdrawal (`_UNDO_CLAIM` and the DELETE before it).
_WITHDRAWAL = {
    "withdrawable": _WITHDRAWABLE,
    "withdrawn_from": _WITHDRAWN_FROM.value,
    "withdrawn_to": _WITHDRAWN_TO.value,
}

_HAND_BACK = text(f"""
WITH gone AS (
    DELETE FROM executions AS e
    USING unnest(CAST(:executions AS uuid[]), CAST(:versions AS bigint[]))
              AS h(id, lease_version),
          jobs AS j
    WHERE e.id = h.id AND e.lease_version = h.lease_version
      AND e.status = ANY(CAST(:withdrawable AS text[]))
      AND j.id = e.job_id AND j.lease_version = h.lease_version
      AND j.status = CAST(:withdrawn_from AS text)
    RETURNING e.id, e.job_id, e.lease_version
)
UPDATE jobs AS j
SET {_UNDO_CLAIM}
FROM gone
WHERE j.id = gone.job_id AND j.lease_version = gone.lease_version
  AND j.status = CAST(:withdrawn_from AS text)
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
    rows = await session.execute(
        _HAND_BACK, {"executions": executions, "versions": versions, **_WITHDRAWAL}
    )
    return [row.id for row in rows]


_COUNT_DUE = text("""
SELECT count(*) FROM (
    SELECT 1 FROM jobs
    WHERE status = CAST(:due AS text) AND next_run_at <= now() AND deleted_at IS NULL
    LIMIT :cap
) AS due
""")


async def count_due(session: AsyncSession, *, cap: int) -> int:
    """How many SCHEDULED jobs are due now, counted up to `cap` (a huge backlog is not worth
    counting exactly at every heartbeat)."""
    return (await session.execute(_COUNT_DUE, {"cap": cap, "due": _DUE})).scalar_one()


# --- Lease recovery ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expired:
    """A RUNNING job whose lease expired, locked, with its lost execution (if it had one)."""

    job_id: uuid.UUID
    owner_id: uuid.UUID
    lease_version: int
    occurrence_at: datetime | None  # the nominal time of the occurrence that was running
    attempt: int
    run_count: int
    retry_policy: backoff.RetryPolicy
    schedule: schedule.Schedule | UnreadableSchedule
    payload: dict[str, Any]
    pause_after_run: bool
    execution_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class Expiry:
    db_now: datetime
    expired: list[Expired]


# A started attempt's lease is its execution's running lease, set by the start; an execution
# started before that existed (migration 0013) has none, and its start extended the job's.
_CLAIM_EXPIRED = text("""
WITH expired AS (
    SELECT id, owner_id, lease_version, occurrence_at, attempt, run_count, retry_policy,
           schedule, payload, pause_after_run
    FROM jobs AS j
    WHERE status = CAST(:in_flight AS text) AND lease_expires_at < now()
      AND EXISTS (SELECT 1 FROM executions AS e
                  WHERE e.job_id = j.id AND e.lease_version = j.lease_version
                    AND e.status <> ALL(CAST(:unstarted AS text[]))
                    AND coalesce(e.lease_expires_at, j.lease_expires_at) < now())
    ORDER BY lease_expires_at
    LIMIT :batch
    FOR UPDATE SKIP LOCKED
), lost AS (
    UPDATE executions AS e
    SET status = CAST(:lost AS text), finished_at = now(), error_kind = :error_kind,
        error = :error
    FROM expired AS x
    WHERE e.job_id = x.id AND e.lease_version = x.lease_version
      AND e.status = ANY(CAST(:sources AS text[]))
    RETURNING e.id, e.job_id
)
SELECT now() AS db_now, x.id AS job_id, x.owner_id, x.lease_version, x.occurrence_at, x.attempt,
       x.run_count, x.retry_policy, x.schedule, x.payload, x.pause_after_run,
       lost.id AS execution_id
FROM expired AS x LEFT JOIN lost ON lost.job_id = x.id
""")


async def recover_expired_leases(session: AsyncSession, *, batch: int) -> Expiry:
    """Lock up to `batch` RUNNING jobs whose attempt was started and whose running lease expired
    (by the database clock, skipping rows another scheduler holds), and mark the execution of
    each one's current lease LOST. The jobs stay locked and RUNNING; `libs.store.occurrence_store`
    moves them on (the lost attempt counts)."""
    rows = (
        await session.execute(
            _CLAIM_EXPIRED,
            {
                "batch": batch,
                "in_flight": occurrence_store.SOURCE.value,
                "unstarted": _UNSTARTED,
                "lost": ExecutionStatus.LOST.value,
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
            occurrence_at=row.occurrence_at,
            attempt=row.attempt,
            run_count=row.run_count,
            retry_policy=backoff.RetryPolicy.load(row.retry_policy),
            schedule=occurrences.read_schedule(row.schedule),
            payload=row.payload,
            pause_after_run=row.pause_after_run,
            execution_id=row.execution_id,
        )
        for row in rows
    }
    return Expiry(db_now=rows[0].db_now, expired=list(expired.values()))


# A dispatch whose lease expired before any executor started it (the scheduler died before
# publishing, the broker lost the message, no executor took it in time): it is withdrawn as a
# hand-back withdraws it, so the job is dispatched again with the same attempt.
_REDISPATCH_UNSTARTED = text(f"""
WITH expired AS (
    SELECT j.id, j.lease_version FROM jobs AS j
    WHERE j.status = CAST(:withdrawn_from AS text) AND j.lease_expires_at < now()
      AND NOT EXISTS (SELECT 1 FROM executions AS e
                      WHERE e.job_id = j.id AND e.lease_version = j.lease_version
                        AND e.status <> ALL(CAST(:withdrawable AS text[])))
    ORDER BY j.lease_expires_at
    LIMIT :batch
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM executions AS e
    USING expired AS x
    WHERE e.job_id = x.id AND e.lease_version = x.lease_version
      AND e.status = ANY(CAST(:withdrawable AS text[]))
    RETURNING e.id, e.job_id
)
UPDATE jobs AS j
SET {_UNDO_CLAIM}
FROM expired AS x
WHERE j.id = x.id AND j.status = CAST(:withdrawn_from AS text)
RETURNING now() AS db_now, j.id, j.lease_version, j.next_run_at, j.attempt
""")  # noqa: S608 (a constant subquery)


@dataclass(frozen=True, slots=True)
class Redispatched:
    job_id: uuid.UUID
    lease_version: int  # of the undone claim
    next_run_at: datetime | None
    attempt: int


async def redispatch_unstarted(session: AsyncSession, *, batch: int) -> list[Redispatched]:
    """Undo up to `batch` claims whose dispatch lease expired with no executor having started
    the dispatch (by the database clock, skipping rows another scheduler holds): each job back
    to SCHEDULED at the same occurrence and attempt, due again at once, its DISPATCHED
    execution deleted. A copy of the dispatch that arrives later finds nothing to start."""
    rows = (await session.execute(_REDISPATCH_UNSTARTED, {"batch": batch, **_WITHDRAWAL})).all()
    if rows:  # due again now: every scheduler may look at once
        # The payload is the earliest time now due (`libs.contracts.channels`): now.
        await notifications.send(session, channels.JOBS_DUE, rows[0].db_now.isoformat())
    return [Redispatched(row.id, row.lease_version, row.next_run_at, row.attempt) for row in rows]
