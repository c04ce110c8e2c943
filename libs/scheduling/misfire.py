"""Misfire policies: what to run when an occurrence is dispatched later than its grace allows.

Late occurrences happen when every scheduler was down, the queue was backed up, or a paused job
resumes with occurrences behind it. The scheduler calls `decide` for each claimed job and the
job service calls it on resume; both pass the clock in, so the decision is a pure function of
its inputs and is tested by tables.

- within grace (now - scheduled_for <= grace_s): run the occurrence as normal;
- `RUN_ONCE`: run the missed occurrence once, then resume the regular schedule after now;
- `SKIP`: run nothing, resume after now;
- `RUN_ALL`: run every missed occurrence up to now, oldest first, at most `max_catch_up`
  (the rest are skipped, as `RUN_ONCE` would), then resume after now. A `fixed_delay` or `once`
  schedule has a single pending occurrence, so `RUN_ALL` runs it once.

max_runs and end_at are respected in every case (through `schedule.next_fire`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from libs.scheduling import schedule as schedules


class MisfirePolicy(StrEnum):
    RUN_ONCE = "run_once"
    SKIP = "skip"
    RUN_ALL = "run_all"


@dataclass(frozen=True)
class Decision:
    fire: list[datetime]  # occurrences to dispatch now (their scheduled times), oldest first
    next_run_at: datetime | None  # the next regular occurrence after them
    misfired: bool  # whether the grace was exceeded


def decide(
    policy: MisfirePolicy,
    schedule: schedules.Schedule,
    *,
    scheduled_for: datetime,
    now: datetime,
    grace_s: int,
    runs: int,
    max_catch_up: int = 100,
) -> Decision:
    """What to dispatch for the occurrence `scheduled_for`, given `runs` occurrences already made
    before it, and the job's next `next_run_at`."""
    if grace_s < 0 or max_catch_up < 1 or runs < 0:
        raise ValueError("grace_s and runs must be >= 0, max_catch_up >= 1")
    if scheduled_for.tzinfo is None or now.tzinfo is None:
        raise ValueError("scheduled_for and now must be timezone-aware")
    if not _still_due(schedule, scheduled_for, runs):
        return Decision(fire=[], next_run_at=None, misfired=False)
    if now - scheduled_for <= timedelta(seconds=grace_s):
        following = schedules.next_fire(schedule, after=scheduled_for, runs=runs + 1)
        return Decision(fire=[scheduled_for], next_run_at=following, misfired=False)
    if policy is MisfirePolicy.SKIP:
        fire: list[datetime] = []
    elif policy is MisfirePolicy.RUN_ALL:
        fire = _missed(schedule, scheduled_for, now, runs, max_catch_up)
    else:
        fire = [scheduled_for]
    following = schedules.next_fire(schedule, after=now, runs=runs + len(fire))
    return Decision(fire=fire, next_run_at=following, misfired=True)


def _still_due(schedule: schedules.Schedule, scheduled_for: datetime, runs: int) -> bool:
    """False when the occurrence is beyond max_runs or end_at (a schedule changed under it)."""
    if schedule.max_runs is not None and runs >= schedule.max_runs:
        return False
    return schedule.end_at is None or scheduled_for <= schedule.end_at


def _missed(
    schedule: schedules.Schedule,
    scheduled_for: datetime,
    now: datetime,
    runs: int,
    limit: int,
) -> list[datetime]:
    """The occurrences from scheduled_for through now, oldest first, at most `limit`."""
    if isinstance(schedule, schedules.FixedDelay | schedules.Once):
        return [scheduled_for]  # one pending occurrence: the next is counted from its end
    missed = [scheduled_for]
    while len(missed) < limit:
        following = schedules.next_fire(schedule, after=missed[-1], runs=runs + len(missed))
        if following is None or following > now:
            break
        missed.append(following)
    return missed
