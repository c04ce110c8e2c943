"""A job type from a plug-in runs end to end: the `bench` type, found through its entry point
(a dist-info folder on `sys.path`, as an installed distribution would be), is dispatched by a
real scheduler and run by a real executor, which built its strategy at start like a built-in
one's."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from executor_support import platform
from scheduler_support import db_now, eventually, executions, insert_jobs, job, job_row, once

from libs.scheduling import job_types
from libs.scheduling.states import ExecutionStatus, JobStatus

# The bench's plug-in folder: on sys.path, as on the PYTHONPATH of the benchmark's processes.
PLUGIN_DIR = Path(__file__).resolve().parents[2] / "bench" / "plugin"


@pytest.fixture
def bench_plugin(tmp_path: Path) -> Iterator[ModuleType]:
    """The `bench` type installed for this test only (the executor reads the job types when it
    starts, and builds their strategies); its module, as the entry point loaded it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(PLUGIN_DIR))
        importlib.import_module("make_dist").write_dist_info(tmp_path)
        patch.syspath_prepend(str(tmp_path))
        assert "bench" in job_types.load()
        yield importlib.import_module("bench_job_type")


async def finished(p, job_id, *statuses: JobStatus):
    async def check():
        row = await job(p.sessions, job_id)
        return row if row.status in statuses else None

    return await eventually(check, what=f"job {job_id} in {statuses}")


async def test_a_bench_job_runs_through_its_plugin_strategy(
    bench_plugin, database_url, kafka_bootstrap_servers, unique_name
):
    async with platform(database_url, kafka_bootstrap_servers, unique_name) as p:
        await p.sql(bench_plugin.CREATE_TABLE_SQL)
        now = await db_now(p.sessions)
        [good, bad] = await insert_jobs(
            p.sessions,
            [
                job_row(
                    next_run_at=now, schedule_spec=once(now), type="bench", payload={"tag": "it"}
                ),
                # Stored past the job service: the executor validates it again, by the
                # plug-in's model, and gives up at once (no retry can fix a payload).
                job_row(
                    next_run_at=now, schedule_spec=once(now), type="bench", payload={"tga": "x"}
                ),
            ],
        )

        row = await finished(p, good, JobStatus.COMPLETED)
        [execution] = await executions(p.sessions, good)
        assert execution.status == ExecutionStatus.SUCCEEDED
        [run] = await p.sql("SELECT * FROM bench_runs WHERE job_id = :j", j=good)
        assert run.execution_id == execution.id
        assert run.scheduled_for == execution.scheduled_for == now
        assert run.attempt == 1
        assert execution.started_at <= run.started_at <= execution.finished_at
        assert row.run_count == 1

        await finished(p, bad, JobStatus.FAILED)
        [refused] = await executions(p.sessions, bad)
        assert refused.status == ExecutionStatus.FAILED
        assert refused.error_kind == "validation"
        assert "payload.tga" in refused.error
        assert await p.sql("SELECT 1 FROM bench_runs WHERE job_id = :j", j=bad) == []
