"""Every pair of states, against the transitions the design allows (written out here on purpose,
not derived from `libs.scheduling.states`, so a change to the table must be made twice and seen)."""

from __future__ import annotations

import itertools

import pytest

from libs.scheduling import states
from libs.scheduling.states import ExecutionStatus as E
from libs.scheduling.states import JobStatus as J

ALLOWED_JOB_MOVES = {
    (J.SCHEDULED, J.RUNNING),
    (J.SCHEDULED, J.PAUSED),  # requested, or a requested run on a paused job skipped
    (J.SCHEDULED, J.CANCELLED),
    (J.SCHEDULED, J.COMPLETED),
    (J.SCHEDULED, J.FAILED),
    (J.RUNNING, J.SCHEDULED),
    (J.RUNNING, J.COMPLETED),
    (J.RUNNING, J.FAILED),
    # Requested; or the platform's when the target answered 410 Gone, or when a run requested
    # on the paused job ended.
    (J.RUNNING, J.PAUSED),
    (J.RUNNING, J.CANCELLED),
    (J.PAUSED, J.SCHEDULED),  # resume, or run-now (PAUSED again after the run)
    (J.PAUSED, J.COMPLETED),
    (J.PAUSED, J.CANCELLED),
    (J.FAILED, J.SCHEDULED),  # dead-letter replay, run-now or resume through the API
}

# Moves schedulers and executors make on their own; the rest are requests through the API.
PLATFORM_JOB_MOVES = {
    (J.SCHEDULED, J.RUNNING),
    (J.SCHEDULED, J.COMPLETED),
    (J.SCHEDULED, J.FAILED),
    (J.SCHEDULED, J.PAUSED),  # the misfire policy skipped a run requested on a paused job
    (J.RUNNING, J.SCHEDULED),
    (J.RUNNING, J.COMPLETED),
    (J.RUNNING, J.FAILED),
    (J.RUNNING, J.PAUSED),  # the target answered 410 Gone; a requested run on a paused job ended
}

ALLOWED_EXECUTION_MOVES = {
    (E.DISPATCHED, E.RUNNING),
    (E.DISPATCHED, E.LOST),
    (E.RUNNING, E.SUCCEEDED),
    (E.RUNNING, E.FAILED),
    (E.RUNNING, E.TIMED_OUT),
    (E.RUNNING, E.LOST),
}


@pytest.mark.parametrize(
    ("current", "target"),
    list(itertools.product(J, J)),
    ids=lambda s: str(s),
)
def test_job_transition(current: J, target: J) -> None:
    assert states.can_transition(current, target) is ((current, target) in ALLOWED_JOB_MOVES)


@pytest.mark.parametrize(
    ("current", "target"),
    list(itertools.product(J, J)),
    ids=lambda s: str(s),
)
def test_what_the_platform_may_do_on_its_own(current: J, target: J) -> None:
    expected = (current, target) in PLATFORM_JOB_MOVES
    assert states.platform_may_move(current, target) is expected
    if expected:
        assert states.can_transition(current, target)


def test_only_a_person_revives_a_job_from_paused_or_failed() -> None:
    assert not any(current in (J.PAUSED, J.FAILED) for current, _ in states.PLATFORM_JOB_MOVES)


@pytest.mark.parametrize(
    ("current", "target"),
    list(itertools.product(E, E)),
    ids=lambda s: str(s),
)
def test_execution_transition(current: E, target: E) -> None:
    expected = (current, target) in ALLOWED_EXECUTION_MOVES
    assert states.can_transition(current, target) is expected


def test_tables_cover_every_state() -> None:
    assert set(states.JOB_TRANSITIONS) == set(J)
    assert set(states.EXECUTION_TRANSITIONS) == set(E)


def test_terminal_states() -> None:
    assert {J.COMPLETED, J.FAILED, J.CANCELLED} == states.JOB_TERMINAL
    assert {E.SUCCEEDED, E.FAILED, E.TIMED_OUT, E.LOST} == {
        s for s in E if not states.EXECUTION_TRANSITIONS[s]
    }


@pytest.mark.parametrize("target", list(J), ids=str)
def test_job_sources_are_the_inverse_of_the_table(target: J) -> None:
    assert states.job_sources(target) == {s for s, t in ALLOWED_JOB_MOVES if t == target}


@pytest.mark.parametrize("target", list(E), ids=str)
def test_execution_sources_are_the_inverse_of_the_table(target: E) -> None:
    expected = {s for s, t in ALLOWED_EXECUTION_MOVES if t == target}
    assert states.execution_sources(target) == expected


@pytest.mark.parametrize("target", list(J), ids=str)
def test_platform_sources_are_the_inverse_of_its_moves(target: J) -> None:
    expected = {s for s, t in PLATFORM_JOB_MOVES if t == target}
    assert states.platform_job_sources(target) == expected


def test_a_withdrawn_dispatch_is_deleted_and_its_job_scheduled_again() -> None:
    # Only a dispatch that never started; the job goes back to its occurrence, on its own.
    assert states.WITHDRAWABLE_EXECUTIONS == {E.DISPATCHED}
    assert states.WITHDRAWN_JOB_MOVE == (J.RUNNING, J.SCHEDULED)
    assert states.platform_may_move(*states.WITHDRAWN_JOB_MOVE)


def test_bound_states_are_a_stable_text_array() -> None:
    assert states.bound({J.SCHEDULED, J.RUNNING}) == ["RUNNING", "SCHEDULED"]


@pytest.mark.parametrize(
    ("current", "target"),
    [
        # Same names, different machines: equal as strings, still refused.
        (J.RUNNING, E.SUCCEEDED),
        (E.RUNNING, J.COMPLETED),
        ("RUNNING", J.COMPLETED),
    ],
)
def test_states_of_different_machines_are_refused(current: object, target: object) -> None:
    with pytest.raises(TypeError):
        states.can_transition(current, target)  # type: ignore[arg-type]


def test_stored_values() -> None:
    # The database CHECK constraints and the API depend on these exact strings.
    assert [s.value for s in J] == [
        "SCHEDULED",
        "RUNNING",
        "PAUSED",
        "COMPLETED",
        "FAILED",
        "CANCELLED",
    ]
    assert [s.value for s in E] == [
        "DISPATCHED",
        "RUNNING",
        "SUCCEEDED",
        "FAILED",
        "TIMED_OUT",
        "LOST",
    ]
    assert [s.value for s in states.Role] == ["user", "admin"]
    assert [s.value for s in states.SigningKeyStatus] == ["active", "previous", "retired"]


def test_only_gives_the_one_state_of_a_set_and_refuses_any_other_size():
    assert states.only({states.JobStatus.SCHEDULED}) == "SCHEDULED"
    with pytest.raises(ValueError, match="exactly one"):
        states.only({states.JobStatus.SCHEDULED, states.JobStatus.PAUSED})
    with pytest.raises(ValueError, match="exactly one"):
        states.only(set())
