"""The contract's GraphQL types and inputs; built from service results, never from rows."""

from __future__ import annotations

from dataclasses import field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import strawberry

from core import accounts, avatars, email_flows, events, sessions, totp

if TYPE_CHECKING:
    from schema.context import Context


@strawberry.type
class Profile:
    username: str
    email: str
    firstname: str
    lastname: str
    avatar: str | None = strawberry.field(description="URL of the avatar; null when none")
    # Every Profile the API returns is the caller's own; the account's status (email) is
    # looked up only when one of its fields is asked for, once per Profile.
    _status: strawberry.Private[list[email_flows.AccountStatus]] = field(default_factory=list)

    @strawberry.field(description="Whether the email address has been verified")
    async def email_verified(self, info: strawberry.Info[Context, None]) -> bool:
        return (await self._account(info)).email_verified

    @strawberry.field(description="Whether a second factor (TOTP) is required at login")
    async def totp_enabled(self, info: strawberry.Info[Context, None]) -> bool:
        return (await self._account(info)).totp_enabled

    @strawberry.field(description="When the account was created")
    async def created_at(self, info: strawberry.Info[Context, None]) -> datetime:
        return (await self._account(info)).created_at

    async def _account(self, info: strawberry.Info[Context, None]) -> email_flows.AccountStatus:
        if not self._status:
            principal = await info.context.require_principal()
            self._status.append(await email_flows.account_status(info.context.runtime, principal))
        return self._status[0]

    @classmethod
    def from_service(cls, profile: accounts.Profile, public_url: str) -> Profile:
        return cls(
            username=profile.username,
            email=profile.email,
            firstname=profile.firstname,
            lastname=profile.lastname,
            avatar=avatars.url(public_url, profile.avatar_key),
        )


@strawberry.input
class SignupInput:
    login: str
    password: str
    email: str


@strawberry.input
class LoginInput:
    login: str = strawberry.field(description="The login or the email address")
    password: str
    otp: str | None = strawberry.field(
        default=None,
        description="With two-factor authentication on: a current code or an unused recovery code",
    )


@strawberry.input
class ProfileInput:
    username: str | None = None
    email: str | None = None
    firstname: str | None = None
    lastname: str | None = None


@strawberry.input
class PasswordInput:
    old_password: str
    new_password: str


@strawberry.input
class ResetPasswordInput:
    token: str = strawberry.field(description="The token from the reset link")
    new_password: str


def _time(seconds: float) -> datetime:
    # Serialised as ISO 8601 with its UTC offset (`…+00:00`).
    return datetime.fromtimestamp(seconds, UTC)


@strawberry.type(description="A session of the logged-in user: a device or browser logged in")
class Session:
    id: strawberry.ID
    created_at: datetime
    last_seen_at: datetime = strawberry.field(description="Accurate to about a minute")
    expires_at: datetime
    user_agent: str
    ip_address: str
    current: bool = strawberry.field(description="Whether this request came with this session")

    @classmethod
    def from_service(cls, info: sessions.SessionInfo) -> Session:
        return cls(
            id=strawberry.ID(info.id),
            created_at=_time(info.created_at),
            last_seen_at=_time(info.last_seen_at),
            expires_at=_time(info.expires_at),
            user_agent=info.user_agent,
            ip_address=info.ip_address,
            current=info.current,
        )


SecurityEventKind = strawberry.enum(events.Kind, name="SecurityEventKind")


@strawberry.type(description="One line of the security log")
class SecurityEvent:
    kind: SecurityEventKind  # type: ignore[valid-type]
    at: datetime
    ip_address: str
    user_agent: str

    @classmethod
    def from_service(cls, event: events.Event) -> SecurityEvent:
        return cls(
            kind=event.kind,
            at=_time(event.at),
            ip_address=event.ip_address,
            user_agent=event.user_agent,
        )


@strawberry.type(description="A new TOTP secret, off until confirmTotp accepts a first code")
class TotpSetup:
    secret: str = strawberry.field(description="Base32, for typing into an authenticator app")
    otpauth_url: str = strawberry.field(description="The same, as a URL for a QR code")

    @classmethod
    def from_service(cls, setup: totp.Setup) -> TotpSetup:
        return cls(secret=setup.secret, otpauth_url=setup.otpauth_url)
