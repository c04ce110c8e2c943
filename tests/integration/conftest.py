"""The integration tests' helper modules (`*_support.py`, no tests in them) assert too: pytest
rewrites the asserts of test modules only, so these are named to it here, before any test
module imports them, for their failures to show the values compared."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite(
    "auth_support",
    "client_support",
    "console_support",
    "executor_support",
    "job_service_support",
    "scheduler_support",
    "user_service_support",
)
