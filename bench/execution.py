"""End-to-end execution throughput, start lag and memory of the platform, as deployed.

Two `python -m scheduler_service` and two `python -m executor_service` processes run over an
embedded PostgreSQL (production settings: fsync and synchronous commit on) and the embedded
broker, with the `bench` job type plugged in through its entry point (bench/plugin; each run
inserts one row into `bench_runs`, with the time the executor started it). Jobs are inserted as
rows, in one statement with the job service's wake-up notification, while the platform idles.

1. Throughput: 20,000 `once` jobs due now; from the insert's commit (database clock, which is
   the host's) until the last of their runs started (`bench_runs` holds all 20,000 rows a few
   ms later), in executions per second end to end; then every job must be COMPLETED with
   exactly one SUCCEEDED execution and one run.
2. Start lag at a steady 500 jobs per second for 20 s (due every 2 ms from ~2 s ahead):
   `bench_runs.started_at - scheduled_for`, p50 / p90 / p99 / max.
3. Memory (RSS) of each of the four processes after both runs.

Each run also prints the CPU each process used during it (as a share of one core, the machine
having `os.cpu_count()` of them), and what the executors' and schedulers' /metrics counted, to
tell which part bounds the figures. Run (about a minute on two cores; logs and data are kept
in the temporary folder it prints when something went wrong):

    .venv/bin/python -m bench.execution [--quick] [--set NAME=VALUE ...] [--profile DIR]

`--set` passes a setting to every service (`--set OUTCOME_FLUSH_INTERVAL_S=0.02`); `--profile`
runs them under cProfile and writes one `DIR/<name>.prof` each.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import asyncpg
import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from bench.dispatch import JOB_COLUMNS
from bench.plugin import bench_job_type, make_dist
from libs.contracts import channels
from libs.scheduling import schedule
from libs.store import migrate
from schedctl import embedded

BURST_JOBS = 20_000
STEADY_RATE = 500  # jobs due per second
STEADY_S = 20
STEADY_OFFSET_S = 2.0  # the first steady job is due this long after the insert
WARM_UP_JOBS = 400  # run first, so imports, pools and prepared statements are warm
PARTITIONS = 12
SCHEDULERS = 2
EXECUTORS = 2
READY_DEADLINE_S = 60
WARM_UP_DEADLINE_S = 60
DRAIN_DEADLINE_S = 240  # the burst's, and the steady run's after its last due time
POLL_S = 0.1  # counting rows costs the database: not too often
STOP_DEADLINE_S = 30
TARGET_EXECUTIONS_PER_S = 10_000
TARGET_P99_LAG_MS = 50.0
# `python -m cProfile` writes nothing for a service: uvicorn ends the process by raising the
# signal it stopped on again. Here SIGTERM's handler exits normally, and the stats are written.
_PROFILED = """
import cProfile, runpy, signal, sys
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
profile = cProfile.Profile()
try:
    profile.runcall(runpy.run_module, sys.argv[2], run_name="__main__", alter_sys=True)
finally:
    profile.dump_stats(sys.argv[1])
"""
ENV_DROPPED = ("CONFIG_LOCATION", "SPRING_CONFIG_LOCATION")


@dataclass
class Service:
    """One service process of the platform under test."""

    name: str
    module: str
    node_id: str
    port: int
    popen: subprocess.Popen[bytes] | None = None
    process: psutil.Process | None = None  # for its CPU times and memory

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Bench:
    folder: Path
    postgres: embedded.EmbeddedPostgres
    broker: embedded.EmbeddedBroker
    database_url: str
    services: list[Service] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)  # of every service, once started

    @property
    def dsn(self) -> str:
        return (
            make_url(self.database_url)
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )

    def executors(self) -> list[Service]:
        return [s for s in self.services if s.module == "executor_service"]


# --- the platform ------------------------------------------------------------------------------


def start_platform(
    bench: Bench, *, settings: dict[str, str] | None = None, profile: Path | None = None
) -> None:
    """Both schedulers (which create the topics), then both executors; each ready (`/readyz`).
    `settings` are environment variables given to all four (`MAX_IN_FLIGHT`, ...), over the
    bench's own. With `profile`, each runs under cProfile and writes `<profile>/<name>.prof`
    when stopped (profiling slows them: their figures only compare their parts)."""
    plugin = bench.folder / "plugin"
    make_dist.write_dist_info(plugin)
    topic = f"bench-{uuid.uuid4().hex[:8]}.dispatch"
    common = {k: v for k, v in os.environ.items() if k not in ENV_DROPPED}
    common.update(
        PYTHONPATH=os.pathsep.join(
            p for p in (make_dist.python_path(plugin), os.environ.get("PYTHONPATH")) if p
        ),
        DATABASE_URL=bench.database_url,
        KAFKA_BOOTSTRAP_SERVERS=bench.broker.bootstrap_servers,
        KAFKA_DISPATCH_TOPIC=topic,
        KAFKA_DEAD_LETTER_TOPIC=f"{topic}.dead-letter",
        KAFKA_DISPATCH_PARTITIONS=str(PARTITIONS),
        CONSUMER_GROUP=f"{topic}.executors",
        LOG_LEVEL="WARNING",
        LOG_FORMAT="json",
        # As `make up` sets it for the embedded broker, which holds every fetch this long.
        KAFKA_FETCH_MAX_WAIT_MS="50",
    )
    common.update(settings or {})
    bench.environment = common
    for module, count in (("scheduler_service", SCHEDULERS), ("executor_service", EXECUTORS)):
        started = [
            start_service(bench, module, index + 1, profile=profile) for index in range(count)
        ]
        for service in started:
            wait_ready(service)


def start_service(
    bench: Bench, module: str, number: int, *, profile: Path | None = None
) -> Service:
    """One more process of `module` (`scheduler_service`, `executor_service`), named
    `<scheduler|executor>-<number>`, with the environment `start_platform` gave the others;
    not waited for (`wait_ready`)."""
    name = f"{module.split('_')[0]}-{number}"
    service = Service(name, module, f"bench-{name}", embedded.free_port())
    env = {**bench.environment, "HTTP_PORT": str(service.port), "NODE_ID": service.node_id}
    with (bench.folder / f"{name}.log").open("ab") as log:
        argv = [sys.executable, "-m", module]
        if profile is not None:
            argv = [sys.executable, "-c", _PROFILED, str(profile / f"{name}.prof"), module]
        service.popen = embedded.spawn(argv, log=log, env=env)
    service.process = psutil.Process(service.popen.pid)
    bench.services.append(service)
    return service


def wait_ready(service: Service) -> None:
    def ready() -> bool:
        try:
            return httpx.get(f"{service.base_url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    embedded.wait_until(ready, READY_DEADLINE_S, service.name, service.popen)


def stop_platform(bench: Bench) -> None:
    for service in reversed(bench.services):
        if service.popen is not None:
            embedded.stop_process(service.popen, signal.SIGTERM, STOP_DEADLINE_S)


# --- what the processes used ---------------------------------------------------------------


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _tree_cpu_s(root: psutil.Process) -> float:
    """CPU of a process, of its live children, and of its children already reaped."""
    times = root.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in root.children(recursive=True):
        try:
            total += _cpu_s(child)
        except psutil.NoSuchProcess:  # a backend that ended meanwhile
            continue
    return total


def cpu_seconds(bench: Bench) -> dict[str, float]:
    """CPU seconds used so far by each part, and by the whole machine (`machine`)."""
    used = {s.name: _cpu_s(s.process) for s in bench.services if s.process is not None}
    used["postgres"] = _tree_cpu_s(psutil.Process(bench.postgres.proc.pid))
    used["broker"] = _cpu_s(psutil.Process(bench.broker.proc.pid))
    used["bench"] = _cpu_s(psutil.Process())
    machine = psutil.cpu_times()
    used["machine"] = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
    return used


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(service: Service) -> Samples:
    text = httpx.get(f"{service.base_url}/metrics", timeout=5).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


@dataclass
class Window:
    """CPU and metrics at the start of a run, to report what the run itself used."""

    began: float
    cpu: dict[str, float]
    metrics: dict[str, Samples]

    @classmethod
    def open(cls, bench: Bench) -> Window:
        return cls(time.monotonic(), cpu_seconds(bench), _scrape_all(bench))

    def close(self, bench: Bench) -> tuple[float, dict[str, float], dict[str, Samples]]:
        wall = time.monotonic() - self.began
        cpu = cpu_seconds(bench)
        used = {name: cpu[name] - self.cpu[name] for name in cpu}
        after = _scrape_all(bench)
        delta = {
            name: {key: value - self.metrics[name].get(key, 0.0) for key, value in now.items()}
            for name, now in after.items()
        }
        return wall, used, delta


def _scrape_all(bench: Bench) -> dict[str, Samples]:
    return {s.name: scrape(s) for s in bench.services}


def print_usage(
    wall_s: float,
    used: dict[str, float],
    metrics: dict[str, Samples],
    executions: int,
    *,
    saturated: bool,
) -> None:
    """Each part's CPU as a share of one core and per execution, what the rest of the machine
    used meanwhile (other work on a shared machine skews every figure), and the metrics. When
    the platform ran flat out (`saturated`), the CPU it spent per execution says how many
    executions per second the machine's cores could give it at most."""
    cores = os.cpu_count() or 1
    ours = {name: seconds for name, seconds in used.items() if name != "machine"}
    others = max(0.0, used["machine"] - sum(ours.values()))
    shares = ", ".join(f"{name} {seconds / wall_s:.0%}" for name, seconds in ours.items())
    print(f"   CPU over {wall_s:.1f} s (share of one core): {shares}; other processes "
          f"{others / wall_s:.0%}; machine {used['machine'] / (wall_s * cores):.0%} of {cores} "
          "cores busy")  # fmt: skip
    groups: dict[str, float] = {}
    for name, seconds in ours.items():
        group = name.split("-")[0]
        groups[group] = groups.get(group, 0.0) + seconds
    platform_s = sum(v for k, v in groups.items() if k != "bench")
    per_run = ", ".join(f"{k} {v / executions * 1e6:.0f}" for k, v in groups.items())
    line = f"   CPU per execution (us): {per_run}; platform {platform_s / executions * 1e6:.0f}"
    if saturated:
        line += f": at most {cores * executions / platform_s:,.0f} executions/s on {cores} cores"
    print(line)
    for name, samples in metrics.items():
        if name.startswith("executor"):
            ran = total(samples, "executor_executions_total")
            claims = total(samples, "executor_start_lag_seconds_count")
            lag = total(samples, "executor_start_lag_seconds_sum") / max(1.0, claims)
            run = total(samples, "executor_run_duration_seconds_sum") / max(1.0, ran)
            errors = total(samples, "executor_loop_errors_total")
            print(
                f"   {name}: {ran:,.0f} attempts, claim lag mean {lag * 1000:.0f} ms, "
                f"run mean {run * 1000:.1f} ms, loop errors {errors:.0f}"
            )
        else:
            sent = total(samples, "scheduler_dispatched_total")
            batches = total(samples, "scheduler_batch_size_count")
            lag = total(samples, "scheduler_dispatch_lag_seconds_sum") / max(1.0, sent)
            publish = total(samples, "scheduler_publish_seconds_sum")
            print(
                f"   {name}: {sent:,.0f} dispatched in {batches:.0f} batches, dispatch lag mean "
                f"{lag * 1000:.0f} ms, {publish:.1f} s awaiting acks"
            )


# --- the database ------------------------------------------------------------------------------


async def insert_jobs(
    conn: asyncpg.Connection,
    prefix: str,
    count: int,
    *,
    offset_s: float,
    interval_s: float,
    retry_policy: str = "{}",
) -> datetime:
    """`count` bench jobs named `prefix-<n>`, the first due `offset_s` after now, the next ones
    every `interval_s`, with `retry_policy` (JSON; the defaults when empty) and the notification
    the job service sends; returns the database clock right after the commit."""
    async with conn.transaction():
        first = await conn.fetchval("SELECT now() + make_interval(secs => $1)", offset_s)
        spec = schedule.normalise(schedule.Once(kind="once", at=first), first)
        await conn.execute(
            f"""
            INSERT INTO jobs ({JOB_COLUMNS})
            SELECT gen_random_uuid(), $1 || '-' || n, 'bench', jsonb_build_object('tag', $1),
                   $2::jsonb, 'once', $6::jsonb, 'run_once', 3600, 30, 'SCHEDULED',
                   $3::timestamptz + n * make_interval(secs => $4)
            FROM generate_series(0, $5 - 1) AS n
            """,  # noqa: S608 (constant column list)
            prefix,
            spec.model_dump_json(),
            first,
            interval_s,
            count,
            retry_policy,
        )
        await conn.execute("SELECT pg_notify($1, $2)", channels.JOBS_DUE, first.isoformat())
        # Statistics as a production database has them (autovacuum has no time to run in a
        # benchmark this short): they know of the new jobs, and that few jobs are RUNNING.
        # Tables never analysed are planned otherwise, and fare better in the burst than a
        # production database would.
        await conn.execute("ANALYZE jobs")
    return await conn.fetchval("SELECT clock_timestamp()")


async def wait_for(
    conn: asyncpg.Connection, query: str, wanted: int, deadline_s: float, what: str
) -> None:
    """Poll `query` (a count) until it reaches `wanted`; fail naming `what` after `deadline_s`."""
    give_up = time.monotonic() + deadline_s
    while (found := await conn.fetchval(query)) < wanted:
        if time.monotonic() > give_up:
            raise RuntimeError(f"{what}: {found} of {wanted} after {deadline_s:.0f} s")
        await asyncio.sleep(POLL_S)


def _count_completed(prefix: str) -> str:
    return f"SELECT count(*) FROM jobs WHERE name LIKE '{prefix}-%' AND status = 'COMPLETED'"  # noqa: S608 (our own prefix)


async def warm_up(bench: Bench, conn: asyncpg.Connection) -> None:
    """Run warm-up jobs until both executors have run some (each owns partitions: the group
    has settled), then forget their rows."""
    wanted = {s.node_id for s in bench.executors()}
    give_up = time.monotonic() + WARM_UP_DEADLINE_S
    for round_ in range(1_000):
        prefix = f"warmup{round_}"
        await insert_jobs(conn, prefix, WARM_UP_JOBS, offset_s=0, interval_s=0)
        await wait_for(conn, _count_completed(prefix), WARM_UP_JOBS, WARM_UP_DEADLINE_S, prefix)
        workers = {r["worker"] for r in await conn.fetch("SELECT DISTINCT worker FROM executions")}
        if wanted <= workers:
            break
        if time.monotonic() > give_up:
            raise RuntimeError(f"executors that never ran a job: {sorted(wanted - workers)}")
        await asyncio.sleep(1)
    await conn.execute("TRUNCATE bench_runs")


_RUNS = "SELECT count(*) FROM bench_runs"
_OUTCOMES = """
SELECT count(DISTINCT j.id) AS jobs, count(e.id) AS executions,
       count(e.id) FILTER (WHERE e.status = 'SUCCEEDED') AS succeeded,
       count(DISTINCT j.id) FILTER (WHERE j.status = 'COMPLETED') AS completed,
       max(j.last_finished_at) AS last_finished,
       -- the statements that wrote them share now(): one value per transaction
       count(DISTINCT e.created_at) AS scheduler_claims,
       count(DISTINCT (e.worker, e.started_at)) AS executor_claims,
       count(DISTINCT (e.worker, e.finished_at)) AS outcome_batches
FROM jobs AS j LEFT JOIN executions AS e ON e.job_id = j.id
WHERE j.name LIKE $1 || '-%'
"""
_LAG_MS = """
SELECT count(*) AS runs, percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY lag_ms)
       AS quantiles, max(lag_ms) AS max
FROM (SELECT extract(epoch FROM started_at - scheduled_for) * 1000 AS lag_ms
      FROM bench_runs) AS runs
"""


@dataclass
class Results:
    executions_per_s: float = 0.0
    lag_ms: dict[str, float] = field(default_factory=dict)
    memory: dict[str, tuple[float, float]] = field(default_factory=dict)  # RSS, USS in MiB
    problems: list[str] = field(default_factory=list)


async def check_outcomes(conn: asyncpg.Connection, prefix: str, count: int, results: Results):
    """Every job COMPLETED, by exactly one SUCCEEDED execution and one bench run."""
    row = await conn.fetchrow(_OUTCOMES, prefix)
    runs = await conn.fetchval("SELECT count(DISTINCT job_id) FROM bench_runs")
    expected = {"jobs": count, "executions": count, "succeeded": count, "completed": count}
    for name, wanted in expected.items():
        if row[name] != wanted:
            results.problems.append(f"{prefix}: {row[name]} {name}, expected {wanted}")
    if runs != count:
        results.problems.append(f"{prefix}: bench runs of {runs} jobs, expected {count}")
    return row


async def burst(bench: Bench, conn: asyncpg.Connection, count: int, results: Results) -> None:
    window = Window.open(bench)
    committed = await insert_jobs(conn, "burst", count, offset_s=0, interval_s=0)
    await wait_for(conn, _RUNS, count, DRAIN_DEADLINE_S, "burst: bench runs")
    first_run, last_run = await conn.fetchrow(
        "SELECT min(started_at), max(started_at) FROM bench_runs"
    )
    await wait_for(conn, _count_completed("burst"), count, DRAIN_DEADLINE_S, "burst: completed")
    usage = window.close(bench)
    outcomes = await check_outcomes(conn, "burst", count, results)
    elapsed = (last_run - committed).total_seconds()
    recorded = (outcomes["last_finished"] - committed).total_seconds()
    first_ms = (first_run - committed).total_seconds() * 1000
    results.executions_per_s = count / elapsed
    print(
        f"1. burst of {count:,} jobs due at once: {results.executions_per_s:,.0f} executions/s "
        f"(last run {elapsed:.2f} s after the commit, first after {first_ms:.0f} ms; "
        f"all outcomes recorded after {recorded:.2f} s: {count / recorded:,.0f}/s)"
    )
    batches = ", ".join(
        f"{outcomes[name]:,} {name.replace('_', ' ')} ({count / max(1, outcomes[name]):.0f} each)"
        for name in ("scheduler_claims", "executor_claims", "outcome_batches")
    )
    print(f"   transactions: {batches}")
    print_usage(*usage, count, saturated=True)


async def steady(bench: Bench, conn: asyncpg.Connection, seconds: int, results: Results) -> None:
    count = STEADY_RATE * seconds
    await conn.execute("TRUNCATE bench_runs")
    # The burst's dead row versions cleaned up, as autovacuum would in a steady state (left
    # there, they make the claim's due scan read a whole second index on every claim).
    await conn.execute("VACUUM ANALYZE jobs, executions")
    window = Window.open(bench)
    await insert_jobs(conn, "steady", count, offset_s=STEADY_OFFSET_S, interval_s=1 / STEADY_RATE)
    deadline_s = STEADY_OFFSET_S + seconds + DRAIN_DEADLINE_S
    await wait_for(conn, _RUNS, count, deadline_s, "steady: bench runs")
    await wait_for(conn, _count_completed("steady"), count, DRAIN_DEADLINE_S, "steady: completed")
    usage = window.close(bench)
    await check_outcomes(conn, "steady", count, results)
    row = await conn.fetchrow(_LAG_MS)
    p50, p90, p99 = row["quantiles"]
    results.lag_ms = {"p50": p50, "p90": p90, "p99": p99, "max": row["max"]}
    figures = ", ".join(f"{name} {value:.1f}" for name, value in results.lag_ms.items())
    print(f"2. steady {STEADY_RATE} jobs/s for {seconds} s: start lag (ms) {figures}")
    print_usage(*usage, count, saturated=False)


def measure_memory(bench: Bench, results: Results) -> None:
    for service in bench.services:
        info = service.process.memory_full_info()
        results.memory[service.name] = (info.rss / 2**20, info.uss / 2**20)
    figures = ", ".join(
        f"{name} {rss:.0f} MiB (USS {uss:.0f})" for name, (rss, uss) in results.memory.items()
    )
    print(f"3. memory (RSS) after the runs: {figures}")


def print_summary(results: Results) -> None:
    p99 = results.lag_ms.get("p99", float("nan"))
    rss = ", ".join(f"{n} {rss:.0f}" for n, (rss, _) in results.memory.items())
    rows = [
        ("figure", "target", "result"),
        (
            "executions/s end to end",
            f"{TARGET_EXECUTIONS_PER_S:,}",
            f"{results.executions_per_s:,.0f}",
        ),
        ("start lag p99 at 500 jobs/s", f"< {TARGET_P99_LAG_MS:.0f} ms", f"{p99:.1f} ms"),
        ("RSS per process (MiB)", "-", rss),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    print()
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    for problem in results.problems:
        print(f"PROBLEM: {problem}")


async def run_all(bench: Bench, burst_jobs: int, steady_s: int) -> Results:
    results = Results()
    idle = await asyncio.to_thread(psutil.cpu_percent, 1.0)
    print(f"machine busy before the runs (platform idle): {idle:.0f}% of {os.cpu_count()} cores")
    conn = await asyncpg.connect(bench.dsn)
    try:
        await warm_up(bench, conn)
        await burst(bench, conn, burst_jobs, results)
        await steady(bench, conn, steady_s, results)
    finally:
        await conn.close()
    measure_memory(bench, results)
    return results


# --- main --------------------------------------------------------------------------------------


async def prepare_database(postgres: embedded.EmbeddedPostgres) -> str:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(postgres.url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = postgres.url_for(name)
    await asyncio.to_thread(migrate.upgrade, url)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(bench_job_type.CREATE_TABLE_SQL)
    finally:
        await conn.close()
    return url


def parse_setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name.upper(), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller figures, for a smoke run")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        type=parse_setting,
        metavar="NAME=VALUE",
        help="a setting of every service, as an environment variable (repeatable)",
    )
    parser.add_argument(
        "--profile", type=Path, help="run the services under cProfile, writing DIR/<name>.prof"
    )
    args = parser.parse_args()
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    burst_jobs, steady_s = (4_000, 4) if args.quick else (BURST_JOBS, STEADY_S)

    folder = Path(tempfile.mkdtemp(prefix="bench-execution-"))
    postgres = embedded.EmbeddedPostgres(
        folder / "pg", embedded.free_port(), log_path=folder / "pg.log"
    )
    broker = embedded.EmbeddedBroker(embedded.free_port(), log_path=folder / "broker.log")
    postgres.start()
    broker.start()
    bench: Bench | None = None
    results = Results(problems=["did not finish"])
    try:
        url = asyncio.run(prepare_database(postgres))
        bench = Bench(folder, postgres, broker, url)
        start_platform(bench, settings=dict(args.set), profile=args.profile)
        results = asyncio.run(run_all(bench, burst_jobs, steady_s))
        print_summary(results)
    finally:
        if bench is not None:
            stop_platform(bench)
        broker.stop()
        postgres.stop()
        if results.problems:
            print(f"logs kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    sys.exit(1 if results.problems else 0)


if __name__ == "__main__":
    main()
