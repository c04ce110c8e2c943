"""The scheduler's Prometheus metrics, registered on the app's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from libs.infra import metrics

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class SchedulerMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.due_backlog = Gauge(
            "scheduler_due_backlog",
            "SCHEDULED jobs whose next_run_at has passed (counted up to a cap).",
            registry=registry,
        )
        self.dispatch_lag = Histogram(
            "scheduler_dispatch_lag_seconds",
            "Broker acknowledgement of a dispatch minus its occurrence's scheduled time.",
            buckets=metrics.LAG_BUCKETS_S,
            registry=registry,
        )
        self.batch_size = Histogram(
            "scheduler_batch_size",
            "Jobs claimed by one dispatch transaction (empty claims are not observed).",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.publish_latency = Histogram(
            "scheduler_publish_seconds",
            "Time from sending a batch's dispatches to the broker's last acknowledgement.",
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.dispatched = Counter(
            "scheduler_dispatched_total",
            "Dispatches acknowledged by the broker.",
            registry=registry,
        )
        self.handbacks = Counter(
            "scheduler_handbacks_total",
            "Claimed dispatches handed back because publishing them failed.",
            registry=registry,
        )
        self.recoveries = Counter(
            "scheduler_lease_recoveries_total",
            "Jobs whose lease expired, by what became of them (redispatch: never started, "
            "dispatched again without using an attempt; retry, next, failed).",
            ["outcome"],
            registry=registry,
        )
        self.misfires = Counter(
            "scheduler_misfires_total",
            "Occurrences found late beyond their grace, by misfire policy.",
            ["policy"],
            registry=registry,
        )
        self.loop_errors = metrics.loop_errors("scheduler", registry)
