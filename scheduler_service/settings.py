"""Settings of the scheduler service (documented in config/scheduler_service.properties)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from libs.infra import config


class Settings(config.KafkaSettings):
    service_name: ClassVar[str] = "scheduler_service"
    http_port: config.Port = 8003

    # --- Dispatch ---
    # Due jobs one claim takes (one transaction, one UPDATE, one INSERT); a full batch means a
    # backlog, and the next batch follows at once.
    dispatch_batch_size: int = Field(default=500, ge=1, le=10_000)
    # Longest sleep between two looks for due jobs when nothing wakes the dispatcher earlier
    # (a NOTIFY, the earliest next_run_at, this scheduler's lease recovery). Bounds the lag of a
    # job written by something that does not notify, and of a missed notification.
    dispatch_max_sleep_s: float = Field(default=5.0, gt=0, le=300)
    # Longest wait for the broker to acknowledge a batch; what is not acknowledged by then is
    # handed back (an idempotent producer retries forever while the broker is away).
    dispatch_publish_timeout_s: float = Field(default=5.0, gt=0, le=600)
    # The dispatch lease: how long a dispatch may take to reach an executor and be started
    # (the executor's start then gives the attempt a running lease of its own). A dispatch not
    # started by then is dispatched again by lease recovery, using none of the job's attempts;
    # with recovery_interval_s it bounds how long a lost dispatch delays a run, which must stay
    # inside the default misfire grace (60 s).
    dispatch_lease_s: float = Field(default=15.0, gt=0)
    # How long before its due time a job may be claimed and published; the executor holds it
    # until it is due. Claims then come at most every half of this apart while jobs keep
    # falling due (a batch by time, not one transaction per job at a steady rate), and the
    # claim, the publication and the executor's claim happen before the due time instead of
    # after it. A job written due sooner than this (a NOTIFY) is claimed at once. 0 claims
    # only what is due, each time something is.
    dispatch_lookahead_s: float = Field(default=1.0, ge=0, le=5)

    # --- Lease recovery ---
    recovery_interval_s: float = Field(default=5.0, gt=0, le=3_600)
    # Expired leases one recovery transaction takes; a full batch is followed at once.
    recovery_batch_size: int = Field(default=500, ge=1, le=10_000)

    # --- Nodes ---
    heartbeat_interval_s: float = Field(default=5.0, gt=0, le=3_600)
    # A scheduler node whose heartbeat is older than this is removed from the nodes table by
    # the other schedulers (it was killed without a clean shutdown).
    node_expiry_s: float = Field(default=300.0, gt=0)

    # --- Errors ---
    # After a database or broker error a loop waits this long, doubling at each further error
    # up to error_backoff_max_s, then resumes by itself.
    error_backoff_initial_s: float = Field(default=0.1, gt=0)
    error_backoff_max_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _lookahead_inside_the_lease(self) -> Settings:
        if self.dispatch_lookahead_s >= self.dispatch_lease_s:
            raise ValueError(
                "dispatch_lookahead_s must be shorter than dispatch_lease_s (a dispatch claimed "
                "ahead must still be started inside its lease)"
            )
        return self
