"""Decisions about a job's history: its executions (one row per attempt of an occurrence) and
its dead letters (occurrences given up on), and the replay of a dead letter. Visibility is the
jobs': a principal sees the history of its own jobs, an admin everyone's; a deleted job's
executions stay readable by id.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from job_service import cursors, errors, repository, service
from libs import log, models
from libs.tokens import Principal

HISTORY_ORDER = "newest"


def _page(rows: Sequence[Any], limit: int) -> tuple[Sequence[Any], str | None]:
    """The page and the cursor after it, for lists fetched newest first with limit + 1."""
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], cursors.encode(HISTORY_ORDER, last.created_at, last.id)


def _history_position(cursor: str | None) -> cursors.Position | None:
    position = service.cursor_position(cursor, HISTORY_ORDER)
    if position is not None and position[0] is None:
        raise errors.invalid_cursor()
    return position


async def list_executions(
    session: AsyncSession,
    principal: Principal,
    job_id: uuid.UUID,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[models.Execution], str | None]:
    await service.get_job(session, principal, job_id)
    rows = await repository.list_executions(
        session, job_id, after=_history_position(cursor), limit=limit + 1
    )
    return _page(rows, limit)


async def get_execution(
    session: AsyncSession, principal: Principal, execution_id: uuid.UUID
) -> models.Execution:
    execution = await repository.get_execution(session, execution_id, service.visible_to(principal))
    if execution is None:
        raise errors.ExecutionNotFound
    return execution


async def list_dead_letters(
    session: AsyncSession,
    principal: Principal,
    *,
    job_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[models.DeadLetter], str | None]:
    rows = await repository.list_dead_letters(
        session,
        service.visible_to(principal),
        job_id=job_id,
        after=_history_position(cursor),
        limit=limit + 1,
    )
    return _page(rows, limit)


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
