"""Decisions about a job's history: its executions (one row per attempt of an occurrence) and
its dead letters (occurrences given up on), and the replay of a dead letter. Visibility is the
jobs': a principal sees the history of its own jobs, an admin everyone's. A deleted job's
history stays readable (only its definition is gone), marked `jobDeleted`.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from job_service import errors, repository, service
from libs.contracts import cursors
from libs.infra import log
from libs.scheduling.states import ExecutionStatus
from libs.security.tokens import Principal
from libs.store import models

HISTORY_ORDER = "newest"
Row = TypeVar("Row")


def _page(
    rows: Sequence[Row], limit: int, position: Callable[[Row], tuple[datetime, uuid.UUID]]
) -> tuple[Sequence[Row], str | None]:
    """The page and the cursor after it, for lists fetched newest first with limit + 1;
    `position`: a row's `(created_at, id)`."""
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], cursors.encode(*position(rows[limit - 1]), order=HISTORY_ORDER)


def _history_position(cursor: str | None) -> cursors.Position | None:
    position = service.cursor_position(cursor, HISTORY_ORDER)
    if position is not None and position[0] is None:
        raise errors.invalid_cursor()
    return position


def execution_filter(
    *,
    statuses: Collection[ExecutionStatus],
    created_after: datetime | None,
    created_before: datetime | None,
) -> repository.ExecutionFilter:
    """The filter of an executions list; `InvalidRequest` naming both bounds when the time
    range `[created_after, created_before)` is empty."""
    if created_after is not None and created_before is not None:
        if created_after >= created_before:
            raise errors.InvalidRequest(
                [
                    ("query.createdAfter", "must be earlier than createdBefore", "time_range"),
                    ("query.createdBefore", "must be later than createdAfter", "time_range"),
                ]
            )
    return repository.ExecutionFilter(
        statuses=tuple(statuses), created_after=created_after, created_before=created_before
    )


def _execution_position(row: repository.ExecutionRow) -> tuple[datetime, uuid.UUID]:
    return row.execution.created_at, row.execution.id


async def list_executions(
    session: AsyncSession,
    principal: Principal,
    where: repository.ExecutionFilter,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[repository.ExecutionRow], str | None]:
    """One page of the executions of the principal's jobs (deleted ones included) that
    `where` selects, newest first, and the cursor of the next page."""
    rows = await repository.list_executions(
        session,
        service.visible_to(principal),
        where,
        after=_history_position(cursor),
        limit=limit + 1,
    )
    return _page(rows, limit, _execution_position)


async def list_job_executions(
    session: AsyncSession,
    principal: Principal,
    job_id: uuid.UUID,
    where: repository.ExecutionFilter,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[repository.ExecutionRow], str | None]:
    """As `list_executions`, of one job, deleted or not; `JobNotFound` when the principal has
    no job with this id (another owner's job is answered as absent)."""
    if await repository.job_deleted(session, job_id, service.visible_to(principal)) is None:
        raise errors.JobNotFound
    one_job = dataclasses.replace(where, job_ids=(job_id,))
    return await list_executions(session, principal, one_job, cursor=cursor, limit=limit)


async def get_execution(
    session: AsyncSession, principal: Principal, execution_id: uuid.UUID
) -> repository.ExecutionRow:
    execution = await repository.get_execution(session, execution_id, service.visible_to(principal))
    if execution is None:
        raise errors.ExecutionNotFound
    return execution


async def list_dead_letters(
    session: AsyncSession,
    principal: Principal,
    *,
    job_id: uuid.UUID | None,
    replayed: bool | None,
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[tuple[models.DeadLetter, bool]], str | None]:
    """One page of the principal's dead letters, each with whether its job is deleted."""
    rows = await repository.list_dead_letters(
        session,
        service.visible_to(principal),
        job_id=job_id,
        replayed=replayed,
        after=_history_position(cursor),
        limit=limit + 1,
    )
    return _page(rows, limit, lambda row: (row[0].created_at, row[0].id))


async def replay_dead_letter(
    session: AsyncSession, principal: Principal, dead_letter_id: uuid.UUID
) -> tuple[models.DeadLetter, models.Job]:
    """Mark the dead letter replayed (once) and make its job due now with a fresh attempt
    count: a FAILED job is SCHEDULED again, a SCHEDULED one runs now. Any other state of the
    job refuses the replay, and the dead letter stays unreplayed."""
    owner = service.visible_to(principal)
    letter = await repository.mark_replayed(session, dead_letter_id, owner)
    if letter is None:
        if await repository.get_dead_letter(session, dead_letter_id, owner) is None:
            raise errors.DeadLetterNotFound
        raise errors.AlreadyReplayed("replay the job's newer dead letters, or run it now")
    job = await repository.replay_job(session, letter.job_id)
    if job is None:
        status, deleted = await repository.job_status(session, letter.job_id) or ("?", True)
        detail = (
            "the job was deleted"
            if deleted
            else f"a {status} job cannot be replayed (only FAILED or SCHEDULED ones)"
        )
        raise errors.JobStateConflict(detail, status)
    assert job.next_run_at is not None  # just set
    await repository.notify_due(session, job.next_run_at)
    log.get().info("dead_letter_replayed", dead_letter_id=str(dead_letter_id), job_id=str(job.id))
    return letter, job
