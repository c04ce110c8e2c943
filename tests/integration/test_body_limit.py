"""The request-body limit (`libs.infra.web.BodyLimit`) of a service app served on real loopback
HTTP.

A body over the limit is refused with a 413 problem document whether the client announces its
length (Content-Length) or streams it (chunked), and whether the route reads the body itself or
has FastAPI parse it into a model.

A malformed Content-Length never reaches the app over HTTP/1.1: the server (uvicorn's h11)
cannot tell where the request ends and answers 400 itself, before any middleware runs. An ASGI
server that passed such a header through would get a 413 from `BodyLimit`, which treats a length
it cannot read as too large; both refusals are tested below.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar
from urllib.parse import urlsplit

import fastapi
import httpx
import pytest
import structlog.testing

from libs.contracts import problems
from libs.infra import web
from libs.infra.config import ServiceSettings

UNUSED_DATABASE_URL = "postgresql://unused@127.0.0.1/unused"  # never connected to
LIMIT_BYTES = 2048
CHUNK_BYTES = 512
DEADLINE_S = 10.0
ROUTES = ["/length", "/document"]  # reads the body itself / FastAPI parses it


class ProbeSettings(ServiceSettings):
    service_name: ClassVar[str] = "probe"


@asynccontextmanager
async def no_resources(_app: fastapi.FastAPI) -> AsyncIterator[dict[str, web.Check]]:
    yield {}


def limited_app() -> fastapi.FastAPI:
    router = fastapi.APIRouter()

    # Documents the body it reads itself, as a route must to be sent one
    # (libs.infra.undeclared_input).
    @router.post("/length", openapi_extra={"requestBody": {"content": {"*/*": {}}}})
    async def length(request: fastapi.Request) -> dict[str, int]:
        return {"length": len(await request.body())}

    @router.post("/document")
    async def document(body: dict[str, Any]) -> dict[str, int]:
        return {"length": len(body["data"])}

    settings = ProbeSettings(database_url=UNUSED_DATABASE_URL, http_max_body_bytes=LIMIT_BYTES)
    return web.create_app(settings, title="Probe", lifespan=no_resources, routers=[router])


@pytest.fixture
async def base_url(serve_app) -> AsyncIterator[str]:
    async with serve_app(limited_app()) as url:
        yield url


@pytest.fixture
async def client(base_url) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=DEADLINE_S) as client:
        yield client


def json_body(total_bytes: int) -> bytes:
    """A JSON object `{"data": "xxx..."}` of exactly `total_bytes` bytes."""
    envelope = b'{"data": ""}'
    return envelope[:-2] + b"x" * (total_bytes - len(envelope)) + envelope[-2:]


async def chunked(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), CHUNK_BYTES):
        yield body[start : start + CHUNK_BYTES]


def expected_length(path: str, body: bytes) -> int:
    return len(body) if path == "/length" else len(body) - len(b'{"data": ""}')


def assert_too_large(response: httpx.Response, path: str) -> None:
    assert response.status_code == 413
    assert response.headers["content-type"] == problems.MEDIA_TYPE
    assert response.json() == {
        "type": problems.TYPE_BASE + "payload-too-large",
        "title": "Payload too large",
        "status": 413,
        "detail": f"the request body exceeds {LIMIT_BYTES} bytes",
        "instance": path,
    }


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("size", [1024, LIMIT_BYTES], ids=["1KiB", "at-the-limit"])
async def test_a_body_within_the_limit_is_accepted(client, path, size):
    body = json_body(size)

    response = await client.post(path, content=body, headers={"content-type": "application/json"})

    assert response.status_code == 200
    assert response.json() == {"length": expected_length(path, body)}


@pytest.mark.parametrize("path", ROUTES)
async def test_a_small_chunked_body_is_accepted(client, path):
    body = json_body(1024)

    response = await client.post(
        path, content=chunked(body), headers={"content-type": "application/json"}
    )

    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 200
    assert response.json() == {"length": expected_length(path, body)}


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("size", [LIMIT_BYTES + 1, 4096], ids=["one-byte-over", "4KiB"])
async def test_a_body_over_the_limit_with_a_content_length_is_a_413(client, path, size):
    response = await client.post(
        path, content=json_body(size), headers={"content-type": "application/json"}
    )

    assert response.request.headers["content-length"] == str(size)
    assert_too_large(response, path)


@pytest.mark.parametrize("path", ROUTES)
async def test_a_chunked_body_over_the_limit_is_a_413(client, path):
    with structlog.testing.capture_logs() as logs:
        response = await client.post(
            path, content=chunked(json_body(4096)), headers={"content-type": "application/json"}
        )

    assert "content-length" not in response.request.headers
    assert_too_large(response, path)
    # Refused as a client error, not logged as a failure of the service.
    assert [entry for entry in logs if entry["event"] == "request_failed"] == []


async def test_the_service_keeps_serving_after_refusing_a_body(client):
    await client.post("/length", content=chunked(json_body(4096)))

    response = await client.post("/length", content=b"{}")

    assert response.json() == {"length": 2}


async def raw_exchange(base_url: str, request: bytes) -> bytes:
    """Send `request` as written on a fresh TCP connection; the server's answer, until it
    closes the connection."""
    address = urlsplit(base_url)
    async with asyncio.timeout(DEADLINE_S):
        reader, writer = await asyncio.open_connection(address.hostname, address.port)
        try:
            writer.write(request)
            await writer.drain()
            return await reader.read()
        finally:
            writer.close()
            await writer.wait_closed()


@pytest.mark.parametrize("length", [b"abc", b"-1", b"0x10", b"1e3", b""])
async def test_a_malformed_content_length_is_refused_by_the_server_with_400(base_url, length):
    request = (
        b"POST /length HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n"
        b"Content-Length: " + length + b"\r\n\r\n{}"
    )

    answer = await raw_exchange(base_url, request)

    assert answer.startswith(b"HTTP/1.1 400 ")


async def test_a_well_formed_raw_request_gets_through(base_url):
    # The control for the test above: the same request with a valid length is answered.
    request = (
        b"POST /length HTTP/1.1\r\nHost: probe\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
    )

    answer = await raw_exchange(base_url, request)

    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b'{"length":2}')


@pytest.mark.parametrize("length", ["abc", "-1", "+12", "1e3", "", " 12"])
async def test_a_malformed_content_length_reaching_the_app_is_a_413(length):
    # As an ASGI server that does not check the header would pass it on.
    transport = httpx.ASGITransport(app=limited_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:
        request = client.build_request("POST", "/length", content=b"{}")
        request.headers["content-length"] = length
        response = await client.send(request)

    assert_too_large(response, "/length")
