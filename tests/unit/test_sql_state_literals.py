"""No SQL statement of the services spells a job or execution state: each binds the states it
writes and moves from, taken from `libs.scheduling.states` (the transition table), so the table is
the one place a state machine is written. Docstrings may quote SQL to explain it; code may not."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from libs.scheduling.states import ExecutionStatus, JobStatus

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "libs", "user_service", "auth_service", "job_service", "scheduler_service",
    "executor_service", "console_service", "schedctl", "scheduler_client",
)  # fmt: skip
STATE_LITERAL = re.compile(
    "'(" + "|".join(sorted({s.value for s in (*JobStatus, *ExecutionStatus)})) + ")'"
)


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the string constants that are docstrings."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _modules() -> list[Path]:
    return sorted(
        path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts  # the schema's history, written once
    )


def test_the_modules_are_found():
    assert len(_modules()) > 50


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_statement_spells_a_state(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = _docstrings(tree)
    spelled = [
        (node.lineno, match.group(0))
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings
        for match in STATE_LITERAL.finditer(node.value)
    ]  # fmt: skip
    assert not spelled, f"{path.relative_to(ROOT)} spells states in SQL (bind them): {spelled}"
