"""The floor: the simplest correct design of the platform's job, the reference its figures are
read against.

Each worker process loops on one transaction over the `jobs` table: it locks up to
`BATCH_ROWS` due jobs in due order (`FOR UPDATE SKIP LOCKED`, so workers never wait on each
other's rows), runs each (a `bench` run is one `bench_runs` row, started at `clock_timestamp()`
as the plug-in's default has it) and marks them COMPLETED; when nothing is due it sleeps
`IDLE_SLEEP_S`. Nothing else: no broker, no leases, no execution history, no retries, no
wake-up (it polls, so an idle floor costs a query every few ms and a job due now waits up to a
poll; both are fine for a reference, which is only ever measured busy).

Whatever the platform adds to this (dispatch through the broker, leases that survive a dead
executor, one recorded execution per attempt, retries) costs throughput, CPU and start lag;
measured in the same run, over the same database server with the same durability settings and
the same jobs, the floor says how much of the machine's capacity that costs, where absolute
figures would depend on the machine and on what else runs on it.

`bench.execution` starts and measures it (`Floor`); a worker runs as

    python -m bench.floor <dsn>
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import psutil

from schedctl import embedded

WORKERS = 2  # as many as the platform's executors
BATCH_ROWS = 100  # due jobs one transaction takes at most
IDLE_SLEEP_S = 0.005
APPLICATION_NAME = "bench-floor"  # how the bench sees the workers connected
STOP_DEADLINE_S = 10

# One statement, so one transaction and one round trip: lock the due jobs, record their runs,
# complete them. `due` is materialised once (it is read twice), so both see the same rows.
_RUN_DUE = f"""
WITH due AS (
    SELECT id, next_run_at FROM jobs
    WHERE status = 'SCHEDULED' AND next_run_at <= now() AND deleted_at IS NULL
    ORDER BY next_run_at
    LIMIT {BATCH_ROWS}
    FOR UPDATE SKIP LOCKED
), runs AS (
    INSERT INTO bench_runs (execution_id, job_id, scheduled_for, attempt)
    SELECT gen_random_uuid(), id, next_run_at, 1 FROM due
), completed AS (
    UPDATE jobs AS j
    SET status = 'COMPLETED', next_run_at = NULL, run_count = j.run_count + 1,
        last_finished_at = now(), updated_at = now()
    FROM due WHERE j.id = due.id
    RETURNING j.id
)
SELECT count(*) FROM completed
"""  # noqa: S608 (a constant)


async def work(dsn: str) -> None:
    """Run due jobs until the process is stopped."""
    conn = await asyncpg.connect(dsn, server_settings={"application_name": APPLICATION_NAME})
    while True:
        if await conn.fetchval(_RUN_DUE) == 0:
            await asyncio.sleep(IDLE_SLEEP_S)


@dataclass
class Floor:
    """The floor's worker processes over the database at `dsn`, logging into `folder`."""

    dsn: str
    folder: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> None:
        """Start the workers; `connected` tells when they are ready."""
        for number in range(1, WORKERS + 1):
            with (self.folder / f"floor-{number}.log").open("ab") as log:
                argv = [sys.executable, "-m", "bench.floor", self.dsn]
                self.workers.append(embedded.spawn(argv, log=log))

    async def connected(self, conn: asyncpg.Connection) -> int:
        """How many workers are connected to the database (through `conn`, any connection to
        it); fails if one has exited."""
        for worker in self.workers:
            if worker.poll() is not None:
                raise RuntimeError(f"a floor worker exited with code {worker.returncode}")
        return await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = $1 AND datname = current_database()",
            APPLICATION_NAME,
        )

    def processes(self) -> dict[str, psutil.Process]:
        return {
            f"floor-{number}": psutil.Process(worker.pid)
            for number, worker in enumerate(self.workers, start=1)
        }

    def stop(self) -> None:
        # A worker stopped mid-transaction leaves nothing behind: the server rolls it back.
        for worker in self.workers:
            embedded.stop_process(worker, signal.SIGTERM, STOP_DEADLINE_S)


if __name__ == "__main__":
    asyncio.run(work(sys.argv[1]))
