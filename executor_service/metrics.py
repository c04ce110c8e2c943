"""The executor's Prometheus metrics, registered on the app's own registry."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from libs.infra import metrics
from libs.scheduling.states import ExecutionStatus

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
        # The children of `duration` and `executions` by (job type, status): `labels` looks
        # them up under a lock and checks their values every time, and every attempt counts.
        self._ended: dict[tuple[str, ExecutionStatus], tuple[Any, Any]] = {}

    def attempt_ended(self, job_type: str, status: ExecutionStatus, duration_s: float) -> None:
        """Count an attempt of `job_type` that ended in `status`, and how long it ran."""
        children = self._ended.get((job_type, status))
        if children is None:
            children = self._ended[(job_type, status)] = (
                self.duration.labels(job_type),
                self.executions.labels(job_type, status.value.lower()),
            )
        children[0].observe(duration_s)
        children[1].inc()
