"""What an ended attempt makes of its job (`libs.scheduling.occurrences`): tables and properties."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.scheduling import backoff, occurrences, schedule, states
from libs.scheduling.occurrences import Outcome
from libs.scheduling.states import JobStatus

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLICY = backoff.RetryPolicy(max_attempts=3, initial_backoff_s=2, multiplier=2, max_backoff_s=60)


def hourly(**extra) -> schedule.Schedule:
    return schedule.FixedRate(interval_s=3600, anchor=T0, **extra)


def test_a_success_moves_on_to_the_occurrence_after_the_one_that_ran():
    # Even when it finished much later: lateness is the scheduler's misfire policy's to judge.
    late_finish = T0 + timedelta(hours=5)
    decided = occurrences.after_success(
        hourly(), scheduled_for=T0, run_count=4, finished_at=late_finish
    )
    assert decided == occurrences.Next(
        JobStatus.SCHEDULED, T0 + timedelta(hours=1), 1, 5, Outcome.NEXT, dead_letter=False
    )


def test_fixed_delay_counts_from_the_finish():
    finished = T0 + timedelta(seconds=42)
    decided = occurrences.after_success(
        schedule.FixedDelay(delay_s=10), scheduled_for=T0, run_count=0, finished_at=finished
    )
    assert decided.next_run_at == finished + timedelta(seconds=10)


@pytest.mark.parametrize(
    ("parsed", "run_count"),
    [
        (schedule.Once(at=T0), 0),
        (hourly(max_runs=3), 2),  # this success is the third run
        (hourly(end_at=T0 + timedelta(minutes=30)), 0),
        (None, 0),  # an unreadable schedule has no next occurrence
    ],
)
def test_a_success_with_no_occurrence_left_completes(parsed, run_count):
    decided = occurrences.after_success(
        parsed, scheduled_for=T0, run_count=run_count, finished_at=T0
    )
    assert (decided.status, decided.next_run_at, decided.outcome) == (
        JobStatus.COMPLETED,
        None,
        Outcome.COMPLETED,
    )
    assert decided.run_count == run_count + 1


def test_a_retryable_failure_retries_the_same_occurrence_after_a_jittered_backoff():
    now = T0 + timedelta(seconds=3)
    decided = occurrences.after_failure(
        hourly(), POLICY, scheduled_for=T0, attempt=2, run_count=7, now=now, random=0.5,
        retryable=True,
    )  # fmt: skip
    # cap after attempt 2 = 2 * 2 = 4 s; half of it with random = 0.5
    assert decided == occurrences.Next(
        JobStatus.SCHEDULED, now + timedelta(seconds=2), 3, 7, Outcome.RETRY, dead_letter=False
    )


@pytest.mark.parametrize(("retryable", "attempt"), [(False, 1), (True, 3)])
def test_a_recurring_job_given_up_on_dead_letters_and_moves_on(retryable, attempt):
    decided = occurrences.after_failure(
        hourly(), POLICY, scheduled_for=T0, attempt=attempt, run_count=0, now=T0, random=0.0,
        retryable=retryable,
    )  # fmt: skip
    assert decided == occurrences.Next(
        JobStatus.SCHEDULED, T0 + timedelta(hours=1), 1, 1, Outcome.NEXT, dead_letter=True
    )


def test_a_one_time_job_given_up_on_fails_with_its_attempts():
    decided = occurrences.after_failure(
        schedule.Once(at=T0), POLICY, scheduled_for=T0, attempt=3, run_count=0, now=T0,
        random=0.9, retryable=True,
    )  # fmt: skip
    assert decided == occurrences.Next(JobStatus.FAILED, None, 3, 1, Outcome.FAILED, True)


@given(
    attempt=st.integers(min_value=1, max_value=50),
    max_attempts=st.integers(min_value=1, max_value=20),
    retryable=st.booleans(),
    random=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_a_failure_either_retries_within_the_window_or_gives_up(
    attempt, max_attempts, retryable, random
):
    policy = dataclasses.replace(POLICY, max_attempts=max_attempts)
    decided = occurrences.after_failure(
        hourly(), policy, scheduled_for=T0, attempt=attempt, run_count=0, now=T0,
        random=random, retryable=retryable,
    )  # fmt: skip
    if retryable and attempt < max_attempts:
        assert decided.outcome is Outcome.RETRY and not decided.dead_letter
        assert decided.attempt == attempt + 1 and decided.run_count == 0
        delay = (decided.next_run_at - T0).total_seconds()
        assert 0 <= delay <= backoff.backoff_cap_s(policy, attempt)
    else:
        assert decided.dead_letter and decided.attempt == 1 and decided.run_count == 1
        assert decided.next_run_at == T0 + timedelta(hours=1)


@pytest.mark.parametrize("run_count", [0, 4])
def test_a_target_gone_pauses_the_job_with_its_occurrence_pending(run_count):
    # One-time and recurring alike (the schedule is not consulted): the occurrence is neither
    # given up on nor counted, and stays the job's next run for a resume to judge.
    decided = occurrences.after_target_gone(
        scheduled_for=T0, run_count=run_count, reason="target answered 410 Gone"
    )
    assert decided == occurrences.Next(
        JobStatus.PAUSED, T0, 1, run_count, Outcome.PAUSED, dead_letter=False,
        reason="target answered 410 Gone",
    )  # fmt: skip


@given(
    attempt=st.integers(min_value=1, max_value=5),
    retryable=st.booleans(),
    succeeded=st.booleans(),
    gone=st.booleans(),
    parsed=st.sampled_from([hourly(), hourly(max_runs=2), schedule.Once(at=T0), None]),
)
def test_every_decision_is_a_move_the_platform_may_make_from_running(
    attempt, retryable, succeeded, gone, parsed
):
    if gone:
        decided = occurrences.after_target_gone(scheduled_for=T0, run_count=1, reason="gone")
    elif succeeded:
        decided = occurrences.after_success(parsed, scheduled_for=T0, run_count=1, finished_at=T0)
    else:
        decided = occurrences.after_failure(
            parsed, POLICY, scheduled_for=T0, attempt=attempt, run_count=1, now=T0, random=0.5,
            retryable=retryable,
        )  # fmt: skip
    assert states.platform_may_move(JobStatus.RUNNING, decided.status)
    assert (decided.reason is not None) is (decided.status is JobStatus.PAUSED)


# --- A run requested on a paused job (`pause_after_run`) ----------------------------------------


def test_a_requested_run_on_a_paused_job_pauses_it_again_at_its_next_occurrence():
    decided = occurrences.after_success(
        hourly(), scheduled_for=T0, run_count=4, finished_at=T0, pause_after_run=True
    )
    assert decided == occurrences.Next(
        JobStatus.PAUSED, T0 + timedelta(hours=1), 1, 5, Outcome.NEXT, dead_letter=False
    )
    assert decided.reason is None  # a person paused it, not the platform


def test_a_requested_run_on_a_paused_job_is_retried_before_the_job_is_paused_again():
    decided = occurrences.after_failure(
        hourly(), POLICY, scheduled_for=T0, attempt=1, run_count=0, now=T0, random=0.5,
        retryable=True, pause_after_run=True,
    )  # fmt: skip
    assert (decided.status, decided.outcome) == (JobStatus.SCHEDULED, Outcome.RETRY)


@pytest.mark.parametrize(
    ("succeeded", "status"), [(True, JobStatus.COMPLETED), (False, JobStatus.FAILED)]
)
def test_a_requested_run_of_a_paused_one_time_job_ends_it(succeeded, status):
    once = schedule.Once(at=T0)
    if succeeded:
        decided = occurrences.after_success(
            once, scheduled_for=T0, run_count=0, finished_at=T0, pause_after_run=True
        )
    else:
        decided = occurrences.after_failure(
            once, POLICY, scheduled_for=T0, attempt=1, run_count=0, now=T0, random=0.5,
            retryable=False, pause_after_run=True,
        )  # fmt: skip
    assert (decided.status, decided.next_run_at) == (status, None)


@given(
    pause_after_run=st.booleans(),
    attempt=st.integers(min_value=1, max_value=5),
    retryable=st.booleans(),
    succeeded=st.booleans(),
    parsed=st.sampled_from([hourly(), hourly(max_runs=2), schedule.Once(at=T0), None]),
)
def test_a_requested_run_changes_only_where_the_job_waits_for_its_next_occurrence(
    pause_after_run, attempt, retryable, succeeded, parsed
):
    def decide(flag: bool) -> occurrences.Next:
        if succeeded:
            return occurrences.after_success(
                parsed, scheduled_for=T0, run_count=1, finished_at=T0, pause_after_run=flag
            )
        return occurrences.after_failure(
            parsed, POLICY, scheduled_for=T0, attempt=attempt, run_count=1, now=T0, random=0.5,
            retryable=retryable, pause_after_run=flag,
        )  # fmt: skip

    plain, decided = decide(False), decide(pause_after_run)
    assert states.platform_may_move(JobStatus.RUNNING, decided.status)
    if decided.outcome is Outcome.NEXT:
        assert decided.status is occurrences.waiting(pause_after_run)
        assert decided.reason is None
    else:  # a retry, a completion or a failure: as without the request
        assert decided.status is plain.status is not JobStatus.PAUSED
    # Nothing else differs: the same time, attempt, count and dead letter.
    assert (decided.next_run_at, decided.attempt, decided.run_count, decided.dead_letter) == (
        plain.next_run_at, plain.attempt, plain.run_count, plain.dead_letter,
    )  # fmt: skip
