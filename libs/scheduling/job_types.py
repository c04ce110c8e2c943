"""The job types: the contract of each built-in type's payload, shared by the job service (which
validates a payload when a job is created or changed) and the executor (which validates it again
before running it, and runs it with the strategy registered under the same name).

Each service builds the registry at start (`load`: the built-in types and those of installed
plug-ins) and hands it to what needs it:

    types = job_types.load()
    payload = types.validate_payload("http", {"url": "https://example.com/hook"})

`validate_payload` returns the payload in its canonical form, defaults filled in and keys in
camelCase: that form is what the job service stores and shows, and what the executor reads.
Errors name the field from `payload.` on, so an API can put them under the request's field.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from libs.contracts import schemas
from libs.infra import config

MAX_PAYLOAD_BYTES = 64 * 1024  # of the payload as compact UTF-8 JSON
MAX_URL_LENGTH = 2048
MAX_HEADERS = 50
MAX_HEADER_VALUE_LENGTH = 8192
MAX_HEADERS_BYTES = 16 * 1024  # names and values of one request's headers together
MAX_KAFKA_KEY_LENGTH = 1024
MAX_LOG_MESSAGE_LENGTH = 4096

# RFC 9110 `token`: the characters a header name may have.
_HEADER_NAME = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}$"
# Visible ASCII, space and tab: no CR or LF (no injected header lines), nothing a server could
# decode in two ways.
_HEADER_VALUE = r"^[\t\x20-\x7e]*$"
# Headers the executor sets itself (framing, the target, the Standard Webhooks signature and the
# idempotency key): a payload that set them would break the request or forge its signature.
RESERVED_HTTP_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "idempotency-key",
    }
)


class JobTypeError(ValueError):
    """A job's type or payload is not acceptable."""


class UnknownJobType(JobTypeError):
    def __init__(self, type_name: str, known: list[str]):
        super().__init__(f"unknown job type {type_name!r}; known types: {', '.join(known)}")
        self.type_name = type_name
        self.known = known


class InvalidPayload(JobTypeError):
    """`errors` holds (field path, message) pairs; every path starts with `payload`."""

    def __init__(self, errors: list[tuple[str, str]]):
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors))
        self.errors = errors


class _Payload(schemas.StrictModel):
    model_config = schemas.CAMEL_CASE


# --- http --------------------------------------------------------------------------------------


# Whitespace (`\s` is `str.isspace`, Unicode's included) and control characters.
_URL_FORBIDDEN = re.compile(r"[\s\x00-\x1f\x7f]")


def _http_url(value: str) -> str:
    if _URL_FORBIDDEN.search(value):
        raise ValueError("must not contain whitespace or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError when the port is not a number in range
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http or https URL")
    if not parts.hostname:
        raise ValueError("must name a host")
    if parts.username is not None or parts.password is not None:
        # Credentials in a URL end up in logs; send them in a header instead.
        raise ValueError("must not contain credentials; send them in a header")
    if port == 0:
        raise ValueError("must not name port 0")
    return value


def _http_headers(value: dict[str, str]) -> dict[str, str]:
    reserved = sorted(name for name in value if name.lower() in RESERVED_HTTP_HEADERS)
    if reserved:
        raise ValueError(f"these headers are set by the executor: {', '.join(reserved)}")
    lowered = [name.lower() for name in value]
    if len(set(lowered)) != len(lowered):
        raise ValueError("a header is named twice (names are case-insensitive)")
    size = sum(len(name) + len(text) for name, text in value.items())
    if size > MAX_HEADERS_BYTES:
        raise ValueError(f"the headers take more than {MAX_HEADERS_BYTES} bytes")
    return value


def _status_pattern(value: str) -> str:
    return value.lower()


HeaderName = Annotated[str, Field(pattern=_HEADER_NAME)]
HeaderValue = Annotated[str, Field(max_length=MAX_HEADER_VALUE_LENGTH, pattern=_HEADER_VALUE)]
HttpHeaders = Annotated[
    dict[HeaderName, HeaderValue],
    Field(max_length=MAX_HEADERS),
    AfterValidator(_http_headers),
]
# An exact status ("204") or a class of them ("2xx").
StatusPattern = Annotated[
    str, Field(pattern=r"^[1-5]([0-9]{2}|[xX]{2})$"), AfterValidator(_status_pattern)
]


class HttpPayload(_Payload):
    """An HTTP request to `url`; the occurrence succeeds when the status matches
    `expectedStatus`. `body` is sent as JSON, `bodyText` as it is; at most one of them."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://example.com/hooks/nightly-report",
                    "method": "POST",
                    "headers": {"Authorization": "Bearer example-token"},
                    "body": {"report": "nightly"},
                    "timeoutSeconds": 30,
                    "expectedStatus": ["2xx"],
                }
            ]
        }
    )

    url: Annotated[str, Field(min_length=1, max_length=MAX_URL_LENGTH), AfterValidator(_http_url)]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: HttpHeaders = Field(default_factory=dict)
    body: JsonValue = None
    body_text: str | None = None
    timeout_s: float = Field(default=30, ge=1, le=3600)
    expected_status: Annotated[list[StatusPattern], Field(min_length=1, max_length=20)] = Field(
        default_factory=lambda: ["2xx"]
    )

    @field_validator("body", "body_text")
    @classmethod
    def _no_body_with_get(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and info.data.get("method") == "GET":
            raise ValueError("a GET request has no body")
        return value

    @field_validator("body_text")
    @classmethod
    def _one_body(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("body") is not None:
            raise ValueError("give either body (JSON) or bodyText, not both")
        return value

    def accepts(self, status: int) -> bool:
        """Whether a response with `status` means the occurrence succeeded."""
        code = str(status)
        return any(
            pattern == code or (pattern.endswith("xx") and pattern[0] == code[0])
            for pattern in self.expected_status
        )


# --- kafka -------------------------------------------------------------------------------------

KafkaHeaders = Annotated[
    dict[
        Annotated[str, Field(min_length=1, max_length=256)],
        Annotated[str, Field(max_length=MAX_HEADER_VALUE_LENGTH)],
    ],
    Field(max_length=MAX_HEADERS),
]


def _topic(value: str) -> str:
    if value in (".", ".."):
        raise ValueError("'.' and '..' are not topic names")
    return value


class KafkaPayload(_Payload):
    """A message published to `topic`: `value` as JSON, `key` (partitioning) as UTF-8 text."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "topic": "billing.invoices",
                    "key": "customer-42",
                    "value": {"invoice": 1001, "action": "send"},
                    "headers": {"source": "scheduler"},
                }
            ]
        }
    )

    topic: Annotated[str, Field(pattern=config.TOPIC_NAME), AfterValidator(_topic)]
    key: Annotated[str, Field(max_length=MAX_KAFKA_KEY_LENGTH)] | None = None
    value: JsonValue
    headers: KafkaHeaders = Field(default_factory=dict)


# --- log ---------------------------------------------------------------------------------------


class LogPayload(_Payload):
    """A line written to the executor's log (smoke tests, heartbeats)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"message": "nightly smoke test", "level": "info"}]}
    )

    message: Annotated[str, Field(min_length=1, max_length=MAX_LOG_MESSAGE_LENGTH)]
    level: Literal["debug", "info", "warning", "error"] = "info"


# --- the registry ------------------------------------------------------------------------------

# Python entry-point group through which other distributions add job types (see
# docs/plugins.md). Each entry point names a `JobType`; the job service then accepts the type
# and the executor runs it, neither changed.
ENTRY_POINT_GROUP = "scheduling_platform.job_types"


@dataclass(frozen=True, slots=True)
class JobType:
    """A job type: its name, the model of its payload and, for a plug-in's type, the strategy
    that runs it.

    `strategy` builds the executor's strategy from the executor's resources; it is either a
    callable or the import path of one (`"package.module:factory"`), imported only by the
    executor, so that the job service never imports what only running a job needs. The
    built-in types have none here: the executor registers its own strategies for them.
    """

    name: str
    payload_model: type[BaseModel]
    strategy: Callable[..., Any] | str | None = None


BUILT_IN: tuple[JobType, ...] = (
    JobType("http", HttpPayload),
    JobType("kafka", KafkaPayload),
    JobType("log", LogPayload),
)
_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,62}$")


class PluginError(RuntimeError):
    """An installed plug-in's job type cannot be used; the message names its entry point."""


def _plugins() -> list[tuple[JobType, str]]:
    """Each plug-in's job type, with where it comes from (`name = value` of its entry point)."""
    found: list[tuple[JobType, str]] = []
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        origin = f"entry point {entry_point.name} = {entry_point.value}"
        try:
            job_type = entry_point.load()
        except Exception as exc:
            raise PluginError(f"{origin} cannot be loaded: {type(exc).__name__}: {exc}") from exc
        if not isinstance(job_type, JobType):
            raise PluginError(f"{origin} is not a libs.scheduling.job_types.JobType")
        if job_type.strategy is None:
            raise PluginError(f"{origin}: job type {job_type.name!r} names no strategy")
        found.append((job_type, origin))
    return found


def load() -> JobTypes:
    """Every job type: the built-in ones, then those of installed plug-ins.

    Each service reads them once, at start, and hands the registry to what needs it. A plug-in
    that fails to load, reuses a name or has an unusable name raises `PluginError` naming its
    entry point, so the service stops at start rather than leaving jobs of its type unrunnable
    later.
    """
    return JobTypes(BUILT_IN, _plugins())


class JobTypes:
    """The job types one process knows, by name, and the payload contract of each (`load`
    builds the one a service uses; a test may build one of just the types it needs)."""

    def __init__(self, built_in: Iterable[JobType], plugins: Iterable[tuple[JobType, str]] = ()):
        """`built_in`, then `plugins`: each plug-in's type with where it comes from (its entry
        point), which the errors name. Raises `PluginError` for a name that is unusable or
        taken and for a payload model that is not a pydantic model."""
        self._types: dict[str, JobType] = {}
        origins: dict[str, str] = {}
        for job_type, origin in [(t, "built in") for t in built_in] + list(plugins):
            if not _TYPE_NAME.fullmatch(job_type.name):
                raise PluginError(
                    f"{origin}: job type name {job_type.name!r} must match {_TYPE_NAME.pattern}"
                )
            if job_type.name in self._types:
                raise PluginError(
                    f"{origin}: job type {job_type.name!r} is registered twice "
                    f"(also {origins[job_type.name]})"
                )
            if not (isinstance(job_type.payload_model, type) and
                    issubclass(job_type.payload_model, BaseModel)):  # fmt: skip
                raise PluginError(
                    f"{origin}: payload_model of {job_type.name!r} is not a pydantic model"
                )
            self._types[job_type.name] = job_type
            origins[job_type.name] = origin
        # Generating a schema takes about a millisecond; the models never change.
        self._schemas: dict[str, dict[str, Any]] = {}

    def __iter__(self) -> Iterator[JobType]:
        """The job types, by name."""
        return iter([self._types[name] for name in self.known()])

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._types

    def known(self) -> list[str]:
        """The names of the job types, sorted."""
        return sorted(self._types)

    def get(self, type_name: str) -> JobType:
        """The job type named `type_name`; raises `UnknownJobType` with the known names."""
        job_type = self._types.get(type_name)
        if job_type is None:
            raise UnknownJobType(type_name, self.known())
        return job_type

    def validate_payload(self, type_name: str, payload: Any) -> dict[str, Any]:
        """The canonical form of `payload` for `type_name` (defaults filled in, camelCase keys).

        Raises `UnknownJobType` (with the known types) or `InvalidPayload` (with every error).
        """
        return self.parse_payload(type_name, payload).model_dump(mode="json", by_alias=True)

    def parse_payload(self, type_name: str, payload: Any) -> BaseModel:
        """The payload as its type's model (for the executor); raises like `validate_payload`."""
        return _validated(self.get(type_name).payload_model, payload)

    def json_schema(self, type_name: str) -> dict[str, Any]:
        """The JSON Schema of `type_name`'s payload, as clients write it (camelCase keys)."""
        model = self.get(type_name).payload_model
        if type_name not in self._schemas:
            self._schemas[type_name] = model.model_json_schema(by_alias=True)
        return copy.deepcopy(self._schemas[type_name])


def _encoded_size(payload: Any) -> int:
    # surrogatepass: a lone surrogate is counted here and refused by the model, with its field.
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str)
    return len(text.encode("utf-8", "surrogatepass"))


def _path(location: tuple[int | str, ...]) -> str:
    return ".".join(["payload", *(str(part) for part in location)])


def _validated(model: type[BaseModel], payload: Any) -> BaseModel:
    if not isinstance(payload, dict):
        raise InvalidPayload([("payload", "must be a JSON object")])
    try:
        size = _encoded_size(payload)
    except (ValueError, RecursionError):  # a cycle cannot come from JSON; nested too deep can
        raise InvalidPayload([("payload", "is not serialisable as JSON")]) from None
    if size > MAX_PAYLOAD_BYTES:
        raise InvalidPayload(
            [("payload", f"takes {size} bytes as JSON, more than {MAX_PAYLOAD_BYTES}")]
        )
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        raise InvalidPayload([(_path(e["loc"]), e["msg"]) for e in errors]) from None
