"""How each resource of the API looks in a table or a detail view. Pure: each function takes
the library's models and returns something `output.show` prints."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC
from typing import Any

from rich.table import Table
from rich.text import Text

from schedctl import output
from schedctl.output import clip, status, when
from scheduler_client import models

ID_WIDTH = 36  # a UUID, shown whole: the commands take it


def duration(total_s: float | None) -> str:
    """Seconds for people: `850ms`, `42s`, `1h30m`, `2d`."""
    if total_s is None:
        return "-"
    if total_s < 1:
        return f"{round(total_s * 1000)}ms"
    if total_s < 60:
        return f"{total_s:.1f}s".replace(".0s", "s")
    whole = round(total_s)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts[:2])


def schedule(spec: Any) -> str:
    """A schedule in a few words: `cron 30 1 * * * Europe/London`, `every 1h`, `once at ...`."""
    doc = output.document(spec)
    if not isinstance(doc, dict):
        return str(doc)
    zone = doc.get("timezone") or "UTC"
    kind = doc.get("kind")
    if kind == "cron":
        return f"cron {doc.get('expression')} {zone}"
    if kind == "fixed_rate":
        return f"every {duration(doc.get('intervalSeconds'))}"
    if kind == "fixed_delay":
        return f"{duration(doc.get('delaySeconds'))} after each run"
    if kind == "calendar":
        return f"every {doc.get('every')} {doc.get('unit')} {zone}"
    if kind == "once":
        at = doc.get("at")
        return f"once at {at}" if at else "once"
    return str(kind)


def compact(value: Any) -> str:
    return json.dumps(output.document(value), separators=(",", ":"), ensure_ascii=False)


# --- Jobs ----------------------------------------------------------------------------------------


def jobs(items: Sequence[models.Job]) -> Table:
    return output.table(
        ("ID", "NAME", "TYPE", "STATUS", "SCHEDULE", "NEXT RUN", "RUNS"),
        (
            (str(j.id), clip(j.name, 30), j.type, status(j.status), clip(schedule(j.schedule)),
             when(j.next_run_at), str(j.run_count))
            for j in items
        ),
    )  # fmt: skip


def retries(policy: models.RetryPolicy) -> str:
    attempts = f"{policy.max_attempts} attempt" + ("s" if policy.max_attempts != 1 else "")
    if policy.max_attempts == 1:
        return attempts
    return (
        f"{attempts}, waiting {duration(policy.initial_backoff_s)} x{policy.multiplier:g} "
        f"between them, at most {duration(policy.max_backoff_s)}"
    )


def job_line(j: models.Job) -> str:
    """A job in one line, after an action."""
    return f"{j.name} ({j.id}): {j.status}, next run {when(j.next_run_at)}"


def job(j: models.Job) -> Table:
    state = status(j.status)
    if j.status_reason:
        state.append(f" ({j.status_reason})")
    labels = ", ".join(f"{k}={v}" for k, v in sorted(j.labels.items()))
    return output.fields(
        [
            ("id", str(j.id)),
            ("name", j.name),
            ("description", j.description or "-"),
            ("type", j.type),
            ("status", state),
            ("schedule", schedule(j.schedule)),
            ("next run", when(j.next_run_at)),
            ("last run", when(j.last_run_at)),
            ("last finished", when(j.last_finished_at)),
            ("runs", str(j.run_count)),
            ("attempt", str(j.attempt)),
            ("version", str(j.version)),
            ("labels", labels or "-"),
            ("payload", Text(compact(j.payload))),
            ("retries", retries(j.retry_policy)),
            ("timeout", duration(j.timeout_s)),
            ("misfire", f"{j.misfire_policy} after {duration(j.misfire_grace_s)}"),
            ("owner", str(j.owner_id)),
            ("created", when(j.created_at)),
            ("updated", when(j.updated_at)),
        ]
    )  # fmt: skip


# --- Executions and dead letters -----------------------------------------------------------------


def executions(items: Sequence[models.Execution]) -> Table:
    return output.table(
        ("ID", "JOB", "STATUS", "ATTEMPT", "SCHEDULED FOR", "STARTED", "DURATION", "ERROR"),
        (
            (str(e.id), clip(e.job_name + (" (deleted)" if e.job_deleted else ""), 30),
             status(e.status), str(e.attempt), when(e.scheduled_for), when(e.started_at),
             duration(e.duration_s), clip(e.error))
            for e in items
        ),
    )  # fmt: skip


def execution(e: models.Execution) -> Table:
    return output.fields(
        [
            ("id", str(e.id)),
            ("job", f"{e.job_name} ({e.job_id}{', deleted' if e.job_deleted else ''})"),
            ("type", e.job_type),
            ("status", status(e.status)),
            ("attempt", str(e.attempt)),
            ("scheduled for", when(e.scheduled_for)),
            ("dispatched", when(e.dispatched_at)),
            ("started", when(e.started_at)),
            ("finished", when(e.finished_at)),
            ("duration", duration(e.duration_s)),
            ("worker", e.worker or "-"),
            ("error", Text(f"{e.error_kind}: {e.error}") if e.error_kind else Text(e.error or "-")),
        ]
    )


def dead_letters(items: Sequence[models.DeadLetter]) -> Table:
    return output.table(
        ("ID", "JOB", "REASON", "ATTEMPTS", "CREATED", "REPLAYED", "ERROR"),
        (
            (str(d.id), str(d.job_id) + (" (deleted)" if d.job_deleted else ""), clip(d.reason, 24),
             str(d.attempts), when(d.created_at), when(d.replayed_at), clip(d.error))
            for d in items
        ),
    )  # fmt: skip


# --- Schedules, job types, nodes -----------------------------------------------------------------


def fire_times(preview: models.SchedulePreview) -> Table:
    return output.table(
        ("#", "FIRE TIME", "UTC"),
        (
            (str(n), when(t), t.astimezone(UTC).isoformat().replace("+00:00", "Z"))
            for n, t in enumerate(preview.fire_times, 1)
        ),
    )


def job_types(items: Sequence[models.JobType]) -> Table:
    def fields_of(schema: dict[str, Any]) -> str:
        required = set(schema.get("required", []))
        names = [f"{n}*" if n in required else n for n in schema.get("properties", {})]
        return ", ".join(names) or "-"

    return output.table(
        ("TYPE", "PAYLOAD FIELDS (* required)"),
        ((t.name, fields_of(t.payload_schema)) for t in items),
    )


def nodes(items: Sequence[models.Node]) -> Table:
    return output.table(
        ("NODE", "SERVICE", "HOST", "PID", "VERSION", "UP", "STARTED", "LAST HEARTBEAT"),
        (
            (n.node_id, n.service, n.hostname, str(n.pid), n.version,
             Text("up", style="green") if n.up else Text("down", style="red"),
             when(n.started_at), when(n.last_heartbeat_at))
            for n in items
        ),
    )  # fmt: skip


def webhook_secret(secret: models.WebhookSecret) -> Table:
    return output.fields(
        [
            ("secret", secret.secret),
            ("created", when(secret.created_at)),
            ("rotated", when(secret.rotated_at)),
            ("previous valid until", when(secret.previous_valid_until)),
        ]
    )


# --- Accounts ------------------------------------------------------------------------------------


def _flags(disabled: bool, locked_until: Any = None) -> Text:
    if disabled:
        return Text("disabled", style="red")
    if locked_until is not None:
        return Text(f"locked until {when(locked_until)}", style="yellow")
    return Text("active", style="green")


def users(items: Sequence[models.User]) -> Table:
    return output.table(
        ("ID", "EMAIL", "NAME", "ROLE", "STATE", "CREATED"),
        (
            (str(u.id), u.email, clip(u.display_name, 24), str(u.role),
             _flags(u.disabled, u.locked_until), when(u.created_at))
            for u in items
        ),
    )  # fmt: skip


def user_fields(u: models.User) -> list[tuple[str, str | Text]]:
    return [
        ("id", str(u.id)),
        ("email", u.email),
        ("name", u.display_name or "-"),
        ("role", str(u.role)),
        ("state", _flags(u.disabled, u.locked_until)),
        ("created", when(u.created_at)),
    ]


def user(u: models.User) -> Table:
    return output.fields(user_fields(u))


def service_accounts(items: Sequence[models.ServiceAccount]) -> Table:
    return output.table(
        ("ID", "CLIENT ID", "NAME", "SCOPES", "STATE", "CREATED"),
        (
            (str(a.id), a.client_id, clip(a.name, 24), " ".join(a.scopes), _flags(a.disabled),
             when(a.created_at))
            for a in items
        ),
    )  # fmt: skip


def service_account(a: models.ServiceAccount) -> Table:
    rows = [
        ("id", str(a.id)),
        ("client id", a.client_id),
        ("name", a.name),
        ("scopes", " ".join(a.scopes)),
        ("state", _flags(a.disabled)),
        ("created", when(a.created_at)),
        ("secret rotated", when(a.secret_rotated_at)),
    ]
    if isinstance(a, models.ServiceAccountWithSecret):
        rows.append(("client secret", a.client_secret))
    return output.fields(rows)


# --- Batches -------------------------------------------------------------------------------------


def batch(result: models.JobBatchResult) -> Text:
    """One line per item of a batch: the job it created, or why it was refused (each field
    named with the item's index: `jobs[2].schedule.expression: ...`)."""
    lines = []
    for item in result.results:
        if item.job is not None:
            lines.append(f"created  jobs[{item.index}]  {item.job.id}  {item.job.name}")
            continue
        problem = item.problem
        if problem is not None and problem.errors:
            why = output.field_errors(problem.errors)
        else:
            shown = output.problem_text(problem.title, problem.detail) if problem else "refused"
            why = f"jobs[{item.index}]: {shown}"
        lines.append(f"refused  {why}")
    return Text("\n".join(lines))
