"""Each API's `/docs` (Swagger UI) and `/redoc` work without internet: their pages name no
outside address, and every file they load is served by the service itself.

Each service runs on a real database, served by uvicorn on loopback.
"""

from __future__ import annotations

from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import fastapi
import httpx
import pytest

import auth_service.api
import auth_service.settings
import job_service.api
import job_service.settings
import user_service.api
import user_service.settings

# What each kind of file the pages load must be served as.
CONTENT_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
    ".json": ("application/json",),
}


class _References(HTMLParser):
    """The addresses a page loads: scripts, style sheets, icons and ReDoc's OpenAPI document."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "spec-url") and value:
                self.found.append(value)


def references(html: str) -> list[str]:
    parser = _References()
    parser.feed(html)
    return parser.found


def _job_app(database_url: str, issuer: Any) -> fastapi.FastAPI:
    settings = job_service.settings.Settings(database_url=database_url, **issuer.settings())
    return job_service.api.create_app(settings)


def _user_app(database_url: str, issuer: Any) -> fastapi.FastAPI:
    settings = user_service.settings.Settings(database_url=database_url, **issuer.settings())
    return user_service.api.create_app(settings)


def _auth_app(database_url: str, _issuer: Any) -> fastapi.FastAPI:
    settings = auth_service.settings.Settings(database_url=database_url, environment="development")
    return auth_service.api.create_app(settings)


APPS: dict[str, Callable[[str, Any], fastapi.FastAPI]] = {
    "job_service": _job_app,
    "user_service": _user_app,
    "auth_service": _auth_app,
}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
@pytest.mark.parametrize("service", sorted(APPS))
async def test_the_docs_load_only_the_services_own_files(
    database_url, token_issuer, serve_app, service, page
):
    app = APPS[service](database_url, token_issuer)
    async with serve_app(app) as base_url, httpx.AsyncClient(base_url=base_url) as client:
        response = await client.get(page)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "://" not in response.text  # no CDN, no web fonts: nothing from outside

        loaded = references(response.text)
        served = {path: await client.get(path) for path in loaded}

    assert any(path.endswith(".js") for path in loaded), loaded
    for path, asset in served.items():
        assert asset.status_code == 200, path
        assert asset.content, path
        expected = CONTENT_TYPES["." + path.rsplit(".", 1)[-1]]
        assert asset.headers["content-type"].startswith(expected), (path, asset.headers)
