"""The `bench` job type: each run inserts one row into `bench_runs`, and nothing else.

A plug-in as another distribution would write it (see docs/plugins.md), imported as the
top-level module `bench_job_type` through the entry point

    [scheduling_platform.job_types]
    bench = bench_job_type:JOB_TYPE

The benchmark reads `bench_runs` to know when each occurrence started (`started_at`: when
the executor called the strategy, by the host's clock, which the database shares in the
benchmark) against when it was due (`scheduled_for`). The table is not part of the
product's schema: whoever runs the type creates it first with `CREATE_TABLE_SQL`.

Runs are cheap on purpose, so that a benchmark measures the platform and not the plug-in:
the rows of the runs started within `GATHER_S` of each other are written together, one INSERT per
batch, by a single writer task, so the type holds at most one of the executor's pooled
connections whatever the load (the executor's own claims and outcomes use the same pool), and
runs starting one after the other at a steady rate do not cost a commit each. A run returns
once its row is committed; a batch the database refuses fails each of its runs as transient.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

from pydantic import ConfigDict, Field
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from executor_service.strategy import TransientFailure
from libs.contracts import schemas
from libs.infra import db
from libs.infra.errors import describe
from libs.scheduling.job_types import JobType

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from executor_service.strategy import Resources, Run

MAX_BATCH_ROWS = 1_000  # rows one INSERT writes at most
GATHER_S = 0.05  # how long the writer waits for more runs to join a batch
MAX_TAG_LENGTH = 200
ERROR_KIND = "bench_db"

CREATE_TABLE_SQL = """
CREATE TABLE IF NOT EXISTS bench_runs (
    execution_id uuid PRIMARY KEY,
    job_id uuid NOT NULL,
    scheduled_for timestamptz NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    attempt integer NOT NULL
)
"""

# No ON CONFLICT: the claim starts each execution at most once, so a second row for one
# execution is a bug the benchmark must see, not hide.
_INSERT_RUNS = text("""
INSERT INTO bench_runs (execution_id, job_id, scheduled_for, started_at, attempt)
SELECT * FROM unnest(CAST(:execution_ids AS uuid[]), CAST(:job_ids AS uuid[]),
                     CAST(:scheduled AS timestamptz[]), CAST(:started AS timestamptz[]),
                     CAST(:attempts AS integer[]))
""")


class BenchPayload(schemas.StrictModel):
    """Nothing is required; `tag` only labels the job for whoever reads it."""

    model_config = ConfigDict(
        **schemas.CAMEL_CASE, json_schema_extra={"examples": [{"tag": "burst-1"}, {}]}
    )

    tag: Annotated[str, Field(min_length=1, max_length=MAX_TAG_LENGTH)] | None = None


class BenchStrategy:
    """Records each run in `bench_runs`, the rows of concurrent runs in one INSERT."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self._sessions = sessions
        self._pending: list[tuple[Run, datetime, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def run(self, payload: BenchPayload, run: Run) -> None:
        written = asyncio.get_running_loop().create_future()
        # When the executor started the run, not when its batch reached the database: the
        # start lag is the platform's, not this writer's.
        self._pending.append((run, datetime.now(UTC), written))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_pending(), name="bench-runs-writer")
        # A run cancelled at its timeout cancels only this wait: its row may still be written.
        await written

    async def _write_pending(self) -> None:
        try:
            while self._pending:
                await asyncio.sleep(GATHER_S)
                batch = self._pending[:MAX_BATCH_ROWS]
                del self._pending[:MAX_BATCH_ROWS]
                await self._write(batch)
        finally:
            self._writer = None

    async def _write(self, batch: list[tuple[Run, datetime, asyncio.Future[None]]]) -> None:
        runs = [run for run, _, _ in batch]
        try:
            async with db.unit_of_work(self._sessions) as session:
                await session.execute(
                    _INSERT_RUNS,
                    {
                        "execution_ids": [r.execution_id for r in runs],
                        "job_ids": [r.job_id for r in runs],
                        "scheduled": [r.scheduled_for for r in runs],
                        "started": [started for _, started, _ in batch],
                        "attempts": [r.attempt for r in runs],
                    },
                )
        except (SQLAlchemyError, OSError) as exc:
            message = f"bench_runs not written: {describe(exc)}"
            _settle(batch, lambda: TransientFailure(message, kind=ERROR_KIND))
        except Exception as exc:
            # A bug here fails the runs waiting on it (the executor logs and retries them)
            # instead of leaving them to their timeout.
            crash = exc
            _settle(batch, lambda: crash)
        else:
            _settle(batch, None)

    async def close(self) -> None:
        """Wait for the rows being written (the executor has let its runs finish by now)."""
        if self._writer is not None:
            await asyncio.wait([self._writer])


def _settle(
    batch: list[tuple[Run, datetime, asyncio.Future[None]]],
    failure: Callable[[], Exception] | None,
) -> None:
    for _, _, written in batch:
        if written.done():  # its run was cancelled meanwhile
            continue
        if failure is None:
            written.set_result(None)
        else:
            written.set_exception(failure())


def create(resources: Resources) -> BenchStrategy:
    return BenchStrategy(resources.sessions)


JOB_TYPE = JobType("bench", BenchPayload, create)
