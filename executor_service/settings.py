"""Settings of the executor service (documented in config/executor_service.properties)."""

from __future__ import annotations

from functools import cached_property
from typing import ClassVar

from pydantic import Field, model_validator

from libs.infra import config
from libs.security import addresses


class Settings(config.KafkaSettings):
    service_name: ClassVar[str] = "executor_service"
    http_port: config.Port = 8004

    # --- Consuming ---
    # The consumer group every executor joins: the dispatch topic's partitions are shared
    # among its members.
    consumer_group: str = Field(default="executors", min_length=1, max_length=200)
    # Occurrences one process runs at once; beyond it, fetching pauses (the poll loop keeps
    # polling, so the group does not rebalance).
    max_in_flight: int = Field(default=1000, ge=1, le=100_000)
    # Messages one fetch returns at most (also the largest claim transaction).
    fetch_max_records: int = Field(default=500, ge=1, le=10_000)
    # A member that sends no heartbeat for this long is dropped from the group and its
    # partitions go to the others (a killed executor's dispatches wait this long at most).
    consumer_session_timeout_ms: int = Field(default=10_000, ge=1_000, le=300_000)
    # How often a member heartbeats, which is also how soon it learns of a rebalance (another
    # executor joined or left) and rejoins: the group's hand-over waits for the slowest member.
    consumer_heartbeat_interval_ms: int = Field(default=1_000, ge=100, le=100_000)

    # An executor fetches when a scheduler says it published dispatches (NOTIFY), and otherwise
    # at least this often: a notification missed, a message put on the topic by something else.
    # 0: fetch all the time, as a plain consumer does.
    fetch_idle_interval_s: float = Field(default=5.0, ge=0, le=300)

    # --- Outcomes ---
    # Outcomes are written in batches: at most this many per transaction...
    outcome_batch_size: int = Field(default=500, ge=1, le=10_000)
    # ...after waiting at most this long for more to join the batch. A transaction costs far
    # more than a row: at a steady rate, outcomes finishing one after another are written
    # together. The execution's `finished_at` is when its attempt ended, whatever the wait.
    outcome_flush_interval_s: float = Field(default=0.1, ge=0, le=10)
    # Added to the job's timeout in the running lease the claim gives an attempt, so that an
    # occurrence finishing right at its timeout is not recovered while its outcome is written.
    lease_margin_s: float = Field(default=30.0, ge=0)

    # --- The http job type ---
    # Non-public networks (CIDRs, comma-separated) that http jobs may reach all the same:
    # loopback, private, link-local, multicast and reserved addresses are refused otherwise,
    # after name resolution. Empty by default: jobs reach public addresses only. The job service
    # reads the same setting, to refuse literal addresses at creation (`libs.security.addresses`).
    http_allowed_networks: addresses.NetworksSetting = ""
    # Bytes of a response body read at most; the rest is not read (the status decides).
    http_max_response_bytes: int = Field(default=65_536, ge=0, le=64 * 1024 * 1024)
    # Connections kept open to targets, across all jobs of this process.
    http_max_connections: int = Field(default=200, ge=1, le=10_000)
    http_user_agent: str = Field(default="scheduling-platform-executor", min_length=1)

    # --- Nodes ---
    heartbeat_interval_s: float = Field(default=5.0, gt=0, le=3_600)
    node_expiry_s: float = Field(default=300.0, gt=0)

    # --- Errors ---
    error_backoff_initial_s: float = Field(default=0.1, gt=0)
    error_backoff_max_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _heartbeat_within_session(self) -> Settings:
        if self.consumer_heartbeat_interval_ms >= self.consumer_session_timeout_ms:
            raise ValueError(
                "consumer.heartbeat.interval.ms must be below consumer.session.timeout.ms"
            )
        return self

    @cached_property
    def allowed_networks(self) -> tuple[addresses.IpNetwork, ...]:
        """`http_allowed_networks` parsed."""
        return addresses.parse_networks(self.http_allowed_networks)
