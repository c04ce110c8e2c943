"""`Idempotency-Key` on creations: a retry with the same key answers what the first request did.

A key belongs to its owner and to one request, a single creation or a batch: the request's
canonical hash is stored with what it created (`idempotency_keys`: the job, or the batch's
answer per item), before the jobs themselves, in their transaction, so that a concurrent copy
waits on the key and then replays it (`repository.claim_idempotency_key`). A replay shows the
jobs as they are now; a job deleted since is refused (409), as a GET of it would be (404), since
answering it as created would hide the deletion. Keys do not expire.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from job_service import errors, repository, schedules, schemas
from libs.scheduling import job_types
from libs.store import models

# What a batch answers for one item: the job it created, why it refused the item, or (replayed)
# that the job it created has been deleted since.
BatchItem = models.Job | errors.InvalidRequest | errors.IdempotentJobDeleted


def _digest(document: Any) -> str:
    """SHA-256 of `document` as canonical JSON: keys sorted, no whitespace, UTF-8 (a lone
    surrogate, which refuses the batch item it is in, is encoded as it is)."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def request_hash(body: schemas.JobCreate, types: job_types.JobTypes) -> str:
    """SHA-256 of the request's canonical JSON: parsed, defaults filled in, camelCase keys
    (the payload, by its type in `types`, and the schedule too, when they are valid), keys
    sorted, no whitespace. A retry that writes the same request differently is still the same
    request."""
    document = body.model_dump(mode="json", by_alias=True)
    with contextlib.suppress(job_types.JobTypeError):
        document["payload"] = types.validate_payload(body.type, body.payload)
    with contextlib.suppress(ValidationError):
        parsed = schedules.API_SCHEDULE.validate_python(body.schedule)
        document["schedule"] = schedules.API_SCHEDULE.dump_python(parsed, mode="json")
    return _digest(document)


def batch_hash(
    items: Sequence[Any],
    parsed: Sequence[schemas.JobCreate | ValidationError],
    types: job_types.JobTypes,
) -> str:
    """SHA-256 of a batch: of each item's `request_hash` in order (an item that is no valid
    creation request: of its JSON as sent). A batch never hashes like a single creation."""
    return _digest(
        {
            "batch": [
                request_hash(body, types) if isinstance(body, schemas.JobCreate) else _digest(item)
                for item, body in zip(items, parsed, strict=True)
            ]
        }
    )


def batch_results(results: Sequence[dict[str, Any] | errors.InvalidRequest]) -> list[dict]:
    """What a batch's key records of its answer: per item, the id of the job its row creates,
    or the field errors it was refused with."""
    return [
        {"jobId": str(r["id"])} if isinstance(r, dict) else {"errors": r.errors} for r in results
    ]


def _deleted() -> errors.IdempotentJobDeleted:
    return errors.IdempotentJobDeleted(
        "the job this Idempotency-Key created has been deleted; use a new key"
    )


async def replayed_job(
    session: AsyncSession, owner: uuid.UUID, key: str, digest: str
) -> models.Job | None:
    """The job an earlier creation with `key` made, if there was one and it was this request
    (`digest`); `IdempotencyKeyReused` if the key was another request's."""
    earlier = await repository.find_idempotency_key(session, owner_id=owner, key=key)
    if earlier is None:
        return None
    if earlier.job_id is None or earlier.request_hash != digest:
        raise errors.IdempotencyKeyReused
    job = await repository.get_job(session, earlier.job_id, owner)
    if job is None:
        raise _deleted()
    return job


async def replayed_batch(
    session: AsyncSession, owner: uuid.UUID, key: str, digest: str
) -> list[BatchItem] | None:
    """What an earlier batch with `key` answered, if there was one and it was this request
    (`digest`): its jobs as they are now (a deleted one as `IdempotentJobDeleted`), and the
    same refusals; `IdempotencyKeyReused` if the key was another request's."""
    earlier = await repository.find_idempotency_key(session, owner_id=owner, key=key)
    if earlier is None:
        return None
    if earlier.batch_results is None or earlier.request_hash != digest:
        raise errors.IdempotencyKeyReused
    created = [uuid.UUID(r["jobId"]) for r in earlier.batch_results if "jobId" in r]
    live = await repository.get_jobs(session, created, owner)
    answers: list[BatchItem] = []
    for result in earlier.batch_results:
        if "jobId" in result:
            answers.append(live.get(uuid.UUID(result["jobId"])) or _deleted())
        else:
            found = [(e["field"], e["message"], e["code"]) for e in result["errors"]]
            answers.append(errors.InvalidRequest(found))
    return answers
