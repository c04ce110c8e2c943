"""Real parts for every test: a PostgreSQL server and a Kafka-protocol broker.

By default both are embedded (started once per test session, on free loopback ports). Set
`TEST_DATABASE_URL` (a server where the URL's role may create databases) or
`TEST_KAFKA_BOOTSTRAP_SERVERS` to use external ones instead.

Each test that asks for `database_url` gets its own database, cloned from a template migrated
once per session; `empty_database_url` is a database with no schema at all.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import hypothesis
import pytest
from sqlalchemy.engine import make_url

from libs import migrate
from schedctl import embedded


def _database_url(server_url: str, database: str) -> str:
    return make_url(server_url).set(database=database).render_as_string(hide_password=False)


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# Hypothesis's per-example deadline fails tests on a busy shared machine for no fault of theirs.
hypothesis.settings.register_profile("scheduler", deadline=None)
hypothesis.settings.load_profile("scheduler")


@pytest.fixture(scope="session")
def servers_dir() -> Iterator[Path]:
    """Data and logs of the embedded servers. Not under pytest's tmp_path: pytest deletes old
    numbered folders there, which would pull a data folder from under a concurrent run."""
    path = Path(tempfile.mkdtemp(prefix="scheduler-tests-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server_url(servers_dir: Path) -> Iterator[str]:
    """The URL of a PostgreSQL server's maintenance database."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    server = embedded.EmbeddedPostgres(
        servers_dir / "postgres",
        embedded.free_port(),
        log_path=servers_dir / "postgres.log",
        for_tests=True,
    )
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap_servers(servers_dir: Path) -> Iterator[str]:
    external = os.environ.get("TEST_KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    broker = embedded.EmbeddedBroker(embedded.free_port(), log_path=servers_dir / "broker.log")
    broker.start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


async def _admin(server_url: str, sql: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(server_url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _create_database(server_url: str, template: str | None = None) -> str:
    name = f"t_{uuid.uuid4().hex[:16]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    await _admin(server_url, f'CREATE DATABASE "{name}"{clause}')
    return name


async def _drop_database(server_url: str, name: str) -> None:
    await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
async def template_database(postgres_server_url: str) -> AsyncIterator[str]:
    """A database migrated to head once per session, cloned for each test."""
    name = await _create_database(postgres_server_url)
    await asyncio.to_thread(migrate.upgrade, _database_url(postgres_server_url, name))
    try:
        yield name
    finally:
        await _drop_database(postgres_server_url, name)


@pytest.fixture
async def database_url(postgres_server_url: str, template_database: str) -> AsyncIterator[str]:
    """A fresh database at the head migration, for this test alone."""
    name = await _create_database(postgres_server_url, template=template_database)
    try:
        yield _database_url(postgres_server_url, name)
    finally:
        await _drop_database(postgres_server_url, name)


@pytest.fixture
async def empty_database_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A fresh database with no schema, for this test alone."""
    name = await _create_database(postgres_server_url)
    try:
        yield _database_url(postgres_server_url, name)
    finally:
        await _drop_database(postgres_server_url, name)


@pytest.fixture
def unique_name() -> str:
    """A name no other test uses (topics, consumer groups)."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
