"""Where an attempt's end is written: a RUNNING job moved on to its next state, dead letters.

Two writers end attempts: the executor's outcome writer (`executor_service.outcomes`), with the
outcome it recorded, and the scheduler's lease recovery (`scheduler_service.recovery`), with an
attempt whose executor vanished (and the dispatcher, with an occurrence dispatched already).
Both decide with `libs.scheduling.occurrences` and write the answer here, in the transaction that
holds the job's row: one set-based UPDATE per batch, guarded by the fencing token and by the job
still being RUNNING, and one INSERT of the batch's dead letters.

`jobs.occurrence_at` is the nominal time of the occurrence in flight. A claim sets it
(`nominal_time_at_claim`: a retry keeps its occurrence's, a first attempt's is the time it was
due); a move keeps it for a retry and clears it otherwise, as decided in Python (`Move.of`).
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

from libs.contracts import channels
from libs.infra import notifications
from libs.scheduling import occurrences, states
from libs.scheduling.states import JobStatus

# The state every move here starts from: the occurrence was in flight.
SOURCE = JobStatus.RUNNING


def nominal_time_at_claim(due: str) -> str:
    """The SQL value of the nominal time of the occurrence a claim dispatches, over the job's
    row `j` as it was before the claim and `due`, the time the claim dispatches it at: a retry
    (`attempt > 1`) keeps the time of the occurrence it retries, a first attempt's is `due`."""
    return f"CASE WHEN j.attempt > 1 THEN coalesce(j.occurrence_at, {due}) ELSE {due} END"


# The flag of a run requested on a PAUSED job survives only a move to SCHEDULED (`:scheduled`):
# a retry of that run. Every other move ends the run (`libs.scheduling.occurrences` decided PAUSED,
# COMPLETED or FAILED). The right-hand side reads the row as it was.
KEEP_PAUSE_AFTER_RUN = "pause_after_run = j.pause_after_run AND u.status = CAST(:scheduled AS text)"


@dataclass(frozen=True, slots=True)
class Move:
    """A RUNNING job's next state (from `libs.scheduling.occurrences`), applied under the fencing
    token of the claim that made it RUNNING: SCHEDULED (or PAUSED) at `next_run_at` with `attempt`,
    or COMPLETED / FAILED with no next run. Refused at construction when the platform may not move
    a RUNNING job to `status` on its own."""

    job_id: uuid.UUID
    lease_version: int
    status: JobStatus
    next_run_at: datetime | None
    attempt: int
    run_count: int
    occurrence_at: datetime | None  # the nominal time a retry keeps; None for a first attempt
    status_reason: str | None = None  # why the platform put the job in `status`, if it says

    def __post_init__(self) -> None:
        if not states.platform_may_move(SOURCE, self.status):
            raise ValueError(f"the platform does not move a job {SOURCE} -> {self.status}")
        if (self.next_run_at is None) is not (self.status in states.JOB_TERMINAL):
            raise ValueError(f"a {self.status} job has a next run exactly when it is not finished")

    @classmethod
    def of(
        cls,
        job_id: uuid.UUID,
        lease_version: int,
        decided: occurrences.Next,
        *,
        nominal: datetime | None,
    ) -> Move:
        """The move of a decision about the occurrence whose nominal time is `nominal`: kept by
        a retry of that occurrence (`attempt > 1`), forgotten by every other move."""
        return cls(
            job_id=job_id,
            lease_version=lease_version,
            status=decided.status,
            next_run_at=decided.next_run_at,
            attempt=decided.attempt,
            run_count=decided.run_count,
            occurrence_at=nominal if decided.attempt > 1 else None,
            status_reason=decided.reason,
        )


# The source state is compared row by row, as the token is, rather than with a constant: a
# constant `status = 'RUNNING'` would tempt the planner into scanning every RUNNING job (the
# partial index ix_jobs_lease_expiry) instead of looking each id up.
_MOVE_RUNNING = text(f"""
UPDATE jobs AS j
SET status = u.status, next_run_at = u.next_run_at, attempt = u.attempt,
    run_count = u.run_count, occurrence_at = u.occurrence_at,
    lease_expires_at = NULL, leased_by = NULL, updated_at = now(),
    {KEEP_PAUSE_AFTER_RUN},
    -- Only a recorded outcome says when the attempt finished and why the job is in its state.
    last_finished_at = CASE WHEN CAST(:recorded AS boolean) THEN now()
                            ELSE j.last_finished_at END,
    status_reason = CASE WHEN CAST(:recorded AS boolean) THEN u.status_reason
                         ELSE j.status_reason END
FROM unnest(CAST(:ids AS uuid[]), CAST(:versions AS bigint[]), CAST(:sources AS text[]),
            CAST(:statuses AS text[]), CAST(:nexts AS timestamptz[]),
            CAST(:attempts AS integer[]), CAST(:run_counts AS integer[]),
            CAST(:occurrences AS timestamptz[]), CAST(:reasons AS text[]))
     AS u(id, lease_version, source, status, next_run_at, attempt, run_count, occurrence_at,
          status_reason)
WHERE j.id = u.id AND j.lease_version = u.lease_version AND j.status = u.source
RETURNING j.id
""")  # noqa: S608 (a constant fragment)


async def move_running(
    session: AsyncSession, moves: Sequence[Move], *, recorded: bool, notify: bool
) -> set[uuid.UUID]:
    """Apply each move to its job if the job is still RUNNING under the same fencing token.
    `recorded`: the moves follow outcomes an executor recorded, so the jobs' `last_finished_at`
    is now and their status reason the move's (lease recovery, which saw no outcome, leaves
    both). `notify`: tell sleeping schedulers (NOTIFY, delivered at commit) when a job is now
    due at a time (a PAUSED one is not due). Returns the jobs moved."""
    if not moves:
        return set()
    rows = await session.execute(
        _MOVE_RUNNING,
        {
            "ids": [m.job_id for m in moves],
            "versions": [m.lease_version for m in moves],
            "sources": [SOURCE.value] * len(moves),
            "statuses": [m.status.value for m in moves],
            "nexts": [m.next_run_at for m in moves],
            "attempts": [m.attempt for m in moves],
            "run_counts": [m.run_count for m in moves],
            "occurrences": [m.occurrence_at for m in moves],
            "reasons": [m.status_reason for m in moves],
            "scheduled": JobStatus.SCHEDULED.value,
            "recorded": recorded,
        },
    )
    moved = {row.id for row in rows}
    if notify:
        nexts = [
            m.next_run_at
            for m in moves
            if m.job_id in moved and m.next_run_at is not None and m.status is JobStatus.SCHEDULED
        ]
        if nexts:
            await notifications.send(session, channels.JOBS_DUE, min(nexts).isoformat())
    return moved


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An occurrence given up on, with the payload its job had."""

    job_id: uuid.UUID
    execution_id: uuid.UUID | None  # None when the lost dispatch had no execution row left
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
) -> dict[uuid.UUID | None, tuple[uuid.UUID, datetime]]:
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
