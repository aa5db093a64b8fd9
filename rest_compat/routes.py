"""The REST contract as a table: each row names the GraphQL operation it replays.

Adding an endpoint is adding a row; the translator and the OpenAPI document both read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from core.events import Kind
from core.rules import SCHEMAS

JsonSchema = dict[str, object]
STRING: JsonSchema = {"type": "string"}
# The field rules' JSON Schemas, for the OpenAPI document; core/rules.py enforces them.
LOGIN, EMAIL, PASSWORD, NAME = (SCHEMAS[name] for name in ("login", "email", "password", "name"))
DATE_TIME: JsonSchema = {"type": "string", "format": "date-time"}
PATH_PARAMETER = re.compile(r"{(\w+)}")


def _object(**properties: JsonSchema) -> JsonSchema:
    return {"type": "object", "properties": properties, "required": list(properties)}


SESSION = _object(
    id=STRING,
    created_at=DATE_TIME,
    last_seen_at=DATE_TIME,
    expires_at=DATE_TIME,
    user_agent=STRING,
    ip_address=STRING,
    current={"type": "boolean"},
)
ACCOUNT = _object(
    email=STRING,
    email_verified={"type": "boolean"},
    totp_enabled={"type": "boolean"},
    created_at=DATE_TIME,
)
SECURITY_EVENT = _object(
    kind={"type": "string", "enum": [kind.value for kind in Kind]},
    at=DATE_TIME,
    ip_address=STRING,
    user_agent=STRING,
)


@dataclass(frozen=True)
class Field:
    """One JSON body field and the GraphQL input field it becomes."""

    graphql_name: str
    required: bool = True
    schema: JsonSchema = field(default_factory=lambda: dict(STRING))


@dataclass(frozen=True)
class Parameter:
    """A query-string parameter and the GraphQL variable it becomes (absent: not sent)."""

    variable: str
    schema: JsonSchema


@dataclass(frozen=True)
class Endpoint:
    """One REST endpoint. Every part of the request becomes a variable of `operation`:
    path parameters (`/sessions/{id}`: the variable `id`), query parameters (`query`) and
    the JSON body (`fields`)."""

    methods: tuple[str, ...]
    path: str
    operation: str
    summary: str
    # profile: the profile object; message: `{"message"}`, plus the operation's result
    # under `key` when one is named; json: the operation's result as it is, or as
    # `{key: result}` when a key is named.
    result: Literal["profile", "message", "json"]
    errors: tuple[int, ...]
    # A JSON body becomes the operation's `input` variable, field by field (or, with
    # `body_variable=None`, one variable per field).
    fields: dict[str, Field] | None = None
    body_variable: str | None = "input"
    query: dict[str, Parameter] = field(default_factory=dict)
    key: str | None = None
    # The JSON Schema of a `json` result, for the OpenAPI document.
    returns: JsonSchema | None = None
    # Fields the client may send and the endpoint ignores (echoed read-only data).
    ignored: frozenset[str] = frozenset()
    # A multipart upload: (form field, GraphQL variable).
    upload: tuple[str, str] | None = None
    message: str = ""
    # Whether the endpoint needs a logged-in session (the `session_id` cookie).
    session: bool = True
    # `me` answers null when nobody is logged in; REST says that with a 403.
    null_means_logged_out: bool = False

    @cached_property
    def path_parameters(self) -> tuple[str, ...]:
        return tuple(PATH_PARAMETER.findall(self.path))


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
        fields={
            "login": Field("login"),
            "password": Field("password"),
            "otp": Field("otp", required=False),
        },
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
        body_variable=None,
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
        body_variable=None,
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
        result="json",
        returns=ACCOUNT,
        null_means_logged_out=True,
        errors=(403,),
    ),
    Endpoint(
        ("GET",),
        "/sessions",
        "Sessions",
        "Where the user is logged in: their live sessions, newest first",
        result="json",
        returns={"type": "array", "items": SESSION},
        errors=(403,),
    ),
    Endpoint(
        ("DELETE",),
        "/sessions",
        "RevokeOtherSessions",
        "End every session but the current one",
        result="message",
        message="Every other session ended",
        key="ended",
        errors=(403,),
    ),
    Endpoint(
        ("DELETE",),
        "/sessions/{id}",
        "RevokeSession",
        "End one session; ending the current one logs out",
        result="message",
        message="Session ended",
        errors=(403, 404),
    ),
    Endpoint(
        ("GET",),
        "/security-events",
        "SecurityEvents",
        "The security log, newest first",
        result="json",
        query={
            "limit": Parameter(
                "limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}
            )
        },
        returns={"type": "array", "items": SECURITY_EVENT},
        errors=(400, 403),
    ),
    Endpoint(
        ("POST",),
        "/totp/setup",
        "StartTotpSetup",
        "A new TOTP secret, off until confirmed with a first code",
        result="json",
        returns=_object(secret=STRING, otpauth_url=STRING),
        errors=(403, 409),
    ),
    Endpoint(
        ("POST",),
        "/totp/confirm",
        "ConfirmTotp",
        "Turn two-factor authentication on; the recovery codes are shown once",
        result="json",
        fields={"code": Field("code")},
        body_variable=None,
        key="recovery_codes",
        returns=_object(recovery_codes={"type": "array", "items": STRING}),
        errors=(400, 403, 409, 413, 415),
    ),
    Endpoint(
        ("POST",),
        "/totp/disable",
        "DisableTotp",
        "Turn two-factor authentication off",
        result="message",
        message="Two-factor authentication is off",
        fields={"password": Field("password")},
        body_variable=None,
        errors=(400, 403, 413, 415, 429),
    ),
)
