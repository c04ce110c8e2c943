"""`db.is_unavailable` tells an outage of the database from a failed statement, for exceptions as
the driver raises them and as SQLAlchemy's asyncpg dialect wraps them."""

from __future__ import annotations

import errno
import socket

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect

from libs.infra import db

DBAPI = asyncpg_dialect.dialect.import_dbapi()


def through_sqlalchemy(error: Exception, *, invalidated: bool = False) -> BaseException:
    """`error` as SQLAlchemy hands it on: translated by the asyncpg dialect to its DB-API class,
    then wrapped in SQLAlchemy's matching class (the DB-API error in `.orig` and `__cause__`)."""
    try:
        try:
            raise error
        except Exception as raised:
            connection = asyncpg_dialect.AsyncAdapt_asyncpg_connection
            connection._handle_exception_no_connection(DBAPI, raised)
    except DBAPI.Error as adapted:
        wrapped = sa_exc.DBAPIError.instance(
            "SELECT 1", None, adapted, DBAPI.Error, connection_invalidated=invalidated
        )
        wrapped.__cause__ = adapted
        return wrapped
    raise AssertionError(f"the dialect did not translate {error!r}")


def raised_from(outer: Exception, inner: BaseException) -> Exception:
    try:
        raise outer from inner
    except Exception as exc:
        return exc


def raised_while_handling(outer: Exception, inner: BaseException, *, hide: bool = False):
    try:
        try:
            raise inner
        except BaseException:
            if hide:
                raise outer from None
            raise outer  # noqa: B904 (the implicit context is what is tested)
    except Exception as exc:
        return exc


UNAVAILABLE = {
    "connection refused": ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed"),
    "refused on every address": OSError("Multiple exceptions: [Errno 111] ..., [Errno 99] ..."),
    "host unreachable": OSError(errno.EHOSTUNREACH, "No route to host"),
    "connection reset": ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
    "name not resolved": socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
    "connect timed out": TimeoutError(),
    "starting up": asyncpg.CannotConnectNowError("the database system is starting up"),
    "shutting down": asyncpg.CannotConnectNowError("the database system is shutting down"),
    "admin shutdown": asyncpg.AdminShutdownError("terminating connection due to administrator"),
    "crash shutdown": asyncpg.CrashShutdownError("terminating connection due to crash"),
    "connection lost": asyncpg.ConnectionDoesNotExistError("connection was closed in the middle"),
    "connection failure": asyncpg.ConnectionFailureError("could not receive data"),
    "connection exception": asyncpg.PostgresConnectionError("connection exception"),
    "too many clients": asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    "closed connection": asyncpg.InterfaceError("connection is closed"),
    "starting up, through sqlalchemy": through_sqlalchemy(
        asyncpg.CannotConnectNowError("the database system is starting up")
    ),
    "admin shutdown, through sqlalchemy": through_sqlalchemy(
        asyncpg.AdminShutdownError("terminating connection due to administrator command")
    ),
    "connection lost, through sqlalchemy": through_sqlalchemy(
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
    ),
    "closed connection, through sqlalchemy": through_sqlalchemy(
        asyncpg.InterfaceError("connection is closed")
    ),
    "connection invalidated by sqlalchemy": sa_exc.DBAPIError.instance(
        "SELECT 1", None, DBAPI.Error("lost"), DBAPI.Error, connection_invalidated=True
    ),
    "operational error": sa_exc.OperationalError("SELECT 1", None, Exception("server gone")),
    "interface error": sa_exc.InterfaceError("SELECT 1", None, Exception("closed")),
    "pool exhausted": sa_exc.TimeoutError("QueuePool limit of size 10 overflow 5 reached"),
    "ping failed": db.DatabaseUnavailable("ConnectionRefusedError"),
    "raised from a refused connection": raised_from(
        RuntimeError("failed"), ConnectionRefusedError()
    ),
    "raised while handling a shutdown": raised_while_handling(
        ValueError("cleanup failed"), asyncpg.AdminShutdownError("terminating connection")
    ),
}

NOT_UNAVAILABLE = {
    "unique violation": through_sqlalchemy(asyncpg.UniqueViolationError("duplicate key")),
    "unique violation, raw": asyncpg.UniqueViolationError("duplicate key value"),
    "not null violation": through_sqlalchemy(asyncpg.NotNullViolationError("null value")),
    "check violation": through_sqlalchemy(asyncpg.CheckViolationError("violates check")),
    "syntax error": through_sqlalchemy(asyncpg.PostgresSyntaxError("syntax error at or near")),
    "undefined table": through_sqlalchemy(asyncpg.UndefinedTableError("does not exist")),
    "serialization failure": through_sqlalchemy(asyncpg.SerializationError("could not serialize")),
    "deadlock": through_sqlalchemy(asyncpg.DeadlockDetectedError("deadlock detected")),
    "statement timeout": through_sqlalchemy(asyncpg.QueryCanceledError("statement timeout")),
    "invalid parameter": through_sqlalchemy(asyncpg.DataError("invalid input for query argument")),
    "unsupported client feature": asyncpg.exceptions.UnsupportedClientFeatureError("feature"),
    "unencodable argument": asyncpg.exceptions._base.DataError("invalid input for argument"),
    "file not found": FileNotFoundError(errno.ENOENT, "No such file or directory"),
    "permission denied": PermissionError(errno.EACCES, "Permission denied"),
    "a bug": ValueError("not a database error"),
    "outage hidden on purpose": raised_while_handling(
        ValueError("replaced"), ConnectionRefusedError(), hide=True
    ),
}


@pytest.mark.parametrize("exc", UNAVAILABLE.values(), ids=UNAVAILABLE.keys())
def test_an_outage_is_unavailable(exc: BaseException):
    assert db.is_unavailable(exc)


def test_what_the_database_stack_raises_in_an_outage_is_of_a_driver_error_type():
    # The HTTP error handlers are registered for these types.
    raised = [exc for name, exc in UNAVAILABLE.items() if not name.startswith("raised ")]
    assert all(isinstance(exc, db.DRIVER_ERRORS) for exc in raised)


@pytest.mark.parametrize("exc", NOT_UNAVAILABLE.values(), ids=NOT_UNAVAILABLE.keys())
def test_an_error_of_the_statement_or_the_code_is_not(exc: BaseException):
    assert not db.is_unavailable(exc)
    assert db.unavailable_cause(exc) is None


def test_the_cause_is_the_drivers_own_exception_under_sqlalchemys_copies():
    original = asyncpg.CannotConnectNowError("the database system is starting up")

    assert db.unavailable_cause(through_sqlalchemy(original)) is original


def test_a_chain_that_loops_is_walked_once():
    first, second = ValueError("first"), RuntimeError("second")
    first.__context__, second.__context__ = second, first

    assert not db.is_unavailable(first)
