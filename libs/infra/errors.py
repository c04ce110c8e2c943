"""The faults the workers' loops (scheduler_service, executor_service) meet, named by meaning.

`Transient` faults are expected in normal operation of an imperfect world: the database or the
broker is away, a connection was reset, a request timed out. A loop logs one as a warning
(no traceback), backs off and resumes by itself. Anything else is a bug: it is logged as an
error with its traceback, and the loop backs off all the same, so that one poisoned batch
cannot stop a worker. Drivers' and clients' errors are translated into this family where they
are raised (`libs.infra.db.transaction`, `libs.infra.kafka`), so that the loops catch meanings, not
libraries.
"""

from __future__ import annotations

from typing import Any

from libs.infra import log


class Transient(Exception):
    """A fault of the world rather than of the code: the same work may succeed later."""


class DatabaseUnavailable(Transient):
    """The database could not be reached, refused the connection, or failed a statement for a
    reason of its own (connection lost, statement timeout, ...); translated from the driver's
    error at the repository boundary (`libs.infra.db.transaction`)."""


class BrokerUnavailable(Transient):
    """The broker could not be reached or refused a request."""


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is a fault expected in normal operation: one of `Transient`'s, or a
    network error (`OSError`, `TimeoutError` among them) that no boundary translated."""
    return isinstance(exc, Transient | OSError)


def describe(exc: BaseException) -> str:
    """A short, secret-free description of an unexpected exception: its type and first line."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__


def log_fault(
    event: str, exc: BaseException, *, bug_event: str | None = None, **fields: Any
) -> None:
    """Log `exc` as `event`: a warning without traceback when it is transient, an error with
    its traceback (as `bug_event` when given) when it is a bug."""
    if is_transient(exc):
        log.get().warning(event, error_type=type(exc).__name__, error=describe(exc), **fields)
    else:
        log.get().error(bug_event or event, error=describe(exc), exc_info=exc, **fields)
