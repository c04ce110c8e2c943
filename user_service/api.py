"""HTTP routes of the user service: users, roles and service accounts."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from libs import resources, web
from user_service.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    return web.create_app(
        settings,
        title="User service",
        lifespan=lambda app: resources.all_of(
            app,
            partial(resources.database, settings=settings),
            partial(resources.token_verifier, settings=settings),
        ),
    )
