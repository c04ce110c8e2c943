"""What `schedctl register`, `account change-password` and a batch `jobs create` do before
they send anything: passwords asked for without echo (a new one twice), read from standard
input line by line, a service account kept out of a person's commands, the `login` command
`register` tells the user to run, and a list of jobs taken as a batch."""

from __future__ import annotations

import shlex

import pytest
from typer.testing import CliRunner

from schedctl import account, embedded, session
from schedctl.cli import app
from scheduler_client import auth, endpoints

CLOSED = f"http://127.0.0.1:{embedded.free_port()}"  # nothing listens there


@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(session.CONFIG_DIR_VARIABLE, str(tmp_path))
    monkeypatch.delenv(account.URL_VARIABLE, raising=False)
    return tmp_path


def logged_in_as(folder, kind: str) -> None:
    """A session of a platform that does not answer."""
    session.Store(folder).save(
        session.Session(
            endpoints.Endpoints.single(CLOSED),
            kind,
            "ada@example.com" if kind == session.USER else "sa_1",
            auth.Tokens("access", "refresh" if kind == session.USER else None),
            client_secret=None if kind == session.USER else "secret",
        )
    )


def test_register_asks_for_the_password_twice_without_echo_until_both_match(config_dir):
    result = CliRunner().invoke(
        app,
        ["register", "ada@example.com", "--display-name", "Ada", "--url", CLOSED],
        input="first-try\nsecond-try\nthe-password\nthe-password\n",
    )

    assert result.stdout.count("Password: ") == 2
    assert result.stdout.count("Repeat for confirmation: ") == 2
    assert "do not match" in result.output
    assert not {"first-try", "second-try", "the-password"} & set(result.output.split())
    # Asked for nothing more: the registration was sent, to a platform that does not answer.
    assert result.exit_code == 1
    assert result.stderr.startswith(f"schedctl: cannot reach {CLOSED}")


@pytest.mark.parametrize(
    ("options", "told"),
    [
        ({}, "schedctl login ada@example.com"),
        ({"url": "https://scheduler.example.com"},
         "schedctl login ada@example.com --url=https://scheduler.example.com"),
        ({"jobs_url": "http://h:1", "auth_url": "http://h:2"},
         "schedctl login ada@example.com --jobs-url=http://h:1 --auth-url=http://h:2"),
    ],
)  # fmt: skip
def test_register_tells_the_login_command_for_the_same_platform(options, told):
    assert account.login_command("ada@example.com", **options) == told
    assert shlex.split(account.login_command("o'brien@example.com"))[2] == "o'brien@example.com"


def test_a_password_change_asks_for_the_current_password_once_and_the_new_one_twice(config_dir):
    logged_in_as(config_dir, session.USER)
    result = CliRunner().invoke(
        app,
        ["account", "change-password"],
        input="the-old-one\nnew-1\nnew-2\nthe-new-one\nthe-new-one\n",
    )

    assert result.stdout.count("Current password: ") == 1
    assert result.stdout.count("New password: ") == 2
    assert "do not match" in result.output
    assert "the-old-one" not in result.output
    assert result.stderr.startswith(f"schedctl: cannot reach {CLOSED}")


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("", "standard input holds no current password (the first line)"),
        ("the-old-one\n", "standard input holds no new password (the second line)"),
    ],
)
def test_a_password_change_from_standard_input_needs_two_lines(config_dir, stdin, message):
    logged_in_as(config_dir, session.USER)
    result = CliRunner().invoke(app, ["account", "change-password", "--password-stdin"], stdin)
    assert (result.exit_code, result.stderr) == (1, f"schedctl: --password-stdin: {message}\n")


@pytest.mark.parametrize("command", [["change-password"], ["rename", "--display-name", "R"]])
def test_a_service_account_has_no_password_or_name_to_change(config_dir, command):
    logged_in_as(config_dir, session.SERVICE_ACCOUNT)
    result = CliRunner().invoke(app, ["account", *command], "")
    assert result.exit_code == 1
    assert result.stderr.startswith("schedctl: logged in as the service account sa_1: ")
    assert result.stdout == ""  # nothing was asked for


def test_a_list_of_jobs_takes_its_fields_from_the_file_not_from_flags(config_dir, tmp_path):
    path = tmp_path / "jobs.yaml"
    path.write_text("- name: a\n- name: b\n")
    result = CliRunner().invoke(app, ["jobs", "create", "-f", str(path), "--cron", "0 * * * *"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"schedctl: {path} holds a list of jobs: give each its ")
