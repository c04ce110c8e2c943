"""Settings of the executor service (documented in config/executor_service.properties)."""

from __future__ import annotations

from typing import ClassVar

from libs import config


class Settings(config.KafkaSettings):
    service_name: ClassVar[str] = "executor_service"
    http_port: config.Port = 8004
