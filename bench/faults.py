"""Fault recovery at full load: what a steady stream of one-time jobs goes through when the
broker restarts empty, a scheduler is killed, executors come and go, or the load follows an idle
period.

Each scenario runs on a platform of its own, as bench/execution.py builds it: two schedulers and
two executors as real processes, a database of their own on an embedded PostgreSQL with
production durability (one server for all scenarios), a new embedded broker, and the `bench`
job type inserting one row per run into `bench_runs`. So what one fault leaves behind (a
consumer group still rebalancing) does not reach the next. After a warm-up, each scenario's
jobs are due one every 1/`rate` s, one attempt each (`retry_policy.max_attempts` 1: an attempt
a fault uses ends the job FAILED with a dead letter), and the fault is injected while they are
due:

1. broker: SIGKILLed, and started again empty (no topics, groups or offsets) on its port 3 s
   later;
2. scheduler: one of the two SIGKILLed, the other left running;
3. churn: every 5 s an executor added, then the oldest stopped with SIGTERM, twice over;
4. idle: nothing due for 60 s (the jobs are written at its start), then the load.

For each: jobs due, completed, not completed 60 s after the last was due (lost), run more than
once (`bench_runs` rows per job), used more than one attempt or ended FAILED, dead letters,
dispatches handed back and dispatched again by lease recovery; the start lag
(`bench_runs.started_at - scheduled_for`) p50/p99/max of the jobs due before, during and after
the fault, with the p99 of its two parts (until a scheduler's claim, then until an executor's);
how long after the fault the last start 1 s late or more came; the warnings the services
logged. Run (about 7 minutes on two cores, `--quick` about 2.5; the logs and data are kept in
the temporary folder printed when a job was lost, run twice or failed, or with `--keep`):

    .venv/bin/python -m bench.faults [--quick] [--rate N] [--only NAME ...] [--set NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import psutil

from bench import execution
from bench.execution import Bench, Service
from schedctl import embedded

RATE = 200  # jobs due per second
LOAD_OFFSET_S = 2.0  # the first job of a load is due this long after its insert
ONE_ATTEMPT = '{"max_attempts": 1}'
LATE_S = 1.0  # a start this late or later counts as late
BEFORE_MARGIN_S = 1.0  # jobs due this long before a fault are counted in its "during"
SETTLE_S = 5.0  # ...and so are those due up to this long after it ended
FIRST_SECONDS = 5  # after an idle period, the lag of each of these seconds
DRAIN_DEADLINE_S = 60  # after the last job was due: a job not done by then counts as lost
BROKER_AWAY_S = 3.0
CHURN_EVENTS = 4  # executor added, oldest stopped, added, stopped
MAX_LOGGED = 12  # kinds of warnings printed per scenario
EVENT_NAME = re.compile(r"[a-z][a-z0-9_]*")  # the platform's events; libraries log sentences


@dataclass(frozen=True)
class Plan:
    load_s: float  # of each load, plus as long as its fault lasts
    fault_at_s: float  # after its first job was due
    churn_every_s: float
    idle_s: float


FULL = Plan(load_s=30, fault_at_s=10, churn_every_s=5, idle_s=60)
QUICK = Plan(load_s=12, fault_at_s=3, churn_every_s=2, idle_s=10)


@dataclass
class Clock:
    """Times of one load, as offsets from its first due time (host clock: the database's)."""

    first_due: datetime
    load_s: float

    def offset(self, at: datetime) -> float:
        return (at - self.first_due).total_seconds()

    async def until(self, offset_s: float) -> datetime:
        """Sleep until `offset_s` after the first due time; returns the time then."""
        at = self.first_due + timedelta(seconds=offset_s)
        delay = (at - datetime.now(UTC)).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)
        return datetime.now(UTC)


@dataclass
class Fault:
    began: datetime
    ended: datetime
    recovery_from: datetime  # what "back under 1 s" counts from
    recovery_from_what: str
    steps: list[str] = field(default_factory=list)  # what was done, when
    # By the schedulers alive at the end (a killed one's counts die with it):
    handed_back: int = 0  # dispatches not published, handed back at once
    redispatched: int = 0  # dispatches not started within their lease, sent again


@dataclass
class Platform:
    """One scenario's platform, and the processes its fault killed or stopped."""

    bench: Bench
    plan: Plan
    rate: int
    stopped: list[Service] = field(default_factory=list)

    def retire(self, service: Service) -> None:
        self.bench.services.remove(service)
        self.stopped.append(service)

    def start(self, module: str) -> Service:
        """A new process of `module`, numbered after every one started before."""
        number = 1 + sum(s.module == module for s in self.bench.services + self.stopped)
        return execution.start_service(self.bench, module, number)


# --- the faults --------------------------------------------------------------------------------


async def restart_broker(platform: Platform, clock: Clock) -> Fault:
    broker = platform.bench.broker
    began = await clock.until(platform.plan.fault_at_s)
    broker.proc.send_signal(signal.SIGKILL)
    await asyncio.to_thread(broker.proc.wait)
    broker.proc = None
    await clock.until(platform.plan.fault_at_s + BROKER_AWAY_S)
    # Same port, nothing in it. Started from this thread, not a worker thread: a child is sent
    # its parent-death signal when the thread that started it ends.
    broker.start()
    back = datetime.now(UTC)
    steps = [
        f"broker SIGKILLed at +{clock.offset(began):.1f} s",
        f"started empty on its port at +{clock.offset(back):.1f} s",
    ]
    return Fault(began, back, back, "the broker's return", steps)


async def kill_scheduler(platform: Platform, clock: Clock) -> Fault:
    victim = next(s for s in platform.bench.services if s.module == "scheduler_service")
    began = await clock.until(platform.plan.fault_at_s)
    victim.popen.send_signal(signal.SIGKILL)
    await asyncio.to_thread(victim.popen.wait)
    platform.retire(victim)
    steps = [f"{victim.name} SIGKILLed at +{clock.offset(began):.1f} s"]
    return Fault(began, began, began, "the kill", steps)


async def churn_executors(platform: Platform, clock: Clock) -> Fault:
    """Executors added and stopped on a fixed timetable: an added one joins the group while the
    timetable goes on, a stopped one leaves it as it finishes."""
    plan, steps = platform.plan, []
    pending: list[asyncio.Task[None]] = []

    async def joined(service: Service, at: datetime) -> None:
        try:
            await asyncio.to_thread(execution.wait_ready, service)
        except embedded.EmbeddedError:  # not given partitions yet: the scenarios go on
            steps.append(
                f"{service.name} not ready (no partitions) {execution.READY_DEADLINE_S} s later"
            )
            return
        steps.append(f"{service.name} ready {(datetime.now(UTC) - at).total_seconds():.1f} s later")

    async def left(service: Service, at: datetime) -> None:
        code = await asyncio.to_thread(service.popen.wait, execution.STOP_DEADLINE_S)
        took_s = (datetime.now(UTC) - at).total_seconds()
        steps.append(f"{service.name} exited {took_s:.1f} s after SIGTERM (code {code})")

    times = []
    for event in range(CHURN_EVENTS):
        at = await clock.until(plan.fault_at_s + event * plan.churn_every_s)
        times.append(at)
        if event % 2 == 0:
            service = platform.start("executor_service")
            steps.append(f"{service.name} started at +{clock.offset(at):.1f} s")
            pending.append(asyncio.create_task(joined(service, at)))
        else:
            oldest = next(s for s in platform.bench.services if s.module == "executor_service")
            oldest.popen.send_signal(signal.SIGTERM)
            platform.retire(oldest)
            steps.append(f"{oldest.name} sent SIGTERM at +{clock.offset(at):.1f} s")
            pending.append(asyncio.create_task(left(oldest, at)))
    await asyncio.gather(*pending)
    return Fault(times[0], times[-1], times[0], "the first change", steps)


async def nothing(_platform: Platform, clock: Clock) -> Fault:
    """The idle scenario's "fault" is the load's start after the idle period."""
    return Fault(clock.first_due, clock.first_due, clock.first_due, "the load's start")


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    inject: Callable[[Platform, Clock], Awaitable[Fault]]
    lasts: Callable[[Plan], float] = lambda _plan: 0.0  # from the fault's start to its end
    idle: bool = False


SCENARIOS = (
    Scenario(
        "broker",
        "broker SIGKILLed, restarted empty on its port",
        restart_broker,
        lambda _plan: BROKER_AWAY_S,
    ),
    Scenario("scheduler", "one of two schedulers SIGKILLed", kill_scheduler),
    Scenario(
        "churn",
        "executors added and stopped (SIGTERM)",
        churn_executors,
        lambda plan: (CHURN_EVENTS - 1) * plan.churn_every_s,
    ),
    Scenario("idle", "the load after an idle period", nothing, idle=True),
)


# --- what happened -----------------------------------------------------------------------------

_JOBS = """
WITH j AS (SELECT id, status, attempt FROM jobs WHERE name LIKE $1 || '-%'),
e AS (
    SELECT e.job_id, count(e.started_at) AS started, max(e.attempt) AS attempts
    FROM executions AS e JOIN j ON j.id = e.job_id GROUP BY e.job_id
), r AS (
    SELECT b.job_id, count(*) AS runs FROM bench_runs AS b JOIN j ON j.id = b.job_id
    GROUP BY b.job_id
)
SELECT count(*) AS due,
       count(*) FILTER (WHERE j.status = 'COMPLETED') AS completed,
       count(*) FILTER (WHERE j.status = 'FAILED') AS failed,
       count(*) FILTER (WHERE r.runs > 1) AS run_twice,
       count(*) FILTER (WHERE e.started > 1) AS started_twice,
       count(*) FILTER (WHERE e.attempts > 1 OR j.attempt > 1) AS retried,
       (SELECT count(*) FROM dead_letters AS d JOIN j ON j.id = d.job_id) AS dead_letters
FROM j LEFT JOIN e ON e.job_id = j.id LEFT JOIN r ON r.job_id = j.id
"""
# Each run's start lag, and its parts: the scheduler's claim (execution row created), then the
# broker and the executor until the executor's claim, then the start of the run itself.
_RUNS = """
SELECT CAST(extract(epoch FROM b.scheduled_for - $2::timestamptz) AS float8) AS due_s,
       CAST(extract(epoch FROM b.started_at - b.scheduled_for) AS float8) AS lag_s,
       CAST(extract(epoch FROM e.created_at - b.scheduled_for) AS float8) AS claim_s,
       CAST(extract(epoch FROM e.started_at - e.created_at) AS float8) AS delivery_s,
       CAST(extract(epoch FROM b.started_at) AS float8) AS started_at
FROM bench_runs AS b JOIN jobs AS j ON j.id = b.job_id
LEFT JOIN executions AS e ON e.id = b.execution_id
WHERE j.name LIKE $1 || '-%'
ORDER BY b.scheduled_for
"""


def _quantile(values: list[float], q: float) -> float:
    """Linear interpolation between the nearest ranks (percentile_cont), of sorted `values`."""
    position = (len(values) - 1) * q
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def lag_figures(runs: list[asyncpg.Record]) -> str:
    """p50 / p99 / max of the runs' start lag in ms, and each part's p99."""
    if not runs:
        return "no runs"
    lag, claim, delivery = (
        sorted(r[column] for r in runs if r[column] is not None)
        for column in ("lag_s", "claim_s", "delivery_s")
    )
    text = (
        f"p50 {_quantile(lag, 0.5) * 1000:,.0f}, p99 {_quantile(lag, 0.99) * 1000:,.0f}, "
        f"max {lag[-1] * 1000:,.0f} ms ({len(lag):,} runs)"
    )
    if claim and delivery:
        text += (
            f"; p99 claimed by a scheduler {_quantile(claim, 0.99) * 1000:,.0f}, "
            f"then started by an executor {_quantile(delivery, 0.99) * 1000:,.0f}"
        )
    return text


@dataclass
class Report:
    scenario: Scenario
    jobs: dict[str, int]
    lag_ms: dict[str, tuple[float, float, float]]  # window -> p50, p99, max
    recovered_s: float | None  # from the fault until the last late start; None: not recovered
    problems: list[str]


def windows(scenario: Scenario, fault: Fault, clock: Clock, load_s: float) -> list[tuple]:
    """(name, from, to) in seconds due after the first job, to split the runs by."""
    if scenario.idle:
        first = [(f"second {n + 1}", n, n + 1) for n in range(FIRST_SECONDS)]
        return [*first, ("the rest", FIRST_SECONDS, load_s)]
    began = clock.offset(fault.began) - BEFORE_MARGIN_S
    ended = clock.offset(fault.ended) + SETTLE_S
    return [("before", 0, began), ("during", began, ended), ("after", ended, load_s)]


def logged(folder: Path, since: datetime) -> tuple[list[tuple[str, str, int, datetime]], int]:
    """The warnings and errors the services logged since `since`: the platform's own events
    (service, event, how many, first time) in the order they first came, and how many lines
    libraries (aiokafka, ...) logged, which are not named events."""
    seen: dict[tuple[str, str], list] = {}
    libraries = 0
    for path in sorted(folder.glob("*-*.log")):  # scheduler-1.log, executor-3.log
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # a traceback's line
                continue
            if not isinstance(entry, dict) or entry.get("level") not in ("warning", "error"):
                continue
            at = datetime.fromisoformat(entry["timestamp"])
            if at < since:
                continue
            event = str(entry.get("event"))
            if not EVENT_NAME.fullmatch(event):
                libraries += 1
                continue
            counted = seen.setdefault((path.stem, event), [0, at])
            counted[0] += 1
    events = sorted(((*key, n, at) for key, (n, at) in seen.items()), key=lambda row: row[3])
    return events, libraries


async def measure(
    platform: Platform, conn: asyncpg.Connection, scenario: Scenario, clock: Clock, fault: Fault
) -> Report:
    prefix, load_s = scenario.name, clock.load_s
    jobs = dict(await conn.fetchrow(_JOBS, prefix))
    runs = await conn.fetch(_RUNS, prefix, clock.first_due)
    print(
        f"   jobs: {jobs['due']:,} due, {jobs['completed']:,} completed, "
        f"{jobs['due'] - jobs['completed']:,} lost (not completed {DRAIN_DEADLINE_S} s after "
        f"the last was due), {jobs['run_twice']:,} run twice ({jobs['started_twice']:,} started "
        f"twice), {jobs['retried']:,} with more than one attempt, {jobs['failed']:,} FAILED, "
        f"{jobs['dead_letters']:,} dead letters; dispatches handed back {fault.handed_back:,}, "
        f"dispatched again after their lease expired {fault.redispatched:,}"
    )
    lag_ms = {}
    print("   start lag of the jobs due:")
    for name, start, end in windows(scenario, fault, clock, load_s):
        chosen = [r for r in runs if start <= r["due_s"] < end]
        print(f"     {name} (+{start:.1f} to +{end:.1f} s): {lag_figures(chosen)}")
        lags = sorted(r["lag_s"] * 1000 for r in chosen)
        if lags:
            lag_ms[name] = (_quantile(lags, 0.5), _quantile(lags, 0.99), lags[-1])
    since = clock.offset(fault.recovery_from)
    affected_from = clock.offset(fault.began) - BEFORE_MARGIN_S
    late = [r for r in runs if r["lag_s"] >= LATE_S and r["due_s"] >= affected_from]
    recovered_s = None
    if jobs["completed"] < jobs["due"]:
        print(f"   start lag not back under {LATE_S:.0f} s: jobs were lost")
    elif not late:
        print(f"   no job started {LATE_S:.0f} s late or more")
        recovered_s = 0.0
    else:
        last_start = max(r["started_at"] for r in late) - clock.first_due.timestamp()
        recovered_s = last_start - since
        print(
            f"   back under {LATE_S:.0f} s {recovered_s:.1f} s after {fault.recovery_from_what} "
            f"(+{since:.1f} s): {len(late):,} jobs started {LATE_S:.0f} s late or more, the last "
            f"at +{last_start:.1f} s; those due from +{max(r['due_s'] for r in late):.1f} s on "
            f"started within {LATE_S:.0f} s"
        )
    timeline = {}
    for r in runs:
        second = int(r["due_s"])
        timeline[second] = max(timeline.get(second, 0.0), r["lag_s"])
    print(
        "   max start lag (s) by second due: "
        + " ".join(f"{timeline.get(s, float('nan')):.1f}" for s in range(int(load_s)))
    )
    events, libraries = logged(platform.bench.folder, clock.first_due)
    shown = ", ".join(
        f"{service} {event} x{n} (+{clock.offset(at):.1f} s)"
        for service, event, n, at in events[:MAX_LOGGED]
    )
    more = f" and {len(events) - MAX_LOGGED} more" if len(events) > MAX_LOGGED else ""
    print(f"   logged: {shown or 'no warnings'}{more}; {libraries:,} warning lines from libraries")
    problems = [
        f"{scenario.name}: {jobs[key]:,} {what}"
        for key, what in (
            ("run_twice", "jobs run twice"),
            ("retried", "jobs with more than one attempt"),
            ("failed", "jobs FAILED"),
            ("dead_letters", "dead letters"),
        )
        if jobs[key]
    ]
    if jobs["due"] != jobs["completed"]:
        problems.append(f"{scenario.name}: {jobs['due'] - jobs['completed']:,} jobs lost")
    return Report(scenario, jobs, lag_ms, recovered_s, problems)


# --- running them ------------------------------------------------------------------------------


async def wait_done(conn: asyncpg.Connection, prefix: str, count: int) -> None:
    """Until the `count` jobs of `prefix` are COMPLETED or FAILED, or `DRAIN_DEADLINE_S` passed
    (what is not done by then counts as lost)."""
    finished = (
        f"SELECT count(*) FROM jobs WHERE name LIKE '{prefix}-%' "  # noqa: S608 (our own prefix)
        "AND status IN ('COMPLETED', 'FAILED')"
    )
    with contextlib.suppress(RuntimeError):
        await execution.wait_for(conn, finished, count, DRAIN_DEADLINE_S, prefix)


def _recoveries(platform: Platform) -> dict[str, tuple[float, float]]:
    """Per live scheduler: dispatches it handed back (not published), and dispatches it sent
    again after their lease expired unstarted."""
    counts = {}
    for service in platform.bench.services:
        if service.module == "scheduler_service":
            samples = execution.scrape(service)
            counts[service.name] = (
                execution.total(samples, "scheduler_handbacks_total"),
                execution.total(samples, "scheduler_lease_recoveries_total", outcome="redispatch"),
            )
    return counts


def _busy_s() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


async def run_scenario(
    platform: Platform, conn: asyncpg.Connection, number: int, scenario: Scenario
) -> Report:
    plan, rate = platform.plan, platform.rate
    load_s = plan.load_s + scenario.lasts(plan)
    count = int(load_s * rate)
    await conn.execute("VACUUM ANALYZE jobs, executions")  # as autovacuum keeps them
    offset_s = LOAD_OFFSET_S + (plan.idle_s if scenario.idle else 0.0)
    await execution.insert_jobs(
        conn, scenario.name, count, offset_s=offset_s, interval_s=1 / rate, retry_policy=ONE_ATTEMPT
    )
    first_due = await conn.fetchval(
        "SELECT min(next_run_at) FROM jobs WHERE name = $1", f"{scenario.name}-0"
    )
    clock = Clock(first_due, load_s)
    idle = f" after {plan.idle_s:.0f} s with nothing due" if scenario.idle else ""
    print(f"\n{number}. {scenario.name}: {scenario.title} ({rate} jobs/s for {load_s:.0f} s{idle})")
    busy_from, wall_from = _busy_s(), time.monotonic()
    counted = await asyncio.to_thread(_recoveries, platform)
    fault = await scenario.inject(platform, clock)
    await clock.until(load_s)
    await wait_done(conn, scenario.name, count)
    for name, (handed_back, redispatched) in (
        await asyncio.to_thread(_recoveries, platform)
    ).items():
        before = counted.get(name, (0.0, 0.0))
        fault.handed_back += int(handed_back - before[0])
        fault.redispatched += int(redispatched - before[1])
    busy = (_busy_s() - busy_from) / (time.monotonic() - wall_from) / (os.cpu_count() or 1)
    if fault.steps:
        print(f"   {'; '.join(fault.steps)}")
    print(f"   machine {busy:.0%} busy meanwhile")
    report = await measure(platform, conn, scenario, clock, fault)
    for service in platform.bench.services:
        if service.popen.poll() is not None:
            report.problems.append(f"{service.name} exited with {service.popen.returncode}")
    return report


def print_summary(reports: list[Report], rate: int) -> None:
    rows = [
        ("scenario", "due", "lost", "twice", ">1 attempt", "FAILED", "DLQ", "back <1 s",
         "lag p50/p99/max ms: before", "during", "after"),
    ]  # fmt: skip
    for r in reports:
        jobs = r.jobs
        lags = [
            "/".join(f"{v:,.0f}" for v in r.lag_ms[w]) if w in r.lag_ms else "-"
            for w in (("second 1", "second 2", "the rest") if r.scenario.idle else
                      ("before", "during", "after"))
        ]  # fmt: skip
        rows.append(
            (
                r.scenario.name,
                f"{jobs['due']:,}",
                f"{jobs['due'] - jobs['completed']:,}",
                f"{jobs['run_twice']:,}",
                f"{jobs['retried']:,}",
                f"{jobs['failed']:,}",
                f"{jobs['dead_letters']:,}",
                "never" if r.recovered_s is None else f"{r.recovered_s:.1f} s",
                *lags,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print(f"\nsummary at {rate} jobs/s (idle: first second, second second, the rest)")
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    for report in reports:
        for problem in report.problems:
            print(f"PROBLEM: {problem}")


async def run_one(platform: Platform, number: int, scenario: Scenario) -> Report:
    conn = await asyncpg.connect(platform.bench.dsn)
    try:
        await execution.warm_up(platform.bench, conn)
        return await run_scenario(platform, conn, number, scenario)
    finally:
        await conn.close()


def run_isolated(
    folder: Path,
    postgres: embedded.EmbeddedPostgres,
    settings: dict[str, str],
    plan: Plan,
    rate: int,
    numbered: tuple[int, Scenario],
) -> Report:
    """One scenario on a platform of its own (a database of its own on the shared PostgreSQL
    server, a new broker, schedulers and executors): what a fault leaves behind (a consumer
    group still rebalancing, say) does not reach the next scenario."""
    folder.mkdir()
    url = asyncio.run(execution.prepare_database(postgres))
    broker = embedded.EmbeddedBroker(embedded.free_port(), log_path=folder / "broker.log")
    broker.start()
    bench = Bench(folder, postgres, broker, url)
    try:
        execution.start_platform(bench, settings=settings)
        return asyncio.run(run_one(Platform(bench, plan, rate), *numbered))
    finally:
        execution.stop_platform(bench)
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter loads, for a smoke run")
    parser.add_argument("--rate", type=int, default=RATE, help="jobs due per second")
    names = [s.name for s in SCENARIOS]
    parser.add_argument(
        "--only", action="append", choices=names, help="run this scenario (repeatable)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        type=execution.parse_setting,
        metavar="NAME=VALUE",
        help="a setting of every service, as an environment variable (repeatable)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the logs and data in any case")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    chosen = [(n, s) for n, s in enumerate(SCENARIOS, 1) if not args.only or s.name in args.only]

    busy = psutil.cpu_percent(1.0)
    print(f"machine busy before the runs (nothing started): {busy:.0f}% of {os.cpu_count()} cores")
    folder = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    postgres = embedded.EmbeddedPostgres(
        folder / "pg", embedded.free_port(), log_path=folder / "pg.log"
    )
    postgres.start()
    problems = ["did not finish"]
    try:
        reports = [
            run_isolated(folder / s.name, postgres, dict(args.set), plan, args.rate, (n, s))
            for n, s in chosen
        ]
        print_summary(reports, args.rate)
        problems = [p for r in reports for p in r.problems]
    finally:
        postgres.stop()
        if problems or args.keep:
            print(f"logs kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
