"""Settings of the job service (documented in config/job_service.properties)."""

from __future__ import annotations

from typing import ClassVar

from libs import config


class Settings(config.ApiSettings):
    service_name: ClassVar[str] = "job_service"
    http_port: config.Port = 8000
