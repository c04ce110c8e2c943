"""A service process with a bad configuration stops before it opens a port: exit code 2 and one
line on stderr naming the file and line or the setting, and never a secret's value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from job_service.settings import Settings as JobSettings
from libs.infra import serve

SECRET = "S3cretValue"  # made up, for the test that it is never shown
SECRET_URL = f"postgresql://u:{SECRET}@h/db"


def start_job_service(config_folder: Path, repo_root: Path) -> subprocess.CompletedProcess[str]:
    """Run `python -m job_service` with `config_folder` as its only configuration."""
    settings = {*JobSettings.model_fields, "config_location", "spring_config_location"}
    env = {name: value for name, value in os.environ.items() if name.lower() not in settings}
    env["CONFIG_LOCATION"] = str(config_folder)
    return subprocess.run(
        [sys.executable, "-m", "job_service"],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def only_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == serve.EXIT_CONFIG_ERROR == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("job_service: configuration error: ")
    return lines[0]


def test_malformed_line_stops_the_service_naming_file_and_line(
    tmp_path: Path, repo_root: Path
) -> None:
    path = tmp_path / "service.properties"
    path.write_text(f"database.url={SECRET_URL}\nlog.level=INFO\nthis line has no separator\n")

    result = start_job_service(tmp_path, repo_root)

    assert f"{path}:3: malformed line" in only_line(result)
    assert SECRET not in result.stderr + result.stdout


def test_missing_database_url_stops_the_service_naming_it(tmp_path: Path, repo_root: Path) -> None:
    # A secret the job service reads but has no use for (it does not speak to Kafka).
    (tmp_path / "secrets.properties").write_text(f"kafka.sasl.password={SECRET}\n")
    (tmp_path / "job_service.properties").write_text("http.port=8000\n")

    result = start_job_service(tmp_path, repo_root)

    line = only_line(result)
    assert "missing required setting 'database_url'" in line
    assert "DATABASE_URL" in line
    assert SECRET not in result.stderr + result.stdout


@pytest.mark.parametrize(
    "bad_line", ["http.port=abc", "http.prot=8000"], ids=["invalid", "unknown"]
)
def test_bad_setting_beside_a_secret_stops_the_service_without_showing_it(
    bad_line: str, tmp_path: Path, repo_root: Path
) -> None:
    path = tmp_path / "job_service.properties"
    path.write_text(f"database.url={SECRET_URL}\n{bad_line}\n")

    result = start_job_service(tmp_path, repo_root)

    assert f"{path}:2" in only_line(result)
    assert SECRET not in result.stderr + result.stdout
