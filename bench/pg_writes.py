"""PostgreSQL's work per execution on the hot path, statement by statement, without a broker.

A scratch database gets `--jobs` jobs (100 owners, a label each), `--due` of them due now and the
others a day later. The due ones then go through the pipeline's three transactions in batches
of `--batch`, as the services run them: the scheduler's claim (T1,
`scheduler_service.repository.claim_due_jobs`), the executor's claim (T4,
`executor_service.repository.claim`) and the outcome batch (T5,
`executor_service.outcomes.OutcomeWriter.write`, every attempt succeeding; the jobs, every hour,
are SCHEDULED again). For each transaction: the median wall time, the PostgreSQL backend's CPU
time (its `/proc/<pid>/schedstat`, so PostgreSQL must run on this machine) and the WAL it wrote,
per execution; then each table's updates and how many were heap-only (HOT).

Run: python -m bench.pg_writes --url postgresql://postgres@127.0.0.1:5432/scratch_bench
(the database is dropped and created again).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import types
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import make_url

from executor_service import repository as executor_repository
from executor_service.decisions import SUCCEEDED
from executor_service.metrics import ExecutorMetrics
from executor_service.outcomes import Fetched, Outcome, OutcomeWriter
from libs.infra import db, log
from libs.scheduling import schedule
from libs.store import migrate
from scheduler_service import repository as scheduler_repository
from scheduler_service.dispatcher import dispatch_message

JOB_COLUMNS = """owner_id, name, type, payload, labels, schedule, schedule_kind, retry_policy,
                 misfire_policy, misfire_grace_s, timeout_s, status, next_run_at"""
OWNERS = 100


def _plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _recreate(url: str) -> None:
    parsed = make_url(_plain(url))
    admin = await asyncpg.connect(_plain(str(parsed.set(database="postgres"))))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{parsed.database}"')
    finally:
        await admin.close()


async def _seed(url: str, jobs: int, due: int) -> None:
    conn = await asyncpg.connect(_plain(url))
    try:
        now = await conn.fetchval("SELECT now()")
        # Anchored ten minutes ago: the next occurrence after a run is 50 minutes away.
        anchor = now - timedelta(minutes=10)
        spec = schedule.normalise(schedule.FixedRate(kind="fixed_rate", interval_s=3600), anchor)
        owners = [uuid.uuid4() for _ in range(OWNERS)]
        await conn.execute(
            f"""
            INSERT INTO jobs ({JOB_COLUMNS})
            SELECT ($1::uuid[])[1 + n % {OWNERS}], 'bench-' || n, 'log',
                   '{{"message": "bench"}}', jsonb_build_object('team', 't' || n % 10),
                   $2::jsonb, 'fixed_rate', '{{}}', 'run_once', 3600, 30, 'SCHEDULED',
                   CASE WHEN n < $3 THEN now() - interval '1 s' + n * interval '1 us'
                        ELSE now() + interval '1 day' + n * interval '1 ms' END
            FROM generate_series(0, $4 - 1) AS n
            """,  # noqa: S608 (constant column list)
            owners,
            spec.model_dump_json(),
            due,
            jobs,
        )
        await conn.execute("VACUUM ANALYZE jobs")
        await conn.execute("VACUUM ANALYZE executions")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


class Meter:
    """Wall time, backend CPU and WAL of each measured transaction, by name."""

    def __init__(self, observer: asyncpg.Connection, backend_pid: int):
        self._observer = observer
        self._schedstat = Path(f"/proc/{backend_pid}/schedstat")
        self.samples: dict[str, list[tuple[float, float, int, int]]] = {}

    def _cpu_ns(self) -> int:
        return int(self._schedstat.read_text().split()[0])

    async def _lsn(self) -> int:
        return await self._observer.fetchval("SELECT pg_current_wal_insert_lsn() - '0/0'")

    async def measure(self, name: str, rows: int, step: Callable[[], Awaitable[Any]]) -> Any:
        wal, cpu, wall = await self._lsn(), self._cpu_ns(), time.perf_counter()
        result = await step()
        wall = time.perf_counter() - wall
        cpu = self._cpu_ns() - cpu
        wal = await self._lsn() - wal
        self.samples.setdefault(name, []).append((wall, cpu / 1e9, wal, rows))
        return result


async def _pipeline(url: str, batch: int, meter: Meter, sessions: Any) -> int:
    writer = OutcomeWriter(
        settings=types.SimpleNamespace(kafka_dead_letter_topic="unused", node_id="bench"),  # type: ignore[arg-type]
        sessions=sessions,
        producer=None,  # type: ignore[arg-type]  (every attempt succeeds: no dead letter)
        metrics=ExecutorMetrics(CollectorRegistry()),
        recorded=lambda _batch: None,
        draw=lambda: 0.5,
    )
    executions = 0
    while True:

        async def t1() -> scheduler_repository.Claim:
            async with db.transaction(sessions) as session:
                return await scheduler_repository.claim_due_jobs(
                    session, batch=batch, lease_s=30.0, node_id="bench-scheduler"
                )

        claim = await meter.measure("T1 scheduler claim", batch, t1)
        if not claim.claimed:
            return executions
        dispatches = [dispatch_message(c) for c in claim.claimed]
        wanted = [
            executor_repository.Dispatch(d.execution_id, d.job_id, d.lease_version)
            for d in dispatches
        ]

        async def t4(wanted: list = wanted) -> executor_repository.Claim:
            async with db.transaction(sessions) as session:
                return await executor_repository.claim(
                    session, wanted, worker="bench-executor", margin_s=30.0
                )

        started = await meter.measure("T4 executor claim", len(wanted), t4)
        assert len(started.started) == len(wanted), "every dispatch starts"
        outcomes = [
            Outcome(Fetched(None, n, None), d, SUCCEEDED, 0.001)  # type: ignore[arg-type]
            for n, d in enumerate(dispatches)
        ]
        await meter.measure("T5 outcomes", len(outcomes), lambda o=outcomes: writer.write(o))
        executions += len(dispatches)


async def _table_stats(conn: asyncpg.Connection) -> dict[str, dict[str, int]]:
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    rows = await conn.fetch(
        """
        SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del,
               pg_relation_size(relid) AS heap_bytes,
               pg_indexes_size(relid) AS index_bytes
        FROM pg_stat_user_tables WHERE relname IN ('jobs', 'executions') ORDER BY relname
        """
    )
    return {row["relname"]: dict(row) for row in rows}


async def run(url: str, *, jobs: int, due: int, batch: int, sql: str = "") -> dict[str, Any]:
    await _recreate(url)
    await asyncio.to_thread(migrate.upgrade, _plain(url))
    if sql:  # a variant of the schema to compare
        conn = await asyncpg.connect(_plain(url))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()
    await _seed(url, jobs, due)
    engine = db.create_engine(_plain(url), pool_size=1, max_overflow=0)
    observer = await asyncpg.connect(_plain(url))
    try:
        sessions = db.session_factory(engine)
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            backend_pid = await raw.driver_connection.fetchval("SELECT pg_backend_pid()")
        meter = Meter(observer, backend_pid)
        before = await _table_stats(observer)  # the seed's connection reported at its close
        executions = await _pipeline(url, batch, meter, sessions)
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            await raw.driver_connection.execute("SELECT pg_stat_force_next_flush()")
        await asyncio.sleep(0.2)
        tables = {
            table: {
                key: value - before[table][key] if key.startswith("n_") else value
                for key, value in stats.items()
                if key != "relname"
            }
            for table, stats in (await _table_stats(observer)).items()
        }
    finally:
        await observer.close()
        await engine.dispose()
    phases = {}
    for name, samples in meter.samples.items():
        full = [s for s in samples if s[3] == batch]  # full batches only
        phases[name] = {
            "batches": len(full),
            "median_ms": statistics.median(s[0] for s in full) * 1000,
            "max_ms": max(s[0] for s in full) * 1000,
            "cpu_us_per_execution": sum(s[1] for s in full) / sum(s[3] for s in full) * 1e6,
            "median_cpu_ms": statistics.median(s[1] for s in full) * 1000,
            "wal_bytes_per_execution": sum(s[2] for s in full) / sum(s[3] for s in full),
        }
    return {"executions": executions, "phases": phases, "tables": tables}


def _report(results: list[dict[str, Any]]) -> None:
    names = list(results[0]["phases"])
    print(f"{'transaction':<22}{'median ms':>11}{'max ms':>9}{'CPU us/exec':>13}{'WAL B/exec':>12}")
    for name in names:
        runs = [r["phases"][name] for r in results]
        print(
            f"{name:<22}"
            f"{statistics.median(p['median_ms'] for p in runs):>11.2f}"
            f"{max(p['max_ms'] for p in runs):>9.1f}"
            f"{statistics.median(p['cpu_us_per_execution'] for p in runs):>13.1f}"
            f"{statistics.median(p['wal_bytes_per_execution'] for p in runs):>12.0f}"
        )
    total_cpu = statistics.median(
        sum(p["cpu_us_per_execution"] for p in r["phases"].values()) for r in results
    )
    total_wal = statistics.median(
        sum(p["wal_bytes_per_execution"] for p in r["phases"].values()) for r in results
    )
    print(f"{'total':<22}{'':>20}{total_cpu:>13.1f}{total_wal:>12.0f}")
    for table, stats in results[-1]["tables"].items():
        upd, hot = stats["n_tup_upd"], stats["n_tup_hot_upd"]
        print(
            f"{table}: {stats['n_tup_ins']:,} inserted, {upd:,} updated, {hot:,} HOT"
            f" ({hot / upd if upd else 0:.0%}), heap {stats['heap_bytes'] / 2**20:.1f} MiB,"
            f" indexes {stats['index_bytes'] / 2**20:.1f} MiB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sql", default="", help="run after the migrations, before the seed")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()
    log.configure(service="bench", node_id="bench", log_format="json", level="WARNING")
    results = []
    for _ in range(args.runs):
        results.append(
            asyncio.run(run(args.url, jobs=args.jobs, due=args.due, batch=args.batch, sql=args.sql))
        )
    _report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
