"""Alembic environment: runs the migrations on asyncpg, one migrating process at a time.

The database URL comes, in this order, from `config.attributes["database_url"]` (set by
`libs.store.migrate`, which `schedctl migrate` and the services use), from `-x database_url=...` on
the alembic command line, or from `sqlalchemy.url` in the ini file. It is a libpq URL
(`postgresql://...`); the asyncpg driver is named here.

Several copies of a service may start at once and each may upgrade the schema. All migrations of
one run happen in one transaction (PostgreSQL has transactional DDL) that first takes a
transaction-level advisory lock, so a second process waits, then reads the version the first one
committed and finds nothing left to do. The lock is released by the commit or the rollback, even
if the process dies.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from libs.infra import db
from libs.store import models

# Any fixed 64-bit number no other part of the platform uses as an advisory lock key.
# (0x5C4E_D01E_0000_0001: "sched" migrations, number 1.)
MIGRATION_LOCK_KEY = 0x5C4E_D01E_0000_0001

config = context.config
target_metadata = models.Base.metadata

# Only the developer's `alembic` command has an ini file with logging sections; programmatic
# runs keep the caller's logging as it is.
if config.config_file_name is not None and config.file_config.has_section("loggers"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _database_url() -> str | None:
    url = config.attributes.get("database_url")
    if url:
        return str(url)
    url = context.get_x_argument(as_dictionary=True).get("database_url")
    if url:
        return url
    return config.get_main_option("sqlalchemy.url") or None


def _configure_options() -> dict[str, object]:
    return {
        "target_metadata": target_metadata,
        # Autogenerate drafts (`alembic revision --autogenerate`) also compare types and server
        # defaults; review and name things by hand before committing a draft.
        "compare_type": True,
        "compare_server_default": True,
        # One transaction for the whole run, so the advisory lock covers every step.
        "transaction_per_migration": False,
    }


def _lock_statement() -> str:
    return f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"


def run_migrations_offline() -> None:
    """Write the SQL to standard output (`alembic upgrade head --sql`) instead of running it."""
    url = _database_url()
    if url:
        context.configure(url=db.async_url(url), literal_binds=True, **_configure_options())
    else:
        context.configure(dialect_name="postgresql", literal_binds=True, **_configure_options())
    with context.begin_transaction():
        context.execute(_lock_statement())
        context.run_migrations()


def _run_with_connection(connection: Connection) -> None:
    context.configure(connection=connection, **_configure_options())
    with context.begin_transaction():
        # Held until this transaction ends; the version table is read after it is taken.
        connection.execute(text(_lock_statement()))
        context.run_migrations()


async def _run_online(url: str) -> None:
    engine = create_async_engine(
        db.async_url(url),
        # One connection, closed at the end: nothing pooled outlives the run.
        poolclass=pool.NullPool,
        connect_args={"server_settings": {"application_name": "migrations"}},
    )
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_with_connection)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    url = _database_url()
    if not url:
        raise RuntimeError(
            "no database URL: use `schedctl migrate`, `libs.store.migrate.upgrade(url)`, or "
            "`alembic -x database_url=postgresql://... upgrade head`"
        )
    # asyncio.run: callers inside an event loop run this in a thread (see libs.store.migrate).
    asyncio.run(_run_online(url))


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
