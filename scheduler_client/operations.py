"""Every operation of the three APIs, written once as data: a `Call` says which service, what
to send and how to read the answer. `Client` and `AsyncClient` only send calls, so the two
cannot disagree about a path, a parameter or a header.

Each function here is pure: it builds a call from its arguments and does no I/O.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote, quote_plus

import httpx
from pydantic import BaseModel

from scheduler_client import errors, models
from scheduler_client.endpoints import Service

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

Id = str | uuid.UUID
# Request bodies: a model, or a mapping sent as it is (the server judges it).
JobBody = models.JobCreate | Mapping[str, Any]
PatchBody = models.JobPatch | Mapping[str, Any]
ScheduleBody = models.Schedule | Mapping[str, Any]
IfMatch = int | Literal["*"]  # a job's version, or "*" for any
Repeated = str | Sequence[str]  # a filter that may be given once or many times
JobSort = Literal["createdAt", "nextRunAt"]


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request to one service and the reading of its success answer."""

    service: Service
    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: tuple[tuple[str, str], ...] = ()
    json: Any = None
    form: Mapping[str, str] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    authenticated: bool = True  # False: sent without the bearer token


def answer(call: Call[T], response: httpx.Response) -> T:
    """The success answer read as `call` documents it; the `ApiError` of any other."""
    if not response.is_success:
        raise errors.from_response(response)
    try:
        return call.read(response)
    except ValueError as exc:  # not JSON, or not the documented shape (ValidationError)
        raise errors.UnexpectedAnswer(
            call.method, str(response.request.url), response.status_code, str(exc)
        ) from exc


# --- Building blocks ----------------------------------------------------------------------------


def _model(model: type[M]) -> Callable[[httpx.Response], M]:
    return lambda response: model.model_validate_json(response.content, context=models.ANSWER)


def _items(model: type[M]) -> Callable[[httpx.Response], list[M]]:
    whole = _model(models.ItemList[model])
    return lambda response: whole(response).items


def _nothing(response: httpx.Response) -> None:
    return None


def _segment(value: Id) -> str:
    """A path segment: an id is quoted whole, so it can never reach another path."""
    return quote(str(value), safe="")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _query(values: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """Query parameters by their API names; None is left out, a sequence is repeated."""
    pairs: list[tuple[str, str]] = []
    for name, value in values.items():
        if value is None:
            continue
        many = isinstance(value, Iterable) and not isinstance(value, str | bytes)
        pairs += [(name, _text(item)) for item in (value if many else [value])]
    return tuple(pairs)


def _if_match(version: IfMatch | None) -> dict[str, str]:
    if version is None:
        return {}
    if version == "*":
        return {"If-Match": "*"}
    if isinstance(version, int) and not isinstance(version, bool):
        return {"If-Match": f'"{version}"'}
    raise TypeError(f"if_match must be a version (int) or '*', not {version!r}")


def _given(**values: Any) -> dict[str, Any]:
    """The arguments the caller gave (None: left to the server)."""
    return {name: value for name, value in values.items() if value is not None}


def _idempotency(key: str | None) -> dict[str, str]:
    return {} if key is None else {"Idempotency-Key": key}


def _list(
    service: Service, path: str, item: type[M], query: Mapping[str, Any]
) -> Call[models.Page[M]]:
    """A page of a list: `query` holds its filters, `limit` and `cursor`."""
    return Call(service, "GET", path, _model(models.Page[item]), params=_query(query))


# --- Jobs ---------------------------------------------------------------------------------------


def create_job(job: JobBody, *, idempotency_key: str | None = None) -> Call[models.Job]:
    return Call(
        "jobs",
        "POST",
        "/v1/jobs",
        _model(models.Job),
        json=models.body(job),
        headers=_idempotency(idempotency_key),
    )


def create_jobs(
    jobs: Iterable[JobBody], *, idempotency_key: str | None = None
) -> Call[models.JobBatchResult]:
    return Call(
        "jobs",
        "POST",
        "/v1/jobs:batch",
        _model(models.JobBatchResult),
        json=models.body(models.JobBatchCreate(jobs=list(jobs))),
        headers=_idempotency(idempotency_key),
    )


def list_jobs(
    *,
    status: Repeated | None = None,
    type: str | None = None,
    label: Repeated | None = None,
    name: str | None = None,
    owner_id: Id | None = None,
    sort: JobSort | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[models.Page[models.Job]]:
    filters = {"status": status, "type": type, "label": label, "name": name, "ownerId": owner_id}
    page = {"sort": sort, "limit": limit, "cursor": cursor}
    return _list("jobs", "/v1/jobs", models.Job, {**filters, **page})


def get_job(job_id: Id) -> Call[models.Job]:
    return Call("jobs", "GET", f"/v1/jobs/{_segment(job_id)}", _model(models.Job))


def update_job(job_id: Id, changes: PatchBody, *, if_match: IfMatch) -> Call[models.Job]:
    return Call(
        "jobs",
        "PATCH",
        f"/v1/jobs/{_segment(job_id)}",
        _model(models.Job),
        json=models.body(changes),
        headers=_if_match(if_match),
    )


def delete_job(job_id: Id, *, if_match: IfMatch | None = None) -> Call[None]:
    return Call(
        "jobs", "DELETE", f"/v1/jobs/{_segment(job_id)}", _nothing, headers=_if_match(if_match)
    )


def job_action(
    job_id: Id, action: Literal["pause", "resume", "cancel", "run"], *, if_match: IfMatch | None
) -> Call[models.Job]:
    return Call(
        "jobs",
        "POST",
        f"/v1/jobs/{_segment(job_id)}:{action}",
        _model(models.Job),
        headers=_if_match(if_match),
    )


def _execution_filters(
    status: Repeated | None, created_after: datetime | None, created_before: datetime | None
) -> dict[str, Any]:
    return {"status": status, "createdAfter": created_after, "createdBefore": created_before}


def list_job_executions(
    job_id: Id,
    *,
    status: Repeated | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[models.Page[models.Execution]]:
    filters = _execution_filters(status, created_after, created_before)
    path = f"/v1/jobs/{_segment(job_id)}/executions"
    return _list("jobs", path, models.Execution, {**filters, "limit": limit, "cursor": cursor})


# --- Executions and dead letters ----------------------------------------------------------------


def list_executions(
    *,
    job_id: Id | Sequence[Id] | None = None,
    status: Repeated | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[models.Page[models.Execution]]:
    filters = {"jobId": job_id, **_execution_filters(status, created_after, created_before)}
    return _list(
        "jobs", "/v1/executions", models.Execution, {**filters, "limit": limit, "cursor": cursor}
    )


def get_execution(execution_id: Id) -> Call[models.Execution]:
    return Call("jobs", "GET", f"/v1/executions/{_segment(execution_id)}", _model(models.Execution))


def list_dead_letters(
    *,
    job_id: Id | None = None,
    replayed: bool | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[models.Page[models.DeadLetter]]:
    query = {"jobId": job_id, "replayed": replayed, "limit": limit, "cursor": cursor}
    return _list("jobs", "/v1/dead-letters", models.DeadLetter, query)


def replay_dead_letter(dead_letter_id: Id) -> Call[models.DeadLetterReplay]:
    return Call(
        "jobs",
        "POST",
        f"/v1/dead-letters/{_segment(dead_letter_id)}:replay",
        _model(models.DeadLetterReplay),
    )


# --- Schedules, job types, nodes, webhook secret ------------------------------------------------


def preview_schedule(
    schedule: ScheduleBody, *, count: int | None = None
) -> Call[models.SchedulePreview]:
    preview = models.SchedulePreviewRequest(**_given(schedule=schedule, count=count))
    return Call(
        "jobs",
        "POST",
        "/v1/schedules:preview",
        _model(models.SchedulePreview),
        json=models.body(preview),
    )


def list_job_types() -> Call[list[models.JobType]]:
    return Call("jobs", "GET", "/v1/job-types", _items(models.JobType))


def list_nodes() -> Call[list[models.Node]]:
    return Call("jobs", "GET", "/v1/nodes", _items(models.Node))


def get_webhook_secret() -> Call[models.WebhookSecret]:
    return Call("jobs", "GET", "/v1/webhook-secret", _model(models.WebhookSecret))


def rotate_webhook_secret(*, grace_s: int | None = None) -> Call[models.WebhookSecret]:
    rotation = models.WebhookSecretRotation(**_given(grace_s=grace_s))
    return Call(
        "jobs",
        "POST",
        "/v1/webhook-secret:rotate",
        _model(models.WebhookSecret),
        json=models.body(rotation),
    )


# --- Users --------------------------------------------------------------------------------------


def register(*, email: str, password: str, display_name: str) -> Call[models.RegistrationAccepted]:
    registration = models.Registration(email=email, password=password, display_name=display_name)
    return Call(
        "users",
        "POST",
        "/v1/users",
        _model(models.RegistrationAccepted),
        json=models.body(registration),
        authenticated=False,
    )


def get_me() -> Call[models.User]:
    return Call("users", "GET", "/v1/users/me", _model(models.User))


def update_me(*, display_name: str) -> Call[models.User]:
    update = models.ProfileUpdate(display_name=display_name)
    return Call("users", "PATCH", "/v1/users/me", _model(models.User), json=models.body(update))


def change_password(*, current_password: str, new_password: str) -> Call[None]:
    change = models.PasswordChange(current_password=current_password, new_password=new_password)
    return Call("users", "POST", "/v1/users/me:changePassword", _nothing, json=models.body(change))


def list_users(
    *,
    email: str | None = None,
    locked: bool | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[models.Page[models.User]]:
    query = {"email": email, "locked": locked, "limit": limit, "cursor": cursor}
    return _list("users", "/v1/users", models.User, query)


def get_user(user_id: Id) -> Call[models.User]:
    return Call("users", "GET", f"/v1/users/{_segment(user_id)}", _model(models.User))


def set_role(user_id: Id, role: models.Role | str) -> Call[models.User]:
    update = models.RoleUpdate(role=role)
    return Call(
        "users",
        "PATCH",
        f"/v1/users/{_segment(user_id)}",
        _model(models.User),
        json=models.body(update),
    )


def user_action(user_id: Id, action: Literal["disable", "enable", "unlock"]) -> Call[models.User]:
    return Call("users", "POST", f"/v1/users/{_segment(user_id)}:{action}", _model(models.User))


# --- Service accounts ---------------------------------------------------------------------------


def create_service_account(
    *, name: str, scopes: Sequence[str]
) -> Call[models.ServiceAccountWithSecret]:
    creation = models.ServiceAccountCreation(name=name, scopes=list(scopes))
    return Call(
        "users",
        "POST",
        "/v1/service-accounts",
        _model(models.ServiceAccountWithSecret),
        json=models.body(creation),
    )


def list_service_accounts(
    *, limit: int | None = None, cursor: str | None = None
) -> Call[models.Page[models.ServiceAccount]]:
    query = {"limit": limit, "cursor": cursor}
    return _list("users", "/v1/service-accounts", models.ServiceAccount, query)


def get_service_account(account_id: Id) -> Call[models.ServiceAccount]:
    return Call(
        "users",
        "GET",
        f"/v1/service-accounts/{_segment(account_id)}",
        _model(models.ServiceAccount),
    )


def rotate_service_account_secret(account_id: Id) -> Call[models.ServiceAccountWithSecret]:
    return Call(
        "users",
        "POST",
        f"/v1/service-accounts/{_segment(account_id)}:rotateSecret",
        _model(models.ServiceAccountWithSecret),
    )


def service_account_action(
    account_id: Id, action: Literal["disable", "enable"]
) -> Call[models.ServiceAccount]:
    return Call(
        "users",
        "POST",
        f"/v1/service-accounts/{_segment(account_id)}:{action}",
        _model(models.ServiceAccount),
    )


# --- OAuth --------------------------------------------------------------------------------------


def _token(form: Mapping[str, str], headers: Mapping[str, str]) -> Call[models.TokenResponse]:
    """A token request (RFC 6749 section 4): `form` names the grant."""
    return Call(
        "auth",
        "POST",
        "/oauth/token",
        _model(models.TokenResponse),
        form=form,
        headers=headers,
        authenticated=False,
    )


def password_grant(
    username: str, password: str, scope: str | None = None
) -> Call[models.TokenResponse]:
    form = _given(grant_type="password", username=username, password=password, scope=scope)
    return _token(form, {})


def client_credentials_grant(
    client_id: str, client_secret: str, scope: str | None = None
) -> Call[models.TokenResponse]:
    # HTTP Basic, each part form-encoded first (RFC 6749 section 2.3.1).
    pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    basic = {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
    return _token(_given(grant_type="client_credentials", scope=scope), basic)


def refresh_grant(refresh_token: str) -> Call[models.TokenResponse]:
    return _token({"grant_type": "refresh_token", "refresh_token": refresh_token}, {})


def revoke(refresh_token: str) -> Call[None]:
    """Revoke a refresh token and its family (RFC 7009); any token answers 200."""
    form = {"token": refresh_token, "token_type_hint": "refresh_token"}
    return Call("auth", "POST", "/oauth/revoke", _nothing, form=form, authenticated=False)


def server_metadata() -> Call[models.ServerMetadata]:
    return Call(
        "auth",
        "GET",
        "/.well-known/oauth-authorization-server",
        _model(models.ServerMetadata),
        authenticated=False,
    )


def jwks() -> Call[dict[str, Any]]:
    return Call(
        "auth", "GET", "/.well-known/jwks.json", lambda r: dict(r.json()), authenticated=False
    )
