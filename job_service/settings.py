"""Settings of the job service (documented in config/job_service.properties)."""

from __future__ import annotations

from functools import cached_property
from typing import ClassVar

from pydantic import Field

from libs.infra import config
from libs.security import addresses

TWO_MIB = 2 * 1024 * 1024


class Settings(config.ApiSettings):
    service_name: ClassVar[str] = "job_service"
    http_port: config.Port = 8000
    # Larger than the platform's default (1 MiB): a batch of 1000 jobs with ordinary payloads
    # (about 1 KiB each as JSON) must fit in one request.
    http_max_body_bytes: int = Field(default=TWO_MIB, ge=1_024)
    # A scheduler or executor not heard from for longer than this is shown as down (its
    # heartbeat period is a few seconds).
    node_down_after_s: float = Field(default=30.0, gt=0)
    # The executors' setting of the same name (CIDRs, comma-separated): an http job whose URL
    # names a non-public address outside these networks is refused at creation, as the
    # executors would refuse to connect to it. Names are left to the executors' check.
    http_allowed_networks: addresses.NetworksSetting = ""

    @cached_property
    def allowed_networks(self) -> tuple[addresses.IpNetwork, ...]:
        """`http_allowed_networks` parsed."""
        return addresses.parse_networks(self.http_allowed_networks)
