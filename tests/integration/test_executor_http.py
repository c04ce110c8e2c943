"""The `http` strategy against real HTTP servers on loopback: what the target receives (the
stable idempotency key, a signature it can verify, the bodies), how every outcome is classified,
the response-size cap, TLS, and the address guard (SSRF) with and without allowed networks."""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpcore
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from executor_service import ssrf, strategy
from executor_service.settings import Settings
from executor_service.strategies import http
from libs.infra import db
from libs.scheduling import job_types
from libs.security import webhook_secrets, webhooks
from schedctl import embedded

SECRET = "whsec_" + "dGVzdC1zZWNyZXQtb2YtdGhpcnR5LXR3by1ieXRlcyE="  # 32 bytes, made up
OLD_SECRET = "whsec_" + "b2xkLXNlY3JldC1vZi10aGlydHktdHdvLWJ5dGVzISE="
LOOPBACK = "127.0.0.0/8,::1/128"
JOB_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
OWNER_ID = uuid.UUID("00000000-0000-4000-8000-0000000000aa")
SCHEDULED_FOR = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
DEADLINE_S = 10  # for conditions the tests wait on


def settings_for(allowed: str = LOOPBACK, **overrides: Any) -> Settings:
    return Settings(
        database_url="postgresql://unused",
        kafka_bootstrap_servers="unused",
        http_allowed_networks=allowed,
        **overrides,
    )


async def fixed_secrets(_owner_id: uuid.UUID) -> list[str]:
    return [SECRET]


@asynccontextmanager
async def running_strategy(
    secrets: Callable[[uuid.UUID], Awaitable[list[str]]] = fixed_secrets,
    *,
    ssl_context: ssl.SSLContext | None = None,
    allowed: str = LOOPBACK,
    **overrides: Any,
) -> AsyncIterator[http.HttpStrategy]:
    settings = settings_for(allowed, **overrides)
    pool = http.new_pool(settings, ssl_context=ssl_context)
    runner = http.HttpStrategy(pool, settings, secrets)
    try:
        yield runner
    finally:
        await runner.close()


def a_run(*, attempt: int = 1, job_id: uuid.UUID = JOB_ID) -> strategy.Run:
    return strategy.Run(
        execution_id=uuid.uuid4(),
        job_id=job_id,
        owner_id=OWNER_ID,
        type="http",
        scheduled_for=SCHEDULED_FOR,
        attempt=attempt,
        timeout_s=60,
        trace_id="trace-1",
    )


def payload(url: str, **fields: Any) -> job_types.HttpPayload:
    parsed = job_types.JobTypes(job_types.BUILT_IN).parse_payload("http", {"url": url, **fields})
    assert isinstance(parsed, job_types.HttpPayload)
    return parsed


# --- targets -----------------------------------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: Headers
    body: bytes


class Target:
    """A real HTTP server's app that records every request. `/status/{code}` answers `code`
    (with `?say=...` as its body, and a Location for 3xx); `/landing` is where redirects point."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.landings = 0
        self.base_url = ""

    def app(self) -> Starlette:
        async def status(request: Request) -> Response:
            self.requests.append(
                Received(request.method, request.url.path, request.headers, await request.body())
            )
            code = int(request.path_params["code"])
            location = {"Location": f"{self.base_url}/landing"} if 300 <= code < 400 else {}
            return Response(request.query_params.get("say", ""), code, headers=location)

        async def landing(_request: Request) -> Response:
            self.landings += 1
            return Response("landed")

        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        return Starlette(
            routes=[
                Route("/status/{code:int}", status, methods=methods),
                Route("/landing", landing, methods=methods),
            ]
        )

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def url(self, code: int = 200, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/status/{code}"


@pytest.fixture
async def target(serve_app) -> AsyncIterator[Target]:
    recorder = Target()
    async with serve_app(recorder.app()) as base_url:
        recorder.base_url = base_url
        yield recorder


@pytest.fixture
async def runner() -> AsyncIterator[http.HttpStrategy]:
    async with running_strategy() as strategy_:
        yield strategy_


@asynccontextmanager
async def raw_server(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[int]:
    """A TCP server on loopback running `handle` per connection, for what a framework will not
    do (never answer, answer forever); yields its port."""

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client went away: what several tests cause on purpose
        finally:
            writer.close()

    server = await asyncio.start_server(guarded, "127.0.0.1", 0, ssl=ssl_context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


# --- what the target receives ------------------------------------------------------------------


async def test_an_expected_status_succeeds_and_the_request_is_signed(target, runner):
    run = a_run()
    await runner.run(payload(target.url(200), body={"report": "nightly", "n": 1}), run)

    [received] = target.requests
    assert received.method == "POST"
    assert received.body == b'{"report":"nightly","n":1}'  # compact JSON
    assert received.headers["content-type"] == "application/json"
    assert received.headers["user-agent"] == "scheduling-platform-executor"
    assert received.headers["host"] == f"127.0.0.1:{target.port}"
    assert received.headers["webhook-id"] == run.occurrence_key
    assert received.headers["idempotency-key"] == run.occurrence_key
    assert abs(int(received.headers["webhook-timestamp"]) - time.time()) < DEADLINE_S
    webhooks.verify(SECRET, received.headers, received.body, now=int(time.time()))


async def test_every_attempt_of_an_occurrence_carries_the_same_key(target, runner):
    await runner.run(payload(target.url(200), body={"x": 1}), a_run(attempt=1))
    await runner.run(payload(target.url(200), body={"x": 1}), a_run(attempt=2))
    await runner.run(payload(target.url(200), body={"x": 1}), a_run(job_id=uuid.uuid4()))

    first, second, other_job = (r.headers["webhook-id"] for r in target.requests)
    assert first == second
    assert other_job != first
    assert [r.headers["idempotency-key"] for r in target.requests] == [first, second, other_job]


async def test_during_a_rotation_both_secrets_verify(target):
    async def rotating(_owner_id: uuid.UUID) -> list[str]:
        return [SECRET, OLD_SECRET]

    async with running_strategy(rotating) as runner:
        await runner.run(payload(target.url(204), body=[1, 2, 3]), a_run())

    [received] = target.requests
    assert len(received.headers["webhook-signature"].split(" ")) == 2
    for secret in (SECRET, OLD_SECRET):
        webhooks.verify(secret, received.headers, received.body, now=int(time.time()))
    with pytest.raises(webhooks.InvalidSignature):
        webhooks.verify(webhooks.generate_secret(), received.headers, received.body, now=0)


async def test_a_text_body_is_sent_as_utf8_text(target, runner):
    await runner.run(payload(target.url(200), bodyText="héllo, wörld"), a_run())

    [received] = target.requests
    assert received.body == "héllo, wörld".encode()
    assert received.headers["content-type"] == "text/plain; charset=utf-8"
    webhooks.verify(SECRET, received.headers, received.body, now=int(time.time()))


async def test_the_payload_content_type_and_headers_are_kept(target, runner):
    headers = {"Content-Type": "application/vnd.api+json", "X-Team": "ops", "User-Agent": "mine"}
    await runner.run(payload(target.url(200), body={"a": 1}, headers=headers), a_run())

    [received] = target.requests
    assert received.headers.getlist("content-type") == ["application/vnd.api+json"]
    assert received.headers["x-team"] == "ops"
    assert received.headers.getlist("user-agent") == ["mine"]


async def test_a_get_sends_no_body_and_signs_the_empty_body(target, runner):
    await runner.run(payload(target.url(200), method="GET"), a_run())

    [received] = target.requests
    assert received.method == "GET"
    assert received.body == b""
    assert "content-length" not in received.headers
    assert "content-type" not in received.headers
    webhooks.verify(SECRET, received.headers, b"", now=int(time.time()))


async def test_a_post_without_a_body_says_so(target, runner):
    await runner.run(payload(target.url(200)), a_run())

    [received] = target.requests
    assert received.headers["content-length"] == "0"
    webhooks.verify(SECRET, received.headers, b"", now=int(time.time()))


# --- classification ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected_status", "failure", "kind"),
    [
        (200, ["2xx"], None, None),
        (204, ["2xx"], None, None),
        (201, ["201"], None, None),
        (404, ["2xx", "404"], None, None),  # a status the job expects succeeds, whatever it is
        (500, ["5xx"], None, None),
        (400, ["2xx"], strategy.PermanentFailure, "http_4xx"),
        (401, ["2xx"], strategy.PermanentFailure, "http_4xx"),
        (404, ["2xx"], strategy.PermanentFailure, "http_4xx"),
        (410, ["2xx"], strategy.TargetGone, "gone"),  # the job is paused (test_executor_gone)
        (410, ["2xx", "410"], None, None),
        (408, ["2xx"], strategy.TransientFailure, "http_408"),
        (429, ["2xx"], strategy.TransientFailure, "http_429"),
        (500, ["2xx"], strategy.TransientFailure, "http_5xx"),
        (503, ["2xx"], strategy.TransientFailure, "http_5xx"),
        (200, ["204"], strategy.PermanentFailure, "unexpected_status"),
        (304, ["2xx"], strategy.PermanentFailure, "http_3xx"),
    ],
)
async def test_statuses_are_classified(target, runner, code, expected_status, failure, kind):
    job = payload(target.url(code), expectedStatus=expected_status)
    if failure is None:
        await runner.run(job, a_run())
        return
    with pytest.raises(strategy.Failure) as caught:
        await runner.run(job, a_run())
    assert type(caught.value) is failure
    assert caught.value.kind == kind
    assert f"HTTP {code}" in str(caught.value)


async def test_a_redirect_is_not_followed(target, runner):
    with pytest.raises(strategy.PermanentFailure) as caught:
        await runner.run(payload(target.url(302)), a_run())
    assert caught.value.kind == "http_3xx"
    assert "redirects are not followed" in str(caught.value)
    assert len(target.requests) == 1
    assert target.landings == 0


async def test_a_failure_quotes_the_body_briefly_and_never_the_request_headers(target, runner):
    url = target.url(500) + "?say=" + "database%20down%20" * 40
    job = payload(url, headers={"Authorization": "Bearer s3cr3t-token"})
    with pytest.raises(strategy.TransientFailure) as caught:
        await runner.run(job, a_run())

    message = str(caught.value)
    assert message.startswith("HTTP 500: database down database down")
    assert len(message) <= len("HTTP 500: ") + http.ERROR_EXCERPT_CHARS
    assert "s3cr3t" not in message
    assert SECRET.removeprefix("whsec_") not in message


async def test_a_target_that_never_answers_times_out_at_the_payload_timeout(runner):
    async def silent(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes

    async with raw_server(silent) as port:
        started = time.monotonic()
        with pytest.raises(strategy.TransientFailure) as caught:
            await runner.run(payload(f"http://127.0.0.1:{port}/", timeoutSeconds=1), a_run())
        elapsed = time.monotonic() - started

    assert caught.value.kind == "timeout"
    assert 0.9 <= elapsed < 1 + DEADLINE_S / 2


async def test_a_refused_connection_is_transient(runner):
    port = embedded.free_port()  # nothing listens there
    with pytest.raises(strategy.TransientFailure) as caught:
        await runner.run(payload(f"http://127.0.0.1:{port}/hook"), a_run())
    assert caught.value.kind == "connection_error"
    assert "127.0.0.1" in str(caught.value)


async def test_a_target_that_closes_without_answering_is_transient(runner):
    async def hang_up(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")

    async with raw_server(hang_up) as port:
        with pytest.raises(strategy.TransientFailure) as caught:
            await runner.run(payload(f"http://127.0.0.1:{port}/"), a_run())
    assert caught.value.kind == "connection_error"


async def test_an_unresolvable_host_is_transient(runner):
    job = payload("http://does-not-exist.invalid/hook", timeoutSeconds=3)
    with pytest.raises(strategy.TransientFailure) as caught:
        await runner.run(job, a_run())
    assert caught.value.kind in ("connection_error", "timeout")  # timeout without a resolver


async def test_a_url_with_another_scheme_is_refused_as_invalid(runner):
    # Validation refuses such a URL before the executor; the strategy still does not trust it.
    job = job_types.HttpPayload.model_construct(url="ftp://example.com/file")
    with pytest.raises(strategy.PermanentFailure) as caught:
        await runner.run(job, a_run())
    assert caught.value.kind == "invalid_url"
    assert "example.com" not in str(caught.value)


@pytest.mark.parametrize(("code", "outcome"), [(200, None), (500, "http_5xx")])
async def test_an_oversized_response_is_cut_at_the_cap_and_still_classified(code, outcome):
    declared = 1 << 30  # a 1 GiB body, which the executor must not read
    chunk = b"x" * 65_536
    sent = 0
    finished = asyncio.Event()

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 %d Whatever\r\nContent-Length: %d\r\n\r\n" % (code, declared))
        try:
            while sent < declared:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
        finally:
            finished.set()

    async with (
        running_strategy(http_max_response_bytes=1024) as runner,
        raw_server(endless) as port,
    ):
        started = time.monotonic()
        job = payload(f"http://127.0.0.1:{port}/", timeoutSeconds=30)
        if outcome is None:
            await runner.run(job, a_run())
        else:
            with pytest.raises(strategy.TransientFailure) as caught:
                await runner.run(job, a_run())
            assert caught.value.kind == outcome
            assert str(caught.value) == f"HTTP {code}: " + "x" * http.ERROR_EXCERPT_CHARS
        assert time.monotonic() - started < DEADLINE_S
        # The executor closed the connection: the server's writes fail long before 1 GiB.
        async with asyncio.timeout(DEADLINE_S):
            await finished.wait()
    assert sent < 64 * 1024 * 1024


# --- TLS ---------------------------------------------------------------------------------------


def _certificates(folder: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context whose certificate names `localhost` only (no IP address), signed by a
    fresh CA, and a client context that trusts that CA."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "server.pem").write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(folder / "server.pem")
    client = ssl.create_default_context(
        cadata=ca_cert.public_bytes(serialization.Encoding.PEM).decode()
    )
    return server, client


async def test_tls_verifies_the_certificate_against_the_host_name(tmp_path):
    server_context, client_context = _certificates(tmp_path)
    answered = 0

    async def ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        await reader.readuntil(b"\r\n\r\n")
        answered += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    async with (
        raw_server(ok, ssl_context=server_context) as port,
        running_strategy(ssl_context=client_context) as runner,
    ):
        # The guard connects to 127.0.0.1, yet the certificate (for "localhost") verifies: the
        # handshake uses the URL's host name.
        await runner.run(payload(f"https://localhost:{port}/hook"), a_run())
        assert answered == 1

        # The same server by address: the certificate does not name it, so the handshake fails.
        with pytest.raises(strategy.TransientFailure) as caught:
            await runner.run(payload(f"https://127.0.0.1:{port}/hook"), a_run())
        assert caught.value.kind == "connection_error"
        assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
        assert answered == 1


# --- the address guard -------------------------------------------------------------------------

LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "localhost",  # a name that resolves to loopback
    "2130706433",  # 127.0.0.1 as one decimal number
    "0x7f000001",  # ... as hexadecimal
    "127.1",  # ... with the zeros left out
    "0177.0.0.1",  # ... with an octal first part
]


@pytest.mark.parametrize("host", [*LOOPBACK_SPELLINGS, "[::1]", "[::ffff:127.0.0.1]"])
async def test_non_public_addresses_are_refused_before_connecting(target, host):
    url = f"{target.url(200, host)}?token=hunter2"
    async with running_strategy(allowed="") as runner:
        with pytest.raises(strategy.PermanentFailure) as caught:
            await runner.run(payload(url), a_run())

    assert caught.value.kind == "address_not_allowed"
    message = str(caught.value)
    assert host.strip("[]") in message
    assert "hunter2" not in message
    assert "/status" not in message
    assert target.requests == []  # the server never saw a request


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
async def test_allowed_networks_let_loopback_through(target, runner, host):
    await runner.run(payload(target.url(200, host)), a_run())
    [received] = target.requests
    assert received.headers["host"] == f"{host}:{target.port}"


async def test_an_allowed_network_does_not_allow_others(target):
    async with running_strategy(allowed="10.0.0.0/8") as runner:
        with pytest.raises(strategy.PermanentFailure) as caught:
            await runner.run(payload(target.url(200)), a_run())
    assert caught.value.kind == "address_not_allowed"
    assert target.requests == []


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """httpcore's real backend, noting the host each connection is opened to."""

    def __init__(self) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.hosts: list[str] = []

    async def connect_tcp(self, host: str, port: int, **options: Any) -> Any:
        self.hosts.append(host)
        return await self.inner.connect_tcp(host, port, **options)


async def test_the_guard_connects_to_the_vetted_address_not_the_name_again(target):
    recording = RecordingBackend()
    guard = ssrf.GuardedBackend(settings_for().allowed_networks, backend=recording)
    stream = await guard.connect_tcp("localhost", target.port, timeout=DEADLINE_S)
    await stream.aclose()
    assert recording.hosts == ["127.0.0.1"]  # no second resolution to rebind


async def test_unix_sockets_are_refused():
    with pytest.raises(ssrf.AddressNotAllowed):
        await ssrf.GuardedBackend(settings_for().allowed_networks).connect_unix_socket(
            "/var/run/docker.sock"
        )


# --- the owner's stored secrets ---------------------------------------------------------------


async def test_the_factory_signs_with_the_owners_stored_secrets(database_url, target):
    engine = db.create_engine(database_url)
    sessions = db.session_factory(engine)
    # The http strategy publishes nothing: it needs no producer.
    resources = strategy.Resources(settings=settings_for(), sessions=sessions, producer=None)
    try:
        runner = http.create(resources)
        try:
            await runner.run(payload(target.url(200), body={"a": 1}), a_run())
        finally:
            await runner.close()
        async with db.unit_of_work(sessions) as session:
            first = await webhook_secrets.show(session, OWNER_ID)  # created by the run
            second = await webhook_secrets.rotate(session, OWNER_ID, grace_s=3600)

        runner = http.create(resources)  # a fresh cache: the rotation shows at once
        try:
            await runner.run(payload(target.url(200), body={"a": 2}), a_run())
        finally:
            await runner.close()
    finally:
        await engine.dispose()

    before, after = target.requests
    now = int(time.time())
    webhooks.verify(first.secret, before.headers, before.body, now=now)
    assert len(after.headers["webhook-signature"].split(" ")) == 2
    webhooks.verify(second.secret, after.headers, after.body, now=now)
    webhooks.verify(first.secret, after.headers, after.body, now=now)  # the grace period


# --- the secrets cache -------------------------------------------------------------------------


class Loads:
    """A secrets source that counts its loads; `gate` holds them until set."""

    def __init__(self) -> None:
        self.count = 0
        self.started = asyncio.Event()
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_next = False

    async def __call__(self, owner_id: uuid.UUID) -> list[str]:
        self.count += 1
        self.started.set()
        await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("database unavailable")
        return [f"whsec_{owner_id.hex}"]


async def test_the_cache_reuses_an_owners_secrets_until_the_ttl_passes():
    loads, now = Loads(), [100.0]
    cache = http.SecretsCache(loads, ttl_s=30, clock=lambda: now[0])
    owner, other = uuid.uuid4(), uuid.uuid4()

    assert await cache(owner) == [f"whsec_{owner.hex}"]
    now[0] += 29.9
    assert await cache(owner) == [f"whsec_{owner.hex}"]
    assert loads.count == 1
    assert await cache(other) == [f"whsec_{other.hex}"]  # keyed by owner
    assert loads.count == 2
    now[0] += 0.1
    await cache(owner)
    assert loads.count == 3
    await cache.aclose()


async def test_concurrent_misses_share_one_load_and_survive_a_cancelled_waiter():
    loads = Loads()
    loads.gate.clear()
    cache = http.SecretsCache(loads)
    owner = uuid.uuid4()

    waiters = [asyncio.create_task(cache(owner)) for _ in range(5)]
    async with asyncio.timeout(DEADLINE_S):
        await loads.started.wait()
    waiters[0].cancel()  # one run times out while the load is under way
    loads.gate.set()
    results = await asyncio.gather(*waiters[1:])

    assert loads.count == 1
    assert results == [[f"whsec_{owner.hex}"]] * 4
    assert waiters[0].cancelled()
    await cache.aclose()


async def test_a_failed_load_is_not_cached():
    loads = Loads()
    loads.fail_next = True
    cache = http.SecretsCache(loads)
    owner = uuid.uuid4()

    with pytest.raises(ConnectionError):
        await cache(owner)
    assert await cache(owner) == [f"whsec_{owner.hex}"]
    assert loads.count == 2
    await cache.aclose()
