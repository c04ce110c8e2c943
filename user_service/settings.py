"""Settings of the user service (documented in config/user_service.properties)."""

from __future__ import annotations

from typing import ClassVar

from libs import config


class Settings(config.ApiSettings):
    service_name: ClassVar[str] = "user_service"
    http_port: config.Port = 8001
