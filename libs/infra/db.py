"""Database engines and sessions: SQLAlchemy 2 async on asyncpg.

Engines are built in a service's lifespan from its settings and disposed on shutdown; nothing
here is created at import. Units of work commit at their edge (a request, a batch): code inside
takes a session and never commits on its own.

`is_unavailable` tells an outage (the server cannot be reached, is shutting down or starting,
the connection was lost, the pool is exhausted) from an error of the statement itself, so that
callers can answer "retry later" for the first and treat the second as a bug or a refusal.

The workers' loops take their units of work from `transaction`, which raises every error of the
driver and the network as `libs.infra.errors.DatabaseUnavailable`: a loop backs off from it and
resumes, whatever the statement was.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from libs.infra.errors import DatabaseUnavailable, describe

ASYNC_DRIVER = "postgresql+asyncpg"
DISPOSE_TIMEOUT_S = 1.0  # a pool's close at shutdown, whatever the server does


# A connection attempt (TCP, TLS, start-up, authentication) taking longer fails: a server that
# accepts connections but does not answer (a frozen or partitioned host) would otherwise hold
# the request for asyncpg's default of 60 s, past any client's patience.
CONNECT_TIMEOUT_S = 5.0
# A statement is given up on by the client this long after the server's statement timeout
# should have ended it: only a server that stopped answering gets there.
COMMAND_TIMEOUT_MARGIN_S = 5.0

# SQLSTATEs of a server that cannot serve this connection now, whatever the statement: class 08
# (connection exception) by prefix, then too_many_connections, admin_shutdown, crash_shutdown
# and cannot_connect_now (starting up, shutting down, in recovery).
_UNAVAILABLE_SQLSTATE_CLASS = "08"
_UNAVAILABLE_SQLSTATES = frozenset({"53300", "57P01", "57P02", "57P03"})

# Every type whose instances may mean an outage, for code that must name the types it catches
# (HTTP error handlers); `is_unavailable` tells which instances do. The driver lets network
# failures through as `OSError`s (`TimeoutError` is one).
DRIVER_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    SQLAlchemyError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    DatabaseUnavailable,
)


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database is unavailable rather than that the statement failed.

    True for an unreachable or lost server (refused, reset, timed out, name not resolved), one
    shutting down or starting up, a connection SQLAlchemy found broken, and a pool with no
    connection to give; False for the statement's own errors (constraint violations, syntax,
    serialization failures, statement timeouts, bad parameters). The exception's chain
    (`__cause__`, `__context__` and SQLAlchemy's `.orig`) is searched, nearest first.
    """
    return unavailable_cause(exc) is not None


def unavailable_cause(exc: BaseException) -> BaseException | None:
    """The exception in `exc`'s chain that shows the database is unavailable, or None.

    The first exception that says something definite decides (a SQLSTATE, a driver or network
    error type); a bare `OperationalError` or `InterfaceError` of SQLAlchemy counts only when
    nothing in the chain is more definite.
    """
    vague: BaseException | None = None
    for link in _chain(exc):
        verdict = _verdict(link)
        if verdict is False:
            return None
        if verdict:
            # The driver's own exception rather than the copy SQLAlchemy raised from it.
            while link.__cause__ is not None and _verdict(link.__cause__):
                link = link.__cause__
            return link
        if vague is None and isinstance(link, OperationalError | InterfaceError):
            vague = link
    return vague


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what it wraps, breadth first, each exception once."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        link = pending.pop(0)
        if link is None or id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        orig = getattr(link, "orig", None)  # SQLAlchemy's wrapper of the driver's error
        pending.append(orig if isinstance(orig, BaseException) else None)
        pending.append(link.__cause__)
        if not link.__suppress_context__:
            pending.append(link.__context__)


def _verdict(exc: BaseException) -> bool | None:
    """True: `exc` shows an outage; False: it shows something else; None: it does not say."""
    if isinstance(exc, DatabaseUnavailable | PoolTimeoutError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    sqlstate = getattr(exc, "sqlstate", None)  # asyncpg's errors, and SQLAlchemy's copies of them
    if isinstance(sqlstate, str) and sqlstate:
        return (
            sqlstate.startswith(_UNAVAILABLE_SQLSTATE_CLASS) or sqlstate in _UNAVAILABLE_SQLSTATES
        )
    if isinstance(exc, asyncpg.InterfaceError):
        # The base class is a closed or broken connection; its subclasses (DataError, ...) are
        # the caller's mistakes.
        return type(exc) is asyncpg.InterfaceError
    if isinstance(exc, OSError):
        # asyncio reports a connect that failed on every address, and an unreachable host or
        # network, as a plain OSError; its other subclasses are not the network's.
        return isinstance(exc, ConnectionError | TimeoutError | socket.gaierror) or (
            type(exc) is OSError
        )
    return None


def async_url(url: str) -> str:
    """Return `url` (libpq style, `postgresql://...`) with the asyncpg driver named in it.

    libpq's `sslmode` becomes asyncpg's `ssl`, which takes the same modes (`disable` ...
    `verify-full`), so a URL that works with psql works here.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise ValueError("the database URL must name a PostgreSQL database (postgresql://...)")
    query = dict(parsed.query)
    if "sslmode" in query:
        query.setdefault("ssl", query.pop("sslmode"))
    return parsed.set(drivername=ASYNC_DRIVER, query=query).render_as_string(hide_password=False)


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 5,
    pool_timeout_s: float = 10.0,
    statement_timeout_ms: int = 30_000,
    application_name: str = "scheduler",
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    pre_ping: bool = True,
) -> AsyncEngine:
    """An async engine for `url`, with a bounded pool, a server-side statement timeout and
    bounded waits for a server that does not answer (connecting, then each statement).

    With `pre_ping`, a broken pooled connection is found before use (a round trip at every
    checkout) and replaced, so a request after the server came back does not fail. Without
    it, the first transaction on a broken connection fails (`DatabaseUnavailable`), which
    invalidates the pool: for callers that retry anyway. Either way the pool recovers by itself
    once the server is back.
    """
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout_s,
        pool_pre_ping=pre_ping,
        # Statement parameters stay out of error messages (and so out of logs): they may hold
        # secrets, such as a webhook secret being stored.
        hide_parameters=True,
        connect_args={
            "timeout": connect_timeout_s,
            "command_timeout": statement_timeout_ms / 1000 + COMMAND_TIMEOUT_MARGIN_S,
            "server_settings": {
                "application_name": application_name,
                "statement_timeout": str(statement_timeout_ms),
                # All times are exchanged in UTC; the session agrees.
                "timezone": "UTC",
                # asyncpg prepares every statement, and after five runs PostgreSQL may switch
                # to a generic plan that ignores the parameters: for the set-based updates
                # (`... FROM unnest(:ids)`) that plan rescans every RUNNING job per row of the
                # batch, seconds per batch under a burst. Planning each run costs well under a
                # millisecond.
                "plan_cache_mode": "force_custom_plan",
            },
        },
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose loaded objects stay usable after commit (no reload on attribute access)."""
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def unit_of_work(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction: committed when the block ends normally, rolled back when it raises."""
    async with sessions() as session, session.begin():
        yield session


@contextmanager
def translate_errors() -> Iterator[None]:
    """Raise the driver's and the network's errors of the block as `DatabaseUnavailable` (the
    original as its cause): what a worker's loop backs off from and resumes after."""
    try:
        yield
    except DatabaseUnavailable:
        raise
    except (SQLAlchemyError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise DatabaseUnavailable(describe(exc)) from exc


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """`unit_of_work` with its errors translated (`translate_errors`), its commit's included:
    the unit of work of the workers' loops."""
    with translate_errors():
        async with unit_of_work(sessions) as session:
            yield session


async def dispose(engine: AsyncEngine, timeout_s: float = DISPOSE_TIMEOUT_S) -> None:
    """Close the pool's connections, within `timeout_s` whatever the server does (a server that
    stopped answering would hold a polite close for ever); past it they are dropped."""
    try:
        async with asyncio.timeout(timeout_s):
            await engine.dispose()
    except TimeoutError:
        await engine.dispose(close=False)


async def ping(engine: AsyncEngine) -> None:
    """Raise `DatabaseUnavailable` unless the database answers a trivial query."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (OSError, OperationalError, DBAPIError) as exc:
        raise DatabaseUnavailable(type(exc).__name__) from exc
