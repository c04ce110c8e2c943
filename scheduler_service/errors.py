"""The scheduler service's errors, named by meaning.

The service has no public API, so nothing here becomes a problem-details response: these
errors are what its loops catch. `Transient` errors (the database or the broker is away) make a
loop log, back off and resume; anything else is a bug and is logged with its traceback before
the loop backs off the same way, so one poisoned batch cannot stop the scheduler.
"""

from __future__ import annotations

from libs import db, kafka


class SchedulerError(Exception):
    """Base of the scheduler service's own errors."""


class DatabaseError(SchedulerError):
    """A query failed for a reason of the database's (connection lost, statement timeout, ...);
    translated from the driver's error at the repository boundary."""


class StoredScheduleInvalid(SchedulerError):
    """A job's stored schedule or retry policy cannot be read; the job is failed rather than
    retried forever."""


# What a loop expects to meet in normal operation of an imperfect world.
TRANSIENT: tuple[type[Exception], ...] = (
    DatabaseError,
    db.DatabaseUnavailable,
    kafka.KafkaUnavailable,
    OSError,
    TimeoutError,
)
