"""The REST contract as a table: each row names the GraphQL operation it replays.

Adding an endpoint is adding a row; the translator and the OpenAPI document both read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from core.rules import SCHEMAS

JsonSchema = dict[str, object]
STRING: JsonSchema = {"type": "string"}
# The field rules' JSON Schemas, for the OpenAPI document; core/rules.py enforces them.
LOGIN, EMAIL, PASSWORD, NAME = (SCHEMAS[name] for name in ("login", "email", "password", "name"))


@dataclass(frozen=True)
class Field:
    """One JSON body field and the GraphQL input field it becomes."""

    graphql_name: str
    required: bool = True
    schema: JsonSchema = field(default_factory=lambda: dict(STRING))


@dataclass(frozen=True)
class Endpoint:
    methods: tuple[str, ...]
    path: str
    operation: str
    summary: str
    result: Literal["profile", "message", "account"]
    errors: tuple[int, ...]
    # A JSON body becomes the operation's `input` variable, field by field.
    fields: dict[str, Field] | None = None
    # ... or, when set, the operation's variables themselves (for `verifyEmail(token:)`).
    fields_are_variables: bool = False
    # Fields the client may send and the endpoint ignores (echoed read-only data).
    ignored: frozenset[str] = frozenset()
    # A multipart upload: (form field, GraphQL variable).
    upload: tuple[str, str] | None = None
    message: str = ""
    # Whether the endpoint needs a logged-in session (the `session_id` cookie).
    session: bool = True
    # `me` answers null when nobody is logged in; REST says that with a 403.
    null_means_logged_out: bool = False


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        ("POST",),
        "/signup",
        "Signup",
        "Create an account and log in",
        result="profile",
        fields={
            "login": Field("login", schema=LOGIN),
            "password": Field("password", schema=PASSWORD),
            "email": Field("email", schema=EMAIL),
        },
        session=False,
        errors=(400, 409, 413, 415),
    ),
    Endpoint(
        ("POST",),
        "/login",
        "Login",
        "Log in with the login or the email address",
        result="profile",
        fields={"login": Field("login"), "password": Field("password")},
        session=False,
        errors=(400, 403, 413, 415, 429),
    ),
    Endpoint(
        ("GET", "POST"),
        "/logout",
        "Logout",
        "End the current session",
        result="message",
        message="Logged out",
        errors=(403,),
    ),
    Endpoint(
        ("GET",),
        "/profile",
        "Profile",
        "The logged-in user's profile",
        result="profile",
        null_means_logged_out=True,
        errors=(403,),
    ),
    Endpoint(
        ("PUT",),
        "/profile",
        "UpdateProfile",
        "Change some of the profile's fields",
        result="profile",
        fields={
            "username": Field("username", required=False, schema=LOGIN),
            "email": Field("email", required=False, schema=EMAIL),
            "firstname": Field("firstname", required=False, schema=NAME),
            "lastname": Field("lastname", required=False, schema=NAME),
        },
        ignored=frozenset({"avatar"}),
        errors=(400, 403, 409, 413, 415),
    ),
    Endpoint(
        ("DELETE",),
        "/profile",
        "DeleteProfile",
        "Delete the account, its sessions and its avatar",
        result="message",
        message="Profile deleted",
        errors=(403,),
    ),
    Endpoint(
        ("PUT",),
        "/password",
        "ChangePassword",
        "Change the password; every other session ends",
        result="message",
        message="Password changed",
        fields={
            "old_password": Field("oldPassword"),
            "new_password": Field("newPassword", schema=PASSWORD),
        },
        errors=(400, 403, 413, 415, 429),
    ),
    Endpoint(
        ("PUT",),
        "/avatar",
        "UpdateAvatar",
        "Upload a PNG, JPEG, WebP or GIF image as the avatar",
        result="profile",
        upload=("avatar", "file"),
        errors=(400, 403, 413, 415),
    ),
    # Email (core/email_flows.py): verification, password reset, the account's status.
    Endpoint(
        ("POST",),
        "/email/verify",
        "VerifyEmail",
        "Confirm the email address with the token from a verification link",
        result="message",
        message="Email address verified",
        fields={"token": Field("token")},
        fields_are_variables=True,
        session=False,
        errors=(400, 413, 415),
    ),
    Endpoint(
        ("POST",),
        "/email/verification",
        "SendVerificationEmail",
        "Send a new verification message (none when the address is already verified)",
        result="message",
        message="Unless the address is already verified, a verification message is on its way",
        errors=(403, 429),
    ),
    Endpoint(
        ("POST",),
        "/password/forgot",
        "RequestPasswordReset",
        "Email a password reset link to the account with this login or email, if any",
        result="message",
        message="If an account has this login or email, a reset link is on its way to it",
        fields={"login": Field("login")},
        fields_are_variables=True,
        session=False,
        errors=(400, 413, 415, 429),
    ),
    Endpoint(
        ("POST",),
        "/password/reset",
        "ResetPassword",
        "Set a new password with the token from a reset link; every session ends",
        result="message",
        message="Password reset; log in with the new password",
        fields={"token": Field("token"), "new_password": Field("newPassword", schema=PASSWORD)},
        session=False,
        errors=(400, 413, 415),
    ),
    Endpoint(
        ("GET",),
        "/account",
        "Account",
        "The account's email, whether it is verified, second factor, creation time",
        result="account",
        null_means_logged_out=True,
        errors=(403,),
    ),
)
