"""Retry delays: exponential growth, full jitter, the cap, defaults, and refused inputs."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.scheduling import backoff

POLICY = backoff.RetryPolicy(max_attempts=5, initial_backoff_s=2, multiplier=3, max_backoff_s=60)


@pytest.mark.parametrize(
    ("attempt", "cap"),
    [
        (1, 2.0),  # the first retry waits up to the initial backoff
        (2, 6.0),
        (3, 18.0),
        (4, 54.0),
        (5, 60.0),  # 162 would pass the cap
        (10_000, 60.0),  # no overflow, however many attempts
    ],
)
def test_the_window_grows_by_the_multiplier_up_to_the_cap(attempt, cap):
    assert backoff.backoff_cap_s(POLICY, attempt) == cap
    assert backoff.retry_delay_s(POLICY, attempt, 0.5) == cap / 2


@pytest.mark.parametrize(
    ("random", "expected"),
    [(0.0, 0.0), (0.25, 4.5), (0.999999, 17.999982)],
)
def test_full_jitter_spreads_the_delay_over_the_whole_window(random, expected):
    assert backoff.retry_delay_s(POLICY, 3, random) == pytest.approx(expected)


def test_an_empty_policy_takes_the_defaults():
    empty = backoff.RetryPolicy.load({})
    assert empty == backoff.DEFAULT == backoff.RetryPolicy.load(None)
    assert backoff.max_attempts(empty) == 3
    assert backoff.backoff_cap_s(empty, 1) == 1.0
    assert backoff.backoff_cap_s(empty, 100) == 300.0


def test_a_stored_policy_loads_with_its_types_and_round_trips():
    stored = {"max_attempts": 7.0, "initial_backoff_s": 2, "multiplier": 3, "max_backoff_s": 60}
    policy = backoff.RetryPolicy.load(stored)
    assert policy == backoff.RetryPolicy(7, 2.0, 3.0, 60.0)
    assert isinstance(policy.max_attempts, int)
    assert backoff.RetryPolicy.load(policy.stored()) == policy


@pytest.mark.parametrize(
    ("policy", "cap"),
    [
        ({"initial_backoff_s": 0, "max_backoff_s": 10}, 0.0),  # retry at once
        ({"initial_backoff_s": 5, "max_backoff_s": 0}, 0.0),
        ({"initial_backoff_s": 5, "multiplier": 1, "max_backoff_s": 60}, 5.0),  # constant
        ({"initial_backoff_s": 5, "multiplier": 0.5, "max_backoff_s": 60}, 5.0),  # never shrinks
        ({"initial_backoff_s": 100, "max_backoff_s": 60}, 60.0),  # initial above the cap
    ],
)
def test_degenerate_policies_give_sensible_windows(policy, cap):
    assert backoff.backoff_cap_s(backoff.RetryPolicy.load(policy), 4) == cap


def test_max_attempts_is_at_least_one():
    assert backoff.max_attempts(backoff.RetryPolicy(max_attempts=0)) == 1
    assert backoff.max_attempts(backoff.RetryPolicy(max_attempts=7)) == 7


@pytest.mark.parametrize("random", [-0.1, 1.0, math.nan])
def test_a_draw_outside_the_unit_interval_is_refused(random):
    with pytest.raises(ValueError, match="random"):
        backoff.retry_delay_s(POLICY, 1, random)


def test_attempt_zero_is_refused():
    with pytest.raises(ValueError, match="attempt"):
        backoff.retry_delay_s(POLICY, 0, 0.5)


def test_a_non_finite_setting_is_refused():
    with pytest.raises(ValueError, match="initial_backoff_s"):
        backoff.RetryPolicy.load({"initial_backoff_s": math.inf})


policies = st.builds(
    backoff.RetryPolicy,
    initial_backoff_s=st.floats(0, 1e6),
    multiplier=st.floats(1, 100),
    max_backoff_s=st.floats(0, 1e7),
)


@given(policies, st.integers(1, 100_000), st.floats(0, 1, exclude_max=True))
def test_the_delay_lies_in_the_window_and_never_passes_the_cap(policy, attempt, random):
    delay = backoff.retry_delay_s(policy, attempt, random)
    assert 0 <= delay <= policy.max_backoff_s
    assert delay <= backoff.backoff_cap_s(policy, attempt)


@given(policies, st.integers(1, 1_000))
def test_the_window_never_shrinks_from_one_attempt_to_the_next(policy, attempt):
    assert backoff.backoff_cap_s(policy, attempt) <= backoff.backoff_cap_s(policy, attempt + 1)


@pytest.mark.parametrize(
    ("at_least_s", "random", "expected"),
    [
        (None, 0.5, 1.0),  # the jittered delay: half of the 2 s window
        (0.2, 0.5, 1.0),  # asking for less than the backoff changes nothing
        (30.0, 0.5, 30.0),  # asking for more raises it
        (10_000.0, 0.5, 60.0),  # but never above max_backoff_s
    ],
)
def test_a_targets_retry_after_raises_the_delay_within_the_cap(at_least_s, random, expected):
    policy = backoff.RetryPolicy(initial_backoff_s=2, multiplier=2, max_backoff_s=60)
    assert backoff.retry_delay_s(policy, 1, random, at_least_s=at_least_s) == expected
