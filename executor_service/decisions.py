"""Decisions of the executor: what the end of an attempt counts as, and what its job becomes.

Pure functions of how the attempt ended and of the job's state passed in; the engine runs the
strategy and hands its ending to `classify`, and the outcome writer applies `next_state` (and,
for an occurrence given up on, the dead letter's words) in the transaction that records the
attempt, guarded by the job's fencing token.

How an attempt ends (docs/plugins.md has the table a strategy is written against):

- it returned: SUCCEEDED;
- it raised `PermanentFailure`: FAILED for good, no retry (`TargetGone`: with the status reason
  the job is paused with);
- it raised `TransientFailure`: FAILED, retryable, with the delay the target asked for;
- it was still running at the job's timeout: TIMED_OUT, retryable; a strategy's own timeout is
  FAILED `timeout`, retryable;
- it raised anything else (a crash): FAILED `unexpected`, retryable, since it may be passing;
- it could not start (its type is unknown here, its stored payload does not validate, no
  strategy runs its type): FAILED `validation` for good, since no retry can change that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from executor_service.strategy import PermanentFailure, TransientFailure, describe
from libs.scheduling import backoff, occurrences
from libs.scheduling.schedule import Schedule
from libs.scheduling.states import ExecutionStatus

MAX_ERROR_LENGTH = 1000  # of the error text stored on the execution
VALIDATION_KIND = "validation"
TIMEOUT_KIND = "timeout"
UNEXPECTED_KIND = "unexpected"


@dataclass(frozen=True, slots=True)
class Result:
    """How one attempt ended. `retryable` is meaningless for a success."""

    status: ExecutionStatus
    error_kind: str | None = None
    error: str | None = None
    retryable: bool = False
    retry_after_s: float | None = None  # what the target asked for, if anything
    # The target asked never to be called again: the job is paused with this status reason.
    pause_reason: str | None = None


SUCCEEDED = Result(ExecutionStatus.SUCCEEDED)


# --- How the attempt ended ---------------------------------------------------------------------


def unrunnable(error: str) -> Result:
    """An attempt that could not start: its type is unknown here, its payload does not
    validate, or no strategy runs its type. It fails for good: a retry would find the same."""
    return Result(
        ExecutionStatus.FAILED, VALIDATION_KIND, error[:MAX_ERROR_LENGTH], retryable=False
    )


def is_unexpected(ended: BaseException) -> bool:
    """Whether the strategy crashed rather than report how the occurrence failed: it raised
    neither a permanent nor a transient failure, nor timed out. The engine logs these, with
    their traceback, as the strategy's bug."""
    return not isinstance(ended, PermanentFailure | TransientFailure | TimeoutError)


def classify(ended: BaseException | None, *, deadline_expired: bool, timeout_s: float) -> Result:
    """What the strategy's run counts as. `ended`: what it raised, None when it returned;
    `deadline_expired`: the job's timeout (`timeout_s`) cut it short, which surfaces as a
    `TimeoutError` told apart from one the strategy raised itself."""
    if ended is None:
        return SUCCEEDED
    if isinstance(ended, TimeoutError):
        if deadline_expired:
            message = f"no result within the job's timeout of {timeout_s} s"
            return Result(ExecutionStatus.TIMED_OUT, TIMEOUT_KIND, message, retryable=True)
        return Result(ExecutionStatus.FAILED, TIMEOUT_KIND, "timed out", retryable=True)
    if isinstance(ended, PermanentFailure):
        return Result(
            ExecutionStatus.FAILED,
            ended.kind,
            str(ended)[:MAX_ERROR_LENGTH],
            retryable=False,
            pause_reason=ended.pause_reason,
        )
    if isinstance(ended, TransientFailure):
        return Result(
            ExecutionStatus.FAILED,
            ended.kind,
            str(ended)[:MAX_ERROR_LENGTH],
            retryable=True,
            retry_after_s=ended.retry_after_s,
        )
    # A crash may be passing (a bug on one path, a resource briefly away): retried.
    return Result(ExecutionStatus.FAILED, UNEXPECTED_KIND, describe(ended), retryable=True)


# --- What the job becomes ------------------------------------------------------------------------


def next_state(
    result: Result,
    *,
    scheduled_for: datetime,
    attempt: int,
    run_count: int,
    schedule: Schedule | None,
    retry_policy: backoff.RetryPolicy,
    pause_after_run: bool,
    now: datetime,
    random: float,
) -> occurrences.Next:
    """The job's next state after attempt `attempt` of its occurrence `scheduled_for` ended
    with `result` (`libs.scheduling.occurrences`): PAUSED with the occurrence pending when the
    target is gone; else the next occurrence or completion after a success; else a retry or, given
    up on, the next occurrence or FAILED. `schedule`: the job's parsed schedule, None when it is
    unreadable (no next occurrence); `now`: the database's clock; `random` in [0, 1) draws the
    retry's jitter."""
    if result.pause_reason is not None:
        return occurrences.after_target_gone(
            scheduled_for=scheduled_for, run_count=run_count, reason=result.pause_reason
        )
    if result.status is ExecutionStatus.SUCCEEDED:
        return occurrences.after_success(
            schedule,
            scheduled_for=scheduled_for,
            run_count=run_count,
            finished_at=now,
            pause_after_run=pause_after_run,
        )
    return occurrences.after_failure(
        schedule,
        retry_policy,
        scheduled_for=scheduled_for,
        attempt=attempt,
        run_count=run_count,
        now=now,
        random=random,
        retryable=result.retryable,
        retry_after_s=result.retry_after_s,
        pause_after_run=pause_after_run,
    )


def dead_letter_reason(result: Result) -> str:
    """Why an occurrence given up on was: `exhausted` (a retry might have cured it, attempts ran
    out) or `permanent` (none could); the dead letter's `reason` and the metric's label."""
    return "exhausted" if result.retryable else "permanent"


def dead_letter_error(result: Result) -> str | None:
    """The dead letter's error: the kind, then the message when there is one."""
    return f"{result.error_kind}: {result.error}" if result.error else result.error_kind
