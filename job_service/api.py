"""HTTP routes of the job service: the jobs API (create, read, change and observe jobs).

Each route opens the request's unit of work and commits it at its end; refusals raise before
the commit, so a refused request changes nothing. Scopes: reading needs `jobs:read`; creating
and changing jobs, and reading or rotating one's webhook signing secret (a credential),
`jobs:write`; running a job now and replaying a dead letter `jobs:run`.
A principal sees only its own jobs (another's answer 404, as if absent) unless it holds
`users:admin`, which sees every owner's. The conventions the routes share (scopes, ETag and
If-Match, Idempotency-Key, documented problems) are in `job_service.http`.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Body, Depends, FastAPI, Path, Query, Request, Response

from job_service import errors, history, repository, schedules, schemas, service, webhooks
from job_service import http as h
from job_service.settings import Settings
from libs.contracts import problems
from libs.infra import db, resources, web
from libs.scheduling import job_types
from libs.scheduling.states import ExecutionStatus, JobStatus
from libs.store import models

# --- Jobs ----------------------------------------------------------------------------------------

jobs_router = APIRouter(tags=["jobs"])


def _job(response: Response, job: models.Job) -> schemas.Job:
    """The job as answered, its version in `ETag`."""
    response.headers["ETag"] = h.etag(job.version)
    return schemas.Job.of(job)


@jobs_router.post(
    "/v1/jobs",
    status_code=201,
    summary="Create a job",
    responses=h.responses(
        h.with_etag(201, "The job (also the answer to a retry with the same Idempotency-Key)."),
        h.WITH_BODY,
        {409: h.problem("The job created with this Idempotency-Key has been deleted.")},
    ),
)
async def create_job(
    body: schemas.JobCreate,
    principal: h.Writer,
    sessions: h.Sessions,
    settings: h.ServiceSettings,
    types: h.JobTypes,
    response: Response,
    idempotency_key: h.IdempotencyKey = None,
) -> schemas.Job:
    """Create a job: its first run is computed from the schedule with the database's clock.
    A schedule that would never fire is refused, and so is an `http` job whose URL names a
    non-public address (loopback, private, link-local...) that the executors would refuse."""
    async with db.unit_of_work(sessions) as session:
        job, replayed = await service.create_job(
            session,
            principal,
            body,
            idempotency_key=idempotency_key,
            types=types,
            allowed_networks=settings.allowed_networks,
        )
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    if replayed:
        response.headers[h.REPLAYED_HEADER] = "true"
    return _job(response, job)


@jobs_router.post(
    "/v1/jobs:batch",
    summary="Create many jobs",
    responses=h.responses(h.WITH_BODY),
)
async def create_jobs(
    body: schemas.JobBatchCreate,
    principal: h.Writer,
    sessions: h.Sessions,
    settings: h.ServiceSettings,
    types: h.JobTypes,
    response: Response,
    idempotency_key: h.IdempotencyKey = None,
) -> schemas.JobBatchResult:
    """Create up to 1000 jobs in one transaction. Each item is validated on its own: the
    answer has one result per item, in order (201 with the job, or 422 with the problem), and
    the valid items are created even when others are refused.

    With `Idempotency-Key`, a retry of the same batch answers the first request's results
    (the same job for each item, as it is now, and the same refusals) with
    `Idempotent-Replayed: true`, and creates nothing; concurrent copies create the jobs once.
    An item whose job has been deleted since answers 409 `idempotent-job-deleted`, as the
    retry of a single creation does."""
    async with db.unit_of_work(sessions) as session:
        outcomes, replayed = await service.create_jobs(
            session,
            principal,
            body.jobs,
            idempotency_key=idempotency_key,
            types=types,
            allowed_networks=settings.allowed_networks,
        )
    if replayed:
        response.headers[h.REPLAYED_HEADER] = "true"
    results = []
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, problems.Problem):
            document = problems.body(
                outcome.status, outcome.slug, outcome.title, outcome.detail, None,
                **outcome.extensions,
            )  # fmt: skip
            results.append(
                schemas.BatchItemResult(
                    index=index, status=outcome.status, problem=schemas.Problem(**document)
                )
            )
        else:
            results.append(
                schemas.BatchItemResult(index=index, status=201, job=schemas.Job.of(outcome))
            )
    created = sum(1 for r in results if r.job is not None)
    return schemas.JobBatchResult(created=created, failed=len(results) - created, results=results)


_LABEL = re.compile(r"^([a-z0-9][a-z0-9._/-]{0,62}):([^\x00-\x1f\x7f]{0,200})$")


def _labels(values: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for value in values:
        match = _LABEL.fullmatch(value)
        if match is None:
            raise errors.InvalidRequest.field(
                "query.label", "must be key:value, with a label key and a value", "label"
            )
        key, text = match.groups()
        if labels.get(key, text) != text:  # two values for one key: nothing can match
            raise errors.InvalidRequest.field(
                "query.label", f"the label {key} is given two values", "label"
            )
        labels[key] = text
    return labels


@jobs_router.get("/v1/jobs", summary="List jobs", responses=h.responses())
async def list_jobs(
    principal: h.Reader,
    sessions: h.Sessions,
    status: Annotated[
        list[JobStatus] | None, Query(description="Only jobs in these states (repeatable).")
    ] = None,
    type: Annotated[
        str | None, Query(max_length=schemas.TYPE_NAME_MAX, description="Only jobs of this type.")
    ] = None,
    label: Annotated[
        list[str] | None,
        Query(
            max_length=schemas.LABELS_MAX,
            description="`key:value`: only jobs with this label (repeatable: all of them).",
        ),
    ] = None,
    name: Annotated[
        str | None,
        Query(
            max_length=schemas.NAME_MAX,
            pattern=r"^[^\x00-\x1f\x7f]*$",
            description="Only jobs whose name starts with this.",
        ),
    ] = None,
    owner_id: Annotated[
        uuid.UUID | None,
        Query(
            alias="ownerId",
            description="Only this account's jobs: a filter for admins, who see every "
            "owner's; anyone else sees only their own, so another id matches nothing.",
        ),
    ] = None,
    sort: Annotated[
        repository.JobOrder,
        Query(
            description="`createdAt`: oldest first; `nextRunAt`: soonest first, jobs without a "
            "next run last."
        ),
    ] = "createdAt",
    limit: h.Limit = h.DEFAULT_PAGE,
    cursor: h.Cursor = None,
) -> schemas.JobPage:
    """The caller's jobs (an admin's: everyone's), deleted ones excluded, a page at a time."""
    where = repository.JobFilter(
        statuses=status or (),
        type=type,
        labels=_labels(label or []),
        name_prefix=name or None,
        owner=owner_id,
    )
    async with db.unit_of_work(sessions) as session:
        rows, next_cursor = await service.list_jobs(
            session, principal, where, order=sort, cursor=cursor, limit=limit
        )
    return schemas.JobPage(items=[schemas.Job.of(j) for j in rows], next_cursor=next_cursor)


_MOVES = h.responses(
    h.with_etag(200, "The job after the change."), h.NOT_FOUND, h.CONFLICT, h.STALE
)


# Declared before `/v1/jobs/{jobId}`, whose `{jobId}` would also match `<id>:pause`.
@jobs_router.post("/v1/jobs/{jobId}:pause", summary="Pause a job", responses=_MOVES)
async def pause_job(
    job_id: h.JobId,
    principal: h.Writer,
    sessions: h.Sessions,
    response: Response,
    if_match: h.IfMatch,
) -> schemas.Job:
    """SCHEDULED or RUNNING -> PAUSED. A running occurrence is not interrupted; nothing runs
    after it until the job is resumed. This holds for the run requested on a paused job too
    (`:run`): the job is paused at once, and that occurrence is what a resume judges."""
    async with db.unit_of_work(sessions) as session:
        job = await service.pause_job(session, principal, job_id, versions=if_match.versions)
    return _job(response, job)


@jobs_router.post("/v1/jobs/{jobId}:resume", summary="Resume a job", responses=_MOVES)
async def resume_job(
    job_id: h.JobId,
    principal: h.Writer,
    sessions: h.Sessions,
    response: Response,
    if_match: h.IfMatch,
) -> schemas.Job:
    """PAUSED -> SCHEDULED. An occurrence missed while paused is handled by the job's misfire
    policy: `run_once` and `run_all` make the job due now, `skip` moves it to the next regular
    occurrence (within the grace period it is due now whatever the policy). A schedule with no
    occurrence left completes the job instead.

    FAILED -> SCHEDULED likewise, from the job's pending occurrence (`nextRunAt`, which a
    change of its schedule sets) or else its schedule's next one: how a fixed one-time job
    runs at a new `at`. A FAILED job with no occurrence left is refused (409): run it now.

    A job running the occurrence requested while it was paused (`pauseAfterRun`) stays as it
    is, SCHEDULED or RUNNING, and carries on with its schedule after that run."""
    async with db.unit_of_work(sessions) as session:
        job = await service.resume_job(session, principal, job_id, versions=if_match.versions)
    return _job(response, job)


@jobs_router.post("/v1/jobs/{jobId}:cancel", summary="Cancel a job", responses=_MOVES)
async def cancel_job(
    job_id: h.JobId,
    principal: h.Writer,
    sessions: h.Sessions,
    response: Response,
    if_match: h.IfMatch,
) -> schemas.Job:
    """-> CANCELLED, for good: the job never runs again (a running occurrence finishes)."""
    async with db.unit_of_work(sessions) as session:
        job = await service.cancel_job(session, principal, job_id, versions=if_match.versions)
    return _job(response, job)


@jobs_router.post("/v1/jobs/{jobId}:run", summary="Run a job now", responses=_MOVES)
async def run_job_now(
    job_id: h.JobId,
    principal: h.Runner,
    sessions: h.Sessions,
    response: Response,
    if_match: h.IfMatch,
) -> schemas.Job:
    """One occurrence, due now; the schedule is unchanged, and the occurrence after this one
    follows from it as always. The run counts as an occurrence (`runCount`, `maxRuns`).

    - SCHEDULED: an extra occurrence.
    - FAILED (fix it first with PATCH): SCHEDULED again, attempts counted from 1. A one-time
      job then completes or fails again; a recurring one carries on with its schedule.
    - PAUSED: runs once without resuming the job. It is SCHEDULED, then RUNNING, with
      `pauseAfterRun: true`, and PAUSED again, at its next regular occurrence, when the run
      ends (retries included; a one-time job completes or fails instead). Its schedule does
      not fire meanwhile. Resuming during the run keeps the job running on its schedule
      afterwards; pausing pauses it at once.

    A RUNNING job is refused (409), and so are finished and cancelled ones."""
    async with db.unit_of_work(sessions) as session:
        job = await service.run_job_now(session, principal, job_id, versions=if_match.versions)
    return _job(response, job)


@jobs_router.get(
    "/v1/jobs/{jobId}",
    summary="Read a job",
    responses=h.responses(h.with_etag(200, "The job."), h.NOT_FOUND),
)
async def read_job(
    job_id: h.JobId, principal: h.Reader, sessions: h.Sessions, response: Response
) -> schemas.Job:
    """The job, its version in `ETag`. A deleted job answers 404 (its definition is gone);
    its executions and dead letters stay listed."""
    async with db.unit_of_work(sessions) as session:
        job = await service.get_job(session, principal, job_id)
    return _job(response, job)


@jobs_router.patch(
    "/v1/jobs/{jobId}",
    summary="Change a job",
    responses=h.responses(
        h.with_etag(200, "The job after the change."),
        h.NOT_FOUND,
        h.CONFLICT,
        h.STALE,
        h.WITH_BODY,
        {428: h.problem("If-Match is missing.")},
    ),
)
async def update_job(
    job_id: h.JobId,
    body: schemas.JobPatch,
    principal: h.Writer,
    sessions: h.Sessions,
    settings: h.ServiceSettings,
    types: h.JobTypes,
    response: Response,
    if_match: h.IfMatch,
) -> schemas.Job:
    """Change some of the job's fields (version + 1). `If-Match` is required, so that a change
    made by someone else since the job was read is never overwritten unseen.

    SCHEDULED, RUNNING, PAUSED and FAILED jobs can be changed; an edit never changes the
    status nor runs anything. Fix a FAILED job, then run it (`:run`), replay its dead letter,
    or resume it at its (changed) schedule's next occurrence (`:resume`). COMPLETED and
    CANCELLED jobs are records of what happened and cannot be changed (409)."""
    versions = if_match.required()
    async with db.unit_of_work(sessions) as session:
        job = await service.update_job(
            session,
            principal,
            job_id,
            body,
            versions=versions,
            types=types,
            allowed_networks=settings.allowed_networks,
        )
    return _job(response, job)


@jobs_router.delete(
    "/v1/jobs/{jobId}",
    status_code=204,
    summary="Delete a job",
    responses=h.responses(h.NOT_FOUND, h.STALE),
)
async def delete_job(
    job_id: h.JobId, principal: h.Writer, sessions: h.Sessions, if_match: h.IfMatch
) -> None:
    """Cancel the job (unless it has finished) and remove it from the job listings; reading it
    answers 404 from then on. Its history stays readable: its executions
    (GET /v1/jobs/{jobId}/executions, GET /v1/executions) and dead letters, marked
    `jobDeleted: true`."""
    async with db.unit_of_work(sessions) as session:
        await service.delete_job(session, principal, job_id, versions=if_match.versions)


# --- Executions and dead letters ---------------------------------------------------------------

history_router = APIRouter(tags=["executions and dead letters"])


def _execution_filter(
    status: Annotated[
        list[ExecutionStatus] | None,
        Query(description="Only executions in these states (repeatable)."),
    ] = None,
    created_after: Annotated[
        schemas.QueryTime | None,
        Query(
            alias="createdAfter",
            description="Only executions created at or after this time (RFC 3339, with a UTC "
            "offset: `Z`, or `+01:00` percent-encoded as `%2B01:00`).",
        ),
    ] = None,
    created_before: Annotated[
        schemas.QueryTime | None,
        Query(
            alias="createdBefore",
            description="Only executions created before this time (exclusive; RFC 3339, with a "
            "UTC offset). Must be later than `createdAfter`.",
        ),
    ] = None,
) -> repository.ExecutionFilter:
    return history.execution_filter(
        statuses=status or (), created_after=created_after, created_before=created_before
    )


ExecutionFilter = Annotated[repository.ExecutionFilter, Depends(_execution_filter)]


def _execution_page(
    rows: Sequence[repository.ExecutionRow], next_cursor: str | None
) -> schemas.ExecutionPage:
    return schemas.ExecutionPage(
        items=[schemas.Execution.of(row) for row in rows], next_cursor=next_cursor
    )


@history_router.get("/v1/executions", summary="List executions", responses=h.responses())
async def list_executions(
    principal: h.Reader,
    sessions: h.Sessions,
    where: ExecutionFilter,
    job_id: Annotated[
        list[uuid.UUID] | None,
        Query(
            alias="jobId",
            max_length=schemas.JOB_IDS_MAX,
            description="Only these jobs' executions (repeatable, up to "
            f"{schemas.JOB_IDS_MAX}). A job the caller cannot see matches nothing.",
        ),
    ] = None,
    limit: h.Limit = h.DEFAULT_PAGE,
    cursor: h.Cursor = None,
) -> schemas.ExecutionPage:
    """Every attempt of every occurrence of the caller's jobs (an admin's: everyone's), newest
    first by `createdAt` (when the scheduler dispatched the attempt), a page at a time. Each
    names its job (`jobId`, `jobName`, `jobType`) and carries its `durationSeconds`. The
    filters combine (all must hold); pass the same filters with the cursor. Deleted jobs'
    executions are listed too, marked `jobDeleted: true` (the job itself answers 404)."""
    where = dataclasses.replace(where, job_ids=tuple(job_id or ()))
    async with db.unit_of_work(sessions) as session:
        rows, next_cursor = await history.list_executions(
            session, principal, where, cursor=cursor, limit=limit
        )
    return _execution_page(rows, next_cursor)


@history_router.get(
    "/v1/jobs/{jobId}/executions",
    summary="List a job's executions",
    responses=h.responses(h.NOT_FOUND),
)
async def list_job_executions(
    job_id: h.JobId,
    principal: h.Reader,
    sessions: h.Sessions,
    where: ExecutionFilter,
    limit: h.Limit = h.DEFAULT_PAGE,
    cursor: h.Cursor = None,
) -> schemas.ExecutionPage:
    """Every attempt of every occurrence of the job, newest first, with the filters of
    GET /v1/executions. Also for a deleted job (each marked `jobDeleted: true`); 404 for a job
    that never existed or is not the caller's."""
    async with db.unit_of_work(sessions) as session:
        rows, next_cursor = await history.list_job_executions(
            session, principal, job_id, where, cursor=cursor, limit=limit
        )
    return _execution_page(rows, next_cursor)


@history_router.get(
    "/v1/executions/{executionId}",
    summary="Read an execution",
    responses=h.responses({404: h.problem("No such execution (or not the caller's).")}),
)
async def read_execution(
    execution_id: Annotated[uuid.UUID, Path(alias="executionId")],
    principal: h.Reader,
    sessions: h.Sessions,
) -> schemas.Execution:
    """One attempt of one occurrence; readable after its job was deleted too."""
    async with db.unit_of_work(sessions) as session:
        row = await history.get_execution(session, principal, execution_id)
    return schemas.Execution.of(row)


@history_router.get("/v1/dead-letters", summary="List dead letters", responses=h.responses())
async def list_dead_letters(
    principal: h.Reader,
    sessions: h.Sessions,
    job_id: Annotated[
        uuid.UUID | None,
        Query(
            alias="jobId",
            description="Only this job's dead letters (a job the caller cannot see matches "
            "nothing).",
        ),
    ] = None,
    replayed: Annotated[
        bool | None,
        Query(description="`true`: only those replayed already; `false`: only the others."),
    ] = None,
    limit: h.Limit = h.DEFAULT_PAGE,
    cursor: h.Cursor = None,
) -> schemas.DeadLetterPage:
    """Occurrences given up on (retries exhausted or a permanent failure) of the caller's jobs
    (an admin's: everyone's), newest first. Deleted jobs' dead letters are listed too, marked
    `jobDeleted: true` (they cannot be replayed)."""
    async with db.unit_of_work(sessions) as session:
        rows, next_cursor = await history.list_dead_letters(
            session, principal, job_id=job_id, replayed=replayed, cursor=cursor, limit=limit
        )
    items = [schemas.DeadLetter.of(letter, job_deleted=deleted) for letter, deleted in rows]
    return schemas.DeadLetterPage(items=items, next_cursor=next_cursor)


@history_router.post(
    "/v1/dead-letters/{deadLetterId}:replay",
    summary="Replay a dead letter",
    responses=h.responses(
        {404: h.problem("No such dead letter (or not the caller's).")},
        {409: h.problem("Replayed already, or the job's state does not allow it.")},
    ),
)
async def replay_dead_letter(
    dead_letter_id: Annotated[uuid.UUID, Path(alias="deadLetterId")],
    principal: h.Runner,
    sessions: h.Sessions,
) -> schemas.DeadLetterReplay:
    """Make the dead letter's job due now, with attempts counted from 1 again: a FAILED job is
    SCHEDULED again, a SCHEDULED one runs now. It runs with its current payload. A dead letter
    is replayed at most once."""
    async with db.unit_of_work(sessions) as session:
        letter, job = await history.replay_dead_letter(session, principal, dead_letter_id)
    # A replay succeeds only on a live job.
    return schemas.DeadLetterReplay(
        dead_letter=schemas.DeadLetter.of(letter, job_deleted=False), job=schemas.Job.of(job)
    )


# --- Schedules and job types ---------------------------------------------------------------------

tools_router = APIRouter(tags=["schedules and job types"])


@tools_router.post(
    "/v1/schedules:preview",
    summary="Preview a schedule",
    responses=h.responses(h.WITH_BODY),
)
async def preview_schedule(
    body: schemas.SchedulePreviewRequest, principal: h.Reader, sessions: h.Sessions
) -> schemas.SchedulePreview:
    """The next fire times of a schedule from now (the database's clock), in UTC; no job is
    created."""
    async with db.unit_of_work(sessions) as session:
        fire_times = await schedules.preview(session, body.schedule, body.count)
    return schemas.SchedulePreview(fire_times=fire_times)


@tools_router.get("/v1/job-types", summary="List job types", responses=h.responses())
async def list_job_types(principal: h.Reader, types: h.JobTypes) -> schemas.JobTypeList:
    """The types a job may have, each with the JSON Schema of its payload."""
    return schemas.JobTypeList(
        items=[
            schemas.JobType(name=name, payload_schema=types.json_schema(name))
            for name in types.known()
        ]
    )


nodes_router = APIRouter(tags=["nodes"])


@nodes_router.get("/v1/nodes", summary="List scheduler and executor nodes", responses=h.responses())
async def list_nodes(
    principal: h.Admin, request: Request, sessions: h.Sessions
) -> schemas.NodeList:
    """Every scheduler and executor process with a heartbeat row, and whether it is up (heard
    from within `node.down.after.s`, by the database's clock). Admins only."""
    down_after_s = request.app.state.settings.node_down_after_s
    async with db.unit_of_work(sessions) as session:
        rows = await repository.list_nodes(session, down_after_s)
    return schemas.NodeList(
        items=[
            schemas.Node(
                node_id=node.node_id,
                service=node.service,
                hostname=node.hostname,
                pid=node.pid,
                version=node.version,
                started_at=node.started_at,
                last_heartbeat_at=node.last_heartbeat_at,
                up=up,
            )
            for node, up in rows
        ]
    )


# --- Webhook signing secret ---------------------------------------------------------------------

webhooks_router = APIRouter(tags=["webhook secret"])


@webhooks_router.get(
    "/v1/webhook-secret",
    summary="Read your webhook signing secret",
    responses=h.responses(h.with_no_store(200, "The caller's secret.")),
)
async def read_webhook_secret(
    principal: h.Writer, sessions: h.Sessions, response: Response
) -> schemas.WebhookSecret:
    """The secret the executor signs the caller's `http` jobs with (Standard Webhooks), created
    on first use. Always the caller's own: an admin's token shows the admin's. It is a
    credential, so reading it needs `jobs:write`."""
    async with db.unit_of_work(sessions) as session:
        view = await webhooks.show_secret(session, principal)
    response.headers.update(h.NO_STORE)
    return schemas.WebhookSecret.of(view)


# Declared with the body's default: an empty body rotates with the default grace period.
_DEFAULT_ROTATION = schemas.WebhookSecretRotation()


@webhooks_router.post(
    "/v1/webhook-secret:rotate",
    summary="Rotate your webhook signing secret",
    responses=h.responses(h.with_no_store(200, "The caller's new secret."), h.WITH_BODY),
)
async def rotate_webhook_secret(
    principal: h.Writer,
    sessions: h.Sessions,
    response: Response,
    body: Annotated[schemas.WebhookSecretRotation, Body()] = _DEFAULT_ROTATION,
) -> schemas.WebhookSecret:
    """Replace the caller's secret with a new one. The old secret keeps signing, as a second
    signature, for `graceSeconds` (default a day, at most a week; 0 stops it within the
    executors' half-minute cache, for a secret that leaked), so that receivers can switch
    without refusing a request. Rotating again within the grace period forgets the older
    secret."""
    async with db.unit_of_work(sessions) as session:
        view = await webhooks.rotate_secret(session, principal, grace_s=body.grace_s)
    response.headers.update(h.NO_STORE)
    return schemas.WebhookSecret.of(view)


# --- The app ------------------------------------------------------------------------------------


@asynccontextmanager
async def known_job_types(app: FastAPI) -> AsyncIterator[dict[str, web.Check]]:
    """The job types, plug-ins included, on `app.state.job_types`: read first at start, so
    that a broken plug-in stops the service there, naming its entry point, instead of failing
    requests later."""
    app.state.job_types = job_types.load()
    yield {}


def create_app(settings: Settings) -> FastAPI:
    return web.create_app(
        settings,
        title="Job service",
        lifespan=lambda app: resources.all_of(
            app,
            known_job_types,
            partial(resources.database, settings=settings),
            partial(resources.token_verifier, settings=settings),
        ),
        routers=[jobs_router, history_router, tools_router, nodes_router, webhooks_router],
    )
