"""The user service's errors, named by meaning; `libs.contracts.problems` renders them (RFC
9457)."""

from __future__ import annotations

from libs.contracts import problems
from libs.security import auth

RETRY_AFTER_BUSY_S = 1


class FieldRejected(problems.Problem):
    """A field's value breaks a rule that is not about its shape (a password policy, a cursor
    this service did not issue). Rendered like FastAPI's validation errors: 422 naming the
    field, so a client handles both alike."""

    status = 422
    slug = "validation-failed"
    title = "The request is not valid"

    def __init__(self, field: str, message: str, code: str):
        super().__init__(
            f"{field}: {message}", errors=[{"field": field, "message": message, "code": code}]
        )


class PasswordRejected(FieldRejected):
    pass


class InvalidCursor(FieldRejected):
    def __init__(self) -> None:
        super().__init__("query.cursor", "the cursor is not one this service issued", "cursor")


class EmailUnavailable(problems.Problem):
    # Says no more than this: not whether an account holds the address, nor why. Only
    # `schedctl create-admin` meets it: registration answers a taken email as a free one.
    status = 409
    slug = "email-unavailable"
    title = "Email unavailable"

    def __init__(self) -> None:
        super().__init__("this email cannot be registered")


# The refusals of `libs.security.auth`, raised again by this service's own re-checks of the account
# inside a request's transaction (which see a change at once, where `libs.security.auth` may see it
# seconds late).
AccountGone = auth.AccountGone
AccountDisabled = auth.AccountDisabled


class UserPrincipalRequired(problems.Problem):
    status = 403
    slug = "user-principal-required"
    title = "Only a user may do this"

    def __init__(self) -> None:
        super().__init__("this endpoint is for users; a service account has no profile")


class AdminRoleRequired(problems.Problem):
    """The token carries `users:admin` but its user is no longer an admin."""

    status = 403
    slug = "admin-role-required"
    title = "The user is not an admin"


class WrongPassword(problems.Problem):
    status = 403
    slug = "wrong-password"
    title = "The current password is not correct"


class PasswordChangedMeanwhile(problems.Problem):
    status = 409
    slug = "password-changed-meanwhile"
    title = "The password was changed by another request"


class UserNotFound(problems.Problem):
    status = 404
    slug = "user-not-found"
    title = "No such user"


class ServiceAccountNotFound(problems.Problem):
    status = 404
    slug = "service-account-not-found"
    title = "No such service account"


class SelfLockout(problems.Problem):
    """An admin may not disable or demote themselves: another admin must do it."""

    status = 409
    slug = "self-lockout"
    title = "An admin cannot disable or demote themselves"


class LastAdmin(problems.Problem):
    status = 409
    slug = "last-admin"
    title = "The platform would have no admin left"


class RegistrationsLocked(problems.Problem):
    """The client address reached its limit of registrations (`registration.*` settings)."""

    status = 429
    slug = "too-many-registrations"
    title = "Too many registrations from this address"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("try again later", headers={"Retry-After": str(retry_after_s)})


class HashingBusy(problems.Problem):
    status = 503
    slug = "busy"
    title = "Too many password operations in progress"

    def __init__(self) -> None:
        super().__init__("try again shortly", headers={"Retry-After": str(RETRY_AFTER_BUSY_S)})
