"""Database URLs as users write them (libpq style) become asyncpg URLs."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from libs.infra import db


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@h:5432/d", "postgresql+asyncpg://u:p@h:5432/d"),
        ("postgres://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgresql://u@h/d?sslmode=verify-full", "postgresql+asyncpg://u@h/d?ssl=verify-full"),
        ("postgresql://u@h/d?ssl=require", "postgresql+asyncpg://u@h/d?ssl=require"),
    ],
)
def test_async_url(given: str, expected: str) -> None:
    assert make_url(db.async_url(given)) == make_url(expected)


def test_a_password_with_reserved_characters_survives() -> None:
    url = db.async_url("postgresql://u:p%40ss%2Fw@h/d")
    assert make_url(url).password == "p@ss/w"


def test_other_databases_are_refused() -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        db.async_url("mysql://u@h/d")
