"""Request bodies (strict: `libs.contracts.schemas.StrictModel`) and responses of the user service.

Every key is camelCase (`displayName`, `nextCursor`: `libs.contracts.schemas.camel`); request bodies
also accept the Python field names (`display_name`). Responses never carry a password hash; a
service account's secret appears only in the answer that creates or rotates it
(`ServiceAccountWithSecret`).
"""

from __future__ import annotations

import unicodedata
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, field_validator

from libs.contracts import schemas
from libs.scheduling.states import Role
from libs.security import emails, scopes
from libs.store import models
from user_service import password_policy

DISPLAY_NAME_MAX = 100
SERVICE_ACCOUNT_NAME_MAX = 100
KNOWN_SCOPES = scopes.ALL  # named apart: a field below is called `scopes`


def _email(value: str) -> str:
    email = emails.normalise(value)
    problem = emails.problem(email)
    if problem:
        raise ValueError(problem)
    return email


def _label(value: str) -> str:
    """A name shown to people: trimmed, not blank, no control characters (no forged lines)."""
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("must not contain control characters")
    return value


Email = Annotated[str, AfterValidator(_email)]
DisplayName = Annotated[str, Field(max_length=DISPLAY_NAME_MAX), AfterValidator(_label)]
# The policy (user_service.password_policy) judges a new password; this only bounds the work.
Password = Annotated[str, Field(max_length=password_policy.MAX_LENGTH)]


class _Request(schemas.StrictModel):
    model_config = schemas.CAMEL_CASE


class _Response(BaseModel):
    model_config = schemas.CAMEL_CASE


class Registration(_Request):
    email: Email
    # Not length-bounded here: the policy reports every rule with its own code.
    password: str
    display_name: DisplayName


class ProfileUpdate(_Request):
    display_name: DisplayName


class PasswordChange(_Request):
    current_password: Password
    new_password: str


class RoleUpdate(_Request):
    role: Role


class ServiceAccountCreation(_Request):
    name: Annotated[str, Field(max_length=SERVICE_ACCOUNT_NAME_MAX), AfterValidator(_label)]
    scopes: Annotated[list[str], Field(min_length=1, max_length=len(KNOWN_SCOPES))]

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - KNOWN_SCOPES)
        if unknown:
            raise ValueError(f"unknown scope: {' '.join(unknown)}")
        return sorted(set(value))


class RegistrationAccepted(_Response):
    """The answer to every valid registration, whether its email was free or already had an
    account, so that registering tells nobody who has one (ADR 0010). Log in to use it."""

    email: str  # normalised: the name to log in with


class User(_Response):
    id: uuid.UUID
    email: str
    display_name: str | None
    role: Role
    created_at: datetime
    disabled: bool
    locked_until: datetime | None = Field(
        description="While failed logins lock the account (ADR 0005), when the lock ends: until "
        "then the token endpoint refuses even the right password. An admin may lift it "
        "(`POST /v1/users/{userId}:unlock`). Null when logins are not locked."
    )

    @classmethod
    def of(cls, user: models.User, *, locked_until: datetime | None) -> User:
        return cls(
            id=user.id,
            email=user.email,
            display_name=user.display_name,
            role=Role(user.role),
            created_at=user.created_at,
            disabled=user.disabled_at is not None,
            locked_until=locked_until,
        )


class UserPage(_Response):
    items: list[User]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


class ServiceAccount(_Response):
    id: uuid.UUID
    client_id: str
    name: str
    scopes: list[str]
    created_at: datetime
    created_by: uuid.UUID | None
    secret_rotated_at: datetime | None
    disabled: bool

    @classmethod
    def of(cls, account: models.ServiceAccount) -> ServiceAccount:
        return cls(
            id=account.id,
            client_id=account.client_id,
            name=account.name,
            scopes=sorted(account.scopes),
            created_at=account.created_at,
            created_by=account.created_by,
            secret_rotated_at=account.secret_rotated_at,
            disabled=account.disabled_at is not None,
        )


class ServiceAccountWithSecret(ServiceAccount):
    # Shown once, in the answer that creates or rotates it; only its digest is stored.
    client_secret: str

    @classmethod
    def with_secret(cls, account: models.ServiceAccount, secret: str) -> ServiceAccountWithSecret:
        return cls(**ServiceAccount.of(account).model_dump(), client_secret=secret)


class ServiceAccountPage(_Response):
    items: list[ServiceAccount]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )
