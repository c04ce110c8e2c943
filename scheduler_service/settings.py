"""Settings of the scheduler service (documented in config/scheduler_service.properties)."""

from __future__ import annotations

from typing import ClassVar

from libs import config


class Settings(config.KafkaSettings):
    service_name: ClassVar[str] = "scheduler_service"
    http_port: config.Port = 8003
