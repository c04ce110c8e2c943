"""The auth service process refuses, before it opens a port or touches the database, to run in
production with private keys that would be stored unencrypted; the message names the settings
that fix it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from auth_service.settings import Settings
from libs.infra import serve

SECRET = "S3cretValue"  # made up, for the test that it is never shown


def test_production_without_encryption_key_or_key_file_stops_the_service(
    tmp_path: Path, repo_root: Path
) -> None:
    settings = {*Settings.model_fields, "config_location", "spring_config_location"}
    env = {name: value for name, value in os.environ.items() if name.lower() not in settings}
    env.update(
        ENVIRONMENT="production",
        DATABASE_URL=f"postgresql://u:{SECRET}@127.0.0.1:1/never",
        LOG_FORMAT="json",
    )

    result = subprocess.run(
        [sys.executable, "-m", "auth_service"],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == serve.EXIT_CONFIG_ERROR, result.stderr
    [line] = [ln for ln in result.stderr.splitlines() if "configuration error" in ln]
    assert line.startswith("auth_service: configuration error: ")
    assert "'signing_key_encryption_key'" in line
    assert "SIGNING_KEY_ENCRYPTION_KEY" in line
    assert "'signing_key_file'" in line
    assert SECRET not in result.stderr + result.stdout
