"""The platform's enumerations and the two state machines (jobs and executions).

The values are what the database stores (CHECK constraints list them) and what the API shows.
Lifecycle states are upper case, as SQL reads them (`status = 'SCHEDULED'`); identity values
(roles, signing-key states) are lower case, as tokens and JWKS carry them.

The transition tables are data so that repositories build their guarded updates from them:

    UPDATE jobs SET status = :target ... WHERE id = :id AND status = ANY(:sources) RETURNING ...

with `sources = states.bound(states.job_sources(JobStatus.PAUSED))`. Zero rows back is an answer
(the job was not in a state that allows the move), never silently ignored. Staying in a state
(for example a SCHEDULED job whose `next_run_at` moves) is an update, not a transition, and is
not in the tables. The statements of the scheduler, the executor and `libs.store.occurrence_store`
spell no state: each binds the states it writes and those it moves from. (Bound states still
select through the partial indexes, such as `ix_jobs_due`: every statement is planned with its
values, `libs.infra.db`'s `force_custom_plan`.)

A dispatch that never started is not an attempt: it is withdrawn (`WITHDRAWN_JOB_MOVE`,
`WITHDRAWABLE_EXECUTIONS`), its job back to SCHEDULED and its execution row deleted, not moved to
a state, so that the unique key `(job_id, scheduled_for, attempt)` lets the same attempt be
dispatched again.

Who makes a move: `PLATFORM_JOB_MOVES` are those schedulers and executors make on their own;
every other allowed job move is a person's request through the API.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum


class JobStatus(StrEnum):
    SCHEDULED = "SCHEDULED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class ExecutionStatus(StrEnum):
    DISPATCHED = "DISPATCHED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    LOST = "LOST"


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class SigningKeyStatus(StrEnum):
    # The one key that signs new tokens (a partial unique index keeps it at most one).
    ACTIVE = "active"
    # No longer signs, still published in the JWKS until every token it signed has expired.
    PREVIOUS = "previous"
    # Neither signs nor is published; kept for the record.
    RETIRED = "retired"


_J = JobStatus
JOB_TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = {
    _J.SCHEDULED: frozenset(
        {
            # A scheduler claims the due occurrence.
            _J.RUNNING,
            # Requests through the API. The platform pauses a SCHEDULED job too when the run a
            # person requested on the PAUSED job is skipped by its misfire policy: the job goes
            # back to PAUSED at its next occurrence, as after the run (`pause_after_run`).
            _J.PAUSED,
            _J.CANCELLED,
            # The misfire policy may skip an occurrence that is late beyond its grace without
            # running it; when the schedule has no further occurrence the job ends there:
            # COMPLETED when skipping is what the policy asks for, FAILED when it asks to fail.
            _J.COMPLETED,
            _J.FAILED,
        }
    ),
    _J.RUNNING: frozenset(
        {
            # Recurring job with a next occurrence, a retry at its backoff time, lease recovery
            # of a lost occurrence, or a dispatch withdrawn before it started (handed back
            # because publishing failed, or redispatched by lease recovery; `WITHDRAWN_JOB_MOVE`).
            _J.SCHEDULED,
            # The last occurrence ended: succeeded, or failed for good (permanent or exhausted).
            _J.COMPLETED,
            _J.FAILED,
            # Pause and cancel are honoured while an occurrence runs: a user stopping a runaway
            # job must not have to wait for it. The running occurrence is not interrupted; its
            # outcome is still recorded on its execution row, but the executor's job update is
            # guarded on `status = 'RUNNING' AND lease_version = :token`, so it finds zero rows
            # and the job keeps the state the user asked for (no rescheduling, no retry).
            # The executor pauses a job itself, under that same guard, when its target answered
            # that it will never want these calls again (HTTP 410 Gone), with a status reason;
            # and the executor or lease recovery pauses it again, at its next occurrence, when
            # the occurrence a person ran on the PAUSED job ended (`pause_after_run`).
            _J.PAUSED,
            _J.CANCELLED,
        }
    ),
    _J.PAUSED: frozenset(
        {
            # Resume with a freshly computed `next_run_at` (a pause by the platform included:
            # only a person resumes a job); or run-now, due at once for one occurrence, after
            # which the job is PAUSED again (`pause_after_run`).
            _J.SCHEDULED,
            # Resume of a job whose schedule has no occurrence left (its end passed meanwhile).
            _J.COMPLETED,
            _J.CANCELLED,
        }
    ),
    # A failed job is revived only by a person, usually after fixing it (a FAILED job may be
    # edited; the edit leaves it FAILED): the replay of one of its dead letters or run-now
    # (due at once, attempts counted from 1 again), or a resume (back on its schedule, at its
    # next occurrence). Nothing moves it on its own.
    _J.FAILED: frozenset({_J.SCHEDULED}),
    # Terminal: a completed or cancelled job is never revived nor changed (run-now, resume and
    # update are refused); create a new job instead. Its history is then the record of a job
    # that did what it was for, or that a person stopped (or deleted) for good.
    _J.COMPLETED: frozenset(),
    _J.CANCELLED: frozenset(),
}

# The job moves schedulers and executors make on their own, each as a guarded update; the other
# moves of JOB_TRANSITIONS are requests through the API (a person's, or a program's with a token).
PLATFORM_JOB_MOVES: frozenset[tuple[JobStatus, JobStatus]] = frozenset(
    {
        # A scheduler claims a due occurrence; its misfire policy may end a job whose late
        # occurrence was the last one, or skip the run a person requested on a PAUSED job
        # (which is then PAUSED again at its next occurrence).
        (_J.SCHEDULED, _J.RUNNING),
        (_J.SCHEDULED, _J.COMPLETED),
        (_J.SCHEDULED, _J.FAILED),
        (_J.SCHEDULED, _J.PAUSED),
        # An occurrence's outcome (executor), a lost one (lease recovery), a hand-back.
        (_J.RUNNING, _J.SCHEDULED),
        (_J.RUNNING, _J.COMPLETED),
        (_J.RUNNING, _J.FAILED),
        # The target answered 410 Gone (executor): paused until a person resumes the job. Or
        # the run a person requested on the PAUSED job ended: paused again.
        (_J.RUNNING, _J.PAUSED),
    }
)

_E = ExecutionStatus
EXECUTION_TRANSITIONS: Mapping[ExecutionStatus, frozenset[ExecutionStatus]] = {
    _E.DISPATCHED: frozenset(
        {
            # The executor's claim (`... WHERE status = 'DISPATCHED'`); a duplicate delivery
            # finds zero rows and is skipped.
            _E.RUNNING,
            # Never started, because its job was paused, cancelled or claimed again before
            # the executor's claim ("superseded"). A dispatch never started for a passing reason
            # (publishing failed, lost with the broker or a scheduler) is withdrawn instead: no
            # move, the row is deleted (`WITHDRAWABLE_EXECUTIONS`).
            _E.LOST,
        }
    ),
    _E.RUNNING: frozenset(
        {
            _E.SUCCEEDED,
            _E.FAILED,
            _E.TIMED_OUT,
            # The executor running it died or stalled past its lease (lease recovery).
            _E.LOST,
        }
    ),
    # Terminal: an execution row is the record of one attempt; a retry is a new row with the
    # next `attempt` (the unique key is `(job_id, scheduled_for, attempt)`).
    _E.SUCCEEDED: frozenset(),
    _E.FAILED: frozenset(),
    _E.TIMED_OUT: frozenset(),
    _E.LOST: frozenset(),
}

# Not started yet: the executor's claim starts these, and only these may be superseded (LOST
# without having run) or withdrawn.
UNSTARTED_EXECUTIONS: frozenset[ExecutionStatus] = frozenset({_E.DISPATCHED})

# Withdrawn: a dispatch that never started for a passing reason (publishing failed, the message
# was lost with the broker or with a scheduler, no executor took it within its lease) is not an
# attempt. Its claim is undone, the job RUNNING -> SCHEDULED at the same occurrence and attempt
# (hand-back, lease recovery's redispatch), and its execution row, still in one of these states,
# is deleted rather than moved: the record of an attempt that was never made would only block the
# unique key `(job_id, scheduled_for, attempt)` when the same attempt is dispatched again.
WITHDRAWN_JOB_MOVE: tuple[JobStatus, JobStatus] = (_J.RUNNING, _J.SCHEDULED)
WITHDRAWABLE_EXECUTIONS: frozenset[ExecutionStatus] = UNSTARTED_EXECUTIONS

# Finished: no scheduler or executor moves a job out of these. FAILED is among them although a
# person may revive it (replay, run-now, resume): that is a request, never something the
# platform does itself. A move the platform makes leaves a job with a next run exactly when it
# does not end in one of these (`libs.store.occurrence_store.Move` checks it).
JOB_TERMINAL: frozenset[JobStatus] = frozenset({_J.COMPLETED, _J.FAILED, _J.CANCELLED})


def can_transition(
    current: JobStatus | ExecutionStatus, target: JobStatus | ExecutionStatus
) -> bool:
    """Whether a job (or an execution) may move from `current` to `target`.

    Both must belong to the same enumeration: they are not compared as plain strings, because the
    two machines share names (RUNNING, FAILED) with different rules. Raises `TypeError` otherwise.
    """
    if isinstance(current, JobStatus) and isinstance(target, JobStatus):
        return target in JOB_TRANSITIONS[current]
    if isinstance(current, ExecutionStatus) and isinstance(target, ExecutionStatus):
        return target in EXECUTION_TRANSITIONS[current]
    raise TypeError(f"not two states of one machine: {current!r} -> {target!r}")


def platform_may_move(current: JobStatus, target: JobStatus) -> bool:
    """Whether a scheduler or an executor may move a job from `current` to `target` on its own."""
    return (current, target) in PLATFORM_JOB_MOVES


def job_sources(target: JobStatus) -> frozenset[JobStatus]:
    """The job states from which `target` may be reached (for `status = ANY(:sources)`)."""
    return frozenset(s for s, allowed in JOB_TRANSITIONS.items() if target in allowed)


def execution_sources(target: ExecutionStatus) -> frozenset[ExecutionStatus]:
    """The execution states from which `target` may be reached."""
    return frozenset(s for s, allowed in EXECUTION_TRANSITIONS.items() if target in allowed)


def platform_job_sources(target: JobStatus) -> frozenset[JobStatus]:
    """The job states from which a scheduler or an executor moves a job to `target` on its own."""
    return frozenset(current for current, to in PLATFORM_JOB_MOVES if to is target)


def only(statuses: Iterable[JobStatus | ExecutionStatus]) -> str:
    """The one state of `statuses`, as a statement binds it (`status = :source`): for the hot
    statements whose move starts from a single state, which compare one value rather than an
    array (`= ANY(...)` costs PostgreSQL measurably more per statement). Raises `ValueError` when
    the table allows more than one, so that a change of the table cannot be missed there."""
    found = sorted(s.value for s in statuses)
    if len(found) != 1:
        raise ValueError(f"expected exactly one state, the table gives {found}")
    return found[0]


def bound(statuses: Iterable[JobStatus | ExecutionStatus]) -> list[str]:
    """States as the `text[]` a guarded statement binds (`status = ANY(:sources)`), sorted so
    that the same set is always the same value."""
    return sorted(s.value for s in statuses)
