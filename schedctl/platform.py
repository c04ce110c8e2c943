"""`schedctl up`: the whole platform on one machine, in the foreground.

Starts, in order: the embedded PostgreSQL (unless `database.url` names one), the embedded
Kafka-compatible broker (unless `kafka.bootstrap.servers` names one), the migrations, one
process of every service; waits until every `/readyz` answers 200; creates the first admin
account if there is none; prints where everything is. Ctrl-C or SIGTERM stops what it started,
in reverse order, each part given time to finish. A part that cannot start (a taken port, a
crash, a timeout) is named, with the end of its log, and everything started is stopped.

Where `up` keeps the platform (its database, the key of its signing keys in the data folder) is
told by `database_url` and `auth_signing_settings`, which commands acting on a running local
platform (`schedctl rotate-signing-key`) use too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, TextIO

import asyncpg
import httpx
from pydantic import Field, SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from libs.infra import config
from libs.store import migrate
from schedctl import embedded
from user_service import bootstrap

DATABASE_NAME = "scheduler"
LOG_TAIL_LINES = 20
SERVICE_STOP_TIMEOUT_S = 30.0
EMBEDDED_BROKER_FETCH_WAIT_MS = 50  # executors on the embedded broker (see _start_service)
# In the data folder: the key that encrypts the auth service's signing keys at rest.
KEY_ENCRYPTION_KEY_FILE = Path("secrets", "signing-key-encryption-key")


class PlatformSettings(config.ServiceSettings):
    """Settings of `schedctl up` (file `schedctl.properties`, or the environment)."""

    service_name: ClassVar[str] = "schedctl"

    # Unset: the embedded ones are started. Set: the platform uses these instead.
    database_url: SecretStr | None = None
    kafka_bootstrap_servers: str | None = None

    data_dir: Path = Path(".local")
    # Named so that no orchestrator's service-link variable (`POSTGRES_PORT=tcp://...`,
    # `JOB_SERVICE_PORT=tcp://...`) can be read as one of them.
    embedded_postgres_port: int = Field(default=54329, ge=1, le=65535)
    embedded_broker_port: int = Field(default=19092, ge=1, le=65535)
    job_service_http_port: int = Field(default=8000, ge=1, le=65535)
    user_service_http_port: int = Field(default=8001, ge=1, le=65535)
    auth_service_http_port: int = Field(default=8002, ge=1, le=65535)
    scheduler_service_http_port: int = Field(default=8003, ge=1, le=65535)
    executor_service_http_port: int = Field(default=8004, ge=1, le=65535)
    console_service_http_port: int = Field(default=8005, ge=1, le=65535)
    admin_email: str = "admin@example.com"
    ready_timeout_s: float = Field(default=90.0, gt=0)
    # Handed to the executor and the job service as HTTP_ALLOWED_NETWORKS (the job service
    # refuses at creation what the executor would refuse to call). `make up` is a local
    # development platform, so jobs may call services on this machine; production executors
    # default to public addresses only.
    executor_http_allowed_networks: str = "127.0.0.0/8,::1/128"


@dataclass(frozen=True)
class Service:
    package: str
    title: str
    public: bool  # has an API for clients (the others serve only health and metrics)
    console: bool = False  # the web console: pages for people, a client of the APIs


SERVICES = (
    Service("user_service", "user service", public=True),
    Service("auth_service", "auth service", public=True),
    Service("job_service", "job service", public=True),
    Service("scheduler_service", "scheduler", public=False),
    Service("executor_service", "executor", public=False),
    Service("console_service", "console", public=False, console=True),
)


class PlatformError(Exception):
    """A part of the platform could not start; the message names it."""


class StopRequested(BaseException):
    """Ctrl-C or SIGTERM: stop everything, cleanly. (BaseException: no handler swallows it.)"""


def _raise_stop(signum: int, _frame: object) -> None:
    raise StopRequested(signal.Signals(signum).name)


def database_url(settings: PlatformSettings) -> str:
    """The database of the platform `up` runs with `settings`: the configured one, else the
    `scheduler` database of the embedded PostgreSQL."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    return embedded.postgres_url(settings.embedded_postgres_port, DATABASE_NAME)


def key_encryption_key(data_dir: Path, *, create: bool = False) -> str | None:
    """The local platform's key for signing keys at rest, kept in its data folder, readable by
    its owner only; made when `create` (the first `up`), else None where there is none."""
    path = data_dir / KEY_ENCRYPTION_KEY_FILE
    if create and not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(base64.b64encode(secrets.token_bytes(32)).decode())
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None


def auth_signing_settings(settings: PlatformSettings) -> dict[str, str] | None:
    """What `up` gives the local platform's auth service to reach its signing keys (database
    and encryption key), as auth-service settings, for a command acting on those keys; None
    when the data folder holds no platform (`up` never ran with it)."""
    key = key_encryption_key(settings.data_dir.resolve())
    if key is None:
        return None
    return {"database_url": database_url(settings), "signing_key_encryption_key": key}


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        content = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(f"    {line}" for line in content[-lines:])


class Platform:
    def __init__(self, settings: PlatformSettings, out: TextIO = sys.stdout):
        self.settings = settings
        self.out = out
        self.data_dir = settings.data_dir.resolve()
        self.logs = self.data_dir / "logs"
        self.stack = contextlib.ExitStack()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def say(self, message: str) -> None:
        print(message, file=self.out, flush=True)

    def port_of(self, service: Service) -> int:
        return getattr(self.settings, f"{service.package}_http_port")

    def _check_ports(self) -> None:
        wanted = {f"{s.title} ({s.package})": self.port_of(s) for s in SERVICES}
        if self.settings.database_url is None:
            wanted["embedded PostgreSQL"] = self.settings.embedded_postgres_port
        if self.settings.kafka_bootstrap_servers is None:
            wanted["embedded Kafka broker"] = self.settings.embedded_broker_port
        seen: dict[int, str] = {}
        for part, port in wanted.items():
            if port in seen:
                raise PlatformError(f"{part} and {seen[port]} are both configured on port {port}")
            seen[port] = part
            if not embedded.port_is_free(port):
                raise PlatformError(f"{part}: port {port} is already in use")

    def _start_postgres(self) -> str:
        if self.settings.database_url is None:
            server = embedded.EmbeddedPostgres(
                self.data_dir / "postgres",
                self.settings.embedded_postgres_port,
                log_path=self.logs / "postgres.log",
            )
            self.stack.callback(server.stop)
            server.start()
            asyncio.run(_create_database(server.url, DATABASE_NAME))
        return database_url(self.settings)

    def _start_broker(self) -> str:
        if self.settings.kafka_bootstrap_servers is not None:
            return self.settings.kafka_bootstrap_servers
        broker = embedded.EmbeddedBroker(
            self.settings.embedded_broker_port, log_path=self.logs / "broker.log"
        )
        self.stack.callback(broker.stop)
        broker.start()
        return broker.bootstrap_servers

    def _start_service(self, service: Service, database_url: str, bootstrap_servers: str) -> None:
        auth_port = self.settings.auth_service_http_port
        auth_url = f"http://127.0.0.1:{auth_port}"
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(self.port_of(service)),
            "ENVIRONMENT": "development",
            "LOG_FORMAT": os.environ.get("LOG_FORMAT", "json"),
            "AUTH_ISSUER": auth_url,
            "AUTH_JWKS_URL": f"{auth_url}/.well-known/jwks.json",
        }
        if service.package == "auth_service":  # the only holder of private keys
            key = key_encryption_key(self.data_dir, create=True)
            assert key is not None  # made if it was missing
            env["SIGNING_KEY_ENCRYPTION_KEY"] = key
        if service.console:  # a client of the three APIs, at their local addresses
            for api, port in (("jobs", self.settings.job_service_http_port),
                              ("users", self.settings.user_service_http_port),
                              ("auth", auth_port)):  # fmt: skip
                env[f"{api.upper()}_API_URL"] = f"http://127.0.0.1:{port}"
        if service.package in ("executor_service", "job_service"):
            # One value for both: the job service's check at creation is the executor's rule.
            env["HTTP_ALLOWED_NETWORKS"] = self.settings.executor_http_allowed_networks
        if service.package == "executor_service":
            if self.settings.kafka_bootstrap_servers is None:
                # The embedded broker looks for messages only at points of a fetch's wait, so
                # a notification during an empty fetch waits for its next look: keep it short.
                env["KAFKA_FETCH_MAX_WAIT_MS"] = str(EMBEDDED_BROKER_FETCH_WAIT_MS)
        log = (self.logs / f"{service.package}.log").open("ab")
        try:
            proc = embedded.spawn([sys.executable, "-m", service.package], log=log, env=env)
        finally:
            log.close()
        self.processes[service.package] = proc
        self.stack.callback(self._stop_service, service)

    def _stop_service(self, service: Service) -> None:
        proc = self.processes.pop(service.package)
        embedded.stop_process(proc, signal.SIGTERM, SERVICE_STOP_TIMEOUT_S)

    def _wait_ready(self, deadline: float) -> None:
        pending = {s.package: s for s in SERVICES}
        with httpx.Client(timeout=1.0) as client:
            while pending:
                for package, service in list(pending.items()):
                    proc = self.processes[package]
                    if proc.poll() is not None:
                        raise PlatformError(
                            f"{service.title} ({package}) exited with code {proc.returncode} "
                            f"while starting; end of {self.logs / (package + '.log')}:\n"
                            + _tail(self.logs / f"{package}.log")
                        )
                    url = f"http://127.0.0.1:{self.port_of(service)}/readyz"
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(url).status_code == 200:
                            del pending[package]
                if pending and time.monotonic() > deadline:
                    names = ", ".join(pending)
                    raise PlatformError(
                        f"not ready after {self.settings.ready_timeout_s:.0f} s: {names}"
                    )
                if pending:
                    time.sleep(embedded.POLL_INTERVAL_S * 4)

    def _migrate(self, database_url: str) -> None:
        try:
            migrate.upgrade(database_url)
        except (OSError, SQLAlchemyError) as exc:
            shown = make_url(database_url).render_as_string(hide_password=True)
            raise PlatformError(f"migrations on {shown} failed: {type(exc).__name__}") from exc

    def start(self) -> None:
        started = time.monotonic()
        deadline = started + self.settings.ready_timeout_s
        self.logs.mkdir(parents=True, exist_ok=True)
        self._check_ports()
        try:
            database_url = self._start_postgres()
            bootstrap_servers = self._start_broker()
        except embedded.EmbeddedError as exc:
            raise PlatformError(str(exc)) from exc
        self._migrate(database_url)
        for service in SERVICES:
            self._start_service(service, database_url, bootstrap_servers)
        self._wait_ready(deadline)
        password = asyncio.run(
            bootstrap.ensure_first_admin(database_url, self.settings.admin_email)
        )
        self._print_summary(time.monotonic() - started, database_url, bootstrap_servers, password)

    def _print_summary(
        self, elapsed: float, database_url: str, bootstrap_servers: str, password: str | None
    ) -> None:
        self.say(f"Platform ready in {elapsed:.1f} s")
        for service in SERVICES:
            if service.console:
                self.say(f"Open the console: http://127.0.0.1:{self.port_of(service)}")
        for service in SERVICES:
            url = f"http://127.0.0.1:{self.port_of(service)}"
            extra = f"  (API docs: {url}/docs)" if service.public else "  (health and metrics)"
            if service.console:
                extra = "  (web console: sign in with the admin account below)"
            self.say(f"  {service.title:<18}{url}{extra}")
        shown_db = make_url(database_url).render_as_string(hide_password=True)
        db_kind = "external"
        if self.settings.database_url is None:
            db_kind = f"embedded, data in {self.data_dir / 'postgres'}"
        self.say(f"  {'PostgreSQL':<18}{shown_db}  ({db_kind})")
        kafka_kind = "external"
        if self.settings.kafka_bootstrap_servers is None:
            kafka_kind = "embedded, in memory"
        self.say(f"  {'Kafka':<18}{bootstrap_servers}  ({kafka_kind})")
        self.say(f"  {'logs':<18}{self.logs}")
        if password is None:
            self.say("An admin account exists already; its credentials are unchanged.")
        else:
            self.say("First admin account (the password is shown only now):")
            self.say(f"  email:    {self.settings.admin_email}")
            self.say(f"  password: {password}")
        self.say("Press Ctrl-C to stop.")

    def watch(self) -> None:
        """Block until a signal arrives; a service that dies stops the platform."""
        while True:
            for package, proc in self.processes.items():
                if proc.poll() is not None:
                    raise PlatformError(
                        f"{package} exited with code {proc.returncode}; end of its log:\n"
                        + _tail(self.logs / f"{package}.log")
                    )
            time.sleep(0.5)

    def stop(self) -> None:
        self.stack.close()


async def _create_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        # While stopping, further signals are ignored: every stop step has its own timeout.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)


def up(settings: PlatformSettings) -> int:
    """Run the platform until a signal; the exit code says whether it stopped cleanly."""
    platform = Platform(settings)
    code = 0
    try:
        with _stop_on_signals():
            try:
                platform.start()
                platform.watch()
            except StopRequested as stop:
                platform.say(f"Stopping ({stop}) ...")
    except PlatformError as exc:
        print(f"schedctl up: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        platform.stop()
    platform.say("Stopped.")
    return code
