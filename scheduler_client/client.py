"""`Client`: the platform's APIs, synchronously. Each method sends one call of
`scheduler_client.operations` and returns its answer read into a model; `aio.AsyncClient` has
the same groups and methods, awaited.

    with Client(Endpoints.local(), auth=PasswordLogin(email, password)) as client:
        job = client.jobs.create({...})
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Self, TypeVar

import httpx

from scheduler_client import errors, models, operations
from scheduler_client.auth import Credentials, OnTokens, TokenAuth, Tokens
from scheduler_client.endpoints import Endpoints
from scheduler_client.operations import (
    Call,
    Id,
    IfMatch,
    JobBody,
    JobSort,
    PatchBody,
    Repeated,
    ScheduleBody,
)

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 10.0
PageCall = Callable[..., Call[models.Page[T]]]


class ClientBase:
    """What both clients share: where the services are, and the tokens."""

    def __init__(
        self,
        endpoints: Endpoints | str,
        auth: Credentials | None,
        tokens: Tokens | None,
        on_tokens: OnTokens | None,
    ):
        self.endpoints = (
            endpoints if isinstance(endpoints, Endpoints) else Endpoints.single(endpoints)
        )
        self._auth = (
            None
            if auth is None and tokens is None
            else TokenAuth(auth, self.endpoints, tokens=tokens, on_tokens=on_tokens)
        )

    @property
    def tokens(self) -> Tokens | None:
        """The current tokens (None before the first login, or without credentials)."""
        return self._auth.tokens if self._auth else None

    def _token_auth(self) -> TokenAuth:
        if self._auth is None:
            raise errors.ClientError("this client has no credentials: pass auth=...")
        return self._auth

    def _build(self, http: httpx.Client | httpx.AsyncClient, call: Call[Any]) -> httpx.Request:
        return http.build_request(
            call.method,
            self.endpoints.url(call.service, call.path),
            params=call.params,
            json=call.json,
            data=call.form,
            headers=call.headers,
        )

    def _auth_for(self, call: Call[Any]) -> TokenAuth | None:
        return self._auth if call.authenticated else None


class Client(ClientBase):
    """A synchronous client. `endpoints`: where the services are (a string is one base URL
    for all three); `auth`: the credentials; `tokens`: tokens saved from an earlier login to
    start with, when `auth` is a login to fall back on (a service account's
    `ClientCredentials`, which gets no refresh token, logs in again with them when its saved
    token expires or is refused); `on_tokens`: told of every new token set;
    `transport` or `http_client`: for custom TLS, proxies or tests (a given `http_client` is
    left open). Thread-safe. Raises `errors.ClientError` subclasses only."""

    def __init__(
        self,
        endpoints: Endpoints | str,
        *,
        auth: Credentials | None = None,
        tokens: Tokens | None = None,
        on_tokens: OnTokens | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
    ):
        super().__init__(endpoints, auth, tokens, on_tokens)
        if transport is not None and http_client is not None:
            raise ValueError("give a transport or an http_client, not both")
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(transport=transport, timeout=timeout)
        self.jobs = Jobs(self)
        self.executions = Executions(self)
        self.dead_letters = DeadLetters(self)
        self.schedules = Schedules(self)
        self.job_types = JobTypes(self)
        self.nodes = Nodes(self)
        self.webhook_secret = WebhookSecrets(self)
        self.users = Users(self)
        self.service_accounts = ServiceAccounts(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def login(self) -> Tokens:
        """Get new tokens now (a first login, or a refresh), as the credentials allow."""
        auth = self._token_auth()
        with auth.sync_lock:
            return auth.install(self._run(auth.grant()))

    def logout(self) -> None:
        """Revoke the refresh token (and its family) and forget the tokens."""
        auth = self._auth
        if auth is None:
            return
        with auth.sync_lock:
            if auth.tokens is not None and auth.tokens.refresh_token is not None:
                self._run(operations.revoke(auth.tokens.refresh_token))
            auth.forget()

    def server_metadata(self) -> models.ServerMetadata:
        return self._run(operations.server_metadata())

    def jwks(self) -> dict[str, Any]:
        """The public keys that verify access tokens (RFC 7517)."""
        return self._run(operations.jwks())

    def _run(self, call: Call[T]) -> T:
        request = self._build(self._http, call)
        try:
            response = self._http.send(request, auth=self._auth_for(call))
        except httpx.RequestError as exc:  # no answer, or none that can be decoded
            raise errors.ConnectionFailed.of(exc) from exc
        return operations.answer(call, response)

    def _iterate(self, page: PageCall[T]) -> Iterator[T]:
        cursor = None
        while True:
            answer = self._run(page(cursor=cursor))
            yield from answer.items
            cursor = answer.next_cursor
            if cursor is None:
                return


class _Group:
    def __init__(self, client: Client):
        self._client = client


class Jobs(_Group):
    def create(self, job: JobBody, *, idempotency_key: str | None = None) -> models.Job:
        """Create a job (`models.JobCreate` or a dict). With `idempotency_key`, a retry
        answers the job the first request created."""
        return self._client._run(operations.create_job(job, idempotency_key=idempotency_key))

    def create_many(
        self, jobs: Iterable[JobBody], *, idempotency_key: str | None = None
    ) -> models.JobBatchResult:
        """Create up to 1000 jobs; each is judged on its own (see `results`)."""
        return self._client._run(operations.create_jobs(jobs, idempotency_key=idempotency_key))

    def list(
        self,
        *,
        status: Repeated | None = None,
        type: str | None = None,
        label: Repeated | None = None,
        name: str | None = None,
        owner_id: Id | None = None,
        sort: JobSort | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> models.Page[models.Job]:
        """One page of jobs. `status`: any of these; `label`: "key:value", all of these;
        `name`: a prefix; `sort`: "createdAt" (default) or "nextRunAt"."""
        return self._client._run(
            operations.list_jobs(
                status=status, type=type, label=label, name=name, owner_id=owner_id,
                sort=sort, limit=limit, cursor=cursor,
            )
        )  # fmt: skip

    def iterate(
        self,
        *,
        status: Repeated | None = None,
        type: str | None = None,
        label: Repeated | None = None,
        name: str | None = None,
        owner_id: Id | None = None,
        sort: JobSort | None = None,
        limit: int | None = None,
    ) -> Iterator[models.Job]:
        """Every job `list` finds, page after page as they are read (`limit`: page size)."""
        return self._client._iterate(
            lambda cursor: operations.list_jobs(
                status=status, type=type, label=label, name=name, owner_id=owner_id,
                sort=sort, limit=limit, cursor=cursor,
            )
        )  # fmt: skip

    def get(self, job_id: Id) -> models.Job:
        return self._client._run(operations.get_job(job_id))

    def update(self, job_id: Id, changes: PatchBody, *, if_match: IfMatch) -> models.Job:
        """Change some fields (`models.JobPatch` or a dict). `if_match`: the version the
        change is made to (`StaleVersion` if the job has moved on), or "*"."""
        return self._client._run(operations.update_job(job_id, changes, if_match=if_match))

    def delete(self, job_id: Id, *, if_match: IfMatch | None = None) -> None:
        return self._client._run(operations.delete_job(job_id, if_match=if_match))

    def pause(self, job_id: Id, *, if_match: IfMatch | None = None) -> models.Job:
        return self._client._run(operations.job_action(job_id, "pause", if_match=if_match))

    def resume(self, job_id: Id, *, if_match: IfMatch | None = None) -> models.Job:
        return self._client._run(operations.job_action(job_id, "resume", if_match=if_match))

    def cancel(self, job_id: Id, *, if_match: IfMatch | None = None) -> models.Job:
        return self._client._run(operations.job_action(job_id, "cancel", if_match=if_match))

    def run(self, job_id: Id, *, if_match: IfMatch | None = None) -> models.Job:
        """One extra occurrence, due now."""
        return self._client._run(operations.job_action(job_id, "run", if_match=if_match))

    def executions(
        self,
        job_id: Id,
        *,
        status: Repeated | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> models.Page[models.Execution]:
        """One page of the job's executions, newest first."""
        return self._client._run(
            operations.list_job_executions(
                job_id, status=status, created_after=created_after,
                created_before=created_before, limit=limit, cursor=cursor,
            )
        )  # fmt: skip


class Executions(_Group):
    def list(
        self,
        *,
        job_id: Id | Sequence[Id] | None = None,
        status: Repeated | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> models.Page[models.Execution]:
        """One page of executions of every job one may see, newest first."""
        return self._client._run(
            operations.list_executions(
                job_id=job_id, status=status, created_after=created_after,
                created_before=created_before, limit=limit, cursor=cursor,
            )
        )  # fmt: skip

    def iterate(
        self,
        *,
        job_id: Id | Sequence[Id] | None = None,
        status: Repeated | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int | None = None,
    ) -> Iterator[models.Execution]:
        return self._client._iterate(
            lambda cursor: operations.list_executions(
                job_id=job_id, status=status, created_after=created_after,
                created_before=created_before, limit=limit, cursor=cursor,
            )
        )  # fmt: skip

    def get(self, execution_id: Id) -> models.Execution:
        return self._client._run(operations.get_execution(execution_id))


class DeadLetters(_Group):
    def list(
        self,
        *,
        job_id: Id | None = None,
        replayed: bool | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> models.Page[models.DeadLetter]:
        return self._client._run(
            operations.list_dead_letters(
                job_id=job_id, replayed=replayed, limit=limit, cursor=cursor
            )
        )

    def iterate(
        self, *, job_id: Id | None = None, replayed: bool | None = None, limit: int | None = None
    ) -> Iterator[models.DeadLetter]:
        return self._client._iterate(
            lambda cursor: operations.list_dead_letters(
                job_id=job_id, replayed=replayed, limit=limit, cursor=cursor
            )
        )

    def replay(self, dead_letter_id: Id) -> models.DeadLetterReplay:
        """Make the job due now, attempts counted from 1 again (once per dead letter)."""
        return self._client._run(operations.replay_dead_letter(dead_letter_id))


class Schedules(_Group):
    def preview(
        self, schedule: ScheduleBody, *, count: int | None = None
    ) -> models.SchedulePreview:
        """The next fire times of a schedule, without creating a job."""
        return self._client._run(operations.preview_schedule(schedule, count=count))


class JobTypes(_Group):
    def list(self) -> Sequence[models.JobType]:
        return self._client._run(operations.list_job_types())


class Nodes(_Group):
    def list(self) -> Sequence[models.Node]:
        """Scheduler and executor processes and whether each is up (admins only)."""
        return self._client._run(operations.list_nodes())


class WebhookSecrets(_Group):
    def get(self) -> models.WebhookSecret:
        return self._client._run(operations.get_webhook_secret())

    def rotate(self, *, grace_s: int | None = None) -> models.WebhookSecret:
        """A new secret; the old one keeps signing beside it for `grace_s` seconds."""
        return self._client._run(operations.rotate_webhook_secret(grace_s=grace_s))


class Users(_Group):
    def register(
        self, *, email: str, password: str, display_name: str
    ) -> models.RegistrationAccepted:
        """Register an account (needs no credentials); then log in with it."""
        return self._client._run(
            operations.register(email=email, password=password, display_name=display_name)
        )

    def me(self) -> models.User:
        return self._client._run(operations.get_me())

    def update_me(self, *, display_name: str) -> models.User:
        return self._client._run(operations.update_me(display_name=display_name))

    def change_password(self, *, current_password: str, new_password: str) -> None:
        """Every refresh token of the user is revoked: log in again afterwards."""
        return self._client._run(
            operations.change_password(current_password=current_password, new_password=new_password)
        )

    def list(
        self,
        *,
        email: str | None = None,
        locked: bool | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> models.Page[models.User]:
        """One page of users (admins only). `email`: a prefix."""
        return self._client._run(
            operations.list_users(email=email, locked=locked, limit=limit, cursor=cursor)
        )

    def iterate(
        self, *, email: str | None = None, locked: bool | None = None, limit: int | None = None
    ) -> Iterator[models.User]:
        return self._client._iterate(
            lambda cursor: operations.list_users(
                email=email, locked=locked, limit=limit, cursor=cursor
            )
        )

    def get(self, user_id: Id) -> models.User:
        return self._client._run(operations.get_user(user_id))

    def set_role(self, user_id: Id, role: models.Role | str) -> models.User:
        return self._client._run(operations.set_role(user_id, role))

    def disable(self, user_id: Id) -> models.User:
        return self._client._run(operations.user_action(user_id, "disable"))

    def enable(self, user_id: Id) -> models.User:
        return self._client._run(operations.user_action(user_id, "enable"))

    def unlock(self, user_id: Id) -> models.User:
        """Lift the lock that failed logins put on the account."""
        return self._client._run(operations.user_action(user_id, "unlock"))


class ServiceAccounts(_Group):
    def create(self, *, name: str, scopes: Sequence[str]) -> models.ServiceAccountWithSecret:
        """A new account; its `client_secret` is in this answer only."""
        return self._client._run(operations.create_service_account(name=name, scopes=scopes))

    def list(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> models.Page[models.ServiceAccount]:
        return self._client._run(operations.list_service_accounts(limit=limit, cursor=cursor))

    def iterate(self, *, limit: int | None = None) -> Iterator[models.ServiceAccount]:
        return self._client._iterate(
            lambda cursor: operations.list_service_accounts(limit=limit, cursor=cursor)
        )

    def get(self, account_id: Id) -> models.ServiceAccount:
        return self._client._run(operations.get_service_account(account_id))

    def rotate_secret(self, account_id: Id) -> models.ServiceAccountWithSecret:
        """A new secret, in this answer only; the old one stops working at once."""
        return self._client._run(operations.rotate_service_account_secret(account_id))

    def disable(self, account_id: Id) -> models.ServiceAccount:
        return self._client._run(operations.service_account_action(account_id, "disable"))

    def enable(self, account_id: Id) -> models.ServiceAccount:
        return self._client._run(operations.service_account_action(account_id, "enable"))
