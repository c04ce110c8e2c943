"""Decisions of the scheduler: what a late occurrence becomes, what an expired lease becomes.

Pure functions of the rows and of the database's `now` passed in; the loops apply the answers
as guarded updates (`repository`, `libs.store.occurrence_store`).

One occurrence of a job is in flight at a time: a claim dispatches one execution, and the job
is RUNNING until its executor (or lease recovery) moves it on. Catching up under `run_all`
therefore happens one missed occurrence after the other: the executor schedules the following
occurrence, which is itself late, and the next claim dispatches it. `run_once` must not do the
same, so a late occurrence that was already due when the job's previous occurrence was claimed
(`last_run_at`, which every claim sets) belongs to a misfire episode whose one run has happened,
and is skipped to the next regular occurrence after now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from libs.scheduling import misfire, occurrences, schedule
from libs.scheduling.occurrences import UnreadableSchedule
from libs.scheduling.states import JobStatus
from libs.store import occurrence_store
from scheduler_service import errors, repository

LOST_REASON = "lease_expired"
LOST_ERROR = "lease expired on the last attempt"


def parse_schedule(stored: schedule.Schedule | UnreadableSchedule) -> schedule.Schedule:
    """The job's stored (normalised) schedule; `StoredScheduleInvalid` when unreadable."""
    if isinstance(stored, UnreadableSchedule):
        raise errors.StoredScheduleInvalid(stored.error)
    return stored


@dataclass(frozen=True, slots=True)
class LatePlan:
    """Run the occurrence at `run_at` (a time it was scheduled for), or else move the job on to
    `next_run_at` without running anything (None: the schedule has no occurrence left)."""

    run_at: datetime | None
    next_run_at: datetime | None
    misfired: bool

    def skip(self, job: repository.Late) -> repository.Skip:
        """The move of a plan that runs nothing: to `next_run_at`, PAUSED there when the
        skipped occurrence was a run requested on a paused job; COMPLETED with none left."""
        status = (
            occurrences.waiting(job.pause_after_run)
            if self.next_run_at is not None
            else JobStatus.COMPLETED
        )
        return repository.Skip(job.job_id, job.lease_version, self.next_run_at, status)


def plan_late(
    job: repository.Late,
    stored_schedule: schedule.Schedule | UnreadableSchedule,
    *,
    now: datetime,
    max_catch_up: int = 100,
) -> LatePlan:
    """What the job's misfire policy makes of its occurrence, late beyond its grace at `now`."""
    policy = misfire.MisfirePolicy(job.misfire_policy)
    parsed = parse_schedule(stored_schedule)
    decision = misfire.decide(
        policy,
        parsed,
        scheduled_for=job.next_run_at,
        now=now,
        grace_s=job.misfire_grace_s,
        runs=job.run_count,
        max_catch_up=max_catch_up,
    )
    if not decision.fire:
        return LatePlan(run_at=None, next_run_at=decision.next_run_at, misfired=decision.misfired)
    already_caught_up = (
        policy is misfire.MisfirePolicy.RUN_ONCE
        and job.last_run_at is not None
        and job.next_run_at < job.last_run_at
    )
    if already_caught_up:
        return LatePlan(run_at=None, next_run_at=decision.next_run_at, misfired=True)
    return LatePlan(run_at=decision.fire[0], next_run_at=None, misfired=decision.misfired)


def plan_already_dispatched(
    claimed: repository.Claimed, stored: repository.StoredSchedule
) -> occurrence_store.Move:
    """A claimed occurrence that has an execution row already (the unique key refused a second
    one): it is not dispatched again, and the job moves on to the occurrence after it (PAUSED
    there if the occurrence was a run requested on a paused job). With an unreadable schedule
    it FAILS, its attempt kept."""
    run_count = stored.run_count
    try:
        parsed = parse_schedule(stored.schedule)
    except errors.StoredScheduleInvalid:
        failed = occurrences.Next(
            JobStatus.FAILED,
            None,
            claimed.attempt,
            run_count,
            occurrences.Outcome.FAILED,
            dead_letter=False,
        )
        return occurrence_store.Move.of(
            claimed.job_id, claimed.lease_version, failed, nominal=claimed.scheduled_for
        )
    following = schedule.next_fire(parsed, after=claimed.scheduled_for, runs=run_count)
    moved_on = occurrences.Next(
        occurrences.waiting(stored.pause_after_run) if following else JobStatus.COMPLETED,
        following,
        1,
        run_count,
        occurrences.Outcome.NEXT if following else occurrences.Outcome.COMPLETED,
        dead_letter=False,
    )
    return occurrence_store.Move.of(
        claimed.job_id, claimed.lease_version, moved_on, nominal=claimed.scheduled_for
    )


@dataclass(frozen=True, slots=True)
class RecoveryPlan:
    change: occurrence_store.Move
    outcome: str  # "retry", "next" or "failed": the metric label and the log's word
    gave_up: bool  # attempts exhausted: the occurrence gets a dead letter


def plan_recovery(job: repository.Expired, *, now: datetime, random: float) -> RecoveryPlan:
    """What a job whose lease expired becomes (`libs.scheduling.occurrences.after_failure`: a lost
    attempt may succeed when retried): a retry after a backoff while attempts remain; else its next
    regular occurrence (PAUSED there after a run requested on a paused job) or, with none
    left, FAILED. `random` in [0, 1) draws the jitter."""
    decided = occurrences.after_failure(
        occurrences.readable(job.schedule),
        job.retry_policy,
        scheduled_for=job.occurrence_at or now,
        attempt=job.attempt,
        run_count=job.run_count,
        now=now,
        random=random,
        retryable=True,
        pause_after_run=job.pause_after_run,
    )
    change = occurrence_store.Move.of(
        job.job_id, job.lease_version, decided, nominal=job.occurrence_at or now
    )
    return RecoveryPlan(change=change, outcome=decided.outcome.value, gave_up=decided.dead_letter)


def lost_dead_letter(job: repository.Expired) -> occurrence_store.DeadLetter:
    """The dead letter of an occurrence whose last attempt was lost with its lease."""
    return occurrence_store.DeadLetter(
        job_id=job.job_id,
        execution_id=job.execution_id,
        owner_id=job.owner_id,
        reason=LOST_REASON,
        error=LOST_ERROR,
        attempts=job.attempt,
        payload=job.payload,
    )
