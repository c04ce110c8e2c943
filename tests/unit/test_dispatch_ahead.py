"""Dispatching ahead of the due time: when the dispatcher claims again (`next_look_in`) and how
long an executor holds a dispatch published ahead (`seconds_until_due`). Pure decisions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from executor_service.executor import MAX_HOLD_S, seconds_until_due
from libs.contracts import messages
from scheduler_service.dispatcher import CONTENDED_RETRY_S, Batch, next_look_in

NOW = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
LOOKAHEAD_S = 0.2


def batch(*, next_due_in_s: float | None, locked: int, started: float = 100.0) -> Batch:
    next_due = None if next_due_in_s is None else NOW + timedelta(seconds=next_due_in_s)
    return Batch(db_now=NOW, started=started, locked=locked, to_send=[], next_due=next_due)


@pytest.mark.parametrize(
    ("next_due_in_s", "locked", "expected_s"),
    [
        (None, 0, None),  # nothing scheduled: the capped sleep
        (None, 3, None),
        (10.0, 0, 9.8),  # the next job enters the window 0.2 s before it is due
        (10.0, 5, 9.8),
        (0.25, 0, 0.05),  # nothing claimed: look again as soon as one enters the window
        (0.25, 5, 0.1),  # jobs claimed: not before half the window (a batch by time)
        (0.2, 5, CONTENDED_RETRY_S),  # left inside the window: another claim holds it
        (-3.0, 0, CONTENDED_RETRY_S),  # due already and not taken: held by another claim
    ],
)
def test_the_next_look(next_due_in_s, locked, expected_s):
    delay = next_look_in(
        batch(next_due_in_s=next_due_in_s, locked=locked), lookahead_s=LOOKAHEAD_S, now=100.0
    )
    assert delay == (None if expected_s is None else pytest.approx(expected_s))


def test_the_time_since_the_claim_is_taken_off():
    # Publishing took 0.03 s after the claim was sent: the sleep is that much shorter.
    delay = next_look_in(batch(next_due_in_s=10.0, locked=0), lookahead_s=LOOKAHEAD_S, now=100.03)
    assert delay == pytest.approx(9.77)
    late = next_look_in(batch(next_due_in_s=0.25, locked=0), lookahead_s=LOOKAHEAD_S, now=101.0)
    assert late == 0.0


def test_without_a_lookahead_jobs_are_claimed_when_due():
    assert next_look_in(batch(next_due_in_s=0.002, locked=4), lookahead_s=0.0, now=100.0) == (
        pytest.approx(0.002)
    )


@given(
    next_due_in_s=st.floats(min_value=-60, max_value=60),
    locked=st.integers(min_value=0, max_value=500),
    lookahead_s=st.floats(min_value=0, max_value=5),
)
def test_a_job_is_never_claimed_later_than_it_is_due(next_due_in_s, locked, lookahead_s):
    """Looking again after the returned delay, the next job is inside the window: it is claimed
    no later than its due time (nor, when claims took jobs, sooner than half the window)."""
    delay = next_look_in(
        batch(next_due_in_s=next_due_in_s, locked=locked), lookahead_s=lookahead_s, now=100.0
    )
    assert delay is not None and delay >= 0
    microsecond = 1e-6  # the due time is a timestamp
    assert delay <= max(next_due_in_s, CONTENDED_RETRY_S, lookahead_s / 2) + microsecond


def dispatch(*, due_at: datetime | None) -> messages.DispatchMessage:
    return messages.DispatchMessage(
        execution_id=uuid.uuid4(),
        job_id=uuid.uuid4(),
        owner_id=uuid.uuid4(),
        lease_version=1,
        type="log",
        payload={},
        scheduled_for=NOW,
        due_at=due_at,
        attempt=1,
        deadline=NOW + timedelta(seconds=15),
        timeout_s=30,
        trace_id="t",
    )


@pytest.mark.parametrize(
    ("due_in_s", "expected_s"),
    [
        (None, 0.0),  # published by a scheduler that publishes nothing ahead: at once
        (-1.0, 0.0),  # due already
        (0.15, 0.15),  # published ahead: held until due, by the database's clock
        (3600.0, MAX_HOLD_S),  # whatever the message says, not held for long
    ],
)
def test_an_executor_holds_a_dispatch_until_it_is_due(due_in_s, expected_s):
    due_at = None if due_in_s is None else NOW + timedelta(seconds=due_in_s)
    assert seconds_until_due(dispatch(due_at=due_at), NOW) == pytest.approx(expected_s)
