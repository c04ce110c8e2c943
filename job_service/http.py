"""The HTTP conventions of the jobs API, shared by its routes: the bearer token and its scopes
in the OpenAPI document, `ETag` / `If-Match` (a job's version), `Idempotency-Key`, pagination
parameters, `Cache-Control: no-store` on answers that hold a credential, and the problem answers
every operation documents.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Path, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from job_service import errors
from job_service.settings import Settings
from libs.contracts import cursors, problems
from libs.scheduling import job_types
from libs.security import auth, scopes
from libs.security.tokens import Principal

DEFAULT_PAGE = 50
MAX_PAGE = 200
IDEMPOTENCY_KEY_MAX = 200
REPLAYED_HEADER = "Idempotent-Replayed"

# --- Who is asking ------------------------------------------------------------------------------

# Documents the bearer token and, per operation, the scopes it must carry (OpenAPI 3.1 allows
# a list of roles for non-OAuth schemes); `libs.security.auth` does the checking.
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearerAuth",
    bearerFormat="JWT",
    description="An access token from the auth service (POST /oauth/token). Each operation "
    "lists the scopes the token must carry: jobs:read, jobs:write or jobs:run.",
)


def _principal(*required: str) -> Callable[..., Awaitable[Principal]]:
    check = auth.require(*required)

    # The security parameter is a default, not `Annotated`: its annotation would name the local
    # `required`, which the postponed annotations of this module could not resolve.
    async def principal(
        request: Request,
        _credentials: HTTPAuthorizationCredentials | None = Security(
            _bearer, scopes=list(required)
        ),
    ) -> Principal:
        return await check(request)

    return principal


def _sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    return request.app.state.sessions


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _job_types(request: Request) -> job_types.JobTypes:
    return request.app.state.job_types


Sessions = Annotated[async_sessionmaker[AsyncSession], Depends(_sessions)]
ServiceSettings = Annotated[Settings, Depends(_settings)]
JobTypes = Annotated[job_types.JobTypes, Depends(_job_types)]
Reader = Annotated[Principal, Depends(_principal(scopes.JOBS_READ))]
Writer = Annotated[Principal, Depends(_principal(scopes.JOBS_WRITE))]
Runner = Annotated[Principal, Depends(_principal(scopes.JOBS_RUN))]
Admin = Annotated[Principal, Depends(_principal(scopes.USERS_ADMIN))]

# --- Parameters ---------------------------------------------------------------------------------

JobId = Annotated[uuid.UUID, Path(alias="jobId", description="The job's id.")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Items per page.")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=cursors.MAX_LENGTH,
        description="`nextCursor` of the previous page; omit for the first page.",
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=IDEMPOTENCY_KEY_MAX,
        pattern=r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$",
        description="A unique key for this creation (a UUID is a good one), per account. "
        "Retrying with the same key and the same body answers what the first request did (the "
        "job it created; for a batch, the same job per item and the same refusals), with "
        f"`{REPLAYED_HEADER}: true`, and creates nothing. The same key with another body, or "
        "with a batch when it was a single creation's (or the reverse), is refused (422). Keys "
        "do not expire.",
    ),
]

# --- ETag and If-Match --------------------------------------------------------------------------

_ENTITY_TAG = re.compile(r'\s*(W/)?"(\d{1,9})"\s*')


def etag(version: int) -> str:
    return f'"{version}"'


@dataclass(frozen=True)
class Precondition:
    """What `If-Match` asks: `sent` whether the header was there; `versions` the versions the
    job must be at, None for any (no header, or `*`)."""

    sent: bool
    versions: frozenset[int] | None

    def required(self) -> frozenset[int] | None:
        """`versions`, or `PreconditionRequired` when no If-Match was sent."""
        if not self.sent:
            raise errors.PreconditionRequired
        return self.versions


def _if_match(
    if_match: Annotated[
        str | None,
        Header(
            alias="If-Match",
            max_length=200,
            description='The job\'s ETag as read (`"<version>"`): the request applies only if '
            "the job is still at that version, else 412 with the current ETag. `*` matches any "
            "version. Required by PATCH (428 without it); optional elsewhere.",
        ),
    ] = None,
) -> Precondition:
    """Strong comparison (RFC 9110): a weak tag `W/"3"` matches no version."""
    if if_match is None:
        return Precondition(sent=False, versions=None)
    if if_match.strip() == "*":
        return Precondition(sent=True, versions=None)
    versions: set[int] = set()
    for part in if_match.split(","):
        match = _ENTITY_TAG.fullmatch(part)
        if match is None:
            raise errors.InvalidRequest.field(
                "header.If-Match", 'must be entity tags like "3", or *', "if_match"
            )
        if match.group(1) is None:
            versions.add(int(match.group(2)))
    return Precondition(sent=True, versions=frozenset(versions))


IfMatch = Annotated[Precondition, Depends(_if_match)]

# --- Problem answers in the OpenAPI document ----------------------------------------------------


def problem(description: str) -> dict[str, Any]:
    """An answer documented as a problem document (`libs.contracts.problems`)."""
    return {
        "description": description,
        "content": {problems.MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


ETAG_HEADER = {
    "ETag": {"description": 'The job\'s version: `"<version>"`.', "schema": {"type": "string"}}
}
# Answers that carry a credential: no cache may keep them (RFC 9111).
NO_STORE = {"Cache-Control": "no-store"}
_NO_STORE_HEADER = {
    "Cache-Control": {
        "description": "`no-store`: the answer holds a credential.",
        "schema": {"type": "string", "enum": ["no-store"]},
    }
}
_AUTH = {
    401: problem("No bearer token, or one that is not valid."),
    403: problem("The token lacks a scope this operation needs."),
}
_INVALID = {422: problem("The request is not valid: `errors` names each field.")}
# Requests with a body: one that is not JSON at all (FastAPI's 400), or too large (413).
WITH_BODY = {
    400: problem("The body cannot be parsed (not UTF-8 JSON)."),
    413: problem("The request body is larger than the service accepts."),
}
NOT_FOUND = {404: problem("No such job (or not the caller's).")}
CONFLICT = {409: problem("The job's state does not allow this; `currentStatus` says why.")}
STALE = {412: problem("If-Match names a version the job no longer has.")}


def responses(*groups: dict[int, Any]) -> dict[int | str, Any]:
    """The answers of an operation: authentication and validation problems, and `groups`."""
    merged: dict[int | str, Any] = {}
    for group in (_AUTH, _INVALID, *groups):
        merged.update(group)
    return merged


def with_etag(status: int, description: str) -> dict[int, Any]:
    return {status: {"description": description, "headers": ETAG_HEADER}}


def with_no_store(status: int, description: str) -> dict[int, Any]:
    return {status: {"description": description, "headers": _NO_STORE_HEADER}}
