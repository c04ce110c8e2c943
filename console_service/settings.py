"""Settings of the web console (documented in config/console_service.properties)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from libs.infra import config


class Settings(config.ServiceSettings):
    service_name: ClassVar[str] = "console_service"
    http_port: config.Port = 8005

    # Where the console calls the platform's APIs, as any client does (`make up`'s ports).
    jobs_api_url: str = Field(default="http://127.0.0.1:8000", pattern=r"^https?://")
    users_api_url: str = Field(default="http://127.0.0.1:8001", pattern=r"^https?://")
    auth_api_url: str = Field(default="http://127.0.0.1:8002", pattern=r"^https?://")
    # Longest wait for one answer of those APIs before the page says they cannot be reached.
    api_timeout_s: float = Field(default=10.0, gt=0, le=120)

    # A session ends after this long without a request, and this long after sign-in at most.
    session_idle_timeout_s: int = Field(default=1_800, ge=60, le=86_400)
    session_lifetime_s: int = Field(default=43_200, ge=300, le=2_592_000)

    @model_validator(mode="after")
    def _idle_within_lifetime(self) -> Settings:
        if self.session_idle_timeout_s > self.session_lifetime_s:
            raise ValueError("session_idle_timeout_s cannot exceed session_lifetime_s")
        return self

    @property
    def secure_cookies(self) -> bool:
        """Cookies marked Secure (and `__Host-` named) everywhere but on a development
        platform, which `make up` serves over plain HTTP."""
        return self.environment != "development"
