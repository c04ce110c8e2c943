"""Settings of the user service (documented in config/user_service.properties)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from libs.infra import config


class Settings(config.ApiSettings):
    service_name: ClassVar[str] = "user_service"
    http_port: config.Port = 8001

    # Password hashes (argon2id, 19 MiB each) computed at once by this process; registrations
    # and password changes beyond these wait for a slot.
    max_concurrent_hashes: int = Field(default=2, ge=1, le=64)
    # Requests allowed to wait for a hashing slot; beyond these, 503 with Retry-After at once.
    max_waiting_hashes: int = Field(default=64, ge=1, le=10_000)

    # Registrations per client address: the one that reaches the limit within a window locks
    # the address for the length of a window (429 with Retry-After until the lock ends).
    registration_window_s: int = Field(default=3_600, ge=1, le=86_400)
    registration_max_per_address: int = Field(default=10, ge=1, le=100_000)
