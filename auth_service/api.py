"""HTTP routes of the auth service: logins, access and refresh tokens, signing keys and JWKS."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from auth_service.settings import Settings
from libs import resources, web


def create_app(settings: Settings) -> FastAPI:
    return web.create_app(
        settings,
        title="Auth service",
        lifespan=partial(resources.database, settings=settings),
    )
