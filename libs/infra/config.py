"""Typed settings for every service, from defaults, `.properties` files and the environment.

Precedence, lowest first: the defaults in the settings class; the `.properties` files named by
`CONFIG_LOCATION` (or `SPRING_CONFIG_LOCATION` when `CONFIG_LOCATION` is unset), later files
overriding earlier ones; then environment variables. `CONFIG_LOCATION` is a comma-separated list
of files and folders; an `optional:` prefix lets an entry be absent. A folder contributes
`service.properties`, `secrets.properties` and `<service>.properties`, in that order, each if
present.

A key is matched to a setting whatever its separators and case: `database.url`,
`database-url` and `DATABASE_URL` all set `database_url`. Keys a service does not know are
ignored in shared files (other services read them too), but refused in the service's own
`<service>.properties`, where a typo would otherwise silently do nothing.

Everything that goes wrong becomes one `ConfigError` whose message names the file and line or
the setting, never a secret's value. This is the only module that reads the environment.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

LOCATION_VARIABLES = ("CONFIG_LOCATION", "SPRING_CONFIG_LOCATION")
OPTIONAL_PREFIX = "optional:"
SHARED_FILES = ("service.properties", "secrets.properties")
TOPIC_NAME = r"^[A-Za-z0-9._-]{1,249}$"  # Kafka's own rule for topic names

S = TypeVar("S", bound="ServiceSettings")
Port = Annotated[int, Field(ge=1, le=65535)]

# pydantic-settings builds its sources inside the settings class; `load` hands them the
# entries of the files it read through this variable, for the duration of one construction.
_ENTRIES: ContextVar[Mapping[str, Entry]] = ContextVar(
    "config_entries", default=MappingProxyType({})
)


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file, line or setting."""


@dataclass(frozen=True)
class Entry:
    """One `key=value` line of a properties file, and where it came from."""

    value: str
    path: Path
    line: int

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class PropertiesFile:
    path: Path
    optional: bool
    own: bool  # the service's own `<service>.properties`: unknown keys are errors there


def normalise_key(key: str) -> str:
    """`database.url`, `Database-URL` and `DATABASE_URL` are all `database_url`."""
    return re.sub(r"[.\-]", "_", key.strip()).lower()


_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|u|.|$)", re.DOTALL)
# The properties format's whitespace (Java's): not Python's wider `str.isspace`, so a value may
# start with, say, a no-break space.
_WHITESPACE = " \t\f"
# Only these end a line; `str.splitlines` would also split at \x0b, \x0c, \x1c-\x1e, \x85,
# \u2028 and \u2029, which may stand in a value, and would shift every later line number.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# The key ends at the first `=` or `:` not escaped by a backslash (itself possibly escaped).
_KEY = re.compile(r"((?:\\.|[^\\=:])*)[=:]", re.DOTALL)


def _unescape(raw: str, where: str) -> str:
    def replace(match: re.Match[str]) -> str:
        code = match.group(1)
        if code.startswith("u") and len(code) == 5:
            return chr(int(code[1:], 16))
        if code == "u":
            raise ConfigError(f"{where}: malformed \\u escape, expected four hex digits")
        return _ESCAPES.get(code, code)

    text = _ESCAPE.sub(replace, raw)
    try:  # `\ud83d\ude00` is one character written as its UTF-16 surrogate pair, as in Java
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: malformed \\u escape, unpaired surrogate") from None


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash-continued lines; each result carries the number of its first line."""
    result: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(_LINE_BREAK.split(text), start=1):
        line = raw.lstrip(_WHITESPACE) if pending else raw
        if not pending:
            start = number
            stripped = line.lstrip(_WHITESPACE)
            if not stripped or stripped[0] in "#!":
                continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:  # an odd number of backslashes continues the line
            pending.append(line[:-1])
            continue
        pending.append(line)
        result.append((start, "".join(pending)))
        pending = []
    if pending:
        result.append((start, "".join(pending)))
    return result


def parse_properties(text: str, path: Path) -> dict[str, Entry]:
    """Parse Java-style properties: `key=value` or `key: value`, `#`/`!` comments, `\\` escapes
    and continuation lines. A line with no separator or an empty key is a `ConfigError`.

    As in Java, whitespace around the key and before the value is dropped, but whitespace at the
    end of the value is part of it."""
    entries: dict[str, Entry] = {}
    for number, line in _logical_lines(text):
        where = f"{path}:{number}"
        match = _KEY.match(line)
        if match is None:
            raise ConfigError(f"{where}: malformed line, expected 'key=value'")
        key = _unescape(match.group(1).strip(_WHITESPACE), where)
        if not key:
            raise ConfigError(f"{where}: malformed line, the key is empty")
        if "\x00" in line:
            raise ConfigError(f"{where}: malformed line, NUL byte")
        value = _unescape(line[match.end() :].lstrip(_WHITESPACE), where)
        entries[normalise_key(key)] = Entry(value=value, path=path, line=number)
    return entries


def config_location(environ: Mapping[str, str]) -> str:
    for name in LOCATION_VARIABLES:
        value = environ.get(name, "").strip()
        if value:
            return value
    return ""


def properties_files(location: str, service: str) -> list[PropertiesFile]:
    """The files a `CONFIG_LOCATION` value names for `service`, in the order they apply."""
    files: list[PropertiesFile] = []
    for item in (part.strip() for part in location.split(",")):
        if not item:
            continue
        optional = item.startswith(OPTIONAL_PREFIX)
        if optional:
            item = item[len(OPTIONAL_PREFIX) :]
        item = item.removeprefix("file:")
        path = Path(item).expanduser()
        if path.is_dir():
            for name in (*SHARED_FILES, f"{service}.properties"):
                candidate = path / name
                if candidate.exists():
                    own = name == f"{service}.properties"
                    files.append(PropertiesFile(candidate, optional=False, own=own))
        elif path.exists() or not optional:
            files.append(PropertiesFile(path, optional, own=path.name == f"{service}.properties"))
    return files


def read_properties(files: list[PropertiesFile], known: set[str]) -> dict[str, Entry]:
    """Merge `files` in order, later ones winning; refuse unknown keys in a service's own file."""
    merged: dict[str, Entry] = {}
    for item in files:
        try:
            # utf-8-sig: a byte-order mark some editors write must not become part of a key
            text = item.path.read_text(encoding="utf-8-sig")
        except FileNotFoundError as exc:
            if item.optional:
                continue
            raise ConfigError(f"{item.path}: configuration file not found") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{item.path}: cannot read configuration file ({exc})") from exc
        entries = parse_properties(text, item.path)
        if item.own:
            for key, entry in entries.items():
                if key not in known:
                    raise ConfigError(f"{entry.where}: unknown setting '{key}'")
        merged.update(entries)
    return merged


class _PropertiesSource(PydanticBaseSettingsSource):
    """Feeds the merged properties entries to pydantic-settings, below the environment."""

    def __init__(self, settings_cls: type[BaseSettings], entries: Mapping[str, Entry]):
        super().__init__(settings_cls)
        self._entries = entries

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        entry = self._entries.get(field_name)
        return (entry.value if entry else None), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {
            name: self._entries[name].value
            for name in self.settings_cls.model_fields
            if name in self._entries
        }


def _comma_separated(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class ServiceSettings(BaseSettings):
    """What every service needs. Subclasses add their own settings and set `service_name`."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, frozen=True)

    service_name: ClassVar[str] = "service"

    node_id: str = Field(default_factory=_default_node_id, min_length=1, max_length=200)
    http_host: str = "127.0.0.1"
    http_port: Port = 8000  # each service sets its own default
    environment: Literal["production", "development"] = "production"
    log_format: Literal["json", "console", "auto"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    shutdown_grace_s: float = Field(default=20.0, gt=0)
    # Larger request bodies are refused with 413 before they are read into memory.
    http_max_body_bytes: int = Field(default=1_048_576, ge=1_024)
    # Proxies (addresses or CIDR networks, comma-separated) whose X-Forwarded-For and
    # X-Forwarded-Proto are believed. Empty: nobody's, and a client's address is its TCP peer's.
    http_trusted_proxies: str = ""

    database_url: SecretStr
    database_pool_size: int = Field(default=10, ge=1, le=200)
    database_max_overflow: int = Field(default=5, ge=0, le=200)
    database_statement_timeout_ms: int = Field(default=30_000, ge=100)

    @field_validator("http_trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        for part in _comma_separated(value):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError(f"{part!r} is not an IP address or network (CIDR)") from None
        return value

    def trusted_proxies(self) -> list[str]:
        """`http_trusted_proxies` as a list of networks (an address is a network of one)."""
        return [
            str(ipaddress.ip_network(part, strict=False))
            for part in _comma_separated(self.http_trusted_proxies)
        ]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _PropertiesSource(settings_cls, _ENTRIES.get()))

    @property
    def resolved_log_format(self) -> Literal["json", "console"]:
        if self.log_format != "auto":
            return self.log_format
        return "console" if self.environment == "development" else "json"

    def describe(self) -> dict[str, Any]:
        """Every setting, secrets masked: safe to log."""
        return self.model_dump(mode="json")


def _provenance(field: str, entries: Mapping[str, Entry], overrides: Mapping[str, Any]) -> str:
    """Where the value of `field` came from, highest source first (as pydantic-settings reads)."""
    if field in overrides:
        return "argument to load()"
    for name in os.environ:
        if name.lower() == field:
            return f"environment variable {name}"
    if field in entries:
        return entries[field].where
    return "default"


def load(settings_cls: type[S], **overrides: Any) -> S:
    """Build `settings_cls` from defaults, the properties files and the environment.

    Raises `ConfigError` with one message that names what is wrong and where it was set.
    """
    files = properties_files(config_location(os.environ), settings_cls.service_name)
    entries = read_properties(files, set(settings_cls.model_fields))
    token = _ENTRIES.set(entries)
    try:
        return settings_cls(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_input=False, include_url=False):
            field = ".".join(str(part) for part in error["loc"]) or "?"
            if error["type"] == "missing":
                problems.append(
                    f"missing required setting '{field}' (set '{field.replace('_', '.')}' in a "
                    f"properties file or the environment variable {field.upper()})"
                )
            else:
                where = _provenance(field, entries, overrides)
                problems.append(f"invalid setting '{field}' ({where}): {error['msg']}")
        raise ConfigError("; ".join(problems)) from None
    finally:
        _ENTRIES.reset(token)


def is_set(settings_cls: type[ServiceSettings], field: str) -> bool:
    """Whether the environment or a properties file gives `field` of `settings_cls`, as `load`
    would read them (a default is not "set"). Raises `ConfigError` like `load`."""
    if any(name.lower() == field for name in os.environ):
        return True
    files = properties_files(config_location(os.environ), settings_cls.service_name)
    return field in read_properties(files, set(settings_cls.model_fields))


class ApiSettings(ServiceSettings):
    """Settings of a service that serves an API to authenticated clients (and of the auth
    service, which issues the tokens: issuer, audience and algorithm must agree everywhere)."""

    auth_issuer: str = Field(default="http://127.0.0.1:8002", min_length=1)
    auth_audience: str = Field(default="scheduler", min_length=1)
    auth_algorithm: Literal["ES256", "RS256"] = "ES256"
    auth_jwks_url: str = "http://127.0.0.1:8002/.well-known/jwks.json"
    auth_leeway_s: float = Field(default=30.0, ge=0, le=300)
    # How often, at most, an unknown `kid` may make this service refetch the JWKS.
    auth_jwks_refresh_min_interval_s: float = Field(default=10.0, ge=0)
    auth_jwks_max_age_s: float = Field(default=300.0, gt=0)
    # Longest a process honours a token after its account was disabled, its role, password or
    # secret changed (libs.security.revocation): what it read of an account is kept this long at
    # most.
    auth_revocation_max_staleness_s: float = Field(default=5.0, ge=0, le=60)


class KafkaSettings(ServiceSettings):
    """Settings of a service that produces to or consumes from Kafka."""

    kafka_bootstrap_servers: str = Field(min_length=1)
    kafka_dispatch_topic: str = Field(default="scheduler.dispatch", pattern=TOPIC_NAME)
    kafka_dead_letter_topic: str = Field(default="scheduler.dead-letter", pattern=TOPIC_NAME)
    # Partitions bound how many executors consume in parallel; raise before scaling out.
    kafka_dispatch_partitions: int = Field(default=12, ge=1, le=10_000)
    kafka_replication_factor: int = Field(default=1, ge=1, le=10)
    kafka_request_timeout_ms: int = Field(default=30_000, ge=1_000)
    # Longest a consumer's fetch waits for data. Kafka answers as soon as data arrives, so this
    # only paces idle polling; the embedded broker answers only when it expires, so there it
    # adds to every dispatch's start lag (`schedctl up` sets 50).
    kafka_fetch_max_wait_ms: int = Field(default=500, ge=1, le=10_000)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
