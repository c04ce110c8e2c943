"""An owner's webhook signing secret on a real database: shown and rotated through the job
service (`GET /v1/webhook-secret`, `POST /v1/webhook-secret:rotate`), and the secrets the
executor signs with (`libs.security.webhook_secrets.signing_secrets`) before, during and after a
rotation's grace period, also when two executors ask for a new owner's at once."""

from __future__ import annotations

import asyncio
import base64
import re
import uuid
from datetime import timedelta

import pytest
from job_service_support import JobService, assert_invalid, assert_problem, running

from libs.infra import db
from libs.security import webhook_secrets

GET = "/v1/webhook-secret"
ROTATE = "/v1/webhook-secret:rotate"
SECRET = re.compile(r"^whsec_[A-Za-z0-9+/]{43}=$")  # 32 bytes of key
DAY_S = 86_400
WEEK_S = 7 * DAY_S
RACERS = 6


@pytest.fixture
async def jobs(database_url, token_issuer):
    async with running(database_url, token_issuer) as service:
        yield service


async def signing(jobs: JobService, owner: uuid.UUID | None = None) -> list[str]:
    """What an executor would sign the owner's next request with (default: `jobs.owner`)."""
    async with db.unit_of_work(jobs.app.state.sessions) as session:
        return await webhook_secrets.signing_secrets(session, owner or jobs.owner)


async def shown(jobs: JobService, owner: uuid.UUID | None = None) -> dict:
    response = await jobs.get(GET, headers=jobs.bearer(owner, "jobs:write"))
    assert response.status_code == 200, response.text
    return response.json()


async def rotated(jobs: JobService, **body: object) -> dict:
    response = await jobs.post(ROTATE, json=body or None)
    assert response.status_code == 200, response.text
    return response.json()


async def stored(jobs: JobService, owner: uuid.UUID | None = None) -> list:
    return await jobs.sql(
        "SELECT * FROM webhook_secrets WHERE owner_id = :owner", owner=owner or jobs.owner
    )


# --- Showing -----------------------------------------------------------------------------------


async def test_the_secret_is_created_on_first_read_and_then_stays_the_same(jobs):
    assert await stored(jobs) == []

    first = await shown(jobs)
    again = await shown(jobs)

    assert set(first) == {"secret", "createdAt", "rotatedAt", "previousValidUntil"}
    assert SECRET.fullmatch(first["secret"])
    assert len(base64.b64decode(first["secret"].removeprefix("whsec_"))) == 32
    assert first["rotatedAt"] is None and first["previousValidUntil"] is None
    assert again == first
    [row] = await stored(jobs)
    assert row.secret == first["secret"]
    # The executor signs with the secret the owner sees.
    assert await signing(jobs) == [first["secret"]]


async def test_the_executor_creating_the_secret_first_is_what_the_owner_then_sees(jobs):
    [secret] = await signing(jobs)

    assert (await shown(jobs))["secret"] == secret


async def test_each_owner_sees_only_their_own_secret(jobs):
    other = uuid.uuid4()
    mine = await shown(jobs)
    theirs = await shown(jobs, other)

    assert mine["secret"] != theirs["secret"]
    # An admin's token shows the admin's own secret too, never someone else's.
    admin = jobs.bearer(other, "jobs:write", "users:admin")
    assert (await jobs.get(GET, headers=admin)).json()["secret"] == theirs["secret"]
    # Rotating one owner's secret leaves the other's alone.
    await jobs.post(ROTATE, headers=jobs.bearer(other, "jobs:write"))
    assert (await shown(jobs))["secret"] == mine["secret"]
    assert await signing(jobs) == [mine["secret"]]


async def test_answers_that_hold_a_secret_are_not_stored_by_caches(jobs):
    read = await jobs.get(GET)
    rotation = await jobs.post(ROTATE)

    assert read.headers["cache-control"] == "no-store"
    assert rotation.headers["cache-control"] == "no-store"


# --- Rotating ----------------------------------------------------------------------------------


async def test_after_a_rotation_both_secrets_sign_until_the_grace_period_ends(jobs):
    old = (await shown(jobs))["secret"]

    new = await rotated(jobs, graceSeconds=3600)

    assert SECRET.fullmatch(new["secret"]) and new["secret"] != old
    assert new["rotatedAt"] is not None and new["previousValidUntil"] is not None
    assert await signing(jobs) == [new["secret"], old]
    assert await shown(jobs) == new
    [row] = await stored(jobs)
    assert row.previous_secret == old
    assert row.previous_valid_until - row.rotated_at == timedelta(seconds=3600)

    # The grace period ends (by the database clock).
    await jobs.sql(
        "UPDATE webhook_secrets SET previous_valid_until = now() - interval '1 second'"
        " WHERE owner_id = :owner",
        owner=jobs.owner,
    )
    assert await signing(jobs) == [new["secret"]]
    assert (await shown(jobs))["previousValidUntil"] is None


async def test_a_rotation_without_a_body_keeps_the_old_secret_for_a_day(jobs):
    old = (await shown(jobs))["secret"]

    new = await rotated(jobs)

    [row] = await stored(jobs)
    assert row.previous_valid_until - row.rotated_at == timedelta(seconds=DAY_S)
    assert await signing(jobs) == [new["secret"], old]


async def test_a_rotation_with_no_grace_stops_the_old_secret_at_once(jobs):
    await shown(jobs)

    new = await rotated(jobs, graceSeconds=0)

    assert new["previousValidUntil"] is None
    assert await signing(jobs) == [new["secret"]]
    # Nothing signs with it any more, so it is not kept.
    [row] = await stored(jobs)
    assert (row.previous_secret, row.previous_valid_until) == (None, None)


async def test_a_second_rotation_forgets_the_oldest_secret(jobs):
    first = (await shown(jobs))["secret"]
    second = (await rotated(jobs))["secret"]

    third = (await rotated(jobs))["secret"]

    assert len({first, second, third}) == 3
    assert await signing(jobs) == [third, second]


async def test_rotating_before_any_read_creates_the_secret_without_a_previous_one(jobs):
    new = await rotated(jobs, graceSeconds=WEEK_S)

    assert new["previousValidUntil"] is None and new["rotatedAt"] is not None
    assert await signing(jobs) == [new["secret"]]


async def test_the_documented_request_examples_are_accepted(jobs):
    document = (await jobs.client.get("/openapi.json")).json()
    examples = document["components"]["schemas"]["WebhookSecretRotation"]["examples"]

    for example in examples:
        response = await jobs.post(ROTATE, json=example)
        assert response.status_code == 200, response.text


# --- Refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"graceMinutes": 5}, "body.graceMinutes", "extra_forbidden"),
        ({"graceSeconds": -1}, "body.graceSeconds", "greater_than_equal"),
        ({"graceSeconds": WEEK_S + 1}, "body.graceSeconds", "less_than_equal"),
        ({"graceSeconds": "soon"}, "body.graceSeconds", "int_parsing"),
        ([], "body", None),
    ],
)
async def test_an_invalid_rotation_is_refused_and_changes_nothing(jobs, body, field, code):
    before = await shown(jobs)

    response = await jobs.post(ROTATE, json=body)

    assert_invalid(response, field, code)
    assert await shown(jobs) == before
    assert await signing(jobs) == [before["secret"]]


@pytest.mark.parametrize("scopes", [("jobs:read",), ("jobs:run",), ("jobs:read", "jobs:run")])
async def test_without_jobs_write_the_secret_is_neither_shown_nor_rotated(jobs, scopes):
    headers = jobs.bearer(None, *scopes)

    read = await jobs.get(GET, headers=headers)
    rotation = await jobs.post(ROTATE, headers=headers)

    document = assert_problem(read, 403, "insufficient-scope")
    assert "secret" not in document
    assert_problem(rotation, 403, "insufficient-scope")
    assert await stored(jobs) == []


async def test_without_a_token_the_answer_is_401(jobs):
    read = await jobs.client.get(GET)
    rotation = await jobs.client.post(ROTATE)

    assert_problem(read, 401, "unauthenticated")
    assert_problem(rotation, 401, "unauthenticated")
    assert read.headers["www-authenticate"].startswith("Bearer")
    assert await jobs.sql("SELECT * FROM webhook_secrets") == []


async def test_a_subject_that_is_not_an_account_id_has_no_secret(jobs):
    headers = jobs.bearer("client-without-uuid", "jobs:write")

    # No account has such an id: the token speaks for nobody.
    assert_problem(await jobs.get(GET, headers=headers), 401, "unauthenticated")
    assert_problem(await jobs.post(ROTATE, headers=headers), 401, "unauthenticated")


# --- Logs ----------------------------------------------------------------------------------------


async def test_the_secret_is_never_logged(jobs, capsys, caplog):
    caplog.set_level("DEBUG")
    await shown(jobs)
    await rotated(jobs, graceSeconds=60)
    secrets = await signing(jobs)

    logged = caplog.text + "".join(capsys.readouterr())
    assert all(secret not in logged for secret in secrets)
    assert all(secret.removeprefix("whsec_") not in logged for secret in secrets)


# --- Concurrency ---------------------------------------------------------------------------------


async def test_executors_racing_for_a_new_owners_secret_all_get_the_same_one(jobs):
    # A barrier inside each racer's transaction: all have started (and looked for the row)
    # before any can commit, so they really do race to create it.
    for _ in range(5):
        owner = uuid.uuid4()
        ready = asyncio.Barrier(RACERS)

        async def race(owner: uuid.UUID = owner, ready: asyncio.Barrier = ready) -> list[str]:
            async with db.unit_of_work(jobs.app.state.sessions) as session:
                await session.connection()  # the transaction begins before the barrier
                await ready.wait()
                return await webhook_secrets.signing_secrets(session, owner)

        results = await asyncio.gather(*(race() for _ in range(RACERS)))

        assert len({tuple(r) for r in results}) == 1, results
        assert len(results[0]) == 1
        assert [row.secret for row in await stored(jobs, owner)] == results[0]
