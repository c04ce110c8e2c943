"""The executor's decisions (`executor_service.decisions`): what the end of an attempt counts
as, what its job becomes, and what a dead letter says. Tables and properties; no strategy is
run (test_executor_attempts.py runs them)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from executor_service import decisions
from executor_service.decisions import SUCCEEDED, Result
from executor_service.strategy import PermanentFailure, TargetGone, TransientFailure
from libs.scheduling import backoff, schedule
from libs.scheduling.occurrences import Next, Outcome
from libs.scheduling.states import ExecutionStatus, JobStatus

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLICY = backoff.RetryPolicy(max_attempts=3, initial_backoff_s=2, multiplier=2, max_backoff_s=60)
GONE = TargetGone("HTTP 410: no such hook", kind="gone", reason="target answered 410 Gone")
FAILED = ExecutionStatus.FAILED


def hourly(**extra) -> schedule.Schedule:
    return schedule.FixedRate(interval_s=3600, anchor=T0, **extra)


SCHEDULES = [hourly(), hourly(max_runs=2), schedule.Once(at=T0), None]


def decide(result: Result, **job) -> Next:
    """`next_state` for attempt 1 of the occurrence at T0 of an hourly job, ended at T0."""
    values = {
        "scheduled_for": T0,
        "attempt": 1,
        "run_count": 0,
        "schedule": hourly(),
        "retry_policy": POLICY,
        "pause_after_run": False,
        "now": T0,
        "random": 0.5,
    }
    return decisions.next_state(result, **(values | job))


# --- How the attempt ended -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ended", "deadline_expired", "expected"),
    [
        (None, False, SUCCEEDED),
        (PermanentFailure("HTTP 400", kind="http_4xx"), False,
         Result(FAILED, "http_4xx", "HTTP 400", retryable=False)),
        (GONE, False,
         Result(FAILED, "gone", "HTTP 410: no such hook", retryable=False,
                pause_reason="target answered 410 Gone")),
        (TransientFailure("HTTP 503", kind="http_5xx", retry_after_s=12.0), False,
         Result(FAILED, "http_5xx", "HTTP 503", retryable=True, retry_after_s=12.0)),
        (TransientFailure("refused", kind="connect"), False,
         Result(FAILED, "connect", "refused", retryable=True)),
        # The job's timeout cancelled the run.
        (TimeoutError(), True,
         Result(ExecutionStatus.TIMED_OUT, "timeout",
                "no result within the job's timeout of 30 s", retryable=True)),
        # A timeout of the strategy's own (its client library's): transient too.
        (TimeoutError(), False, Result(FAILED, "timeout", "timed out", retryable=True)),
        # A crash: its type and first line only (the rest may quote a payload).
        (RuntimeError("bug\nwith a secret"), False,
         Result(FAILED, "unexpected", "RuntimeError: bug", retryable=True)),
        (KeyError(), False, Result(FAILED, "unexpected", "KeyError", retryable=True)),
    ],
)  # fmt: skip
def test_each_way_an_attempt_ends_is_classified(ended, deadline_expired, expected):
    assert decisions.classify(ended, deadline_expired=deadline_expired, timeout_s=30) == expected


def test_a_failures_message_is_stored_up_to_its_limit():
    long = "x" * (decisions.MAX_ERROR_LENGTH + 50)
    for failure in (PermanentFailure(long, kind="k"), TransientFailure(long, kind="k")):
        result = decisions.classify(failure, deadline_expired=False, timeout_s=30)
        assert result.error == "x" * decisions.MAX_ERROR_LENGTH


@pytest.mark.parametrize(
    ("ended", "unexpected"),
    [
        (PermanentFailure("no", kind="k"), False),
        (GONE, False),
        (TransientFailure("later", kind="k"), False),
        (TimeoutError(), False),
        (RuntimeError("bug"), True),
        (ValueError("bug"), True),
    ],
)
def test_only_what_no_strategy_reports_on_purpose_is_a_crash(ended, unexpected):
    assert decisions.is_unexpected(ended) is unexpected


def test_an_attempt_that_cannot_start_fails_for_good():
    long = "unknown job type 'ftp'; " + "y" * 2000
    assert decisions.unrunnable(long) == Result(
        FAILED, "validation", long[: decisions.MAX_ERROR_LENGTH], retryable=False
    )


@given(
    kind=st.text(min_size=1, max_size=20),
    message=st.text(max_size=50),
    transient=st.booleans(),
    deadline_expired=st.booleans(),
)
def test_a_reported_failure_keeps_its_kind_and_fails_the_attempt(
    kind, message, transient, deadline_expired
):
    failure = (
        TransientFailure(message, kind=kind) if transient else PermanentFailure(message, kind=kind)
    )
    result = decisions.classify(failure, deadline_expired=deadline_expired, timeout_s=5)
    assert (result.status, result.error_kind, result.retryable) == (FAILED, kind, transient)


# --- What the job becomes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "job", "expected"),
    [
        # A success moves on to the occurrence after the one that ran, or completes.
        (SUCCEEDED, {"run_count": 4},
         Next(JobStatus.SCHEDULED, T0 + timedelta(hours=1), 1, 5, Outcome.NEXT, False)),
        (SUCCEEDED, {"schedule": schedule.Once(at=T0)},
         Next(JobStatus.COMPLETED, None, 1, 1, Outcome.COMPLETED, False)),
        (SUCCEEDED, {"pause_after_run": True},
         Next(JobStatus.PAUSED, T0 + timedelta(hours=1), 1, 1, Outcome.NEXT, False)),
        # A transient failure with attempts left: the same occurrence after half the cap (2 s).
        (Result(FAILED, "http_5xx", "HTTP 503", retryable=True), {},
         Next(JobStatus.SCHEDULED, T0 + timedelta(seconds=1), 2, 0, Outcome.RETRY, False)),
        # ... raised to what the target asked for.
        (Result(FAILED, "http_429", "HTTP 429", retryable=True, retry_after_s=20), {},
         Next(JobStatus.SCHEDULED, T0 + timedelta(seconds=20), 2, 0, Outcome.RETRY, False)),
        # The last attempt: given up on, the job moves on.
        (Result(FAILED, "http_5xx", "HTTP 503", retryable=True), {"attempt": 3},
         Next(JobStatus.SCHEDULED, T0 + timedelta(hours=1), 1, 1, Outcome.NEXT, True)),
        # No retry policy stored: the defaults (3 attempts).
        (Result(FAILED, "timeout", "timed out", retryable=True),
         {"attempt": 2, "retry_policy": backoff.DEFAULT, "random": 0.0},
         Next(JobStatus.SCHEDULED, T0, 3, 0, Outcome.RETRY, False)),
        # A permanent failure: given up on at once; a one-time job fails.
        (Result(FAILED, "http_4xx", "HTTP 400", retryable=False),
         {"schedule": schedule.Once(at=T0)},
         Next(JobStatus.FAILED, None, 1, 1, Outcome.FAILED, True)),
        # An unreadable schedule has no next occurrence.
        (Result(FAILED, "http_4xx", "HTTP 400", retryable=False), {"schedule": None},
         Next(JobStatus.FAILED, None, 1, 1, Outcome.FAILED, True)),
        # The target is gone: PAUSED with the occurrence pending, not counted, no dead letter.
        (decisions.classify(GONE, deadline_expired=False, timeout_s=30), {"run_count": 4},
         Next(JobStatus.PAUSED, T0, 1, 4, Outcome.PAUSED, False,
              reason="target answered 410 Gone")),
    ],
)  # fmt: skip
def test_what_each_ending_makes_of_the_job(result, job, expected):
    assert decide(result, **job) == expected


@given(
    attempt=st.integers(min_value=1, max_value=19),
    extra_attempts=st.integers(min_value=1, max_value=10),
    initial_s=st.floats(min_value=0, max_value=1000),
    max_backoff_s=st.floats(min_value=0, max_value=86_400),
    retry_after_s=st.none() | st.floats(min_value=0, max_value=10**7),
    random=st.floats(min_value=0, max_value=1, exclude_max=True),
    timed_out=st.booleans(),
    pause_after_run=st.booleans(),
    parsed=st.sampled_from(SCHEDULES),
)
def test_a_retryable_failure_with_attempts_left_retries_within_the_backoff_window(
    attempt, extra_attempts, initial_s, max_backoff_s, retry_after_s, random, timed_out,
    pause_after_run, parsed,
):  # fmt: skip
    policy = backoff.RetryPolicy(
        max_attempts=attempt + extra_attempts,
        initial_backoff_s=initial_s,
        multiplier=2,
        max_backoff_s=max_backoff_s,
    )
    status = ExecutionStatus.TIMED_OUT if timed_out else FAILED
    result = Result(status, "timeout", "slow", retryable=True, retry_after_s=retry_after_s)
    now = T0 + timedelta(minutes=7)

    decided = decide(
        result, attempt=attempt, retry_policy=policy, schedule=parsed, now=now, random=random,
        run_count=3, pause_after_run=pause_after_run,
    )  # fmt: skip

    assert (decided.status, decided.outcome) == (JobStatus.SCHEDULED, Outcome.RETRY)
    assert (decided.attempt, decided.run_count) == (attempt + 1, 3)
    assert not decided.dead_letter
    assert now <= decided.next_run_at <= now + timedelta(seconds=max_backoff_s)


@given(
    attempt=st.integers(min_value=1, max_value=10),
    max_attempts=st.integers(min_value=1, max_value=10),
    pause_reason=st.none() | st.just("target answered 410 Gone"),
    pause_after_run=st.booleans(),
    parsed=st.sampled_from(SCHEDULES),
)
def test_a_permanent_failure_never_retries(
    attempt, max_attempts, pause_reason, pause_after_run, parsed
):
    result = Result(FAILED, "http_4xx", "HTTP 400", retryable=False, pause_reason=pause_reason)
    policy = dataclasses.replace(POLICY, max_attempts=max_attempts)

    decided = decide(
        result, attempt=attempt, retry_policy=policy, schedule=parsed,
        pause_after_run=pause_after_run,
    )  # fmt: skip

    assert decided.outcome is not Outcome.RETRY
    assert decided.attempt in (1, attempt)  # the next occurrence's first, or the last one's
    # Given up on, unless the target asked for a pause instead.
    assert decided.dead_letter is (pause_reason is None)


@given(
    attempt=st.integers(min_value=1, max_value=10),
    run_count=st.integers(min_value=0, max_value=100),
    pause_after_run=st.booleans(),
    parsed=st.sampled_from(SCHEDULES),
    random=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_a_target_gone_never_dead_letters(attempt, run_count, pause_after_run, parsed, random):
    result = decisions.classify(GONE, deadline_expired=False, timeout_s=30)

    decided = decide(
        result, attempt=attempt, run_count=run_count, schedule=parsed, random=random,
        pause_after_run=pause_after_run,
    )  # fmt: skip

    assert not decided.dead_letter
    assert decided == Next(
        JobStatus.PAUSED, T0, 1, run_count, Outcome.PAUSED, False, reason=GONE.pause_reason
    )


@given(
    ended=st.sampled_from(
        [
            None,
            PermanentFailure("HTTP 400", kind="http_4xx"),
            TransientFailure("HTTP 503", kind="http_5xx"),
            TimeoutError(),
            RuntimeError("bug"),
        ]
    ),
    attempt=st.integers(min_value=1, max_value=5),
    parsed=st.sampled_from(SCHEDULES),
    random=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_pause_after_run_never_survives_a_move_to_the_next_occurrence(
    ended, attempt, parsed, random
):
    # The job stays SCHEDULED (keeping the request to pause it again) only for a retry of the
    # occurrence that was requested; wherever else it goes, it is not SCHEDULED.
    result = decisions.classify(ended, deadline_expired=True, timeout_s=30)

    decided = decide(result, attempt=attempt, schedule=parsed, random=random, pause_after_run=True)

    assert (decided.status is JobStatus.SCHEDULED) is (decided.outcome is Outcome.RETRY)
    if decided.outcome is Outcome.NEXT:
        assert decided.status is JobStatus.PAUSED and decided.reason is None


# --- What a dead letter says ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "reason", "error"),
    [
        (Result(FAILED, "http_5xx", "HTTP 503", retryable=True), "exhausted", "http_5xx: HTTP 503"),
        (Result(FAILED, "http_4xx", "HTTP 400", retryable=False), "permanent",
         "http_4xx: HTTP 400"),
        (Result(FAILED, "bench_db", None, retryable=True), "exhausted", "bench_db"),
        (Result(FAILED, "validation", "", retryable=False), "permanent", "validation"),
    ],
)  # fmt: skip
def test_a_dead_letter_says_why_the_occurrence_was_given_up_on(result, reason, error):
    assert decisions.dead_letter_reason(result) == reason
    assert decisions.dead_letter_error(result) == error
