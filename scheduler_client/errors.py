"""Every error the client raises, in one tree:

    ClientError
    ├── ConnectionFailed        no answer: connection refused, timeout, TLS failure...
    ├── UnexpectedAnswer        a success answer that is not what the API documents
    └── ApiError                a non-2xx answer (an RFC 9457 problem document)
        ├── BadRequest (400)            InvalidGrant, InvalidScope, UnsupportedGrantType
        ├── Unauthorized (401)          InvalidClient
        ├── Forbidden (403)             InsufficientScope, AccountDisabled, WrongPassword...
        ├── NotFound (404)              JobNotFound, ExecutionNotFound, UserNotFound...
        ├── Conflict (409)              JobStateConflict, AlreadyReplayed, EmailUnavailable...
        ├── PreconditionFailed (412)    StaleVersion
        ├── PayloadTooLarge (413)
        ├── InvalidRequest (422)        IdempotencyKeyReused
        ├── PreconditionRequired (428)
        ├── RateLimited (429)           LoginLocked, TooManyRegistrations
        └── ServerError (5xx)
            └── ServiceUnavailable (503)   LoginsBusy, HashingBusy

An answer becomes the class of its problem type (`type` ends in a slug: `.../stale-version`),
else the class of its status, else `ApiError`.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import ValidationError

from scheduler_client import models

TYPE_BASE = "https://scheduler.dev/problems/"
REQUEST_ID_HEADER = "x-request-id"
_CORE_MEMBERS = frozenset({"type", "title", "status", "detail", "instance", "errors"})


class ClientError(Exception):
    """Base of every error of this library."""


class ConnectionFailed(ClientError):
    """No usable answer came: the connection was refused or broke, the timeout passed, or
    the answer could not be decoded. `__cause__` is httpx's own exception."""

    def __init__(self, method: str, url: str, reason: str):
        super().__init__(f"{method} {url}: no answer ({reason})")
        self.method = method
        self.url = url
        self.reason = reason

    @classmethod
    def of(cls, exc: httpx.RequestError) -> ConnectionFailed:
        """httpx's error, named by the request that failed (a token request, maybe)."""
        reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
        return cls(exc.request.method, str(exc.request.url), reason)


class UnexpectedAnswer(ClientError):
    """A success answer this client cannot read (not JSON, or not the documented shape)."""

    def __init__(self, method: str, url: str, status: int, reason: str):
        super().__init__(f"{method} {url}: unexpected {status} answer ({reason})")
        self.method = method
        self.url = url
        self.status = status


class ApiError(ClientError):
    """A non-2xx answer. `errors`: the fields a 422 names; `extensions`: the document's other
    members (e.g. `currentStatus`); `retry_after`: seconds to wait, from `Retry-After`;
    `request_id`: the id the service logged the request under."""

    def __init__(
        self,
        *,
        status: int,
        type: str | None,
        title: str,
        detail: str | None = None,
        instance: str | None = None,
        errors: list[models.FieldError] | None = None,
        extensions: dict[str, Any] | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
    ):
        message = f"{status} {title}" + (f": {detail}" if detail else "")
        super().__init__(message + (f" (request id {request_id})" if request_id else ""))
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.instance = instance
        self.errors = errors or []
        self.extensions = extensions or {}
        self.retry_after = retry_after
        self.request_id = request_id

    @property
    def slug(self) -> str | None:
        """The problem type's last part (`stale-version`), or None for a foreign type."""
        return slug_of(self.type)


class BadRequest(ApiError):
    pass


class Unauthorized(ApiError):
    pass


class Forbidden(ApiError):
    pass


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    pass


class PreconditionFailed(ApiError):
    pass


class PayloadTooLarge(ApiError):
    pass


class InvalidRequest(ApiError):
    """422: `errors` names each field that was refused and why."""


class PreconditionRequired(ApiError):
    """428: the request must say which version it changes (`if_match`)."""


class RateLimited(ApiError):
    pass


class ServerError(ApiError):
    pass


class ServiceUnavailable(ServerError):
    pass


# --- Problem types ---------------------------------------------------------------------------


class JobNotFound(NotFound):
    """No such job, or not the caller's (whether it exists is not revealed)."""


class ExecutionNotFound(NotFound):
    pass


class DeadLetterNotFound(NotFound):
    pass


class UserNotFound(NotFound):
    pass


class ServiceAccountNotFound(NotFound):
    pass


class JobStateConflict(Conflict):
    """The job's state does not allow the request; `current_status` says which it is in."""

    @property
    def current_status(self) -> str | None:
        return self.extensions.get("currentStatus")


class AlreadyReplayed(Conflict):
    pass


class IdempotentJobDeleted(Conflict):
    """The job created earlier with this Idempotency-Key has been deleted."""


class EmailUnavailable(Conflict):
    pass


class PasswordChangedMeanwhile(Conflict):
    pass


class SelfLockout(Conflict):
    """An admin may not disable or demote themselves."""


class LastAdmin(Conflict):
    pass


class StaleVersion(PreconditionFailed):
    """The job changed since the version sent in If-Match; read it again and retry."""

    @property
    def current_version(self) -> int | None:
        return self.extensions.get("currentVersion")


class IdempotencyKeyReused(InvalidRequest):
    """The Idempotency-Key was used before with a different request."""


class InsufficientScope(Forbidden):
    pass


class AccountDisabled(Forbidden):
    pass


class SubjectNotAnId(Forbidden):
    pass


class UserPrincipalRequired(Forbidden):
    """Only a user may do this (a service account has no profile)."""


class AdminRoleRequired(Forbidden):
    pass


class WrongPassword(Forbidden):
    pass


class InvalidGrant(BadRequest):
    """Wrong username or password, or a refresh token that is expired, revoked or spent:
    log in again."""


class InvalidScope(BadRequest):
    pass


class UnsupportedGrantType(BadRequest):
    pass


class InvalidClient(Unauthorized):
    """Client authentication failed: unknown client, wrong secret, or a disabled account."""


class LoginLocked(RateLimited):
    """Too many failed logins; wait `retry_after` seconds."""


class TooManyRegistrations(RateLimited):
    pass


class LoginsBusy(ServiceUnavailable):
    pass


class HashingBusy(ServiceUnavailable):
    pass


BY_SLUG: dict[str, type[ApiError]] = {
    "job-not-found": JobNotFound,
    "execution-not-found": ExecutionNotFound,
    "dead-letter-not-found": DeadLetterNotFound,
    "user-not-found": UserNotFound,
    "service-account-not-found": ServiceAccountNotFound,
    "job-state-conflict": JobStateConflict,
    "dead-letter-already-replayed": AlreadyReplayed,
    "idempotent-job-deleted": IdempotentJobDeleted,
    "email-unavailable": EmailUnavailable,
    "password-changed-meanwhile": PasswordChangedMeanwhile,
    "self-lockout": SelfLockout,
    "last-admin": LastAdmin,
    "stale-version": StaleVersion,
    "idempotency-key-reused": IdempotencyKeyReused,
    "insufficient-scope": InsufficientScope,
    "account-disabled": AccountDisabled,
    "subject-not-an-id": SubjectNotAnId,
    "user-principal-required": UserPrincipalRequired,
    "admin-role-required": AdminRoleRequired,
    "wrong-password": WrongPassword,
    "oauth/invalid-grant": InvalidGrant,
    "oauth/invalid-scope": InvalidScope,
    "oauth/unsupported-grant-type": UnsupportedGrantType,
    "oauth/invalid-client": InvalidClient,
    "oauth/login-locked": LoginLocked,
    "too-many-registrations": TooManyRegistrations,
    "oauth/logins-busy": LoginsBusy,
    "busy": HashingBusy,
}
# Problem types a program tells apart by status alone: they get the status's class.
BY_STATUS_ONLY = frozenset(
    {
        "bad-request",
        "oauth/invalid-request",
        "unauthorized",
        "unauthenticated",
        "forbidden",
        "not-found",
        "method-not-allowed",
        "payload-too-large",
        "unsupported-media-type",
        "validation-failed",
        "precondition-required",
        "too-many-requests",
        "service-unavailable",
        "internal-error",
        "error",
    }
)
BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    413: PayloadTooLarge,
    422: InvalidRequest,
    428: PreconditionRequired,
    429: RateLimited,
    503: ServiceUnavailable,
}


def slug_of(problem_type: str | None) -> str | None:
    if problem_type and problem_type.startswith(TYPE_BASE):
        return problem_type.removeprefix(TYPE_BASE)
    return None


def class_for(slug: str | None, status: int) -> type[ApiError]:
    """The exception class of an answer: by problem type, else by status."""
    if slug in BY_SLUG:
        return BY_SLUG[slug]
    if status in BY_STATUS:
        return BY_STATUS[status]
    return ServerError if status >= 500 else ApiError


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` in seconds: delay-seconds, or an HTTP date (RFC 9110 section 10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _document(response: httpx.Response) -> dict[str, Any]:
    try:
        document = response.json()
    except ValueError:  # not JSON: a proxy's HTML page, say
        return {}
    return document if isinstance(document, dict) else {}


def from_response(response: httpx.Response) -> ApiError:
    """The exception for a non-2xx answer, built from its problem document (or, when it has
    none, from its status line)."""
    document = _document(response)
    problem_type = document.get("type") if isinstance(document.get("type"), str) else None
    try:
        errors = [models.FieldError.model_validate(e) for e in document.get("errors") or []]
    except (ValidationError, TypeError):
        errors = []
    title = document.get("title")
    detail = document.get("detail")
    instance = document.get("instance")
    return class_for(slug_of(problem_type), response.status_code)(
        status=response.status_code,
        type=problem_type,
        title=title if isinstance(title, str) else response.reason_phrase,
        detail=detail if isinstance(detail, str) else None,
        instance=instance if isinstance(instance, str) else None,
        errors=errors,
        extensions={k: v for k, v in document.items() if k not in _CORE_MEMBERS},
        retry_after=retry_after_s(response.headers.get("retry-after")),
        request_id=response.headers.get(REQUEST_ID_HEADER),
    )
