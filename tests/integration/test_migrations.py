"""The migrations against a real PostgreSQL: they build the schema the models describe, the
keys that the dispatch guarantees rest on exist, and they go down and up again cleanly."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import CheckConstraint, Connection, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from libs.infra import db
from libs.store import migrate, models

APPLICATION_TABLES = {
    "users",
    "service_accounts",
    "refresh_tokens",
    "signing_keys",
    "jobs",
    "executions",
    "dead_letters",
    "nodes",
    "login_throttles",
    "idempotency_keys",
    "webhook_secrets",
    "console_sessions",
}
LATEST_REVISION = "0013"


@asynccontextmanager
async def _connect(url: str) -> AsyncIterator[AsyncConnection]:
    engine = create_async_engine(db.async_url(url), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            yield conn
    finally:
        await engine.dispose()


async def _tables(url: str) -> set[str]:
    async with _connect(url) as conn:
        rows = await conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        )
        return set(rows.scalars())


async def _index_definitions(url: str) -> dict[str, str]:
    async with _connect(url) as conn:
        rows = await conn.execute(
            text("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'")
        )
        return {name: definition for name, definition in rows}


async def test_upgrade_creates_every_table_and_the_hot_path_indexes(
    empty_database_url: str,
) -> None:
    await asyncio.to_thread(migrate.upgrade, empty_database_url)

    assert await _tables(empty_database_url) == APPLICATION_TABLES | {"alembic_version"}
    indexes = await _index_definitions(empty_database_url)
    assert indexes["ix_jobs_due"] == (
        "CREATE INDEX ix_jobs_due ON public.jobs USING btree (next_run_at)"
        " WHERE ((status = 'SCHEDULED'::text) AND (deleted_at IS NULL))"
    )
    assert indexes["ix_jobs_lease_expiry"] == (
        "CREATE INDEX ix_jobs_lease_expiry ON public.jobs USING btree (lease_expires_at)"
        " WHERE (status = 'RUNNING'::text)"
    )
    assert indexes["uq_executions_occurrence"] == (
        "CREATE UNIQUE INDEX uq_executions_occurrence ON public.executions"
        " USING btree (job_id, scheduled_for, attempt)"
    )
    assert indexes["ix_signing_keys_one_active"] == (
        "CREATE UNIQUE INDEX ix_signing_keys_one_active ON public.signing_keys"
        " USING btree (status) WHERE (status = 'active'::text)"
    )
    # The jobs list: keyset order over live jobs, and label containment.
    assert indexes["ix_jobs_owner_id_created_at_id"] == (
        "CREATE INDEX ix_jobs_owner_id_created_at_id ON public.jobs"
        " USING btree (owner_id, created_at, id) WHERE (deleted_at IS NULL)"
    )
    assert indexes["ix_jobs_owner_id_next_run_at_id"] == (
        "CREATE INDEX ix_jobs_owner_id_next_run_at_id ON public.jobs"
        " USING btree (owner_id, next_run_at, id) WHERE (deleted_at IS NULL)"
    )
    assert indexes["ix_jobs_labels"] == (
        "CREATE INDEX ix_jobs_labels ON public.jobs USING gin (labels jsonb_path_ops)"
        " WHERE (deleted_at IS NULL)"
    )


async def test_the_hot_path_tables_leave_room_for_heap_only_updates(
    empty_database_url: str,
) -> None:
    await asyncio.to_thread(migrate.upgrade, empty_database_url)

    async with _connect(empty_database_url) as conn:
        rows = await conn.execute(
            text(
                "SELECT relname, reloptions FROM pg_class"
                " WHERE relname IN ('jobs', 'executions') AND relkind = 'r'"
            )
        )
        options = {row.relname: row.reloptions for row in rows}
    # As the models declare them (autogenerate does not compare storage parameters).
    assert options == {
        table: [f"{key}={value}" for key, value in models.Base.metadata.tables[table]
                .dialect_options["postgresql"]["with"].items()]
        for table in ("jobs", "executions")
    }  # fmt: skip
    assert options == {"executions": ["fillfactor=40"], "jobs": ["fillfactor=80"]}


def _schema_differences(conn: Connection) -> list[object]:
    context = MigrationContext.configure(
        conn, opts={"compare_type": True, "compare_server_default": True}
    )
    return compare_metadata(context, models.Base.metadata)


async def test_migrated_schema_matches_the_models(empty_database_url: str) -> None:
    await asyncio.to_thread(migrate.upgrade, empty_database_url)

    async with _connect(empty_database_url) as conn:
        differences = await conn.run_sync(_schema_differences)
        # Autogenerate does not compare CHECK constraints; compare their names and bodies here.
        rows = await conn.execute(
            text(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE contype = 'c' AND connamespace = 'public'::regnamespace"
            )
        )
        database_checks = {name: definition for name, definition in rows}

    assert differences == []
    model_checks = {
        constraint.name
        for table in models.Base.metadata.tables.values()
        for constraint in table.constraints
        if isinstance(constraint, CheckConstraint)
    }
    assert set(database_checks) == model_checks
    assert database_checks["ck_jobs_status"] == (
        "CHECK ((status = ANY (ARRAY['SCHEDULED'::text, 'RUNNING'::text, 'PAUSED'::text,"
        " 'COMPLETED'::text, 'FAILED'::text, 'CANCELLED'::text])))"
    )


async def _insert_job(conn: AsyncConnection) -> uuid.UUID:
    result = await conn.execute(
        text(
            "INSERT INTO jobs (owner_id, name, type, payload, schedule, schedule_kind,"
            " misfire_policy, misfire_grace_s, timeout_s, next_run_at)"
            " VALUES (:owner, 'nightly', 'log', '{}', '{\"kind\": \"once\"}', 'once',"
            " 'run_once', 60, 30, now()) RETURNING id"
        ),
        {"owner": uuid.uuid4()},
    )
    return result.scalar_one()


_INSERT_EXECUTION = text(
    "INSERT INTO executions (job_id, scheduled_for, attempt, lease_version)"
    " VALUES (:job_id, '2030-01-01T00:00:00Z', :attempt, 1)"
)


async def test_the_occurrence_key_refuses_a_second_execution(empty_database_url: str) -> None:
    await asyncio.to_thread(migrate.upgrade, empty_database_url)

    async with _connect(empty_database_url) as conn:
        job_id = await _insert_job(conn)
        await conn.execute(_INSERT_EXECUTION, {"job_id": job_id, "attempt": 1})
        # A retry of the same occurrence is a new attempt, and allowed.
        await conn.execute(_INSERT_EXECUTION, {"job_id": job_id, "attempt": 2})
        await conn.commit()

        with pytest.raises(IntegrityError, match="uq_executions_occurrence"):
            await conn.execute(_INSERT_EXECUTION, {"job_id": job_id, "attempt": 1})
        await conn.rollback()

        count = await conn.scalar(
            text("SELECT count(*) FROM executions WHERE job_id = :job_id"), {"job_id": job_id}
        )
    assert count == 2


async def test_jobs_running_at_the_upgrade_get_the_nominal_time_of_their_occurrence(
    empty_database_url: str,
) -> None:
    await asyncio.to_thread(migrate.upgrade, empty_database_url, "0010")
    async with _connect(empty_database_url) as conn:
        first, retry, kept, waiting = [await _insert_job(conn) for _ in range(4)]
        await conn.execute(
            text(
                "UPDATE jobs SET status = 'RUNNING', lease_expires_at = now(),"
                " next_run_at = '2030-01-01T00:00:00Z',"
                " attempt = CASE WHEN id = :first THEN 1 ELSE 2 END,"
                " occurrence_at = CASE WHEN id = :kept THEN '2029-12-31T00:00:00Z'::timestamptz"
                " END WHERE id <> :waiting"
            ),
            {"first": first, "kept": kept, "waiting": waiting},
        )
        await conn.commit()

    await asyncio.to_thread(migrate.upgrade, empty_database_url, "0011")

    async with _connect(empty_database_url) as conn:
        rows = await conn.execute(text("SELECT id, occurrence_at::text AS at FROM jobs"))
        occurrence_at = {row.id: row.at for row in rows}
    assert occurrence_at == {
        first: "2030-01-01 00:00:00+00",  # a first attempt: the time it was due
        retry: "2030-01-01 00:00:00+00",  # a retry that remembered nothing: as the claim read it
        kept: "2029-12-31 00:00:00+00",  # a retry keeps its occurrence's
        waiting: None,  # not RUNNING: set by its next claim
    }


async def test_downgrade_to_base_removes_everything_and_upgrade_works_again(
    empty_database_url: str,
) -> None:
    await asyncio.to_thread(migrate.upgrade, empty_database_url)

    await asyncio.to_thread(migrate.downgrade, empty_database_url, "base")
    # Only Alembic's own bookkeeping is left, and it records no revision.
    assert await _tables(empty_database_url) == {"alembic_version"}
    assert await _index_definitions(empty_database_url) == {
        "alembic_version_pkc": (
            "CREATE UNIQUE INDEX alembic_version_pkc ON public.alembic_version"
            " USING btree (version_num)"
        )
    }
    assert await asyncio.to_thread(migrate.current, empty_database_url) is None

    await asyncio.to_thread(migrate.upgrade, empty_database_url)
    assert await _tables(empty_database_url) == APPLICATION_TABLES | {"alembic_version"}
    assert await asyncio.to_thread(migrate.current, empty_database_url) == migrate.head()


async def test_current_reports_none_then_head(empty_database_url: str) -> None:
    assert migrate.head() == LATEST_REVISION
    assert await asyncio.to_thread(migrate.current, empty_database_url) is None
    # Reading the revision does not create Alembic's table.
    assert await _tables(empty_database_url) == set()

    await asyncio.to_thread(migrate.upgrade, empty_database_url)
    assert await asyncio.to_thread(migrate.current, empty_database_url) == LATEST_REVISION


async def test_every_revision_goes_down_and_up_again_one_step_at_a_time(
    empty_database_url: str,
) -> None:
    revisions = [
        *("0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009", "0010"),
        *("0011", "0012", "0013"),
    ]
    for revision in revisions:
        await asyncio.to_thread(migrate.upgrade, empty_database_url, revision)
        assert await asyncio.to_thread(migrate.current, empty_database_url) == revision
    for previous in reversed([None, *revisions[:-1]]):
        await asyncio.to_thread(migrate.downgrade, empty_database_url, previous or "base")
        assert await asyncio.to_thread(migrate.current, empty_database_url) == previous
    await asyncio.to_thread(migrate.upgrade, empty_database_url)
    assert await asyncio.to_thread(migrate.current, empty_database_url) == LATEST_REVISION


def test_the_functions_refuse_to_block_an_event_loop(empty_database_url: str) -> None:
    async def call_inside_loop() -> None:
        migrate.upgrade(empty_database_url)

    with pytest.raises(RuntimeError, match=r"asyncio\.to_thread"):
        asyncio.run(call_inside_loop())


# Each copy imports everything first, says so, and migrates only when told: a barrier, so that
# they really do start together.
_MIGRATE_ON_CUE = """
import sys
from libs.store import migrate
print("ready", flush=True)
sys.stdin.readline()
migrate.upgrade(sys.argv[1])
"""


def test_concurrent_upgrades_from_several_processes_serialize(empty_database_url: str) -> None:
    # Several copies of a service starting at once: each upgrades; the advisory lock makes the
    # later ones wait and then find the schema at head. Without it they race on CREATE TABLE.
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATE_ON_CUE, empty_database_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    try:
        for p in processes:
            assert p.stdout is not None
            assert p.stdout.readline() == "ready\n"
        for p in processes:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        errors = [p.communicate(timeout=120)[1] for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()

    assert [p.returncode for p in processes] == [0] * len(processes), errors
    assert migrate.current(empty_database_url) == migrate.head()
