"""Decisions of the job service: who sees which job, what a request may change, what a job's
next run becomes. Queries are in `repository`; the transaction belongs to the request that calls
these functions and commits at its edge. Time is the database's: read once per request
(`repository.database_now`) and passed to the pure schedule functions.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from job_service import errors, idempotency, repository, schedules, schemas, targets
from libs.contracts import cursors
from libs.infra import log
from libs.scheduling import job_types, misfire, schedule, states
from libs.scheduling.states import JobStatus
from libs.security import addresses, scopes
from libs.security.tokens import Principal
from libs.store import models

Versions = Collection[int] | None  # from If-Match: the versions the client expects; None: any
Networks = Sequence[addresses.IpNetwork]  # `http.allowed.networks`


# --- Who is asking ------------------------------------------------------------------------------


def owner_id(principal: Principal) -> uuid.UUID:
    """The id the principal's jobs are owned by (the token's subject)."""
    try:
        return uuid.UUID(principal.subject)
    except ValueError:
        raise errors.SubjectNotAnId("the token's subject is not an account id") from None


def visible_to(principal: Principal) -> uuid.UUID | None:
    """Whose rows the principal sees: its own (the owner id), or everyone's (None, an admin)."""
    if scopes.USERS_ADMIN in principal.scopes:
        return None
    return owner_id(principal)


# --- Validation shared by create, batch and update ---------------------------------------------


def _pydantic_errors(exc: ValidationError, prefix: str) -> errors.InvalidRequest:
    return errors.InvalidRequest(
        [
            (".".join([prefix, *(str(p) for p in e["loc"])]), e["msg"], e["type"])
            for e in exc.errors(include_url=False, include_input=False)
        ]
    )


def _payload(
    types: job_types.JobTypes, type_name: str, payload: Any, allowed: Networks, prefix: str
) -> dict[str, Any]:
    """The payload as stored, or `InvalidRequest`: not valid for its type (`types`), or (http)
    naming an address the executors would refuse."""
    try:
        validated = types.validate_payload(type_name, payload)
    except job_types.UnknownJobType as exc:
        raise errors.InvalidRequest.field(f"{prefix}.type", str(exc), "unknown_type") from None
    except job_types.InvalidPayload as exc:
        raise errors.InvalidRequest(
            [(f"{prefix}.{field}", message, "invalid_payload") for field, message in exc.errors]
        ) from None
    targets.check(type_name, validated, allowed, prefix)
    return validated


Plan = tuple[schedule.Schedule, datetime]


def _new_row(
    body: schemas.JobCreate,
    owner: uuid.UUID,
    now: datetime,
    types: job_types.JobTypes,
    allowed: Networks,
    prefix: str,
    plans: dict[str, Plan] | None = None,
) -> dict[str, Any]:
    """The columns of a new job, or `InvalidRequest` with every error of payload and schedule.
    `types`: the job types the service knows; `allowed`: the non-public networks http jobs may
    reach.

    `plans`: schedules already planned at this `now`, by their canonical JSON. A plan is a pure
    function of the two, and the jobs of a batch often share a schedule: cron math is the
    costliest step of a creation.
    """
    found: list[tuple[str, str, str]] = []
    payload: dict[str, Any] = {}
    try:
        payload = _payload(types, body.type, body.payload, allowed, prefix)
    except errors.InvalidRequest as exc:
        found.extend((e["field"], e["message"], e["code"]) for e in exc.errors)
    key = json.dumps(body.schedule, sort_keys=True, default=str) if plans is not None else ""
    try:
        if plans is not None and key in plans:
            normalised, first = plans[key]
        else:
            normalised, first = schedules.plan(body.schedule, now, f"{prefix}.schedule")
            if plans is not None:
                plans[key] = (normalised, first)
    except errors.InvalidRequest as exc:
        found.extend((e["field"], e["message"], e["code"]) for e in exc.errors)
    if found:
        raise errors.InvalidRequest(found)
    return {
        "id": uuid.uuid4(),
        "owner_id": owner,
        "name": body.name,
        "description": body.description,
        "labels": body.labels,
        "type": body.type,
        "payload": payload,
        "schedule": schedules.stored(normalised),
        "schedule_kind": normalised.kind,
        "timezone": normalised.timezone,
        "retry_policy": body.retry_policy.stored(),
        "misfire_policy": str(body.misfire_policy),
        "misfire_grace_s": body.misfire_grace_s,
        "timeout_s": body.timeout_s,
        "status": JobStatus.SCHEDULED,
        "next_run_at": first,
    }


# --- Creating jobs -----------------------------------------------------------------------------


async def create_job(
    session: AsyncSession,
    principal: Principal,
    body: schemas.JobCreate,
    *,
    idempotency_key: str | None,
    types: job_types.JobTypes,
    allowed_networks: Networks,
) -> tuple[models.Job, bool]:
    """The new job, and whether it is an earlier creation replayed for the same
    `idempotency_key` (then nothing was created). `types`: the job types the service knows;
    `allowed_networks`: the non-public networks http jobs may reach (`http.allowed.networks`)."""
    owner = owner_id(principal)
    digest = idempotency.request_hash(body, types) if idempotency_key else ""
    if idempotency_key:
        # Before validation: a retry must find its job even when the request would no longer
        # validate (a `once` schedule whose time has passed meanwhile).
        earlier = await idempotency.replayed_job(session, owner, idempotency_key, digest)
        if earlier is not None:
            return earlier, True
    now = await repository.database_now(session)
    row = _new_row(body, owner, now, types, allowed_networks, "body")
    if idempotency_key:
        claimed = await repository.claim_idempotency_key(
            session, owner_id=owner, key=idempotency_key, request_hash=digest, job_id=row["id"]
        )
        if not claimed:  # a concurrent request with the key committed first
            earlier = await idempotency.replayed_job(session, owner, idempotency_key, digest)
            assert earlier is not None  # the key exists: it just refused our insert
            return earlier, True
    [job] = await repository.insert_jobs(session, [row])
    await repository.notify_due(session, row["next_run_at"])
    log.get().info("job_created", job_id=str(job.id), type=job.type)
    return job, False


def _parse(item: Any) -> schemas.JobCreate | ValidationError:
    try:
        return schemas.JobCreate.model_validate(item)
    except ValidationError as exc:
        return exc


async def create_jobs(
    session: AsyncSession,
    principal: Principal,
    items: Sequence[Any],
    *,
    idempotency_key: str | None,
    types: job_types.JobTypes,
    allowed_networks: Networks,
) -> tuple[list[idempotency.BatchItem], bool]:
    """One result per item, in order: the created job, or why the item was refused; and
    whether it is an earlier batch's answer replayed for the same `idempotency_key` (then
    nothing was created). The valid items are inserted together (one statement, one
    transaction)."""
    owner = owner_id(principal)
    parsed = [_parse(item) for item in items]
    digest = idempotency.batch_hash(items, parsed, types) if idempotency_key else ""
    if idempotency_key:
        # Before validation, as for a single creation: a retry gets the first answer even when
        # its items would no longer validate (or would validate now).
        earlier = await idempotency.replayed_batch(session, owner, idempotency_key, digest)
        if earlier is not None:
            return earlier, True
    now = await repository.database_now(session)
    results: list[dict[str, Any] | errors.InvalidRequest] = []
    plans: dict[str, Plan] = {}
    for index, body in enumerate(parsed):
        prefix = f"body.jobs.{index}"
        if isinstance(body, ValidationError):
            results.append(_pydantic_errors(body, prefix))
            continue
        try:
            results.append(_new_row(body, owner, now, types, allowed_networks, prefix, plans))
        except errors.InvalidRequest as exc:
            results.append(exc)
    rows = [r for r in results if isinstance(r, dict)]
    if idempotency_key:
        claimed = await repository.claim_idempotency_key(
            session,
            owner_id=owner,
            key=idempotency_key,
            request_hash=digest,
            batch_results=idempotency.batch_results(results),
        )
        if not claimed:  # a concurrent request with the key committed first
            earlier = await idempotency.replayed_batch(session, owner, idempotency_key, digest)
            assert earlier is not None  # the key exists: it just refused our insert
            return earlier, True
    jobs = iter(await repository.insert_jobs(session, rows))
    if rows:
        await repository.notify_due(session, min(row["next_run_at"] for row in rows))
    log.get().info("jobs_created", created=len(rows), refused=len(items) - len(rows))
    return [next(jobs) if isinstance(r, dict) else r for r in results], False


# --- Reading jobs ------------------------------------------------------------------------------


async def get_job(session: AsyncSession, principal: Principal, job_id: uuid.UUID) -> models.Job:
    job = await repository.get_job(session, job_id, visible_to(principal))
    if job is None:
        raise errors.JobNotFound
    return job


def cursor_position(cursor: str | None, order: str) -> cursors.Position | None:
    """The position `cursor` names in `order`; `InvalidRequest` naming the cursor otherwise."""
    if cursor is None:
        return None
    try:
        return cursors.decode(cursor, order=order)
    except cursors.Malformed:
        raise errors.invalid_cursor() from None


async def list_jobs(
    session: AsyncSession,
    principal: Principal,
    where: repository.JobFilter,
    *,
    order: repository.JobOrder,
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[models.Job], str | None]:
    """One page of jobs and the cursor of the next page (None at the end)."""
    rows = await repository.list_jobs(
        session,
        visible_to(principal),
        where,
        order=order,
        after=cursor_position(cursor, order),
        limit=limit + 1,
    )
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    time = last.created_at if order == "createdAt" else last.next_run_at
    return rows[:limit], cursors.encode(time, last.id, order=order)


# --- Changing jobs ----------------------------------------------------------------------------


async def _refusal(
    session: AsyncSession,
    job_id: uuid.UUID,
    owner: uuid.UUID | None,
    versions: Versions,
    action: str,
) -> errors.JobNotFound | errors.StaleVersion | errors.JobStateConflict:
    """Why a guarded update of the job found no row: absent, another version, another state."""
    job = await repository.get_job(session, job_id, owner)
    if job is None:
        return errors.JobNotFound()
    if versions is not None and job.version not in versions:
        return errors.StaleVersion(job.version)
    return errors.JobStateConflict(f"a {job.status} job cannot be {action}", job.status)


async def _locked(
    session: AsyncSession, principal: Principal, job_id: uuid.UUID, versions: Versions
) -> models.Job:
    """The job, row-locked for a change computed from it, at one of `versions`."""
    job = await repository.get_job(session, job_id, visible_to(principal), lock=True)
    if job is None:
        raise errors.JobNotFound
    if versions is not None and job.version not in versions:
        raise errors.StaleVersion(job.version)
    return job


async def update_job(
    session: AsyncSession,
    principal: Principal,
    job_id: uuid.UUID,
    patch: schemas.JobPatch,
    *,
    versions: Versions,
    types: job_types.JobTypes,
    allowed_networks: Networks,
) -> models.Job:
    """Apply `patch` to the job (version + 1); unchanged when the patch is empty. The job's
    status, and the reason the platform gave for it, stay as they are: an edit runs nothing (a
    FAILED job stays FAILED until it is run, replayed or resumed)."""
    job = await _locked(session, principal, job_id, versions)
    if job.status not in repository.CHANGEABLE:
        raise errors.JobStateConflict(f"a {job.status} job cannot be changed", job.status)
    sent = patch.model_fields_set
    values: dict[str, Any] = {
        name: getattr(patch, name)
        for name in ("name", "description", "labels", "misfire_grace_s", "timeout_s")
        if name in sent
    }
    if "misfire_policy" in sent and patch.misfire_policy is not None:
        values["misfire_policy"] = str(patch.misfire_policy)
    if "retry_policy" in sent and patch.retry_policy is not None:
        values["retry_policy"] = patch.retry_policy.stored()
    found: list[tuple[str, str, str]] = []
    if "payload" in sent:
        try:
            values["payload"] = _payload(types, job.type, patch.payload, allowed_networks, "body")
        except errors.InvalidRequest as exc:
            found.extend((e["field"], e["message"], e["code"]) for e in exc.errors)
    if "schedule" in sent:
        now = await repository.database_now(session)
        try:
            normalised, first = schedules.plan(
                patch.schedule, now, "body.schedule", runs=job.run_count
            )
        except errors.InvalidRequest as exc:
            found.extend((e["field"], e["message"], e["code"]) for e in exc.errors)
        else:
            values.update(
                schedule=schedules.stored(normalised),
                schedule_kind=normalised.kind,
                timezone=normalised.timezone,
            )
            # A RUNNING job keeps its next run: the executor computes the one after the
            # running occurrence from the stored (new) schedule when it ends. A PAUSED or
            # FAILED job's becomes its pending occurrence, which a resume starts from.
            if job.status != JobStatus.RUNNING:
                values.update(next_run_at=first, attempt=1)
    if found:
        raise errors.InvalidRequest(found)
    if not values:
        return job
    updated = await repository.update_job(
        session, job.id, version=job.version, status=JobStatus(job.status), values=values
    )
    if updated is None:  # cannot happen while the row is locked; never ignored all the same
        raise await _refusal(session, job.id, visible_to(principal), versions, "changed")
    if "next_run_at" in values and updated.status == JobStatus.SCHEDULED:
        await repository.notify_due(session, values["next_run_at"])
    log.get().info("job_updated", job_id=str(job.id), fields=sorted(values))
    return updated


async def pause_job(
    session: AsyncSession, principal: Principal, job_id: uuid.UUID, *, versions: Versions
) -> models.Job:
    """SCHEDULED or RUNNING -> PAUSED. `next_run_at` is kept: resume judges how late it is."""
    owner = visible_to(principal)
    job = await repository.transition_job(
        session, job_id, owner, JobStatus.PAUSED, versions=versions
    )
    if job is None:
        raise await _refusal(session, job_id, owner, versions, "paused")
    log.get().info("job_paused", job_id=str(job_id))
    return job


def _resumed_next_run(job: models.Job, now: datetime) -> datetime | None:
    """When a resumed job runs next (None: never again).

    A pending occurrence not yet due stays; one that was missed is judged by the job's misfire
    policy (`libs.scheduling.misfire`): due now if the policy runs it, else the next regular
    occurrence.
    """
    spec = schedule.load(job.schedule)
    missed = job.next_run_at
    if missed is None:
        if job.run_count == 0:
            return schedule.first_fire(spec, now)
        return schedule.next_fire(
            spec, after=now, runs=job.run_count, last_finished_at=job.last_finished_at
        )
    if missed > now:
        return missed
    decision = misfire.decide(
        misfire.MisfirePolicy(job.misfire_policy),
        spec,
        scheduled_for=missed,
        now=now,
        grace_s=job.misfire_grace_s,
        runs=job.run_count,
    )
    return now if decision.fire else decision.next_run_at


async def resume_job(
    session: AsyncSession, principal: Principal, job_id: uuid.UUID, *, versions: Versions
) -> models.Job:
    """Back on its schedule: PAUSED -> SCHEDULED with a new next run, or COMPLETED when the
    schedule has none left; FAILED -> SCHEDULED likewise (refused when none is left: a failure
    does not become a completion). A job running the occurrence requested while it was paused
    just stays SCHEDULED or RUNNING, and carries on with its schedule after that run."""
    job = await _locked(session, principal, job_id, versions)
    if job.pause_after_run:
        return await _keep_running(session, principal, job)
    if job.status not in repository.RESUMABLE:
        raise errors.JobStateConflict(f"a {job.status} job cannot be resumed", job.status)
    now = await repository.database_now(session)
    next_run_at = _resumed_next_run(job, now)
    target = JobStatus.SCHEDULED if next_run_at is not None else JobStatus.COMPLETED
    # A FAILED job has no way to COMPLETED in the table: a failure does not become a completion.
    if not states.can_transition(JobStatus(job.status), target):
        raise errors.JobStateConflict(
            f"the {job.status} job's schedule has no occurrence left: change its schedule,"
            " or run it now",
            job.status,
        )
    resumed = await repository.transition_job(
        session,
        job.id,
        None,  # visibility was checked under the lock
        target,
        versions=[job.version],
        sources=repository.RESUMABLE,
        values={"next_run_at": next_run_at, "attempt": 1},
    )
    if resumed is None:  # cannot happen while the row is locked; never ignored all the same
        raise await _refusal(session, job.id, visible_to(principal), versions, "resumed")
    if next_run_at is not None:
        await repository.notify_due(session, next_run_at)
    log.get().info("job_resumed", job_id=str(job_id), status=str(target))
    return resumed


async def _keep_running(session: AsyncSession, principal: Principal, job: models.Job) -> models.Job:
    """Clear the job's return to PAUSED after the run requested while it was paused (status
    unchanged: it is SCHEDULED or RUNNING for that run)."""
    updated = await repository.update_job(
        session,
        job.id,
        version=job.version,
        status=JobStatus(job.status),
        values={"pause_after_run": False},
    )
    if updated is None:  # cannot happen while the row is locked; never ignored all the same
        raise await _refusal(session, job.id, visible_to(principal), [job.version], "resumed")
    log.get().info("job_resumed", job_id=str(job.id), status=str(job.status))
    return updated


async def cancel_job(
    session: AsyncSession, principal: Principal, job_id: uuid.UUID, *, versions: Versions
) -> models.Job:
    """-> CANCELLED, for good: no next run."""
    owner = visible_to(principal)
    job = await repository.transition_job(
        session,
        job_id,
        owner,
        JobStatus.CANCELLED,
        versions=versions,
        values={"next_run_at": None},
    )
    if job is None:
        raise await _refusal(session, job_id, owner, versions, "cancelled")
    log.get().info("job_cancelled", job_id=str(job_id))
    return job


async def run_job_now(
    session: AsyncSession, principal: Principal, job_id: uuid.UUID, *, versions: Versions
) -> models.Job:
    """One occurrence, due now. The schedule is untouched: after this occurrence the next
    regular one is computed from it as always. A SCHEDULED job runs it as an extra occurrence;
    a FAILED one is SCHEDULED again (attempts from 1); a PAUSED one is SCHEDULED for this run
    only, and PAUSED again, at its next occurrence, when the run ends."""
    owner = visible_to(principal)
    job = await repository.run_now(session, job_id, owner, versions=versions)
    if job is None:
        raise await _refusal(
            session, job_id, owner, versions, "run now (only a SCHEDULED, PAUSED or FAILED job can)"
        )
    assert job.next_run_at is not None  # just set
    await repository.notify_due(session, job.next_run_at)
    log.get().info("job_run_requested", job_id=str(job_id))
    return job


async def delete_job(
    session: AsyncSession, principal: Principal, job_id: uuid.UUID, *, versions: Versions
) -> None:
    """Cancel the job (unless it finished already) and hide it; its history stays readable."""
    owner = visible_to(principal)
    job = await repository.delete_job(session, job_id, owner, versions=versions)
    if job is None:
        raise await _refusal(session, job_id, owner, versions, "deleted")
    log.get().info("job_deleted", job_id=str(job_id))
