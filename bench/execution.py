"""End-to-end execution throughput, start lag, CPU and memory of the platform, as deployed,
against a floor measured in the same run.

Two `python -m scheduler_service` and two `python -m executor_service` processes run over an
embedded PostgreSQL (production settings: fsync and synchronous commit on) and the embedded
broker, with the `bench` job type plugged in through its entry point (bench/plugin; each run
inserts one row into `bench_runs`, with the time the executor started it). Jobs are inserted as
rows, in one statement with the job service's wake-up notification, while the platform idles.

First the floor (bench/floor.py: two processes running due jobs straight from the `jobs` table,
the simplest correct design) goes through runs 1 and 2, over the same PostgreSQL in a database
of its own, migrated like the platform's; then it is stopped and the platform goes through:

1. Throughput: 20,000 `once` jobs due now; from the insert's commit (database clock, which is
   the host's) until the last of their runs started (`bench_runs` holds all 20,000 rows a few
   ms later), in executions per second end to end; then every job must be COMPLETED with
   exactly one SUCCEEDED execution (the floor records none) and one run.
2. Start lag at a steady 500 jobs per second for 20 s (due every 2 ms from ~2 s ahead):
   `bench_runs.started_at - scheduled_for`, p50 / p90 / p99 / max, and the CPU of the processes
   under test (the platform's or the floor's, and PostgreSQL's) from the first due time on.
3. Idle: the CPU of the platform's processes over 10 s with nothing due; then 20 jobs created
   due now, 0.5 s apart, each from its insert's commit until its run started.
4. Run 2 again with 1,000,000 jobs due in a month stored beside (`--no-million` skips it).
5. Memory (RSS) of each of the four processes after the runs.

Each run also prints the CPU each process used during it (as a share of one core, the machine
having `os.cpu_count()` of them), and what the executors' and schedulers' /metrics counted, to
tell which part bounds the figures. The summary puts each figure beside its target, the
floor's and their ratio. Wrong counts make the exit status 1; missed targets do not. Run (about
four minutes on two cores; logs and data are kept in the temporary folder it prints when
something went wrong):

    .venv/bin/python -m bench.execution [--quick] [--no-million] [--set NAME=VALUE ...]
                                        [--profile DIR]

`--quick` runs smaller figures (and 100,000 stored jobs); `--set` passes a setting to every
service of the platform (`--set OUTCOME_FLUSH_INTERVAL_S=0.02`); `--profile` runs them under
cProfile and writes one `DIR/<name>.prof` each.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from bench import floor as floor_design
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
# The idle platform's CPU is measured over this long: a process's CPU time is counted in 10 ms
# ticks, so a short window reads each process's few ticks with an error of one.
IDLE_S = 30
IDLE_JOBS = 20  # then this many jobs are created due now, one at a time,
IDLE_JOB_SPACING_S = 0.5  # this far apart
IDLE_RUN_DEADLINE_S = 10  # for each of them to start
IDLE_POLL_S = 0.01  # the start time comes from the database: polling only has to end the wait
FUTURE_JOBS = 1_000_000  # stored beside the second steady run
FUTURE_JOBS_QUICK = 100_000
FUTURE_DUE_IN = timedelta(days=30)  # the first of them is due this far ahead,
FUTURE_SPREAD = timedelta(days=1)  # the others over this long
FUTURE_CHUNK_ROWS = 100_000  # rows one transaction inserts
WARM_UP_JOBS = 400  # run first, so imports, pools and prepared statements are warm
PARTITIONS = 12
SCHEDULERS = 2
EXECUTORS = 2
READY_DEADLINE_S = 60
WARM_UP_DEADLINE_S = 60
DRAIN_DEADLINE_S = 240  # the burst's, and the steady run's after its last due time
POLL_S = 0.1  # counting rows costs the database: not too often
STOP_DEADLINE_S = 30

# Targets. Throughput is relative to the floor's in the same run (absolute figures depend on
# the machine and on what else runs on it); latency and CPU are absolute.
TARGET_BURST_OF_FLOOR = 0.35  # burst executions/s, as a share of the floor's
TARGET_P50_LAG_MS = 10.0  # steady 500/s, with or without the stored future jobs
TARGET_P99_LAG_MS = 25.0
TARGET_STEADY_CORES = 0.6  # schedulers, executors, PostgreSQL and broker together, at 500/s
TARGET_IDLE_CORES = 0.02  # the same with nothing due (less than)
TARGET_IDLE_START_MS = 20.0  # a job created due now starts within this (the slowest of 20)
TARGET_RSS_MIB = 150.0  # each service process, after the runs

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
        return dsn_of(self.database_url)

    def executors(self) -> list[Service]:
        return [s for s in self.services if s.module == "executor_service"]

    def subject(self) -> Subject:
        processes = {s.name: s.process for s in self.services if s.process is not None}
        processes["postgres"] = psutil.Process(self.postgres.proc.pid)
        processes["broker"] = psutil.Process(self.broker.proc.pid)
        return Subject("ours", processes, self.services, executions=True)


@dataclass
class Subject:
    """What the runs measure: the platform or the floor. `processes` are the ones whose CPU is
    its own, PostgreSQL's included (it works for the design, whichever it is); `services` the
    ones whose /metrics a run reports; `executions`, whether it records an execution per run
    (the floor records none)."""

    name: str
    processes: dict[str, psutil.Process]
    services: list[Service] = field(default_factory=list)
    executions: bool = False


def dsn_of(database_url: str) -> str:
    """asyncpg's form of a SQLAlchemy database URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


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


def cpu_seconds(processes: dict[str, psutil.Process]) -> dict[str, float]:
    """CPU seconds used so far by each of `processes` (with their children: PostgreSQL's
    backends), by the bench itself (`bench`) and by the whole machine (`machine`)."""
    used = {name: _tree_cpu_s(process) for name, process in processes.items()}
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


def _scrape_all(services: list[Service]) -> dict[str, Samples]:
    return {s.name: scrape(s) for s in services}


@dataclass
class Usage:
    """What a subject's processes used over `wall_s`: CPU seconds per process (and `bench`,
    `machine`), and what its services' metrics counted."""

    subject: Subject
    wall_s: float
    cpu_s: dict[str, float]
    metrics: dict[str, Samples]

    @property
    def subject_cpu_s(self) -> float:
        return sum(self.cpu_s[name] for name in self.subject.processes)

    @property
    def cores(self) -> float:
        """The subject's CPU as a share of one core."""
        return self.subject_cpu_s / self.wall_s


@dataclass
class Window:
    """CPU and metrics at the start of a run, to report what the run itself used. Metrics are
    scraped outside the CPU's window: a scrape costs the services CPU."""

    subject: Subject
    began: float
    cpu: dict[str, float]
    metrics: dict[str, Samples]

    @classmethod
    def open(cls, subject: Subject) -> Window:
        metrics = _scrape_all(subject.services)
        return cls(subject, time.monotonic(), cpu_seconds(subject.processes), metrics)

    def close(self) -> Usage:
        cpu = cpu_seconds(self.subject.processes)
        wall = time.monotonic() - self.began
        used = {name: cpu[name] - self.cpu[name] for name in cpu}
        after = _scrape_all(self.subject.services)
        delta = {
            name: {key: value - self.metrics[name].get(key, 0.0) for key, value in now.items()}
            for name, now in after.items()
        }
        return Usage(self.subject, wall, used, delta)


def print_usage(usage: Usage, executions: int, *, saturated: bool) -> None:
    """Each part's CPU as a share of one core and per execution, what the rest of the machine
    used meanwhile (other work on a shared machine skews every figure), and the metrics. When
    the subject ran flat out (`saturated`), the CPU it spent per execution says how many
    executions per second the machine's cores could give it at most."""
    cores = os.cpu_count() or 1
    wall_s, used = usage.wall_s, usage.cpu_s
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
    per_run = ", ".join(f"{k} {v / executions * 1e6:.0f}" for k, v in groups.items())
    subject_s = usage.subject_cpu_s
    line = (
        f"   CPU per execution (us): {per_run}; {usage.subject.name} "
        f"{subject_s / executions * 1e6:.0f}"
    )
    if saturated:
        line += f": at most {cores * executions / subject_s:,.0f} executions/s on {cores} cores"
    print(line)
    for name, samples in usage.metrics.items():
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


def owner_of(prefix: str) -> uuid.UUID:
    """The owner of the jobs named `prefix-<n>`: one per batch, so that the queries of the
    results find a batch's jobs through the owner's index, however many other jobs are
    stored."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"bench:{prefix}")


_INSERT_JOBS = f"""
INSERT INTO jobs ({JOB_COLUMNS})
SELECT $7::uuid, $1 || '-' || n, 'bench', jsonb_build_object('tag', $1),
       $2::jsonb, 'once', $6::jsonb, 'run_once', 3600, 30, 'SCHEDULED',
       $3::timestamptz + n * make_interval(secs => $4)
FROM generate_series(0, $5 - 1) AS n
"""  # noqa: S608 (constant column list)


async def _insert_rows(
    conn: asyncpg.Connection,
    prefix: str,
    count: int,
    *,
    first: datetime,
    interval_s: float,
    retry_policy: str = "{}",
) -> None:
    spec = schedule.normalise(schedule.Once(kind="once", at=first), first)
    await conn.execute(
        _INSERT_JOBS,
        prefix,
        spec.model_dump_json(),
        first,
        interval_s,
        count,
        retry_policy,
        owner_of(prefix),
    )


async def insert_jobs(
    conn: asyncpg.Connection,
    prefix: str,
    count: int,
    *,
    offset_s: float,
    interval_s: float,
    retry_policy: str = "{}",
) -> datetime:
    """`count` bench jobs named `prefix-<n>` (owned by `owner_of(prefix)`), the first due
    `offset_s` after now, the next ones every `interval_s`, with `retry_policy` (JSON; the
    defaults when empty) and the notification the job service sends; returns the database
    clock right after the commit."""
    async with conn.transaction():
        first = await conn.fetchval("SELECT now() + make_interval(secs => $1)", offset_s)
        await _insert_rows(
            conn, prefix, count, first=first, interval_s=interval_s, retry_policy=retry_policy
        )
        await conn.execute("SELECT pg_notify($1, $2)", channels.JOBS_DUE, first.isoformat())
        # Statistics as a production database has them (autovacuum has no time to run in a
        # benchmark this short): they know of the new jobs, and that few jobs are RUNNING.
        # Tables never analysed are planned otherwise, and fare better in the burst than a
        # production database would.
        await conn.execute("ANALYZE jobs")
    return await conn.fetchval("SELECT clock_timestamp()")


async def store_future_jobs(conn: asyncpg.Connection, count: int) -> None:
    """`count` bench jobs due from `FUTURE_DUE_IN` ahead, spread over `FUTURE_SPREAD`, in
    transactions of `FUTURE_CHUNK_ROWS` (no notification: none is due soon); then vacuumed,
    analysed and checkpointed, as a database that has held them for a while would be."""
    interval_s = FUTURE_SPREAD.total_seconds() / count
    first = await conn.fetchval("SELECT now()") + FUTURE_DUE_IN
    for chunk, start in enumerate(range(0, count, FUTURE_CHUNK_ROWS)):
        async with conn.transaction():
            await _insert_rows(
                conn,
                f"future{chunk}",
                min(FUTURE_CHUNK_ROWS, count - start),
                first=first + timedelta(seconds=start * interval_s),
                interval_s=interval_s,
            )
    await conn.execute("VACUUM ANALYZE jobs")
    # The bulk load's WAL is flushed now, not during the measurement.
    await conn.execute("CHECKPOINT")


Count = Callable[[], Awaitable[int]]
Missing = Callable[[], Awaitable[set[str]]]  # the workers of a subject that have run no job yet


async def wait_for(count: Count, wanted: int, deadline_s: float, what: str) -> None:
    """Poll `count` until it reaches `wanted`; fail naming `what` after `deadline_s`."""
    give_up = time.monotonic() + deadline_s
    while (found := await count()) < wanted:
        if time.monotonic() > give_up:
            raise RuntimeError(f"{what}: {found} of {wanted} after {deadline_s:.0f} s")
        await asyncio.sleep(POLL_S)


def runs(conn: asyncpg.Connection) -> Count:
    return lambda: conn.fetchval("SELECT count(*) FROM bench_runs")


# `deleted_at IS NULL`, as the owner's index has it.
_COMPLETED = """
SELECT count(*) FROM jobs WHERE owner_id = $1 AND deleted_at IS NULL AND status = 'COMPLETED'
"""


def completed(conn: asyncpg.Connection, prefix: str) -> Count:
    """The count of `prefix`'s jobs that are COMPLETED."""
    return lambda: conn.fetchval(_COMPLETED, owner_of(prefix))


async def warm_up(conn: asyncpg.Connection, missing: Missing) -> None:
    """Run rounds of warm-up jobs until none of the subject's workers is `missing` (has not run
    any yet), then forget their rows."""
    give_up = time.monotonic() + WARM_UP_DEADLINE_S
    for round_ in range(1_000):
        prefix = f"warmup{round_}"
        await insert_jobs(conn, prefix, WARM_UP_JOBS, offset_s=0, interval_s=0)
        await wait_for(completed(conn, prefix), WARM_UP_JOBS, WARM_UP_DEADLINE_S, prefix)
        if not (absent := await missing()):
            break
        if time.monotonic() > give_up:
            raise RuntimeError(f"workers that never ran a job: {sorted(absent)}")
        await asyncio.sleep(1)
    await conn.execute("TRUNCATE bench_runs")


def executors_missing(bench: Bench, conn: asyncpg.Connection) -> Missing:
    """The executors that have run no job yet: until each has, the group has not settled (each
    owns partitions)."""

    async def missing() -> set[str]:
        workers = {r["worker"] for r in await conn.fetch("SELECT DISTINCT worker FROM executions")}
        return {s.node_id for s in bench.executors()} - workers

    return missing


async def none_missing() -> set[str]:
    """The floor's workers need no settling: each takes whatever is due."""
    return set()


_OUTCOMES = """
SELECT count(DISTINCT j.id) AS jobs, count(e.id) AS executions,
       count(e.id) FILTER (WHERE e.status = 'SUCCEEDED') AS succeeded,
       count(DISTINCT j.id) FILTER (WHERE j.status = 'COMPLETED') AS completed,
       max(j.last_finished_at) AS last_finished,
       -- the statements that wrote them share now(): one value per transaction (a start
       -- is its claim's now() when the job was due by then; a job's last_finished_at is its
       -- outcome batch's, where an execution's finished_at is when its attempt ended)
       count(DISTINCT e.created_at) AS scheduler_claims,
       count(DISTINCT (e.worker, e.started_at)) AS executor_claims,
       count(DISTINCT (e.worker, j.last_finished_at)) AS outcome_batches
FROM jobs AS j LEFT JOIN executions AS e ON e.job_id = j.id
WHERE j.owner_id = $1 AND j.deleted_at IS NULL
"""
_LAG_MS = """
SELECT count(*) AS runs, percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY lag_ms)
       AS quantiles, max(lag_ms) AS max
FROM (SELECT extract(epoch FROM started_at - scheduled_for) * 1000 AS lag_ms
      FROM bench_runs) AS runs
"""
_STARTED = """
SELECT r.started_at FROM bench_runs AS r JOIN jobs AS j ON j.id = r.job_id
WHERE j.owner_id = $1 AND j.deleted_at IS NULL
"""
# Where a job created due now spent its time: claimed by a scheduler (its execution row's
# `created_at`, the claim transaction's start), then by an executor (`started_at`, its claim
# transaction's start, the job being due), then run.
_STAGES = """
SELECT e.created_at AS dispatched, e.started_at AS claimed FROM executions AS e
JOIN jobs AS j ON j.id = e.job_id
WHERE j.owner_id = $1 AND j.deleted_at IS NULL
"""


@dataclass
class Steady:
    """The figures of a steady run."""

    lag_ms: dict[str, float]  # p50, p90, p99, max
    cores: float  # the subject's CPU, as a share of one core


@dataclass
class Results:
    executions_per_s: float | None = None
    steady: Steady | None = None
    steady_stored: Steady | None = None  # with the future jobs stored
    idle_cores: float | None = None
    idle_start_ms: list[float] = field(default_factory=list)
    memory: dict[str, tuple[float, float]] = field(default_factory=dict)  # RSS, USS in MiB
    problems: list[str] = field(default_factory=list)


async def check_outcomes(
    subject: Subject, conn: asyncpg.Connection, prefix: str, count: int, problems: list[str]
) -> asyncpg.Record:
    """Every job COMPLETED, by exactly one SUCCEEDED execution (if the subject records them) and
    one bench run."""
    row = await conn.fetchrow(_OUTCOMES, owner_of(prefix))
    started = await conn.fetchval("SELECT count(DISTINCT job_id) FROM bench_runs")
    expected = {"jobs": count, "completed": count}
    if subject.executions:
        expected |= {"executions": count, "succeeded": count}
    for name, wanted in expected.items():
        if row[name] != wanted:
            problems.append(f"{subject.name}, {prefix}: {row[name]} {name}, expected {wanted}")
    if started != count:
        problems.append(f"{subject.name}, {prefix}: bench runs of {started} jobs, expected {count}")
    return row


async def burst(
    subject: Subject, conn: asyncpg.Connection, count: int, problems: list[str]
) -> float:
    """Executions per second of `count` jobs due at once, from their insert's commit."""
    window = Window.open(subject)
    committed = await insert_jobs(conn, "burst", count, offset_s=0, interval_s=0)
    await wait_for(runs(conn), count, DRAIN_DEADLINE_S, "burst: bench runs")
    first_run, last_run = await conn.fetchrow(
        "SELECT min(started_at), max(started_at) FROM bench_runs"
    )
    await wait_for(completed(conn, "burst"), count, DRAIN_DEADLINE_S, "burst: completed")
    usage = window.close()
    outcomes = await check_outcomes(subject, conn, "burst", count, problems)
    elapsed = (last_run - committed).total_seconds()
    recorded = (outcomes["last_finished"] - committed).total_seconds()
    first_ms = (first_run - committed).total_seconds() * 1000
    executions_per_s = count / elapsed
    print(
        f"1. burst of {count:,} jobs due at once: {executions_per_s:,.0f} executions/s "
        f"(last run {elapsed:.2f} s after the commit, first after {first_ms:.0f} ms; "
        f"all outcomes recorded after {recorded:.2f} s: {count / recorded:,.0f}/s)"
    )
    if subject.executions:
        batches = ", ".join(
            f"{outcomes[name]:,} {name.replace('_', ' ')} "
            f"({count / max(1, outcomes[name]):.0f} each)"
            for name in ("scheduler_claims", "executor_claims", "outcome_batches")
        )
        print(f"   transactions: {batches}")
    print_usage(usage, count, saturated=True)
    return executions_per_s


async def steady(
    subject: Subject,
    conn: asyncpg.Connection,
    seconds: int,
    problems: list[str],
    *,
    prefix: str,
    title: str,
) -> Steady:
    """Start lag and CPU at `STEADY_RATE` jobs due per second for `seconds`."""
    count = STEADY_RATE * seconds
    await conn.execute("TRUNCATE bench_runs")
    # The burst's dead row versions cleaned up, as autovacuum would in a steady state (left
    # there, they make the claim's due scan read a whole second index on every claim).
    await conn.execute("VACUUM ANALYZE jobs, executions")
    inserting = time.monotonic()  # the database's now() in the insert comes a little later
    await insert_jobs(conn, prefix, count, offset_s=STEADY_OFFSET_S, interval_s=1 / STEADY_RATE)
    # The CPU from the first due time on: neither the insert (the bench's work) nor the wait.
    await asyncio.sleep(max(0.0, inserting + STEADY_OFFSET_S - time.monotonic()))
    window = Window.open(subject)
    # Not counting rows while jobs fall due: the counts would cost the database CPU it
    # reports as the subject's.
    await asyncio.sleep(max(0.0, window.began + seconds - time.monotonic()))
    await wait_for(runs(conn), count, DRAIN_DEADLINE_S, f"{prefix}: bench runs")
    await wait_for(completed(conn, prefix), count, DRAIN_DEADLINE_S, f"{prefix}: completed")
    usage = window.close()
    await check_outcomes(subject, conn, prefix, count, problems)
    row = await conn.fetchrow(_LAG_MS)
    p50, p90, p99 = row["quantiles"]
    figures = Steady({"p50": p50, "p90": p90, "p99": p99, "max": row["max"]}, usage.cores)
    lags = ", ".join(f"{name} {value:.1f}" for name, value in figures.lag_ms.items())
    print(f"{title}: start lag (ms) {lags}; {subject.name} {usage.cores:.2f} of one core")
    print_usage(usage, count, saturated=False)
    return figures


async def wait_for_start(conn: asyncpg.Connection, prefix: str, deadline_s: float) -> datetime:
    """When the run of `prefix`'s one job started, once it has."""
    give_up = time.monotonic() + deadline_s
    while (started := await conn.fetchval(_STARTED, owner_of(prefix))) is None:
        if time.monotonic() > give_up:
            raise RuntimeError(f"{prefix}: no run after {deadline_s:.0f} s")
        await asyncio.sleep(IDLE_POLL_S)
    return started


async def idle(subject: Subject, conn: asyncpg.Connection, results: Results) -> None:
    """The CPU of the subject with nothing due, then the start lag of jobs created due now."""
    await conn.execute("TRUNCATE bench_runs")
    # What the steady run left to do (vacuum, checkpoint) done first: it is that run's cost,
    # and the idle figure is about the platform's own.
    await conn.execute("VACUUM ANALYZE jobs, executions")
    await conn.execute("CHECKPOINT")
    window = Window.open(subject)
    await asyncio.sleep(IDLE_S)  # the measurement: nothing is due meanwhile
    usage = window.close()
    results.idle_cores = usage.cores
    shares = ", ".join(
        f"{name} {usage.cpu_s[name] / usage.wall_s:.2%}" for name in subject.processes
    )
    print(
        f"3. idle for {usage.wall_s:.1f} s: {subject.name} {usage.cores:.2%} of one core ({shares})"
    )
    stages: list[tuple[float, ...]] = []
    for number in range(IDLE_JOBS):
        began = time.monotonic()
        prefix = f"idle{number}"
        committed = await insert_jobs(conn, prefix, 1, offset_s=0, interval_s=0)
        started = await wait_for_start(conn, prefix, IDLE_RUN_DEADLINE_S)
        results.idle_start_ms.append((started - committed).total_seconds() * 1000)
        if subject.executions:
            row = await conn.fetchrow(_STAGES, owner_of(prefix))
            stages.append(
                tuple((t - committed).total_seconds() * 1000 for t in (*row.values(), started))
            )
        await asyncio.sleep(max(0.0, began + IDLE_JOB_SPACING_S - time.monotonic()))
    starts = results.idle_start_ms
    print(
        f"   {len(starts)} jobs created due now, {IDLE_JOB_SPACING_S} s apart, started after "
        f"(ms from the commit): median {statistics.median(starts):.1f}, max {max(starts):.1f} "
        f"({', '.join(f'{ms:.0f}' for ms in starts)})"
    )
    if stages:
        medians = [statistics.median(column) for column in zip(*stages, strict=True)]
        print(
            "   medians (ms from the commit): a scheduler's claim began {:.1f}, an executor's "
            "claim began {:.1f}, the run started {:.1f}".format(*medians)
        )


def measure_memory(bench: Bench, results: Results) -> None:
    for service in bench.services:
        info = service.process.memory_full_info()
        results.memory[service.name] = (info.rss / 2**20, info.uss / 2**20)
    figures = ", ".join(
        f"{name} {rss:.0f} MiB (USS {uss:.0f})" for name, (rss, uss) in results.memory.items()
    )
    print(f"5. memory (RSS) after the runs: {figures}")


# --- the summary -------------------------------------------------------------------------------


@dataclass
class Row:
    figure: str
    target: str
    floor: str = "-"
    ours: str = "-"
    ratio: str = "-"  # ours / floor
    met: bool | None = None  # None: not measured


def _ratio(ours: float | None, floor: float | None) -> str:
    return "-" if ours is None or not floor else f"{ours / floor:.2f}"


def _steady_rows(title: str, floor: Steady | None, ours: Steady | None) -> list[Row]:
    def lag(figures: Steady | None, quantile: str) -> float | None:
        return None if figures is None else figures.lag_ms[quantile]

    def shown(value: float | None, form: str) -> str:
        return "-" if value is None else format(value, form)

    rows = []
    for quantile, target in (("p50", TARGET_P50_LAG_MS), ("p99", TARGET_P99_LAG_MS)):
        floor_ms, ours_ms = lag(floor, quantile), lag(ours, quantile)
        rows.append(
            Row(
                f"{title}: start lag {quantile} (ms)",
                f"<= {target:.0f}",
                shown(floor_ms, ".1f"),
                shown(ours_ms, ".1f"),
                _ratio(ours_ms, floor_ms),
                None if ours_ms is None else ours_ms <= target,
            )
        )
    floor_cores = None if floor is None else floor.cores
    ours_cores = None if ours is None else ours.cores
    rows.append(
        Row(
            f"{title}: CPU (share of one core)",
            f"<= {TARGET_STEADY_CORES}",
            shown(floor_cores, ".2f"),
            shown(ours_cores, ".2f"),
            _ratio(ours_cores, floor_cores),
            None if ours_cores is None else ours_cores <= TARGET_STEADY_CORES,
        )
    )
    return rows


def print_summary(floor: Results, ours: Results, stored: int) -> None:
    """Each figure beside its target, the floor's and their ratio, and whether it is met."""
    rows = [
        Row(
            "burst: executions/s",
            f">= {TARGET_BURST_OF_FLOOR} x floor",
            f"{floor.executions_per_s:,.0f}",
            f"{ours.executions_per_s:,.0f}",
            _ratio(ours.executions_per_s, floor.executions_per_s),
            ours.executions_per_s >= TARGET_BURST_OF_FLOOR * floor.executions_per_s,
        ),
        *_steady_rows(f"steady {STEADY_RATE}/s", floor.steady, ours.steady),
        *_steady_rows(
            f"the same, {stored:,} future jobs stored"
            if stored
            else "the same, future jobs stored",
            None,
            ours.steady_stored,
        ),
        Row(
            "idle: CPU (share of one core)",
            f"< {TARGET_IDLE_CORES:.0%}",
            ours=f"{ours.idle_cores:.2%}",
            met=ours.idle_cores < TARGET_IDLE_CORES,
        ),
        Row(
            f"idle: job due now starts, max of {len(ours.idle_start_ms)} (ms)",
            f"<= {TARGET_IDLE_START_MS:.0f}",
            ours=f"{max(ours.idle_start_ms):.1f} (median "
            f"{statistics.median(ours.idle_start_ms):.1f})",
            met=max(ours.idle_start_ms) <= TARGET_IDLE_START_MS,
        ),
        *(
            Row(
                f"RSS of {name} (MiB)",
                f"<= {TARGET_RSS_MIB:.0f}",
                ours=f"{rss:.0f}",
                met=rss <= TARGET_RSS_MIB,
            )
            for name, (rss, _) in ours.memory.items()
        ),
    ]
    met = {True: "ok", False: "MISSED", None: "not run"}
    table = [("figure", "target", "floor", "ours", "ours/floor", "met")]
    table += [(r.figure, r.target, r.floor, r.ours, r.ratio, met[r.met]) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    print()
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
    measured = [r for r in rows if r.met is not None]
    missed = [r for r in measured if not r.met]
    verdict = f"targets missed: {len(missed)} of {len(measured)} measured"
    print(f"\n{verdict}" if missed else "\nevery target measured is met")
    for problem in floor.problems + ours.problems:
        print(f"PROBLEM: {problem}")


# --- the runs ----------------------------------------------------------------------------------


async def burst_and_steady(
    subject: Subject, conn: asyncpg.Connection, burst_jobs: int, steady_s: int, results: Results
) -> None:
    """Runs 1 and 2, the same for the floor and for ours."""
    results.executions_per_s = await burst(subject, conn, burst_jobs, results.problems)
    results.steady = await steady(
        subject,
        conn,
        steady_s,
        results.problems,
        prefix="steady",
        title=f"2. steady {STEADY_RATE} jobs/s for {steady_s} s",
    )


async def run_floor(
    postgres: embedded.EmbeddedPostgres, folder: Path, burst_jobs: int, steady_s: int
) -> Results:
    """The floor's runs 1 and 2, in a database of its own, dropped after."""
    results = Results()
    name = await prepare_database(postgres)
    dsn = dsn_of(postgres.url_for(name))
    floor = floor_design.Floor(dsn, folder)
    conn = await asyncpg.connect(dsn)
    try:
        floor.start()
        await wait_for(
            lambda: floor.connected(conn), floor_design.WORKERS, READY_DEADLINE_S, "floor"
        )
        processes = {**floor.processes(), "postgres": psutil.Process(postgres.proc.pid)}
        subject = Subject("floor", processes)
        print(f"floor ({floor_design.WORKERS} worker processes over the jobs table):")
        await warm_up(conn, none_missing)
        await burst_and_steady(subject, conn, burst_jobs, steady_s, results)
    finally:
        floor.stop()
        await conn.close()
    await drop_database(postgres, name)
    return results


async def run_ours(bench: Bench, burst_jobs: int, steady_s: int, future_jobs: int) -> Results:
    """The platform's runs 1 to 5 (4 only with `future_jobs`)."""
    results = Results()
    subject = bench.subject()
    print(f"\nours ({SCHEDULERS} schedulers, {EXECUTORS} executors, PostgreSQL and the broker):")
    conn = await asyncpg.connect(bench.dsn)
    try:
        await warm_up(conn, executors_missing(bench, conn))
        await burst_and_steady(subject, conn, burst_jobs, steady_s, results)
        await idle(subject, conn, results)
        if future_jobs:
            began = time.monotonic()
            await store_future_jobs(conn, future_jobs)
            print(f"   ({future_jobs:,} future jobs stored in {time.monotonic() - began:.0f} s)")
            results.steady_stored = await steady(
                subject,
                conn,
                steady_s,
                results.problems,
                prefix="stored",
                title=f"4. steady with {future_jobs:,} future jobs stored",
            )
    finally:
        await conn.close()
    measure_memory(bench, results)
    return results


# --- main --------------------------------------------------------------------------------------


async def prepare_database(postgres: embedded.EmbeddedPostgres) -> str:
    """A new database, migrated, with the `bench_runs` table; returns its name."""
    name = f"bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(postgres.url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = postgres.url_for(name)
    await asyncio.to_thread(migrate.upgrade, url)
    conn = await asyncpg.connect(dsn_of(url))
    try:
        await conn.execute(bench_job_type.CREATE_TABLE_SQL)
    finally:
        await conn.close()
    return name


async def drop_database(postgres: embedded.EmbeddedPostgres, name: str) -> None:
    conn = await asyncpg.connect(postgres.url)
    try:
        # FORCE: the backends of stopped clients may not have ended yet.
        await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def parse_setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name.upper(), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller figures, for a smoke run")
    parser.add_argument(
        "--no-million", action="store_true", help="skip the run with future jobs stored"
    )
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
    burst_jobs, steady_s, future_jobs = (
        (4_000, 4, FUTURE_JOBS_QUICK) if args.quick else (BURST_JOBS, STEADY_S, FUTURE_JOBS)
    )
    if args.no_million:
        future_jobs = 0

    folder = Path(tempfile.mkdtemp(prefix="bench-execution-"))
    postgres = embedded.EmbeddedPostgres(
        folder / "pg", embedded.free_port(), log_path=folder / "pg.log"
    )
    broker = embedded.EmbeddedBroker(embedded.free_port(), log_path=folder / "broker.log")
    bench: Bench | None = None
    floor = ours = Results(problems=["did not finish"])
    busy = psutil.cpu_percent(1.0)
    print(f"machine busy before the runs: {busy:.0f}% of {os.cpu_count()} cores")
    postgres.start()
    try:
        floor = asyncio.run(run_floor(postgres, folder, burst_jobs, steady_s))
        # Started once the floor is done, so that an idle broker takes nothing from it.
        broker.start()
        url = postgres.url_for(asyncio.run(prepare_database(postgres)))
        bench = Bench(folder, postgres, broker, url)
        start_platform(bench, settings=dict(args.set), profile=args.profile)
        ours = asyncio.run(run_ours(bench, burst_jobs, steady_s, future_jobs))
        print_summary(floor, ours, future_jobs)
    finally:
        if bench is not None:
            stop_platform(bench)
        broker.stop()
        postgres.stop()
        problems = floor.problems + ours.problems
        if problems:
            print(f"logs kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
