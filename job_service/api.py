"""HTTP routes of the job service: the jobs API (create, read, change and observe jobs)."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from job_service.settings import Settings
from libs import resources, web


def create_app(settings: Settings) -> FastAPI:
    return web.create_app(
        settings,
        title="Job service",
        lifespan=partial(resources.database, settings=settings),
    )
