"""Every query of the job service.

Visibility is part of every query: `owner` is the caller's id, or None for an admin (who sees
every owner's rows); a deleted job is invisible except through its executions and dead letters.
State changes are guarded updates (`UPDATE ... WHERE id = :id AND status = ANY(:sources) ...
RETURNING`): None back means the guard did not hold, and the caller names the reason. Nothing
here commits; the request that holds the session does.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    ARRAY,
    TIMESTAMP,
    ColumnElement,
    Integer,
    Select,
    Text,
    Uuid,
    bindparam,
    case,
    false,
    func,
    select,
    text,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from libs.contracts import channels, cursors
from libs.infra import notifications
from libs.scheduling import states
from libs.scheduling.states import ExecutionStatus, JobStatus
from libs.store import models

Job = models.Job
Execution = models.Execution
DeadLetter = models.DeadLetter
IdempotencyKey = models.IdempotencyKey
# Re-read what an UPDATE ... RETURNING gives back even if the session holds the row already.
_FRESH = {"populate_existing": True}
JobOrder = Literal["createdAt", "nextRunAt"]

# --- Which states a person's request starts from (`libs.scheduling.states`)
# --------------------------------

# States in which a job may still change (its definition by PATCH, a pending return to PAUSED by
# resume): those with a way out in the table. A FAILED job may be fixed before a person runs it
# again; a COMPLETED or CANCELLED one is history, which an edit would make describe a job that
# never ran that way.
CHANGEABLE = frozenset(s for s, moves in states.JOB_TRANSITIONS.items() if moves)
# Resume: the table's ways into SCHEDULED that the platform never takes, a person's requests by
# the table's own rule (RUNNING -> SCHEDULED is the platform's: an occurrence's outcome, a
# hand-back, lease recovery). They also bound a resume whose schedule has no occurrence left,
# which completes the job.
RESUMABLE = frozenset(
    s
    for s in states.job_sources(JobStatus.SCHEDULED)
    if not states.platform_may_move(s, JobStatus.SCHEDULED)
)
# Run-now: the resumable states, and SCHEDULED, which stays SCHEDULED (no transition: only its
# next run moves). A RUNNING job is not runnable: its occurrence's end moves it on.
RUNNABLE = RESUMABLE | {JobStatus.SCHEDULED}
# A dead letter's replay runs the job now with attempts counted from 1, as run-now does, except
# on a PAUSED job: the replay of one failure does not lift the pause a person or the job's
# target asked for (resume or run-now does, on request).
REPLAYABLE = RUNNABLE - {JobStatus.PAUSED}


def _status_in(allowed: Collection[JobStatus]) -> ColumnElement[bool]:
    """The guard of a state change: the job is in one of `allowed`."""
    return Job.status.in_(sorted(str(s) for s in allowed))


async def database_now(session: AsyncSession) -> datetime:
    """The database's clock: the start of the current transaction, as `now()` in SQL and the
    `created_at` defaults see it. Every decision about time in a request uses this one value."""
    now = await session.scalar(select(func.now()))
    assert now is not None  # now() is never NULL
    return now


async def notify_due(session: AsyncSession, earliest: datetime) -> None:
    """Tell listening schedulers, at commit, that a job is due at `earliest` (or before)."""
    await notifications.send(session, channels.JOBS_DUE, earliest.isoformat())


# --- Idempotency keys --------------------------------------------------------------------------


async def claim_idempotency_key(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    key: str,
    request_hash: str,
    job_id: uuid.UUID | None = None,
    batch_results: Sequence[Mapping[str, Any]] | None = None,
) -> bool:
    """Record that `key` creates `job_id` (a single creation) or answers `batch_results` (a
    batch); False when the key exists already.

    A concurrent transaction holding the same key makes this wait until it ends: then the key
    is either there (False) or free again (True).
    """
    statement = (
        pg_insert(IdempotencyKey)
        .values(
            owner_id=owner_id,
            key=key,
            request_hash=request_hash,
            job_id=job_id,
            batch_results=batch_results,
        )
        .on_conflict_do_nothing(index_elements=["owner_id", "key"])
        .returning(IdempotencyKey.key)
    )
    return (await session.scalar(statement)) is not None


async def find_idempotency_key(
    session: AsyncSession, *, owner_id: uuid.UUID, key: str
) -> models.IdempotencyKey | None:
    statement = select(IdempotencyKey).where(
        IdempotencyKey.owner_id == owner_id, IdempotencyKey.key == key
    )
    return await session.scalar(statement, execution_options=_FRESH)


# --- Jobs ----------------------------------------------------------------------------------------


# The columns a new job is inserted with, and the SQL type of each one's array in
# `insert_jobs` (JSONB columns travel as text, serialised here, and are cast by the server).
NEW_JOB_COLUMNS = {
    "id": "uuid",
    "owner_id": "uuid",
    "name": "text",
    "description": "text",
    "labels": "jsonb",
    "type": "text",
    "payload": "jsonb",
    "schedule": "jsonb",
    "schedule_kind": "text",
    "timezone": "text",
    "retry_policy": "jsonb",
    "misfire_policy": "text",
    "misfire_grace_s": "integer",
    "timeout_s": "integer",
    "status": "text",
    "next_run_at": "timestamptz",
}
_ARRAY_TYPES = {
    "uuid": ARRAY(Uuid()),
    "text": ARRAY(Text()),
    "jsonb": ARRAY(Text()),
    "integer": ARRAY(Integer()),
    "timestamptz": ARRAY(TIMESTAMP(timezone=True)),
}
_INSERT_JOBS = text(
    f"INSERT INTO jobs ({', '.join(NEW_JOB_COLUMNS)}) SELECT * FROM unnest("  # noqa: S608
    + ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in NEW_JOB_COLUMNS.items())
    + ") RETURNING *"
).bindparams(*(bindparam(name, type_=_ARRAY_TYPES[kind]) for name, kind in NEW_JOB_COLUMNS.items()))


async def insert_jobs(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> list[models.Job]:
    """Insert `rows` (every column of `NEW_JOB_COLUMNS`, `id` included) and return the jobs
    in the same order.

    One statement whatever the number of rows: each column travels as one array and the
    server unnests them (`INSERT ... SELECT * FROM unnest(...)`), four to six times faster for
    a batch of 1000 than multi-row VALUES, whose parameters the driver binds one by one.
    """
    if not rows:
        return []
    arrays: dict[str, list[Any]] = {name: [] for name in NEW_JOB_COLUMNS}
    for row in rows:
        for name, kind in NEW_JOB_COLUMNS.items():
            value = row[name]
            arrays[name].append(_compact_json(value) if kind == "jsonb" else value)
    statement = select(Job).from_statement(_INSERT_JOBS.bindparams(**arrays))
    inserted = {job.id: job for job in (await session.scalars(statement)).all()}
    return [inserted[row["id"]] for row in rows]


def _compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _visible(owner: uuid.UUID | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Job.deleted_at.is_(None)]
    if owner is not None:
        conditions.append(Job.owner_id == owner)
    return conditions


async def get_job(
    session: AsyncSession, job_id: uuid.UUID, owner: uuid.UUID | None, *, lock: bool = False
) -> models.Job | None:
    """The live job, if `owner` may see it. `lock`: hold its row lock until the transaction
    ends (schedulers skip locked jobs, executors wait), for a change computed from the row."""
    statement = select(Job).where(Job.id == job_id, *_visible(owner))
    if lock:
        statement = statement.with_for_update()
    return await session.scalar(statement, execution_options=_FRESH)


async def get_jobs(
    session: AsyncSession, job_ids: Collection[uuid.UUID], owner: uuid.UUID | None
) -> dict[uuid.UUID, models.Job]:
    """The live jobs among `job_ids` that `owner` may see, by id."""
    if not job_ids:
        return {}
    statement = select(Job).where(Job.id.in_(list(job_ids)), *_visible(owner))
    return {job.id: job for job in await session.scalars(statement, execution_options=_FRESH)}


@dataclass(frozen=True)
class JobFilter:
    statuses: Collection[JobStatus] = ()
    type: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    name_prefix: str | None = None
    owner: uuid.UUID | None = None


def _filtered(owner: uuid.UUID | None, where: JobFilter) -> Select[tuple[models.Job]]:
    statement = select(Job).where(*_visible(owner))
    if where.statuses:
        statement = statement.where(Job.status.in_([str(s) for s in where.statuses]))
    if where.type is not None:
        statement = statement.where(Job.type == where.type)
    if where.labels:
        statement = statement.where(Job.labels.contains(dict(where.labels)))
    if where.name_prefix:
        statement = statement.where(Job.name.startswith(where.name_prefix, autoescape=True))
    if where.owner is not None:
        statement = statement.where(Job.owner_id == where.owner)
    return statement


async def list_jobs(
    session: AsyncSession,
    owner: uuid.UUID | None,
    where: JobFilter,
    *,
    order: JobOrder,
    after: cursors.Position | None,
    limit: int,
) -> Sequence[models.Job]:
    """Jobs in `(created_at, id)` or `(next_run_at NULLS LAST, id)` order, after `after`."""
    if order == "createdAt":
        statement = _filtered(owner, where).order_by(Job.created_at, Job.id).limit(limit)
        if after is not None:
            statement = statement.where(tuple_(Job.created_at, Job.id) > tuple_(*after))
        return (await session.scalars(statement)).all()
    return (await session.scalars(_by_next_run(owner, where, after, limit))).all()


def _by_next_run(
    owner: uuid.UUID | None, where: JobFilter, after: cursors.Position | None, limit: int
) -> Select[tuple[models.Job]]:
    """Jobs with a next run in `(next_run_at, id)` order, then those without one by id.

    Two index range scans merged in order: a row comparison `(next_run_at, id) > (...)` is
    never true for a NULL, and an OR of the two cases would not use the index. Both branches
    are ordered by `(next_run_at, id)` (the second's `next_run_at` is all NULL) because that is
    the order of `ix_jobs_owner_id_next_run_at_id`: ordered by `id` alone, the planner cannot
    see that the index gives it (`IS NULL` is no equality) and scans the primary key instead.
    """
    timed = _filtered(owner, where).where(Job.next_run_at.is_not(None))
    untimed = _filtered(owner, where).where(Job.next_run_at.is_(None))
    if after is not None:
        time, row_id = after
        if time is None:
            timed = timed.where(false())  # the cursor is among the jobs without a next run
            untimed = untimed.where(Job.id > row_id)
        else:
            timed = timed.where(tuple_(Job.next_run_at, Job.id) > tuple_(time, row_id))
    both = union_all(
        timed.order_by(Job.next_run_at, Job.id).limit(limit),
        untimed.order_by(Job.next_run_at, Job.id).limit(limit),
    ).subquery()
    page = aliased(Job, both)
    return select(page).order_by(page.next_run_at.asc().nulls_last(), page.id).limit(limit)


async def update_job(
    session: AsyncSession,
    job_id: uuid.UUID,
    *,
    version: int,
    status: JobStatus,
    values: Mapping[str, Any],
) -> models.Job | None:
    """Apply `values` and bump the version, if the job is still at `version` and `status`, and
    that status is one a job may still change in (`CHANGEABLE`). The status stays: an update is
    no transition."""
    statement = (
        update(Job)
        .where(
            Job.id == job_id,
            Job.version == version,
            Job.status == status,
            _status_in(CHANGEABLE),
            Job.deleted_at.is_(None),
        )
        .values(**values, version=Job.version + 1)
        .returning(Job)
    )
    return await session.scalar(statement, execution_options=_FRESH)


async def transition_job(
    session: AsyncSession,
    job_id: uuid.UUID,
    owner: uuid.UUID | None,
    target: JobStatus,
    *,
    versions: Collection[int] | None = None,
    sources: Collection[JobStatus] | None = None,
    values: Mapping[str, Any] | None = None,
) -> models.Job | None:
    """Move the job to `target` if its state allows it (`libs.scheduling.states`; `sources` narrows
    the allowed states further) and, when `versions` is given, its version is one of them. The move
    is a person's request, so the reason the platform gave for the old status is cleared, and
    so is a pending return to PAUSED after a requested run (the person decided otherwise)."""
    allowed = states.job_sources(target)
    if sources is not None:
        allowed = allowed & frozenset(sources)
    statement = (
        update(Job)
        .where(Job.id == job_id, *_visible(owner), _status_in(allowed))
        .values(
            **(values or {}),
            status=target,
            status_reason=None,
            pause_after_run=False,
            version=Job.version + 1,
        )
        .returning(Job)
    )
    if versions is not None:
        statement = statement.where(Job.version.in_(list(versions)))
    return await session.scalar(statement, execution_options=_FRESH)


async def run_now(
    session: AsyncSession,
    job_id: uuid.UUID,
    owner: uuid.UUID | None,
    *,
    versions: Collection[int] | None = None,
) -> models.Job | None:
    """Make the job due now for one occurrence: a SCHEDULED job stays SCHEDULED (no
    transition) with its attempt; a FAILED one is SCHEDULED with attempts counted from 1; a
    PAUSED one is SCHEDULED with its attempt and `pause_after_run`, to be PAUSED again when
    the occurrence ends. None when the job is absent, invisible, in a state not
    `RUNNABLE` or at another version."""
    statement = (
        update(Job)
        .where(Job.id == job_id, *_visible(owner), _status_in(RUNNABLE))
        .values(
            status=JobStatus.SCHEDULED,
            status_reason=None,
            next_run_at=func.now(),
            attempt=case((Job.status == JobStatus.FAILED, 1), else_=Job.attempt),
            # A second run-now before the first one started keeps its return to PAUSED.
            pause_after_run=(Job.status == JobStatus.PAUSED) | Job.pause_after_run,
            version=Job.version + 1,
        )
        .returning(Job)
    )
    if versions is not None:
        statement = statement.where(Job.version.in_(list(versions)))
    return await session.scalar(statement, execution_options=_FRESH)


async def delete_job(
    session: AsyncSession,
    job_id: uuid.UUID,
    owner: uuid.UUID | None,
    *,
    versions: Collection[int] | None = None,
) -> models.Job | None:
    """Soft-delete the job: `deleted_at` set, no next run, and CANCELLED when its state allows
    it (a finished job keeps the state it finished in)."""
    # No status guard: a job is deleted in any state. Deletion hides the job, it is no move of
    # the state table; the one move it makes, to CANCELLED, is taken only where the table
    # allows it.
    cancels = _status_in(states.job_sources(JobStatus.CANCELLED))
    statement = (
        update(Job)
        .where(Job.id == job_id, *_visible(owner))
        .values(
            deleted_at=func.now(),
            next_run_at=None,
            status=case((cancels, JobStatus.CANCELLED), else_=Job.status),
            status_reason=None,
            pause_after_run=False,
            version=Job.version + 1,
        )
        .returning(Job)
    )
    if versions is not None:
        statement = statement.where(Job.version.in_(list(versions)))
    return await session.scalar(statement, execution_options=_FRESH)


async def replay_job(session: AsyncSession, job_id: uuid.UUID) -> models.Job | None:
    """Make the job due now with a fresh attempt count: a FAILED job goes back to SCHEDULED
    (the transition table's one way out of FAILED); a SCHEDULED one just moves its next run.
    None when the job is deleted or in any other state (`REPLAYABLE`)."""
    statement = (
        update(Job)
        .where(Job.id == job_id, Job.deleted_at.is_(None), _status_in(REPLAYABLE))
        .values(
            status=JobStatus.SCHEDULED,
            status_reason=None,
            attempt=1,
            next_run_at=func.now(),
            version=Job.version + 1,
        )
        .returning(Job)
    )
    return await session.scalar(statement, execution_options=_FRESH)


async def job_status(session: AsyncSession, job_id: uuid.UUID) -> tuple[str, bool] | None:
    """The job's status and whether it is deleted, seen by no owner filter (for naming why a
    guarded update found nothing)."""
    row = (
        await session.execute(
            select(Job.status, Job.deleted_at.is_not(None)).where(Job.id == job_id)
        )
    ).first()
    return None if row is None else (row[0], row[1])


# --- Executions and dead letters -------------------------------------------------------------


@dataclass(frozen=True)
class ExecutionFilter:
    """Which executions a list holds; an empty collection or None sets no condition."""

    job_ids: Collection[uuid.UUID] = ()
    statuses: Collection[ExecutionStatus] = ()
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive


@dataclass(frozen=True)
class ExecutionRow:
    """An execution and what a list across jobs shows of its job."""

    execution: models.Execution
    job_name: str
    job_type: str
    job_deleted: bool


def _executions(owner: uuid.UUID | None) -> Select[tuple[models.Execution, str, str, bool]]:
    """Executions of `owner`'s jobs, deleted jobs included, each with its job's name, type and
    whether it is deleted (a primary-key lookup per row)."""
    statement = select(Execution, Job.name, Job.type, Job.deleted_at.is_not(None)).join(
        Job, Job.id == Execution.job_id
    )
    if owner is not None:
        statement = statement.where(Job.owner_id == owner)
    return statement


async def job_deleted(
    session: AsyncSession, job_id: uuid.UUID, owner: uuid.UUID | None
) -> bool | None:
    """Whether the job is deleted, if `owner` may read its history (deleted or not); None when
    there is no such job or it is another owner's."""
    statement = select(Job.deleted_at.is_not(None)).where(Job.id == job_id)
    if owner is not None:
        statement = statement.where(Job.owner_id == owner)
    return await session.scalar(statement)


async def list_executions(
    session: AsyncSession,
    owner: uuid.UUID | None,
    where: ExecutionFilter,
    *,
    after: cursors.Position | None,
    limit: int,
) -> list[ExecutionRow]:
    """Executions of `owner`'s jobs (deleted ones included) in `(created_at, id)` order, newest
    first, after `after`.

    Needs an index on `executions (created_at, id)`: read backward, with a primary-key lookup
    of each row's job for the owner's condition, a page costs about `limit` divided by the
    owner's share of all executions, whatever the table's size (without it, every page sorts
    all the owner's executions). A `job_ids` filter reads `(job_id, created_at)` instead.
    """
    statement = (
        _executions(owner).order_by(Execution.created_at.desc(), Execution.id.desc()).limit(limit)
    )
    if where.job_ids:
        statement = statement.where(Execution.job_id.in_(list(where.job_ids)))
    if where.statuses:
        statement = statement.where(Execution.status.in_([str(s) for s in where.statuses]))
    if where.created_after is not None:
        statement = statement.where(Execution.created_at >= where.created_after)
    if where.created_before is not None:
        statement = statement.where(Execution.created_at < where.created_before)
    if after is not None:
        statement = statement.where(tuple_(Execution.created_at, Execution.id) < tuple_(*after))
    return [ExecutionRow(*row) for row in (await session.execute(statement)).all()]


async def get_execution(
    session: AsyncSession, execution_id: uuid.UUID, owner: uuid.UUID | None
) -> ExecutionRow | None:
    """The execution, if `owner` owns its job (deleted or not)."""
    row = (await session.execute(_executions(owner).where(Execution.id == execution_id))).first()
    return None if row is None else ExecutionRow(*row)


async def list_dead_letters(
    session: AsyncSession,
    owner: uuid.UUID | None,
    *,
    job_id: uuid.UUID | None,
    replayed: bool | None,
    after: cursors.Position | None,
    limit: int,
) -> list[tuple[models.DeadLetter, bool]]:
    """Dead letters, newest first, each with whether its job is deleted (deleted jobs'
    included)."""
    statement = (
        select(DeadLetter, Job.deleted_at.is_not(None))
        .join(Job, Job.id == DeadLetter.job_id)
        .order_by(DeadLetter.created_at.desc(), DeadLetter.id.desc())
        .limit(limit)
    )
    if owner is not None:
        statement = statement.where(DeadLetter.owner_id == owner)
    if job_id is not None:
        statement = statement.where(DeadLetter.job_id == job_id)
    if replayed is not None:
        replayed_at = DeadLetter.replayed_at
        statement = statement.where(replayed_at.is_not(None) if replayed else replayed_at.is_(None))
    if after is not None:
        statement = statement.where(tuple_(DeadLetter.created_at, DeadLetter.id) < tuple_(*after))
    return [(letter, deleted) for letter, deleted in (await session.execute(statement)).all()]


async def get_dead_letter(
    session: AsyncSession, dead_letter_id: uuid.UUID, owner: uuid.UUID | None
) -> models.DeadLetter | None:
    statement = select(DeadLetter).where(DeadLetter.id == dead_letter_id)
    if owner is not None:
        statement = statement.where(DeadLetter.owner_id == owner)
    return await session.scalar(statement, execution_options=_FRESH)


async def mark_replayed(
    session: AsyncSession, dead_letter_id: uuid.UUID, owner: uuid.UUID | None
) -> models.DeadLetter | None:
    """Set `replayed_at`, once: None when it is absent, not the owner's, or replayed already."""
    statement = (
        update(DeadLetter)
        .where(DeadLetter.id == dead_letter_id, DeadLetter.replayed_at.is_(None))
        .values(replayed_at=func.now())
        .returning(DeadLetter)
    )
    if owner is not None:
        statement = statement.where(DeadLetter.owner_id == owner)
    return await session.scalar(statement, execution_options=_FRESH)


async def list_nodes(session: AsyncSession, down_after_s: float) -> list[tuple[models.Node, bool]]:
    """Every node with a heartbeat row, and whether it is up: heard from within `down_after_s`
    by the database's clock."""
    up = models.Node.last_heartbeat_at > func.now() - timedelta(seconds=down_after_s)
    rows = await session.execute(
        select(models.Node, up.label("up")).order_by(models.Node.service, models.Node.node_id)
    )
    return [(node, bool(is_up)) for node, is_up in rows.all()]
