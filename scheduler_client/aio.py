"""`AsyncClient`: the platform's APIs for asyncio programs. The same groups and methods as
`client.Client`, awaited (`iterate` answers an async iterator); both send the calls of
`scheduler_client.operations`, so they cannot disagree. The methods are documented on
`client.Client`'s groups.

    async with AsyncClient(Endpoints.local(), auth=PasswordLogin(email, password)) as client:
        job = await client.jobs.create({...})
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any, Self, TypeVar

import httpx

from scheduler_client import errors, models, operations
from scheduler_client.auth import Credentials, OnTokens, Tokens
from scheduler_client.client import DEFAULT_TIMEOUT_S, ClientBase, PageCall
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


class AsyncClient(ClientBase):
    """An asyncio client; see `client.Client` (one task's renewal of the tokens is shared by
    the others in flight)."""

    def __init__(
        self,
        endpoints: Endpoints | str,
        *,
        auth: Credentials | None = None,
        tokens: Tokens | None = None,
        on_tokens: OnTokens | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
    ):
        super().__init__(endpoints, auth, tokens, on_tokens)
        if transport is not None and http_client is not None:
            raise ValueError("give a transport or an http_client, not both")
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(transport=transport, timeout=timeout)
        self.jobs = Jobs(self)
        self.executions = Executions(self)
        self.dead_letters = DeadLetters(self)
        self.schedules = Schedules(self)
        self.job_types = JobTypes(self)
        self.nodes = Nodes(self)
        self.webhook_secret = WebhookSecrets(self)
        self.users = Users(self)
        self.service_accounts = ServiceAccounts(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def login(self) -> Tokens:
        auth = self._token_auth()
        async with auth.async_lock:
            return auth.install(await self._run(auth.grant()))

    async def logout(self) -> None:
        auth = self._auth
        if auth is None:
            return
        async with auth.async_lock:
            if auth.tokens is not None and auth.tokens.refresh_token is not None:
                await self._run(operations.revoke(auth.tokens.refresh_token))
            auth.forget()

    async def server_metadata(self) -> models.ServerMetadata:
        return await self._run(operations.server_metadata())

    async def jwks(self) -> dict[str, Any]:
        return await self._run(operations.jwks())

    async def _run(self, call: Call[T]) -> T:
        request = self._build(self._http, call)
        try:
            response = await self._http.send(request, auth=self._auth_for(call))
        except httpx.RequestError as exc:  # no answer, or none that can be decoded
            raise errors.ConnectionFailed.of(exc) from exc
        return operations.answer(call, response)

    async def _iterate(self, page: PageCall[T]) -> AsyncIterator[T]:
        cursor = None
        while True:
            answer = await self._run(page(cursor=cursor))
            for item in answer.items:
                yield item
            cursor = answer.next_cursor
            if cursor is None:
                return


class _Group:
    def __init__(self, client: AsyncClient):
        self._client = client


class Jobs(_Group):
    async def create(self, job: JobBody, *, idempotency_key: str | None = None) -> models.Job:
        return await self._client._run(operations.create_job(job, idempotency_key=idempotency_key))

    async def create_many(
        self, jobs: Iterable[JobBody], *, idempotency_key: str | None = None
    ) -> models.JobBatchResult:
        return await self._client._run(
            operations.create_jobs(jobs, idempotency_key=idempotency_key)
        )

    async def list(
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
        return await self._client._run(
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
    ) -> AsyncIterator[models.Job]:
        return self._client._iterate(
            lambda cursor: operations.list_jobs(
                status=status, type=type, label=label, name=name, owner_id=owner_id,
                sort=sort, limit=limit, cursor=cursor,
            )
        )  # fmt: skip

    async def get(self, job_id: Id) -> models.Job:
        return await self._client._run(operations.get_job(job_id))

    async def update(self, job_id: Id, changes: PatchBody, *, if_match: IfMatch) -> models.Job:
        return await self._client._run(operations.update_job(job_id, changes, if_match=if_match))

    async def delete(self, job_id: Id, *, if_match: IfMatch | None = None) -> None:
        return await self._client._run(operations.delete_job(job_id, if_match=if_match))

    async def pause(self, job_id: Id, *, if_match: IfMatch | None = None) -> models.Job:
        return await self._client._run(operations.job_action(job_id, "pause", if_match=if_match))

    async def resume(self, job_id: Id, *, if_match: IfMatch | None = None) -> models.Job:
        return await self._client._run(operations.job_action(job_id, "resume", if_match=if_match))

    async def cancel(self, job_id: Id, *, if_match: IfMatch | None = None) -> models.Job:
        return await self._client._run(operations.job_action(job_id, "cancel", if_match=if_match))

    async def run(self, job_id: Id, *, if_match: IfMatch | None = None) -> models.Job:
        return await self._client._run(operations.job_action(job_id, "run", if_match=if_match))

    async def executions(
        self,
        job_id: Id,
        *,
        status: Repeated | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> models.Page[models.Execution]:
        return await self._client._run(
            operations.list_job_executions(
                job_id, status=status, created_after=created_after,
                created_before=created_before, limit=limit, cursor=cursor,
            )
        )  # fmt: skip


class Executions(_Group):
    async def list(
        self,
        *,
        job_id: Id | Sequence[Id] | None = None,
        status: Repeated | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> models.Page[models.Execution]:
        return await self._client._run(
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
    ) -> AsyncIterator[models.Execution]:
        return self._client._iterate(
            lambda cursor: operations.list_executions(
                job_id=job_id, status=status, created_after=created_after,
                created_before=created_before, limit=limit, cursor=cursor,
            )
        )  # fmt: skip

    async def get(self, execution_id: Id) -> models.Execution:
        return await self._client._run(operations.get_execution(execution_id))


class DeadLetters(_Group):
    async def list(
        self,
        *,
        job_id: Id | None = None,
        replayed: bool | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> models.Page[models.DeadLetter]:
        return await self._client._run(
            operations.list_dead_letters(
                job_id=job_id, replayed=replayed, limit=limit, cursor=cursor
            )
        )

    def iterate(
        self, *, job_id: Id | None = None, replayed: bool | None = None, limit: int | None = None
    ) -> AsyncIterator[models.DeadLetter]:
        return self._client._iterate(
            lambda cursor: operations.list_dead_letters(
                job_id=job_id, replayed=replayed, limit=limit, cursor=cursor
            )
        )

    async def replay(self, dead_letter_id: Id) -> models.DeadLetterReplay:
        return await self._client._run(operations.replay_dead_letter(dead_letter_id))


class Schedules(_Group):
    async def preview(
        self, schedule: ScheduleBody, *, count: int | None = None
    ) -> models.SchedulePreview:
        return await self._client._run(operations.preview_schedule(schedule, count=count))


class JobTypes(_Group):
    async def list(self) -> Sequence[models.JobType]:
        return await self._client._run(operations.list_job_types())


class Nodes(_Group):
    async def list(self) -> Sequence[models.Node]:
        return await self._client._run(operations.list_nodes())


class WebhookSecrets(_Group):
    async def get(self) -> models.WebhookSecret:
        return await self._client._run(operations.get_webhook_secret())

    async def rotate(self, *, grace_s: int | None = None) -> models.WebhookSecret:
        return await self._client._run(operations.rotate_webhook_secret(grace_s=grace_s))


class Users(_Group):
    async def register(
        self, *, email: str, password: str, display_name: str
    ) -> models.RegistrationAccepted:
        return await self._client._run(
            operations.register(email=email, password=password, display_name=display_name)
        )

    async def me(self) -> models.User:
        return await self._client._run(operations.get_me())

    async def update_me(self, *, display_name: str) -> models.User:
        return await self._client._run(operations.update_me(display_name=display_name))

    async def change_password(self, *, current_password: str, new_password: str) -> None:
        return await self._client._run(
            operations.change_password(current_password=current_password, new_password=new_password)
        )

    async def list(
        self,
        *,
        email: str | None = None,
        locked: bool | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> models.Page[models.User]:
        return await self._client._run(
            operations.list_users(email=email, locked=locked, limit=limit, cursor=cursor)
        )

    def iterate(
        self, *, email: str | None = None, locked: bool | None = None, limit: int | None = None
    ) -> AsyncIterator[models.User]:
        return self._client._iterate(
            lambda cursor: operations.list_users(
                email=email, locked=locked, limit=limit, cursor=cursor
            )
        )

    async def get(self, user_id: Id) -> models.User:
        return await self._client._run(operations.get_user(user_id))

    async def set_role(self, user_id: Id, role: models.Role | str) -> models.User:
        return await self._client._run(operations.set_role(user_id, role))

    async def disable(self, user_id: Id) -> models.User:
        return await self._client._run(operations.user_action(user_id, "disable"))

    async def enable(self, user_id: Id) -> models.User:
        return await self._client._run(operations.user_action(user_id, "enable"))

    async def unlock(self, user_id: Id) -> models.User:
        return await self._client._run(operations.user_action(user_id, "unlock"))


class ServiceAccounts(_Group):
    async def create(self, *, name: str, scopes: Sequence[str]) -> models.ServiceAccountWithSecret:
        return await self._client._run(operations.create_service_account(name=name, scopes=scopes))

    async def list(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> models.Page[models.ServiceAccount]:
        return await self._client._run(operations.list_service_accounts(limit=limit, cursor=cursor))

    def iterate(self, *, limit: int | None = None) -> AsyncIterator[models.ServiceAccount]:
        return self._client._iterate(
            lambda cursor: operations.list_service_accounts(limit=limit, cursor=cursor)
        )

    async def get(self, account_id: Id) -> models.ServiceAccount:
        return await self._client._run(operations.get_service_account(account_id))

    async def rotate_secret(self, account_id: Id) -> models.ServiceAccountWithSecret:
        return await self._client._run(operations.rotate_service_account_secret(account_id))

    async def disable(self, account_id: Id) -> models.ServiceAccount:
        return await self._client._run(operations.service_account_action(account_id, "disable"))

    async def enable(self, account_id: Id) -> models.ServiceAccount:
        return await self._client._run(operations.service_account_action(account_id, "enable"))
