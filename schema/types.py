"""The contract's GraphQL types and inputs; built from service results, never from rows."""

from __future__ import annotations

import strawberry

from core import accounts, avatars


@strawberry.type
class Profile:
    username: str
    email: str
    firstname: str
    lastname: str
    avatar: str | None = strawberry.field(description="URL of the avatar; null when none")

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
