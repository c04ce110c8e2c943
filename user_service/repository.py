"""Every query of the user service."""

from __future__ import annotations

from sqlalchemy import exists, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from libs import models
from libs.states import Role

# Serializes first-admin creation across processes (an arbitrary, fixed advisory-lock key).
FIRST_ADMIN_LOCK = 0x5C_AD_01


async def lock_first_admin(session: AsyncSession) -> None:
    """Hold a transaction-scoped lock so two bootstraps cannot both create an admin."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": FIRST_ADMIN_LOCK})


async def admin_exists(session: AsyncSession) -> bool:
    return bool(await session.scalar(select(exists().where(models.User.role == Role.ADMIN))))


async def create_user(
    session: AsyncSession, *, email: str, password_hash: str, display_name: str, role: Role
) -> models.User:
    user = models.User(
        email=normalise_email(email),
        password_hash=password_hash,
        display_name=display_name,
        role=role,
    )
    session.add(user)
    await session.flush()
    return user


def normalise_email(email: str) -> str:
    return email.strip().lower()
