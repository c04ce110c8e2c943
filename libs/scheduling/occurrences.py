"""What a job becomes when one attempt of its current occurrence ends. Pure functions.

The executor applies them to the outcomes it records, the scheduler to occurrences whose lease
expired; both write the answer in the transaction that records the attempt, guarded by the
job's fencing token.

- Success: the occurrence counts as made (`run_count + 1`) and the job moves on to its next
  occurrence after the one that ran (for `fixed_delay`, after the finish time), or is COMPLETED
  when the schedule has none left. Lateness is not judged here: a next occurrence already in
  the past is the scheduler's misfire policy to decide.
- Failure that a retry may cure, while attempts remain: the same occurrence again after an
  exponential backoff with full jitter (`libs.scheduling.backoff`), attempt + 1.
- Failure for good (permanent, or the last attempt): the occurrence is given up on (a dead
  letter) and counts as made, so `max_runs` still ends the job; a recurring job moves on to its
  next occurrence, a job with none left ends FAILED.
- The target asked never to be called again (HTTP 410 Gone), one-time and recurring jobs alike:
  the job is PAUSED with a status reason, and the occurrence is not given up on (no dead letter,
  not counted): it stays the job's next run, so that a resume judges it as any occurrence
  missed while paused (the misfire policy runs it or moves on).
- A run a person requested on a PAUSED job (`jobs.pause_after_run`) is one occurrence, retries
  included: where the job would move on to its next occurrence, it is PAUSED there instead
  (`waiting`), its next occurrence pending for a resume. Completion and failure are as always.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from libs.scheduling import backoff, schedule
from libs.scheduling.states import JobStatus


class Outcome(StrEnum):
    """What became of the job (the metric label and the log's word)."""

    NEXT = "next"  # moved on to its next occurrence
    COMPLETED = "completed"  # no occurrence left after a success
    RETRY = "retry"  # the same occurrence again after a backoff
    FAILED = "failed"  # given up on, and no occurrence left
    PAUSED = "paused"  # the target asked to be left alone: nothing runs until a resume


@dataclass(frozen=True, slots=True)
class Next:
    """The job's next state: SCHEDULED at `next_run_at`, COMPLETED / FAILED (no next run), or
    PAUSED with its pending occurrence at `next_run_at` (the one that ended, when the target
    is gone; the next one, after a run requested while paused)."""

    status: JobStatus
    next_run_at: datetime | None
    attempt: int
    run_count: int
    outcome: Outcome
    dead_letter: bool  # the occurrence was given up on
    reason: str | None = None  # why the platform put the job in `status` (the job's status reason)


@dataclass(frozen=True, slots=True)
class UnreadableSchedule:
    """A stored schedule that does not validate: it has no next occurrence. `error` says why."""

    error: str


def read_schedule(stored: Mapping[str, Any]) -> schedule.Schedule | UnreadableSchedule:
    """The schedule a job's `schedule` column holds, or why it cannot be read: the one place a
    worker parses it, where the job's row is read."""
    try:
        return schedule.load(stored)
    except ValueError as exc:
        return UnreadableSchedule(f"stored schedule does not validate: {exc}")


def readable(stored: schedule.Schedule | UnreadableSchedule) -> schedule.Schedule | None:
    """The schedule, None when it was unreadable (then it has no next occurrence)."""
    return None if isinstance(stored, UnreadableSchedule) else stored


def waiting(pause_after_run: bool) -> JobStatus:
    """What a job becomes when it moves on to its next occurrence: SCHEDULED there, or PAUSED
    there when the occurrence that ended was run on request while the job was paused."""
    return JobStatus.PAUSED if pause_after_run else JobStatus.SCHEDULED


def _move_on(
    parsed: schedule.Schedule | None,
    *,
    scheduled_for: datetime,
    runs: int,
    finished_at: datetime,
) -> datetime | None:
    if parsed is None:  # an unreadable schedule has no next occurrence
        return None
    return schedule.next_fire(parsed, after=scheduled_for, runs=runs, last_finished_at=finished_at)


def after_success(
    parsed: schedule.Schedule | None,
    *,
    scheduled_for: datetime,
    run_count: int,
    finished_at: datetime,
    pause_after_run: bool = False,
) -> Next:
    runs = run_count + 1
    following = _move_on(parsed, scheduled_for=scheduled_for, runs=runs, finished_at=finished_at)
    if following is None:
        return Next(JobStatus.COMPLETED, None, 1, runs, Outcome.COMPLETED, dead_letter=False)
    return Next(waiting(pause_after_run), following, 1, runs, Outcome.NEXT, dead_letter=False)


def after_failure(
    parsed: schedule.Schedule | None,
    retry_policy: backoff.RetryPolicy,
    *,
    scheduled_for: datetime,
    attempt: int,
    run_count: int,
    now: datetime,
    random: float,
    retryable: bool,
    retry_after_s: float | None = None,
    pause_after_run: bool = False,
) -> Next:
    """`random` in [0, 1) draws the backoff's jitter; `now` is the database clock;
    `retry_after_s` is the delay the target asked for, if it did (`libs.scheduling.backoff`)."""
    if retryable and attempt < backoff.max_attempts(retry_policy):
        delay = backoff.retry_delay_s(retry_policy, attempt, random, at_least_s=retry_after_s)
        retry_at = now + timedelta(seconds=delay)
        return Next(JobStatus.SCHEDULED, retry_at, attempt + 1, run_count, Outcome.RETRY, False)
    runs = run_count + 1
    following = _move_on(parsed, scheduled_for=scheduled_for, runs=runs, finished_at=now)
    if following is None:
        return Next(JobStatus.FAILED, None, attempt, runs, Outcome.FAILED, dead_letter=True)
    return Next(waiting(pause_after_run), following, 1, runs, Outcome.NEXT, dead_letter=True)


def after_target_gone(*, scheduled_for: datetime, run_count: int, reason: str) -> Next:
    """The target answered that it will never want these calls again: PAUSED with `reason`,
    the occurrence (`scheduled_for`, its nominal time) pending, attempts counted from 1."""
    return Next(
        JobStatus.PAUSED,
        scheduled_for,
        1,
        run_count,
        Outcome.PAUSED,
        dead_letter=False,
        reason=reason,
    )
