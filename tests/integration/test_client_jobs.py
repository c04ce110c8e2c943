"""The synchronous client against the real job service: every operation of the jobs API,
its versions (If-Match), idempotency keys, pages, and the problems it answers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from client_support import log_job, running

from libs.scheduling.states import Role
from scheduler_client import errors, models


@pytest.fixture
def platform(database_url, serve_app):
    with running(database_url, serve_app) as platform:
        yield platform


@pytest.fixture
def client(platform):
    with platform.client(platform.account()) as client:
        yield client


def test_a_job_is_created_from_a_model_read_changed_and_deleted(client):
    created = client.jobs.create(
        models.JobCreate(
            name="nightly",
            labels={"team": "billing"},
            type="log",
            payload=models.LogPayload(message="hi"),
            schedule=models.CronSchedule(expression="0 2 * * *", timezone="Europe/London"),
            retry_policy=models.RetryPolicy(max_attempts=5),
            timeout_s=60,
        )
    )

    assert created.status == models.JobStatus.SCHEDULED
    assert created.schedule == models.CronSchedule(expression="0 2 * * *", timezone="Europe/London")
    assert (created.retry_policy.max_attempts, created.timeout_s) == (5, 60)
    assert client.jobs.get(created.id) == created

    changed = client.jobs.update(
        created.id, models.JobPatch(description="v2", timeout_s=90), if_match=created.version
    )
    assert (changed.description, changed.timeout_s) == ("v2", 90)
    assert changed.version == created.version + 1
    assert changed.name == "nightly"  # fields left out are kept

    # description=None is sent (it removes the description); unset fields are not.
    removed = client.jobs.update(created.id, models.JobPatch(description=None), if_match="*")
    assert removed.description is None
    assert removed.timeout_s == 90

    assert client.jobs.delete(created.id, if_match=removed.version) is None
    with pytest.raises(errors.JobNotFound) as caught:
        client.jobs.get(created.id)
    assert isinstance(caught.value, errors.NotFound)
    assert caught.value.status == 404
    assert caught.value.request_id


def test_a_change_to_an_old_version_raises_stale_version_with_the_current_one(client):
    job = client.jobs.create(log_job())
    client.jobs.update(job.id, {"name": "renamed"}, if_match=job.version)

    with pytest.raises(errors.StaleVersion) as caught:
        client.jobs.update(job.id, {"name": "again"}, if_match=job.version)
    with pytest.raises(errors.StaleVersion):
        client.jobs.pause(job.id, if_match=job.version)
    with pytest.raises(errors.StaleVersion):
        client.jobs.delete(job.id, if_match=job.version)

    assert isinstance(caught.value, errors.PreconditionFailed)
    assert caught.value.current_version == job.version + 1
    assert caught.value.slug == "stale-version"
    assert client.jobs.get(job.id).name == "renamed"


def test_pause_resume_run_and_cancel_move_the_job(client):
    job = client.jobs.create(log_job())

    paused = client.jobs.pause(job.id, if_match=job.version)
    assert paused.status == "PAUSED"
    resumed = client.jobs.resume(job.id)
    assert resumed.status == models.JobStatus.SCHEDULED
    ran = client.jobs.run(job.id, if_match=resumed.version)
    assert ran.next_run_at is not None
    assert ran.next_run_at <= datetime.now(UTC) + timedelta(seconds=5)
    cancelled = client.jobs.cancel(job.id)
    assert cancelled.status == models.JobStatus.CANCELLED

    with pytest.raises(errors.JobStateConflict) as caught:
        client.jobs.resume(job.id)
    assert isinstance(caught.value, errors.Conflict)
    assert caught.value.current_status == "CANCELLED"
    assert caught.value.extensions["currentStatus"] == "CANCELLED"


def test_a_refused_body_raises_invalid_request_naming_each_field(client):
    with pytest.raises(errors.InvalidRequest) as caught:
        client.jobs.create(
            log_job(schedule={"kind": "cron", "expression": "61 * * * *"}, payload={"message": ""})
        )

    fields = {error.field: error for error in caught.value.errors}
    assert set(fields) == {"body.schedule.expression", "body.payload.message"}
    assert all(isinstance(error, models.FieldError) for error in fields.values())
    assert fields["body.payload.message"].code == "invalid_payload"
    assert caught.value.status == 422
    assert "body.schedule.expression" in str(caught.value)


def test_a_retry_with_the_same_idempotency_key_answers_the_same_job(client):
    key = uuid.uuid4().hex
    first = client.jobs.create(log_job(), idempotency_key=key)
    again = client.jobs.create(log_job(), idempotency_key=key)

    assert again.id == first.id
    with pytest.raises(errors.IdempotencyKeyReused) as caught:
        client.jobs.create(log_job(name="another"), idempotency_key=key)
    assert isinstance(caught.value, errors.InvalidRequest)
    client.jobs.delete(first.id)
    with pytest.raises(errors.IdempotentJobDeleted):
        client.jobs.create(log_job(), idempotency_key=key)


def test_create_many_answers_one_result_per_item(client):
    result = client.jobs.create_many(
        [log_job(name="a"), models.JobCreate(**log_job(name="b")), log_job(name="")]
    )

    assert (result.created, result.failed) == (2, 1)
    assert [r.status for r in result.results] == [201, 201, 422]
    assert [r.job.name for r in result.results[:2]] == ["a", "b"]
    problem = result.results[2].problem
    assert problem.type.endswith("/validation-failed")
    assert problem.errors[0].field.startswith("body.jobs.2.name")


def test_iterate_reads_the_pages_lazily_following_the_cursor(platform):
    sent: list[httpx.Request] = []
    http = httpx.Client(event_hooks={"request": [sent.append]})
    with platform.client(platform.account(), http_client=http) as client:
        made = [client.jobs.create(log_job(name=f"job {n}")).id for n in range(5)]
        listing = lambda: [r for r in sent if r.url.path == "/v1/jobs" and r.method == "GET"]  # noqa: E731

        jobs = client.jobs.iterate(limit=2)
        assert listing() == []
        first = next(jobs)
        assert len(listing()) == 1
        rest = list(jobs)

        assert [first.id, *(job.id for job in rest)] == made
        assert len(listing()) == 3
        assert [r.url.params.get("cursor") is None for r in listing()] == [True, False, False]
        page = client.jobs.list(limit=2)
        assert [job.id for job in page.items] == made[:2]
        assert client.jobs.list(limit=2, cursor=page.next_cursor).items[0].id == made[2]
    http.close()


def test_list_filters_have_the_apis_meaning(client):
    nightly = client.jobs.create(log_job(name="nightly a", labels={"team": "billing", "env": "x"}))
    client.jobs.create(log_job(name="nightly b", labels={"team": "search"}))
    other = client.jobs.create(log_job(name="hourly"))
    client.jobs.pause(other.id)

    def names(**filters):
        return sorted(job.name for job in client.jobs.iterate(**filters))

    assert names(name="nightly") == ["nightly a", "nightly b"]
    assert names(label="team:billing") == ["nightly a"]
    assert names(label=["team:billing", "env:y"]) == []
    assert names(status="PAUSED") == ["hourly"]
    assert names(status=[models.JobStatus.PAUSED, "SCHEDULED"]) == sorted(
        ["nightly a", "nightly b", "hourly"]
    )
    assert names(type="log", owner_id=nightly.owner_id) == sorted(
        ["nightly a", "nightly b", "hourly"]
    )
    assert names(owner_id=uuid.uuid4()) == []
    assert [j.name for j in client.jobs.iterate(sort="nextRunAt")][-1] == "hourly"


def test_executions_are_listed_per_job_and_across_jobs(platform, client):
    job = client.jobs.create(log_job())
    other = client.jobs.create(log_job(name="other"))
    day = datetime(2030, 1, 1, tzinfo=UTC)
    old = platform.add_execution(job.id, status="FAILED", created_at=day)
    new = platform.add_execution(job.id, attempt=2, created_at=day + timedelta(hours=1))
    elsewhere = platform.add_execution(other.id, created_at=day + timedelta(hours=2))

    page = client.jobs.executions(job.id)
    assert [e.id for e in page.items] == [new, old]
    assert page.next_cursor is None
    assert page.items[0].job_name == "hourly"
    assert page.items[1].status == models.ExecutionStatus.FAILED
    assert [e.id for e in client.jobs.executions(job.id, status="FAILED").items] == [old]

    assert [e.id for e in client.executions.iterate(limit=1)] == [elsewhere, new, old]
    assert [e.id for e in client.executions.list(job_id=[job.id]).items] == [new, old]
    assert [e.id for e in client.executions.list(job_id=other.id).items] == [elsewhere]
    after = client.executions.list(created_after=day + timedelta(minutes=30))
    assert [e.id for e in after.items] == [elsewhere, new]
    before = client.executions.list(created_before=day + timedelta(minutes=30))
    assert [e.id for e in before.items] == [old]

    execution = client.executions.get(new)
    assert (execution.job_id, execution.attempt, execution.job_deleted) == (job.id, 2, False)
    with pytest.raises(errors.ExecutionNotFound):
        client.executions.get(uuid.uuid4())
    with pytest.raises(errors.InvalidRequest) as caught:
        client.executions.list(created_after=datetime(2030, 1, 1))  # no UTC offset
    assert caught.value.errors[0].field == "query.createdAfter"


def test_dead_letters_are_listed_and_replayed_once(platform, client):
    job = client.jobs.create(log_job())
    letter = platform.add_dead_letter(job)

    [listed] = client.dead_letters.list(job_id=job.id, replayed=False).items
    assert (listed.id, listed.reason, listed.job_deleted) == (letter, "retries_exhausted", False)

    replay = client.dead_letters.replay(letter)
    assert replay.dead_letter.replayed_at is not None
    assert replay.job.id == job.id
    assert [d.id for d in client.dead_letters.iterate(replayed=True)] == [letter]
    assert client.dead_letters.list(replayed=False).items == []
    with pytest.raises(errors.AlreadyReplayed):
        client.dead_letters.replay(letter)
    with pytest.raises(errors.DeadLetterNotFound):
        client.dead_letters.replay(uuid.uuid4())


def test_schedule_previews_job_types_and_the_webhook_secret(client):
    preview = client.schedules.preview(models.FixedRateSchedule(interval_s=60), count=3)
    assert len(preview.fire_times) == 3
    assert preview.fire_times[1] - preview.fire_times[0] == timedelta(seconds=60)
    from_dict = client.schedules.preview({"kind": "cron", "expression": "0 2 * * *"})
    assert len(from_dict.fire_times) == 10

    types = {job_type.name: job_type for job_type in client.job_types.list()}
    assert {"http", "kafka", "log"} <= set(types)
    assert "message" in types["log"].payload_schema["properties"]

    secret = client.webhook_secret.get()
    assert secret.secret.startswith("whsec_")
    assert secret.secret not in repr(secret)
    rotated = client.webhook_secret.rotate(grace_s=0)
    assert rotated.secret != secret.secret
    assert rotated.rotated_at is not None
    assert client.webhook_secret.rotate().previous_valid_until > datetime.now(UTC)


def test_nodes_are_for_admins(platform, client):
    platform.add_node("sched-1-4242")

    with platform.client(platform.account(Role.ADMIN)) as admin:
        [node] = admin.nodes.list()
    assert (node.node_id, node.pid, node.up) == ("sched-1-4242", 4242, True)
    with pytest.raises(errors.InsufficientScope) as caught:
        client.nodes.list()
    assert isinstance(caught.value, errors.Forbidden)
