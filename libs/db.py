"""Database engines and sessions: SQLAlchemy 2 async on asyncpg.

Engines are built in a service's lifespan from its settings and disposed on shutdown; nothing
here is created at import. Units of work commit at their edge (a request, a batch): code inside
takes a session and never commits on its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

ASYNC_DRIVER = "postgresql+asyncpg"


class DatabaseUnavailable(Exception):
    """The database could not be reached or refused the connection."""


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
    return (
        parsed.set(drivername=ASYNC_DRIVER, query=query).render_as_string(hide_password=False)
    )


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 5,
    pool_timeout_s: float = 10.0,
    statement_timeout_ms: int = 30_000,
    application_name: str = "scheduler",
) -> AsyncEngine:
    """An async engine for `url`, with a bounded pool and a server-side statement timeout."""
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout_s,
        pool_pre_ping=True,
        # Statement parameters stay out of error messages (and so out of logs): they may hold
        # secrets, such as a webhook secret being stored.
        hide_parameters=True,
        connect_args={
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
            }
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


async def ping(engine: AsyncEngine) -> None:
    """Raise `DatabaseUnavailable` unless the database answers a trivial query."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (OSError, OperationalError, DBAPIError) as exc:
        raise DatabaseUnavailable(type(exc).__name__) from exc
