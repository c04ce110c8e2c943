"""What the workers' Prometheus metrics share: the buckets of lag, and the count of the errors
their loops back off from (`libs.infra.loops.ErrorReport` counts into it)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

# Lag is the figure a scheduler exists for (the scheduler's dispatch lag, the executor's start
# lag): fine buckets where it should be (milliseconds), coarse ones for a backlog or an outage.
LAG_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600,
)  # fmt: skip


def loop_errors(service: str, registry: CollectorRegistry) -> Counter:
    """`<service>_loop_errors_total{loop}`: errors a loop of the service backed off from."""
    return Counter(
        f"{service}_loop_errors_total",
        "Errors a loop backed off from, by loop.",
        ["loop"],
        registry=registry,
    )
