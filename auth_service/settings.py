"""Settings of the auth service (documented in config/auth_service.properties)."""

from __future__ import annotations

from typing import ClassVar

from libs import config


class Settings(config.ApiSettings):
    service_name: ClassVar[str] = "auth_service"
    http_port: config.Port = 8002
