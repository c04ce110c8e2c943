"""The moves `libs.store.occurrence_store` writes: built from `libs.scheduling.occurrences`
decisions, refused at construction when the platform may not make them, a retry keeping its
occurrence's time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from libs.scheduling import occurrences, states
from libs.scheduling.states import JobStatus
from libs.store import occurrence_store

NOMINAL = datetime(2027, 1, 15, 9, 0, tzinfo=UTC)
LATER = NOMINAL + timedelta(minutes=5)


def _next(status: JobStatus, *, attempt: int = 1, reason: str | None = None) -> occurrences.Next:
    following = None if status in states.JOB_TERMINAL else LATER
    return occurrences.Next(
        status, following, attempt, 3, occurrences.Outcome.NEXT, dead_letter=False, reason=reason
    )


def test_a_retry_keeps_the_nominal_time_of_its_occurrence() -> None:
    move = occurrence_store.Move.of(
        uuid.uuid4(), 7, _next(JobStatus.SCHEDULED, attempt=2), nominal=NOMINAL
    )
    assert (move.status, move.next_run_at, move.attempt) == (JobStatus.SCHEDULED, LATER, 2)
    assert move.occurrence_at == NOMINAL


@pytest.mark.parametrize(
    "status", sorted(s for s in JobStatus if states.platform_may_move(JobStatus.RUNNING, s))
)
def test_every_other_move_forgets_it(status: JobStatus) -> None:
    move = occurrence_store.Move.of(uuid.uuid4(), 7, _next(status, reason="r"), nominal=NOMINAL)
    assert move.occurrence_at is None
    assert (move.status, move.status_reason, move.lease_version) == (status, "r", 7)


@pytest.mark.parametrize(
    "status", sorted(s for s in JobStatus if not states.platform_may_move(JobStatus.RUNNING, s))
)
def test_a_move_the_platform_may_not_make_from_running_is_refused(status: JobStatus) -> None:
    with pytest.raises(ValueError, match="does not move"):
        occurrence_store.Move.of(uuid.uuid4(), 7, _next(status), nominal=NOMINAL)


def test_a_finished_job_has_no_next_run_and_an_active_one_has_one() -> None:
    with pytest.raises(ValueError, match="next run"):
        occurrence_store.Move(uuid.uuid4(), 7, JobStatus.COMPLETED, LATER, 1, 3, None)
    with pytest.raises(ValueError, match="next run"):
        occurrence_store.Move(uuid.uuid4(), 7, JobStatus.SCHEDULED, None, 1, 3, None)


def test_both_claims_take_the_nominal_time_by_one_rule() -> None:
    rule = occurrence_store.nominal_time_at_claim("w.scheduled_for")
    assert rule == (
        "CASE WHEN j.attempt > 1 THEN coalesce(j.occurrence_at, w.scheduled_for) "
        "ELSE w.scheduled_for END"
    )
