"""Dispatch throughput and lag of the scheduler, on an embedded PostgreSQL and broker.

1. Throughput: 20,000 jobs due at once, drained by one and by two dispatchers (each in its own
   process, as in production), in dispatches acknowledged by the broker per second.
2. Lag at a steady 500 due jobs per second for ~20 s (two dispatchers): broker acknowledgement
   minus scheduled time, p50 / p99 / max, as the `scheduler_dispatch_lag_seconds` metric sees it.
3. The same with 1,000,000 future jobs stored, and the plan of the claim's due scan on that table.

PostgreSQL runs with its production defaults (fsync and synchronous commit on), not the test
suite's unsafe settings. Run: .venv/bin/python -m bench.dispatch [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from libs.infra import log, resources, web
from libs.scheduling import schedule
from libs.store import migrate
from schedctl import embedded
from scheduler_service import app as scheduler_app
from scheduler_service.settings import Settings

BURST_JOBS = 20_000
STEADY_RATE = 500  # due jobs per second
STEADY_S = 20
FUTURE_JOBS = 1_000_000
WORKER_READY_DEADLINE_S = 60
SETTLE_S = 3.0  # the steady stream starts this long after the dispatchers


class LagRecorder:
    """Stands in for the lag histogram in the bench: keeps every observation."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def observe(self, value: float) -> None:
        self.values.append(value)


def _settings(database_url: str, bootstrap: str, topic: str, worker: int) -> Settings:
    return Settings(
        database_url=database_url,
        kafka_bootstrap_servers=bootstrap,
        kafka_dispatch_topic=topic,
        kafka_dead_letter_topic=f"{topic}.dead-letter",
        node_id=f"bench-{worker}",
        log_level="WARNING",
        dispatch_max_sleep_s=1.0,
        # Claimed when due, not ahead: the lag measured is the claim and the publication's
        # (bench/execution measures the platform as deployed, lookahead included).
        dispatch_lookahead_s=0.0,
    )


async def _dispatch_until_stopped(settings: Settings, ready: Any, start: Any, stop: Any) -> dict:
    app = FastAPI()
    app.state.metrics = web.Metrics(settings)
    async with resources.all_of(
        app,
        partial(resources.database, settings=settings),
        partial(resources.kafka_producer, settings=settings),
    ):
        scheduler = scheduler_app.build_scheduler(app, settings)
        metrics = scheduler.dispatcher._metrics
        metrics.dispatch_lag = LagRecorder()
        ready.put(settings.node_id)  # engine, producer and topics are up
        await asyncio.to_thread(start.wait)
        began = time.time()
        running = asyncio.create_task(scheduler.dispatcher.run())
        await asyncio.to_thread(stop.wait)
        scheduler.dispatcher.stop()
        await running
        publish = metrics.publish_latency.collect()[0].samples
        batches = metrics.batch_size.collect()[0].samples
        return {
            "began": began,
            "lags": metrics.dispatch_lag.values,
            "published": metrics.dispatched._value.get(),
            "publish_s": next(s.value for s in publish if s.name.endswith("_sum")),
            "batches": next(s.value for s in batches if s.name.endswith("_count")),
        }


def _worker(settings: Settings, ready: Any, start: Any, stop: Any, results: Any) -> None:
    log.configure(service="bench", node_id=settings.node_id, log_format="console", level="WARNING")
    results.put(asyncio.run(_dispatch_until_stopped(settings, ready, start, stop)))


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


JOB_COLUMNS = """owner_id, name, type, payload, schedule, schedule_kind, retry_policy,
                 misfire_policy, misfire_grace_s, timeout_s, status, next_run_at"""


async def _insert_due(
    conn: asyncpg.Connection, *, count: int, offset_s: float, rate: float
) -> float:
    """`count` jobs, the first due `offset_s` from now, then `rate` per second (0: all at once).
    Returns the first one's scheduled time (epoch seconds)."""
    spec = schedule.normalise(schedule.FixedRate(kind="fixed_rate", interval_s=3600), _now())
    await conn.execute(
        f"""
        INSERT INTO jobs ({JOB_COLUMNS})
        SELECT gen_random_uuid(), 'bench-' || n, 'log', '{{"message": "bench"}}', $1::jsonb,
               'fixed_rate', '{{}}', 'run_once', 3600, 30, 'SCHEDULED',
               now() + make_interval(
                   secs => $2::float8 + CASE WHEN $3::float8 > 0 THEN n / $3::float8 ELSE 0 END
               )
        FROM generate_series(0, $4 - 1) AS n
        """,  # noqa: S608 (constant column list)
        spec.model_dump_json(),
        offset_s,
        float(rate),
        count,
    )
    await conn.execute("ANALYZE jobs")  # as autovacuum would soon: plans as in production
    first = await conn.fetchval("SELECT min(next_run_at) FROM jobs WHERE name LIKE 'bench-%'")
    return first.timestamp()


def _now() -> datetime:
    return datetime.now(UTC)


async def _seed_future(conn: asyncpg.Connection, count: int) -> None:
    spec = schedule.normalise(schedule.FixedRate(kind="fixed_rate", interval_s=86_400), _now())
    await conn.execute(
        f"""
        INSERT INTO jobs ({JOB_COLUMNS})
        SELECT gen_random_uuid(), 'future-' || n, 'log', '{{"message": "later"}}', $1::jsonb,
               'fixed_rate', '{{}}', 'run_once', 3600, 30, 'SCHEDULED',
               now() + interval '1 day' + n * interval '50 ms'
        FROM generate_series(1, $2) AS n
        """,  # noqa: S608 (constant column list)
        spec.model_dump_json(),
        count,
    )
    await conn.execute("VACUUM ANALYZE jobs")
    # The bulk load's WAL is flushed now, not during the measurement (a steady state, not the
    # minutes after loading a million rows).
    await conn.execute("CHECKPOINT")


async def _count_dispatched(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT count(*) FROM executions")


def _run(database_url: str, bootstrap: str, dispatchers: int, until: int, conn_url: str) -> list:
    """Start `dispatchers` processes, let them go, wait for `until` executions, stop them."""
    ctx = mp.get_context("spawn")
    ready, start, stop, results = ctx.Queue(), ctx.Event(), ctx.Event(), ctx.Queue()
    topic = f"bench-{uuid.uuid4().hex[:8]}.dispatch"
    procs = [
        ctx.Process(
            target=_worker,
            args=(_settings(database_url, bootstrap, topic, i), ready, start, stop, results),
        )
        for i in range(dispatchers)
    ]
    for proc in procs:
        proc.start()
    # The clock starts when every dispatcher says its engine, producer and topics are up.
    for _ in procs:
        ready.get(timeout=WORKER_READY_DEADLINE_S)
    start.set()

    async def wait_all() -> None:
        conn = await asyncpg.connect(conn_url)
        try:
            while await _count_dispatched(conn) < until:  # noqa: ASYNC110 (a row count)
                await asyncio.sleep(0.01)
        finally:
            await conn.close()

    asyncio.run(wait_all())
    stop.set()
    outcome = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(30)
    return outcome


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _report_lag(title: str, outcome: list) -> None:
    lags = [v for o in outcome for v in o["lags"]]
    print(
        f"{title}: {len(lags)} dispatches, lag p50 {_percentile(lags, 0.5) * 1000:.1f} ms, "
        f"p99 {_percentile(lags, 0.99) * 1000:.1f} ms, max {max(lags) * 1000:.1f} ms, "
        f"mean batch {statistics.fmean(o['published'] / max(1, o['batches']) for o in outcome):.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller figures, for a smoke run")
    args = parser.parse_args()
    burst, steady_s, future = (BURST_JOBS, STEADY_S, FUTURE_JOBS)
    if args.quick:
        burst, steady_s, future = 4_000, 4, 50_000

    folder = Path(tempfile.mkdtemp(prefix="bench-dispatch-"))
    postgres = embedded.EmbeddedPostgres(
        folder / "pg", embedded.free_port(), log_path=folder / "pg.log"
    )
    broker = embedded.EmbeddedBroker(embedded.free_port(), log_path=folder / "broker.log")
    postgres.start()
    broker.start()
    try:
        for dispatchers in (1, 2):
            url = _fresh_database(postgres)
            due_at = asyncio.run(
                _with_conn(url, lambda c: _insert_due(c, count=burst, offset_s=-1, rate=0))
            )
            outcome = _run(url, broker.bootstrap_servers, dispatchers, burst, _dsn(url))
            began = min(o["began"] for o in outcome)
            # Every job was scheduled at `due_at`, so the last acknowledgement came at `due_at`
            # plus the largest lag: the drain took from the start until then.
            last_ack = due_at + max(max(o["lags"]) for o in outcome)
            elapsed = last_ack - began
            published = sum(o["published"] for o in outcome)
            publish_share = sum(o["publish_s"] for o in outcome) / (elapsed * dispatchers)
            print(
                f"burst of {burst} due jobs, {dispatchers} dispatcher(s): "
                f"{published / elapsed:,.0f} dispatches/s ({elapsed:.2f} s; "
                f"{publish_share:.0%} of the time awaiting acks)"
            )
        for stored in (0, future):
            url = _fresh_database(postgres)
            if stored:
                asyncio.run(_with_conn(url, partial(_seed_future, count=stored)))
                asyncio.run(_with_conn(url, _print_plan))
            count = STEADY_RATE * steady_s
            asyncio.run(
                _with_conn(
                    url,
                    partial(_insert_due, count=count, offset_s=SETTLE_S + 3, rate=STEADY_RATE),
                )
            )
            outcome = _run(url, broker.bootstrap_servers, 2, count, _dsn(url))
            _report_lag(
                f"steady {STEADY_RATE}/s for {steady_s} s, {stored:,} future jobs stored", outcome
            )
    finally:
        broker.stop()
        postgres.stop()


def _fresh_database(postgres: embedded.EmbeddedPostgres) -> str:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_with_conn(postgres.url, lambda c: c.execute(f'CREATE DATABASE "{name}"')))
    url = postgres.url_for(name)
    migrate.upgrade(url)
    return url


async def _with_conn(url: str, action) -> Any:
    conn = await asyncpg.connect(_dsn(url))
    try:
        return await action(conn)
    finally:
        await conn.close()


async def _print_plan(conn: asyncpg.Connection) -> None:
    plan = await conn.fetch(
        """EXPLAIN SELECT id FROM jobs
           WHERE status = 'SCHEDULED' AND next_run_at <= now() AND deleted_at IS NULL
           ORDER BY next_run_at LIMIT 500 FOR UPDATE SKIP LOCKED"""
    )
    print("plan of the claim's due scan over the stored jobs:")
    for row in plan:
        print("   ", row[0])


if __name__ == "__main__":
    main()
