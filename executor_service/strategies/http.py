"""The `http` job type: one outbound HTTP request per attempt, signed as a Standard Webhook.

The request carries the payload's method, headers and body, and:

- `webhook-id` and `Idempotency-Key`: the occurrence key, the same on every attempt of one
  occurrence, so the target can make its effect exactly-once;
- `webhook-timestamp` and `webhook-signature` (`libs.security.webhooks`): signed with the job
  owner's webhook secret, and during a rotation with the previous one too;
- a total deadline of the payload's `timeoutSeconds`, and at most `http_max_response_bytes` of
  the response read.

The client is httpcore, not httpx, on purpose: httpcore never follows redirects (a redirect
could lead a request past the address guard to an internal host) and never reads proxy settings
from the environment (`HTTP_PROXY` would route job traffic through whatever the executor's
environment names). Connections go through `executor_service.ssrf.GuardedBackend`, which
refuses non-public addresses after resolution.

Outcomes: an expected status succeeds; 408, 429 and 5xx, timeouts and connection errors are
transient; 410 Gone pauses the job (`strategy.TargetGone`); any other status, a refused address
and an unusable URL are permanent.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import json
import ssl
import time
import uuid
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

import httpcore

from executor_service import ssrf, strategy
from libs.infra import db, errors
from libs.scheduling import job_types
from libs.security import webhook_secrets, webhooks

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from executor_service.settings import Settings

SECRETS_TTL_S = 30.0  # how long an owner's secrets are reused before they are read again
SECRETS_CACHE_MAX_OWNERS = 10_000
ERROR_EXCERPT_CHARS = 200  # of the response body quoted in a failure message
GONE_REASON = "target answered 410 Gone"  # the paused job's status reason
MAX_RETRY_AFTER_S = 86_400.0  # a Retry-After beyond a day is read as a day

_DEFAULT_PORTS = {"http": 80, "https": 443}
_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
# Characters left as they are in a request target; everything else (non-ASCII, mostly) is
# percent-encoded as UTF-8. "%" stays, so escapes already in the URL are kept.
_TARGET_SAFE = "!#$%&'()*+,/:;=?@[]~"

SecretsProvider = Callable[[uuid.UUID], Awaitable[Sequence[str]]]
"""The webhook secrets to sign with for an owner: the current one first, then, during a
rotation, the previous one."""


# --- the owner's secrets -----------------------------------------------------------------------


class SecretsCache:
    """A `SecretsProvider` that reuses what `load` returned for an owner for `ttl_s`, so a job
    running every second does not read the database every second. Concurrent misses for one
    owner share one load; a failed load is not cached. A rotation reaches the signatures at most
    `ttl_s` late (the previous secret signs alone until then)."""

    def __init__(
        self,
        load: SecretsProvider,
        *,
        ttl_s: float = SECRETS_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        max_owners: int = SECRETS_CACHE_MAX_OWNERS,
    ):
        self._load = load
        self._ttl_s = ttl_s
        self._clock = clock
        self._max_owners = max_owners
        self._entries: dict[uuid.UUID, tuple[float, asyncio.Future[Sequence[str]]]] = {}

    async def __call__(self, owner_id: uuid.UUID) -> Sequence[str]:
        now = self._clock()
        entry = self._entries.get(owner_id)
        if entry is None or entry[0] <= now:
            if len(self._entries) >= self._max_owners:
                self._prune(now)
            loading = asyncio.ensure_future(self._load(owner_id))
            loading.add_done_callback(functools.partial(self._forget_failure, owner_id))
            entry = (now + self._ttl_s, loading)
            self._entries[owner_id] = entry
        # Shielded: a waiter cancelled at its job's timeout must not cancel the load that other
        # runs of the same owner are waiting on.
        return await asyncio.shield(entry[1])

    def _forget_failure(self, owner_id: uuid.UUID, loading: asyncio.Future[Sequence[str]]) -> None:
        # Reading the exception here also keeps asyncio from logging it as never retrieved
        # when every waiter has gone.
        failed = loading.cancelled() or loading.exception() is not None
        current = self._entries.get(owner_id)
        if failed and current is not None and current[1] is loading:
            del self._entries[owner_id]

    def _prune(self, now: float) -> None:
        self._entries = {key: entry for key, entry in self._entries.items() if entry[0] > now}
        if len(self._entries) >= self._max_owners:
            self._entries.clear()  # every owner is hot: start over rather than grow unbounded

    async def aclose(self) -> None:
        """Cancel the loads still running."""
        pending = [entry[1] for entry in self._entries.values() if not entry[1].done()]
        for loading in pending:
            loading.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._entries.clear()


async def _stored_secrets(
    sessions: async_sessionmaker[AsyncSession], owner_id: uuid.UUID
) -> Sequence[str]:
    # A transaction of its own: signing_secrets creates the owner's secret when it is missing,
    # and that must be committed before a target sees a signature made with it.
    async with db.unit_of_work(sessions) as session:
        return await webhook_secrets.signing_secrets(session, owner_id)


# --- the strategy ------------------------------------------------------------------------------


def new_pool(
    settings: Settings, *, ssl_context: ssl.SSLContext | None = None
) -> httpcore.AsyncConnectionPool:
    """The connection pool http jobs share, behind the address guard. `ssl_context` replaces
    the default one (certifi's roots), for targets signed by a private CA."""
    return httpcore.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=settings.http_max_connections,
        http1=True,
        http2=False,
        retries=0,  # a retry is the executor's decision (backoff, attempts), not the client's
        network_backend=ssrf.GuardedBackend(settings.allowed_networks),
    )


def create(resources: strategy.Resources) -> HttpStrategy:
    """The strategy of the `http` job type (the factory named in `strategies.BUILT_IN`)."""
    secrets = SecretsCache(functools.partial(_stored_secrets, resources.sessions))
    return HttpStrategy(new_pool(resources.settings), resources.settings, secrets)


@dataclass(frozen=True, slots=True)
class _Target:
    url: httpcore.URL
    host: str  # the host as the URL names it, for messages
    host_header: str


class HttpStrategy:
    """Runs `http` jobs on `pool`, signing with the secrets `secrets` gives for the job's owner;
    `clock` gives the Unix time of the signature."""

    def __init__(
        self,
        pool: httpcore.AsyncConnectionPool,
        settings: Settings,
        secrets: SecretsProvider,
        *,
        clock: Callable[[], float] = time.time,
    ):
        self._pool = pool
        self._max_response_bytes = settings.http_max_response_bytes
        self._user_agent = settings.http_user_agent
        self._secrets = secrets
        self._clock = clock

    async def run(self, payload: job_types.HttpPayload, run: strategy.Run) -> None:
        """Send the request; return when the status is an expected one, raise `Permanent`- or
        `TransientFailure` otherwise."""
        target = _target(payload.url)
        body, content_type = _body(payload)
        secrets = await self._secrets(run.owner_id)
        key = run.occurrence_key
        timestamp = int(self._clock())

        headers = [("Host", target.host_header), *payload.headers.items()]
        given = {name.lower() for name in payload.headers}
        if content_type is not None and "content-type" not in given:
            headers.append(("Content-Type", content_type))
        if "user-agent" not in given:
            headers.append(("User-Agent", self._user_agent))
        headers.extend(webhooks.headers(secrets, key, timestamp, body).items())
        headers.append(("Idempotency-Key", key))
        # No body at all (not even Content-Length: 0) on a GET or DELETE without one.
        content = body if body or payload.method in _METHODS_WITH_BODY else None

        try:
            # The total deadline: httpcore's own timeouts bound each phase, not their sum.
            async with asyncio.timeout(payload.timeout_s):
                status, excerpt, retry_after = await self._send(
                    payload.method, target.url, headers, content, payload.timeout_s
                )
        except ssrf.AddressNotAllowed as exc:
            raise strategy.PermanentFailure(str(exc), kind="address_not_allowed") from exc
        except (TimeoutError, httpcore.TimeoutException) as exc:
            raise strategy.TransientFailure(
                f"{target.host} did not answer within {payload.timeout_s:g} s", kind="timeout"
            ) from exc
        except httpcore.UnsupportedProtocol as exc:
            raise strategy.PermanentFailure(
                "the URL is not an http or https URL", kind="invalid_url"
            ) from exc
        except httpcore.LocalProtocolError as exc:
            raise strategy.PermanentFailure(
                f"the request could not be sent: {errors.describe(exc)}", kind="invalid_request"
            ) from exc
        except (httpcore.NetworkError, httpcore.RemoteProtocolError) as exc:
            # RemoteProtocolError: the target closed the connection or spoke something other
            # than HTTP; as likely to pass as a refused connection.
            raise strategy.TransientFailure(
                f"connection to {target.host} failed: {errors.describe(exc)}",
                kind="connection_error",
            ) from exc
        classify(payload, status, excerpt, retry_after)

    async def _send(
        self,
        method: str,
        url: httpcore.URL,
        headers: list[tuple[str, str]],
        content: bytes | None,
        timeout_s: float,
    ) -> tuple[int, str, float | None]:
        """The response's status, the start of its body (as text for a message) and the delay
        its `Retry-After` asks for."""
        timeouts = {"connect": timeout_s, "read": timeout_s, "write": timeout_s, "pool": timeout_s}
        async with self._pool.stream(
            method, url, headers=headers, content=content, extensions={"timeout": timeouts}
        ) as response:
            head = await _read_at_most(response, self._max_response_bytes)
        retry_after = next(
            (value for name, value in response.headers if name.lower() == b"retry-after"), None
        )
        return response.status, _excerpt(head), parse_retry_after(retry_after, self._clock())

    async def close(self) -> None:
        """Close the pool's connections (and stop loading secrets)."""
        if isinstance(self._secrets, SecretsCache):
            await self._secrets.aclose()
        await self._pool.aclose()


def parse_retry_after(value: bytes | None, now: float) -> float | None:
    """Seconds a `Retry-After` header asks to wait (RFC 9110: delay-seconds or an HTTP-date,
    `now` being the Unix time); None when absent or unreadable."""
    if not value:
        return None
    text = value.decode("latin-1").strip()
    if text.isdigit():
        return float(min(int(text), MAX_RETRY_AFTER_S))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, when.timestamp() - now), MAX_RETRY_AFTER_S)


def classify(
    payload: job_types.HttpPayload, status: int, excerpt: str, retry_after_s: float | None = None
) -> None:
    """Return when `status` is one `payload` expects; raise the failure it means otherwise.
    `excerpt` (the start of the response body) goes into the message; `retry_after_s` (from
    `Retry-After`) goes with a transient failure, to raise its backoff. 410 Gone (unless
    expected) is the target asking to be left alone for good: the job is paused."""
    if payload.accepts(status):
        return
    detail = f"HTTP {status}: {excerpt}" if excerpt else f"HTTP {status}"
    if status == 410:
        raise strategy.TargetGone(detail, kind="gone", reason=GONE_REASON)
    if status in (408, 429):
        raise strategy.TransientFailure(detail, kind=f"http_{status}", retry_after_s=retry_after_s)
    if 500 <= status <= 599:
        raise strategy.TransientFailure(detail, kind="http_5xx", retry_after_s=retry_after_s)
    if 400 <= status <= 499:
        raise strategy.PermanentFailure(detail, kind="http_4xx")
    if 300 <= status <= 399:
        raise strategy.PermanentFailure(f"{detail} (redirects are not followed)", kind="http_3xx")
    expected = ", ".join(payload.expected_status)
    raise strategy.PermanentFailure(f"{detail} (expected {expected})", kind="unexpected_status")


def _target(url: str) -> _Target:
    """The request's URL for httpcore and its Host header; PermanentFailure when unusable.
    Messages never quote the URL: its query may hold a token."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        hostname = parts.hostname
        port = parts.port
        if scheme not in _DEFAULT_PORTS or not hostname:
            raise ValueError("not an http(s) URL with a host")
        # Internationalised names travel as IDNA ("xn--..."); httpcore takes ASCII only.
        host = hostname.encode("idna")
    except (ValueError, UnicodeError):
        raise strategy.PermanentFailure(
            "the URL is not a usable http(s) URL", kind="invalid_url"
        ) from None

    target = quote(parts.path or "/", safe=_TARGET_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_TARGET_SAFE)
    # Built by hand: httpcore would write an IPv6 host without its brackets.
    host_header = f"[{host.decode()}]" if b":" in host else host.decode()
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host_header += f":{port}"
    return _Target(
        url=httpcore.URL(scheme=scheme, host=host, port=port, target=target),
        host=hostname,
        host_header=host_header,
    )


def _body(payload: job_types.HttpPayload) -> tuple[bytes, str | None]:
    """The request body and the Content-Type it gets unless the payload names one."""
    if payload.body_text is not None:
        return payload.body_text.encode(), "text/plain; charset=utf-8"
    if payload.body is not None:
        text = json.dumps(payload.body, separators=(",", ":"), ensure_ascii=False)
        return text.encode(), "application/json"
    return b"", None


async def _read_at_most(response: httpcore.Response, limit: int) -> bytes:
    """Up to `limit` bytes of the body. Reading stops there; closing the response then closes
    the connection instead of draining it, so a huge or endless body costs nothing more. A body
    within the limit is read whole, which lets the connection be reused."""
    if limit == 0:
        return b""
    stream = response.stream
    assert isinstance(stream, AsyncIterable)
    received = bytearray()
    chunks = aiter(stream)
    # aclosing: leaving the loop early closes the stream's generator now, not at GC.
    async with contextlib.aclosing(chunks):  # type: ignore[type-var]
        async for chunk in chunks:
            received += chunk
            if len(received) >= limit:
                break
    return bytes(received[:limit])


def _excerpt(head: bytes) -> str:
    """The start of a body as one line of text, for a failure message."""
    text = head[: ERROR_EXCERPT_CHARS * 4].decode("utf-8", "replace")
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return text[:ERROR_EXCERPT_CHARS]
