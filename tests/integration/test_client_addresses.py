"""Which client address a service sees: the TCP peer's, unless the peer is a proxy named in
`http.trusted.proxies`. The auth service is served as `python -m auth_service` serves it
(`libs.infra.serve.server_config`) over real loopback HTTP, and its per-address login limit shows
which address it counted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from auth_support import assert_oauth_problem, settings_for

from auth_service import api
from libs.infra import serve
from schedctl import embedded

START_DEADLINE_S = 10
ADDRESS_LIMIT = 3


@asynccontextmanager
async def auth_service(database_url: str, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The auth service on a free loopback port, served as its process serves it; a client of
    it, whose requests all come from 127.0.0.1."""
    settings = settings_for(
        database_url,
        http_port=embedded.free_port(),
        address_max_failures=ADDRESS_LIMIT,
        **overrides,
    )
    server = uvicorn.Server(serve.server_config(settings, api.create_app(settings)))
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(START_DEADLINE_S):
            while not server.started:
                if serving.done():
                    serving.result()
                await asyncio.sleep(0.01)
        base_url = f"http://{settings.http_host}:{settings.http_port}"
        async with httpx.AsyncClient(base_url=base_url) as client:
            yield client
    finally:
        server.should_exit = True
        await serving


async def failed_login(client: httpx.AsyncClient, n: int, **headers: str) -> httpx.Response:
    """A failed login for an email of its own, so that only the address limit can lock."""
    form = {"grant_type": "password", "username": f"u{n}@example.com", "password": "wrong"}
    return await client.post(api.TOKEN_PATH, data=form, headers=headers)


async def test_a_local_client_cannot_choose_its_address_with_forwarded_headers(database_url):
    async with auth_service(database_url) as client:
        spoofed = [
            await failed_login(client, n, **{"x-forwarded-for": f"203.0.113.{n}"})
            for n in range(ADDRESS_LIMIT)
        ]
        after = await failed_login(client, 99, **{"x-forwarded-for": "203.0.113.99"})

    for response in spoofed:
        assert_oauth_problem(response, 400, "invalid_grant")
    # Every attempt counted against 127.0.0.1, whatever the header said.
    assert_oauth_problem(after, 429, "temporarily_unavailable")


async def test_only_a_proxy_named_in_the_settings_is_believed(database_url):
    # A proxy elsewhere is named: a loopback peer is not it, so its header is ignored.
    async with auth_service(database_url, http_trusted_proxies="192.0.2.10") as client:
        for n in range(ADDRESS_LIMIT):
            await failed_login(client, n, **{"x-forwarded-for": f"203.0.113.{n}"})
        not_the_proxy = await failed_login(client, 99, **{"x-forwarded-for": "203.0.113.99"})

    # Loopback is the proxy: the client is the last address before it. A client that writes
    # its own X-Forwarded-For through a proxy that appends to it still gets its real address.
    async with auth_service(database_url, http_trusted_proxies="127.0.0.0/8, 192.0.2.10") as client:
        for n in range(ADDRESS_LIMIT):
            forged = f"203.0.113.{n}, 198.51.100.7"
            await failed_login(client, 10 + n, **{"x-forwarded-for": forged})
        same_client = await failed_login(client, 98, **{"x-forwarded-for": "198.51.100.7"})
        other_client = await failed_login(client, 99, **{"x-forwarded-for": "198.51.100.8"})

    assert_oauth_problem(not_the_proxy, 429, "temporarily_unavailable")
    assert_oauth_problem(same_client, 429, "temporarily_unavailable")
    assert_oauth_problem(other_client, 400, "invalid_grant")
