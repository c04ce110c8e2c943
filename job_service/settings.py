"""Settings of the job service (documented in config/job_service.properties)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from libs import config

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
