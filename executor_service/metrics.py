"""The executor's Prometheus metrics, registered on the app's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from libs.infra import metrics

DURATION_BUCKETS_S = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600,
)  # fmt: skip


class ExecutorMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.executions = Counter(
            "executor_executions_total",
            "Attempts run, by job type and outcome (succeeded, failed, timed_out).",
            ["type", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "executor_run_duration_seconds",
            "Time a strategy took to run one attempt, by job type.",
            ["type"],
            buckets=DURATION_BUCKETS_S,
            registry=registry,
        )
        self.start_lag = Histogram(
            "executor_start_lag_seconds",
            "Start of a first attempt (database clock at the claim) minus its scheduled time.",
            buckets=metrics.LAG_BUCKETS_S,
            registry=registry,
        )
        self.retries = Counter(
            "executor_retries_total",
            "Failed attempts put back to SCHEDULED for another attempt, by job type.",
            ["type"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "executor_dead_letters_total",
            "Occurrences given up on, by job type and reason (permanent, exhausted).",
            ["type", "reason"],
            registry=registry,
        )
        self.paused = Counter(
            "executor_jobs_paused_total",
            "Jobs paused because their target asked never to be called again (HTTP 410 Gone), "
            "by job type.",
            ["type"],
            registry=registry,
        )
        self.in_flight = Gauge(
            "executor_in_flight",
            "Dispatches fetched and not yet finished (claiming, running or being recorded).",
            registry=registry,
        )
        self.skipped = Counter(
            "executor_skipped_total",
            "Messages not run, by reason (duplicate, malformed, superseded).",
            ["reason"],
            registry=registry,
        )
        self.fenced_off = Counter(
            "executor_fenced_off_total",
            "Outcomes whose job had moved on (lease recovered, paused, cancelled): recorded on "
            "the execution at most, the job left alone.",
            registry=registry,
        )
        self.loop_errors = metrics.loop_errors("executor", registry)
