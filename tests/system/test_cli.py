"""`schedctl` as a user runs it, as a process, against the platform `schedctl up` runs: register,
log in as a person and as a service account an admin made, show and rename one's account,
change one's password, create jobs from files, lists and flags, list, pause, resume, run, edit,
read executions, replay a dead letter, renew the session, log out. Every refusal is one line
on stderr naming what was wrong, with a non-zero exit status."""

from __future__ import annotations

import json
import os
import shlex
import signal
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import platform_process
import pytest
from platform_process import START_DEADLINE_S, Up, free_ports

from schedctl import embedded
from scheduler_client import Client, Endpoints, Tokens, errors

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "another horse, another staple"
REPO = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT_S = 30
RUN_DEADLINE_S = 30  # a job run now is dispatched and finished well within this


@dataclass(frozen=True)
class Platform:
    endpoints: Endpoints
    admin_password: str

    def login_flags(self) -> list[str]:
        return [
            f"--jobs-url={self.endpoints.jobs}",
            f"--users-url={self.endpoints.users}",
            f"--auth-url={self.endpoints.auth}",
        ]


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    ports = free_ports()
    # Every user of this module registers from 127.0.0.1: more than the default 10 an hour.
    up = Up(tmp_path_factory.mktemp("platform"), ports, {"REGISTRATION_MAX_PER_ADDRESS": "100"})
    try:
        up.wait_for_line("Press Ctrl-C to stop.", START_DEADLINE_S)
        admin_password = "\n".join(up.seen).split("password: ", 1)[1].split()[0]
        yield Platform(
            Endpoints(
                jobs=f"http://127.0.0.1:{ports['job_service']}",
                users=f"http://127.0.0.1:{ports['user_service']}",
                auth=f"http://127.0.0.1:{ports['auth_service']}",
            ),
            admin_password,
        )
    finally:
        assert up.stop(signal.SIGINT) == 0


class Schedctl:
    """The `schedctl` program with its own config folder, run as a user runs it."""

    def __init__(self, config_dir: Path):
        self.config_dir = config_dir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDCTL_")}
        self.env.update(PYTHONPATH=str(REPO), SCHEDCTL_CONFIG_DIR=str(config_dir), TZ="UTC")

    @property
    def session_file(self) -> Path:
        return self.config_dir / "session.json"

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "schedctl", *args],
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            env=self.env,
            cwd=REPO,
            timeout=COMMAND_TIMEOUT_S,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        done = self.run(*args, stdin=stdin)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "-o", "json"))

    def refused(self, *args: str, stdin: str | None = None, status: int = 1) -> str:
        """The one line a refused command writes on stderr."""
        done = self.run(*args, stdin=stdin)
        assert done.returncode == status, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        (line,) = done.stderr.splitlines()
        assert line.startswith("schedctl: ")
        return line

    def session(self) -> dict[str, Any]:
        return json.loads(self.session_file.read_text())


def logged_in(platform: Platform, folder: Path, email: str) -> Schedctl:
    with Client(platform.endpoints) as anonymous:
        anonymous.users.register(email=email, password=PASSWORD, display_name=email[:3])
    cli = Schedctl(folder)
    out = cli.ok("login", email, "--password-stdin", *platform.login_flags(), stdin=PASSWORD + "\n")
    assert f"as {email}" in out
    return cli


def eventually(check: Callable[[], Any], deadline_s: float = RUN_DEADLINE_S) -> Any:
    return platform_process.eventually(check, deadline_s)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- Sessions ------------------------------------------------------------------------------------


def test_a_person_logs_in_and_only_they_can_read_the_session(platform, tmp_path):
    cli = logged_in(platform, tmp_path / "config", "ada@example.com")
    assert (mode(cli.session_file), mode(cli.config_dir)) == (0o600, 0o700)
    assert PASSWORD not in cli.session_file.read_text()
    me = cli.json("whoami")
    assert (me["email"], me["role"]) == ("ada@example.com", "user")
    assert platform.endpoints.jobs in cli.ok("whoami")


def test_the_cli_renews_an_expired_access_token_and_keeps_the_new_tokens(platform, tmp_path):
    cli = logged_in(platform, tmp_path, "renew@example.com")
    before = cli.session()
    expired = {**before, "tokens": {**before["tokens"], "expiresAt": "2000-01-01T00:00:00+00:00"}}
    cli.session_file.write_text(json.dumps(expired))

    assert cli.json("jobs", "list")["items"] == []

    after = cli.session()
    assert after["tokens"]["refreshToken"] != before["tokens"]["refreshToken"]
    assert datetime.fromisoformat(after["tokens"]["expiresAt"]) > datetime.now(UTC)
    assert mode(cli.session_file) == 0o600
    # the refresh token spent renewing the session is refused: it rotated
    with Client(platform.endpoints, auth=Tokens("x", before["tokens"]["refreshToken"])) as old:
        with pytest.raises(errors.InvalidGrant):
            old.login()


def test_logout_revokes_the_refresh_token_and_forgets_the_session(platform, tmp_path):
    cli = logged_in(platform, tmp_path, "leaving@example.com")
    refresh_token = cli.session()["tokens"]["refreshToken"]

    assert "Logged out leaving@example.com" in cli.ok("logout")

    assert not cli.session_file.exists()
    with Client(platform.endpoints, auth=Tokens("x", refresh_token)) as revoked:
        with pytest.raises(errors.InvalidGrant):
            revoked.login()
    line = cli.refused("jobs", "list")
    assert line == "schedctl: not logged in; run 'schedctl login'"


def test_an_admin_makes_a_service_account_that_logs_in_with_its_secret(platform, tmp_path):
    admin = Schedctl(tmp_path / "admin")
    admin.ok("login", "admin@example.com", "--password-stdin", *platform.login_flags(),
             stdin=platform.admin_password + "\n")  # fmt: skip
    done = admin.run("service-accounts", "create", "--name", "ci", "--scope", "jobs:read",
                     "--scope", "jobs:write", "-o", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    account = json.loads(done.stdout)
    assert "shown only this once" in done.stderr
    assert account["clientId"] in admin.ok("service-accounts", "list")

    robot = Schedctl(tmp_path / "robot")
    robot.ok("login", "--client-id", account["clientId"], "--client-secret-stdin",
             *platform.login_flags(), stdin=account["clientSecret"] + "\n")  # fmt: skip
    assert mode(robot.session_file) == 0o600
    # Disabled and enabled again: the saved token is refused long before it expires, and the
    # stored secret logs in again.
    refused = robot.session()["tokens"]["accessToken"]
    admin.ok("service-accounts", "disable", account["id"])
    admin.ok("service-accounts", "enable", account["id"])
    job = robot.json("jobs", "create", "--name", "nightly", "--type", "log", "--payload",
                     '{"message": "hi"}', "--cron", "0 3 * * *")  # fmt: skip
    assert job["status"] == "SCHEDULED"
    assert robot.session()["tokens"]["accessToken"] != refused
    # the account was not given jobs:run
    assert "needs the scope jobs:run" in robot.refused("jobs", "run", job["id"])
    # no refresh token for a service account: an expired session logs in again with the secret
    stored = robot.session()
    assert stored["tokens"]["refreshToken"] is None
    stored["tokens"]["expiresAt"] = "2000-01-01T00:00:00+00:00"
    robot.session_file.write_text(json.dumps(stored))
    assert [j["id"] for j in robot.json("jobs", "list", "--all")] == [job["id"]]
    assert robot.session()["tokens"]["accessToken"] != stored["tokens"]["accessToken"]

    disabled = admin.json("service-accounts", "disable", account["id"])
    assert disabled["disabled"] is True


def account_rows(text: str) -> dict[str, str]:
    return dict(line.split(None, 1) for line in text.splitlines())


def test_a_new_user_registers_logs_in_as_told_and_renames_their_account(platform, tmp_path):
    cli = Schedctl(tmp_path)
    out = cli.ok("register", "New.User@Example.com", "--display-name", "New", "--password-stdin",
                 *platform.login_flags(), stdin=PASSWORD + "\n")  # fmt: skip
    first, told = out.splitlines()
    assert first == "Registration of new.user@example.com accepted. Log in with:"
    assert shlex.split(told) == ["schedctl", "login", "new.user@example.com",
                                 *platform.login_flags()]  # fmt: skip

    cli.ok(*shlex.split(told)[1:], "--password-stdin", stdin=PASSWORD + "\n")

    shown = account_rows(cli.ok("account", "show"))
    assert (shown["email"], shown["name"], shown["role"]) == ("new.user@example.com", "New", "user")
    assert (shown["state"], shown["kind"], shown["jobs"]) == (
        "active",
        "user",
        platform.endpoints.jobs,
    )
    assert "jobs:write" in shown["scopes"]
    renamed = cli.json("account", "rename", "--display-name", "Newt Scamander")
    assert renamed["displayName"] == "Newt Scamander"
    me = cli.json("whoami")
    assert (me["displayName"], me["lockedUntil"]) == ("Newt Scamander", None)
    weak = cli.refused("register", "weak@example.com", "--display-name", "W", "--password-stdin",
                       *platform.login_flags(), stdin="short\n")  # fmt: skip
    assert weak.startswith("schedctl: password: ")


def test_a_password_change_ends_the_other_sessions_and_logs_this_one_in_again(platform, tmp_path):
    email = "changer@example.com"
    cli = logged_in(platform, tmp_path / "here", email)
    elsewhere = Schedctl(tmp_path / "elsewhere")
    elsewhere.ok("login", email, "--password-stdin", *platform.login_flags(),
                 stdin=PASSWORD + "\n")  # fmt: skip
    before = cli.session()["tokens"]

    wrong = cli.refused("account", "change-password", "--password-stdin",
                        stdin=f"not it\n{NEW_PASSWORD}\n")  # fmt: skip
    assert "password" in wrong
    out = cli.ok("account", "change-password", "--password-stdin",
                 stdin=f"{PASSWORD}\n{NEW_PASSWORD}\n")  # fmt: skip
    assert "this one is logged in again" in out

    after = cli.session()["tokens"]
    assert after["refreshToken"] != before["refreshToken"]
    assert cli.json("account", "show")["email"] == email
    with Client(platform.endpoints, auth=Tokens("x", before["refreshToken"])) as old:
        with pytest.raises(errors.InvalidGrant):
            old.login()
    # the other session's refresh token was revoked with the change
    stored = elsewhere.session()
    stored["tokens"]["expiresAt"] = "2000-01-01T00:00:00+00:00"
    elsewhere.session_file.write_text(json.dumps(stored))
    assert "the session has ended" in elsewhere.refused("jobs", "list")
    line = elsewhere.refused("login", email, "--password-stdin", *platform.login_flags(),
                             stdin=PASSWORD + "\n")  # fmt: skip
    assert line.startswith("schedctl: login refused")
    elsewhere.ok("login", email, "--password-stdin", *platform.login_flags(),
                 stdin=NEW_PASSWORD + "\n")  # fmt: skip
    assert elsewhere.json("whoami")["email"] == email


# --- Jobs ----------------------------------------------------------------------------------------


def test_jobs_from_a_json_file_a_yaml_file_and_flags_listed_as_a_table_and_as_json(
    platform, tmp_path
):
    cli = logged_in(platform, tmp_path / "config", "files@example.com")
    (tmp_path / "job.json").write_text(json.dumps({
        "name": "from json", "type": "log", "payload": {"message": "json"},
        "schedule": {"kind": "cron", "expression": "30 1 * * *", "timezone": "Europe/London"},
    }))  # fmt: skip
    (tmp_path / "job.yaml").write_text(
        "name: from yaml\ntype: log\npayload:\n  message: yaml\n"
        "schedule:\n  kind: once\n  at: 2099-01-01T09:00:00+01:00\nlabels:\n  team: ops\n"
    )
    from_json = cli.json("jobs", "create", "--file", str(tmp_path / "job.json"))
    from_yaml = cli.json("jobs", "create", "-f", str(tmp_path / "job.yaml"))
    from_flags = cli.json(
        "jobs", "create", "--name", "from flags", "--http-url", "https://example.com/hook",
        "--header", "X-Team: ops", "--body", '{"report": true}', "--every", "1h", "--tz",
        "Asia/Tokyo", "--label", "team=ops", "--max-attempts", "2", "--timeout", "30s",
    )  # fmt: skip
    assert from_yaml["schedule"]["at"] == "2099-01-01T08:00:00Z"
    assert from_flags["type"] == "http"
    assert from_flags["payload"]["headers"] == {"X-Team": "ops"}
    assert from_flags["payload"]["body"] == {"report": True}
    schedule = from_flags["schedule"]
    assert (schedule["kind"], schedule["intervalSeconds"]) == ("fixed_rate", 3600)
    assert schedule["timezone"] == "Asia/Tokyo"
    assert (from_flags["retryPolicy"]["maxAttempts"], from_flags["timeoutSeconds"]) == (2, 30)

    table = cli.ok("jobs", "list").splitlines()
    assert table[0].split()[:4] == ["ID", "NAME", "TYPE", "STATUS"]
    rows = {line.split()[0]: line for line in table[2:]}
    assert set(rows) == {from_json["id"], from_yaml["id"], from_flags["id"]}
    assert "cron 30 1 * * * Europe/London" in rows[from_json["id"]]
    # Not the every-hour job's: its first run falls within the second, so it may be running.
    assert "SCHEDULED" in rows[from_json["id"]]

    page = cli.json("jobs", "list", "--label", "team=ops", "--sort", "nextRunAt")
    assert [j["id"] for j in page["items"]] == [from_flags["id"], from_yaml["id"]]
    assert page["nextCursor"] is None
    first = cli.run("jobs", "list", "--limit", "1")
    assert "more jobs: --all lists every one, --cursor" in first.stderr
    assert len(cli.json("jobs", "list", "--limit", "1", "--all")) == 3
    assert cli.json("jobs", "get", from_yaml["id"])["labels"] == {"team": "ops"}


JOBS_YAML = """\
- name: first
  type: log
  payload: {message: one}
  schedule: {kind: cron, expression: "0 3 * * *"}
- name: second
  type: log
  payload: {message: two}
  schedule: {kind: fixed_rate, intervalSeconds: 3600}
- name: broken
  type: log
  payload: {message: three}
  schedule: {kind: cron, expression: "61 * * * *"}
"""


def test_a_yaml_list_creates_the_valid_jobs_and_names_the_refused_one_by_index(platform, tmp_path):
    cli = logged_in(platform, tmp_path / "config", "batch@example.com")
    path = tmp_path / "jobs.yaml"
    path.write_text(JOBS_YAML)

    done = cli.run("jobs", "create", "--file", str(path), "--idempotency-key", "batch-1")

    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stderr == "schedctl: 1 of 3 jobs refused; the other 2 were created\n"
    first, second, broken = done.stdout.splitlines()
    assert broken.startswith("refused  jobs[2].schedule.expression: ")
    listed = {j["name"]: j["id"] for j in cli.json("jobs", "list")["items"]}
    assert first.split() == ["created", "jobs[0]", listed["first"], "first"]
    assert second.split() == ["created", "jobs[1]", listed["second"], "second"]
    assert set(listed) == {"first", "second"}
    # The same key again: the first answer, as the API's document; nothing created twice.
    again = cli.run("jobs", "create", "-f", str(path), "--idempotency-key", "batch-1", "-o", "json")
    assert again.returncode == 1
    result = json.loads(again.stdout)
    assert (result["created"], result["failed"]) == (2, 1)
    assert [r["job"]["id"] for r in result["results"][:2]] == [listed["first"], listed["second"]]
    (error,) = result["results"][2]["problem"]["errors"]
    assert error["field"] == "body.jobs.2.schedule.expression"
    assert len(cli.json("jobs", "list")["items"]) == 2


def test_pause_resume_run_and_read_the_executions_of_the_run(platform, tmp_path):
    cli = logged_in(platform, tmp_path, "runner@example.com")
    job = cli.json("jobs", "create", "--name", "yearly", "--type", "log", "--payload",
                   '{"message": "run"}', "--cron", "0 0 1 1 *")  # fmt: skip

    assert "PAUSED" in cli.ok("jobs", "pause", job["id"])
    assert cli.json("jobs", "list", "--status", "paused")["items"][0]["id"] == job["id"]
    assert cli.json("jobs", "resume", job["id"])["status"] == "SCHEDULED"
    ran = cli.json("jobs", "run", job["id"])
    assert ran["nextRunAt"] < job["nextRunAt"]  # due now, not on the first of January

    def finished() -> list[dict[str, Any]]:
        items = cli.json("jobs", "executions", job["id"])["items"]
        return [e for e in items if e["status"] == "SUCCEEDED"]

    (execution,) = eventually(finished)
    assert cli.json("executions", "get", execution["id"])["jobName"] == "yearly"
    listed = cli.json("executions", "list", "--job", job["id"], "--status", "succeeded",
                      "--since", "10m")  # fmt: skip
    assert [e["id"] for e in listed["items"]] == [execution["id"]]
    assert execution["id"] in cli.ok("executions", "list", "--since", "10m")
    assert cli.json("executions", "list", "--until", "10m")["items"] == []


def test_an_edit_at_a_version_the_job_has_left_changes_nothing(platform, tmp_path):
    cli = logged_in(platform, tmp_path, "editor@example.com")
    job = cli.json("jobs", "create", "--name", "first", "--type", "log", "--payload",
                   '{"message": "x"}', "--every", "1d")  # fmt: skip
    edited = cli.json("jobs", "edit", job["id"], "--name", "second", "--cron", "0 6 * * 1-5",
                      "--tz", "Europe/Paris")  # fmt: skip
    assert (edited["name"], edited["version"]) == ("second", job["version"] + 1)
    assert edited["schedule"]["expression"] == "0 6 * * 1-5"

    line = cli.refused("jobs", "edit", job["id"], "--name", "third", "--version",
                       str(job["version"]))  # fmt: skip
    assert f"job {job['id']} changed: it is at version {edited['version']}" in line
    assert cli.json("jobs", "get", job["id"])["name"] == "second"


def test_a_job_that_failed_for_good_is_replayed_from_its_dead_letter(platform, tmp_path):
    cli = logged_in(platform, tmp_path, "replay@example.com")
    closed = f"http://127.0.0.1:{embedded.free_port()}/hook"  # nothing listens there
    job = cli.json("jobs", "create", "--name", "unreachable", "--http-url", closed, "--at",
                   "now", "--max-attempts", "1")  # fmt: skip

    def dead_letter() -> list[dict[str, Any]]:
        return cli.json("dead-letters", "list", "--job", job["id"], "--not-replayed")["items"]

    (letter,) = eventually(dead_letter)
    assert cli.json("jobs", "get", job["id"])["status"] == "FAILED"
    assert "unreachable" not in cli.ok("dead-letters", "list", "--replayed")

    replayed = cli.json("dead-letters", "replay", letter["id"])
    assert replayed["job"]["status"] in ("SCHEDULED", "RUNNING")
    assert replayed["deadLetter"]["replayedAt"] is not None
    assert cli.json("dead-letters", "list", "--replayed")["items"][0]["id"] == letter["id"]
    again = cli.refused("dead-letters", "replay", letter["id"])
    assert again.startswith("schedctl: the dead letter was already replayed")
    cli.refused("jobs", "delete", job["id"])  # no terminal to confirm on, and no --yes
    assert "Deleted" in cli.ok("jobs", "delete", job["id"], "--yes")
    assert cli.refused("jobs", "get", job["id"]) == "schedctl: no such job"


def test_bad_input_is_refused_in_one_line_naming_the_field(platform, tmp_path):
    cli = logged_in(platform, tmp_path, "typos@example.com")
    create = ["jobs", "create", "--name", "n", "--type", "log", "--payload", '{"message": "m"}']

    cron = cli.refused(*create, "--cron", "61 * * * *")
    assert cron.startswith("schedctl: schedule.expression: ")
    zone = cli.refused(*create, "--cron", "0 * * * *", "--tz", "Mars/Olympus")
    assert zone.startswith("schedctl: schedule.timezone: unknown time zone 'Mars/Olympus'")
    status = cli.refused("jobs", "list", "--status", "sleeping", status=2)
    assert "invalid value for '--status': 'sleeping' is not one of" in status
    missing = cli.refused("jobs", "create", "--type", "log", "--every", "1h")
    assert missing.startswith("schedctl: missing --name")
    payload = cli.refused("jobs", "create", "--name", "n", "--type", "log", "--at", "now")
    assert payload.startswith("schedctl: payload")  # the log type needs a message
    assert cli.json("jobs", "list")["items"] == []  # nothing refused was created

    unreachable = f"--url=http://127.0.0.1:{embedded.free_port()}"
    line = Schedctl(tmp_path / "other").refused(
        "login", "ada@example.com", "--password-stdin", unreachable, stdin=PASSWORD + "\n"
    )
    assert f"cannot reach {unreachable.removeprefix('--url=')}" in line
    assert "make up" in line
