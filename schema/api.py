"""Query and Mutation: each resolver translates arguments, calls one service, and returns."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.file_uploads import Upload
from strawberry.types import ExecutionContext

from core import accounts, avatars, email_flows, events, images, sessions, totp
from core.config import Settings
from core.errors import InvalidInput
from schema.context import Context
from schema.documents import Documents, PreparedDocuments
from schema.errors import log_unexpected
from schema.tracing import OperationSpan, OperationSpans, no_span
from schema.types import (
    LoginInput,
    PasswordInput,
    Profile,
    ProfileInput,
    ResetPasswordInput,
    SecurityEvent,
    Session,
    SignupInput,
    TotpSetup,
)

Info = strawberry.Info[Context, None]


def _profile(info: Info, profile: accounts.Profile) -> Profile:
    return Profile.from_service(profile, info.context.runtime.settings.public_url)


@strawberry.type
class Query:
    @strawberry.field(description="The logged-in user's profile; null when not logged in")
    async def me(self, info: Info) -> Profile | None:
        profile = await info.context.profile()
        return None if profile is None else _profile(info, profile)

    @strawberry.field(description="Where the user is logged in: their live sessions, newest first")
    async def sessions(self, info: Info) -> list[Session]:
        principal = await info.context.require_principal()
        found = await sessions.listing(info.context.runtime, principal)
        return [Session.from_service(session) for session in found]

    @strawberry.field(description="The user's security log, newest first")
    async def security_events(
        self, info: Info, limit: int = events.LIMIT_DEFAULT
    ) -> list[SecurityEvent]:
        principal = await info.context.require_principal()
        found = await events.recent(info.context.runtime, user_id=principal.user_id, limit=limit)
        return [SecurityEvent.from_service(event) for event in found]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create an account; starts a session")
    async def signup(self, info: Info, input: SignupInput) -> Profile:
        signed_in = await accounts.signup(
            info.context.runtime,
            login=input.login,
            password=input.password,
            email=input.email,
            client=info.context.client,
            user_agent=info.context.user_agent,
            replacing=info.context.token,
        )
        info.context.sign_in(signed_in)
        return _profile(info, signed_in.profile)

    @strawberry.mutation(description="Log in with the login or email; starts a new session")
    async def login(self, info: Info, input: LoginInput) -> Profile:
        signed_in = await accounts.authenticate(
            info.context.runtime,
            login=input.login,
            password=input.password,
            client=info.context.client,
            user_agent=info.context.user_agent,
            otp=input.otp,
            device=info.context.device,
            replacing=info.context.token,
        )
        info.context.sign_in(signed_in)
        return _profile(info, signed_in.profile)

    @strawberry.mutation(description="End the current session")
    async def logout(self, info: Info) -> bool:
        await accounts.logout(
            info.context.runtime,
            await info.context.require_principal(),
            client=info.context.client,
            user_agent=info.context.user_agent,
        )
        info.context.end_session()
        return True

    @strawberry.mutation(description="Change the given fields; absent ones stay as they are")
    async def update_profile(self, info: Info, input: ProfileInput) -> Profile:
        profile = await accounts.update_profile(
            info.context.runtime,
            await info.context.require_principal(),
            username=input.username,
            email=input.email,
            firstname=input.firstname,
            lastname=input.lastname,
            client=info.context.client,
            user_agent=info.context.user_agent,
        )
        return _profile(info, profile)

    @strawberry.mutation(description="Delete the account, its sessions and its avatar")
    async def delete_profile(self, info: Info) -> bool:
        await accounts.delete_account(info.context.runtime, await info.context.require_principal())
        info.context.end_session()
        return True

    @strawberry.mutation(description="Change the password; every other session ends")
    async def change_password(self, info: Info, input: PasswordInput) -> bool:
        session = await accounts.change_password(
            info.context.runtime,
            await info.context.require_principal(),
            old_password=input.old_password,
            new_password=input.new_password,
            client=info.context.client,
            user_agent=info.context.user_agent,
        )
        info.context.start_session(session)
        return True

    @strawberry.mutation(description="Upload a PNG, JPEG, WebP or GIF image as the avatar")
    async def update_avatar(self, info: Info, file: Upload) -> Profile:
        principal = await info.context.require_principal()
        read = getattr(file, "read", None)
        if not callable(read):
            raise InvalidInput(images.FIELD, "send the image as a multipart file upload")
        # One byte past the limit is enough for the service to tell it is too large.
        data = await read(info.context.runtime.settings.avatar_max_bytes + 1)
        return _profile(info, await avatars.replace(info.context.runtime, principal, data))

    @strawberry.mutation(description="Confirm the email address with the token from its link")
    async def verify_email(self, info: Info, token: str) -> bool:
        await email_flows.verify_email(
            info.context.runtime,
            token=token,
            client=info.context.client,
            user_agent=info.context.user_agent,
        )
        return True

    @strawberry.mutation(
        description="Send a new verification message (none when the address is verified)"
    )
    async def send_verification_email(self, info: Info) -> bool:
        principal = await info.context.require_principal()
        await email_flows.send_verification(info.context.runtime, principal)
        return True

    @strawberry.mutation(
        description="Email a reset link to the account with this login or email, if any; "
        "always true"
    )
    async def request_password_reset(self, info: Info, login: str) -> bool:
        await email_flows.request_password_reset(
            info.context.runtime,
            login=login,
            client=info.context.client,
            user_agent=info.context.user_agent,
        )
        return True

    @strawberry.mutation(
        description="Set a new password with the token from a reset link; every session ends"
    )
    async def reset_password(self, info: Info, input: ResetPasswordInput) -> bool:
        await email_flows.reset_password(
            info.context.runtime,
            token=input.token,
            new_password=input.new_password,
            client=info.context.client,
            user_agent=info.context.user_agent,
        )
        return True

    @strawberry.mutation(description="End one of the user's sessions; the current one is a logout")
    async def revoke_session(self, info: Info, id: strawberry.ID) -> bool:
        was_current = await sessions.revoke(
            info.context.runtime,
            await info.context.require_principal(),
            str(id),
            client=info.context.client,
            user_agent=info.context.user_agent,
        )
        if was_current:
            info.context.end_session()
        return True

    @strawberry.mutation(description="End every session but the current one; how many ended")
    async def revoke_other_sessions(self, info: Info) -> int:
        return await sessions.revoke_others(
            info.context.runtime,
            await info.context.require_principal(),
            client=info.context.client,
            user_agent=info.context.user_agent,
        )

    @strawberry.mutation(description="A new TOTP secret; off until confirmTotp accepts a code")
    async def start_totp_setup(self, info: Info) -> TotpSetup:
        setup = await totp.start_setup(info.context.runtime, await info.context.require_principal())
        return TotpSetup.from_service(setup)

    @strawberry.mutation(description="Turn TOTP on with a first code; the recovery codes, once")
    async def confirm_totp(self, info: Info, code: str) -> list[str]:
        return await totp.confirm(
            info.context.runtime,
            await info.context.require_principal(),
            code=code,
            client=info.context.client,
            user_agent=info.context.user_agent,
        )

    @strawberry.mutation(description="Turn two-factor authentication off (needs the password)")
    async def disable_totp(self, info: Info, password: str) -> bool:
        await accounts.disable_totp(
            info.context.runtime,
            await info.context.require_principal(),
            password=password,
            client=info.context.client,
            user_agent=info.context.user_agent,
        )
        return True


class Schema(strawberry.Schema):
    """The schema, with the one place its documents are parsed, limited and validated."""

    def __init__(self, *, introspection: bool) -> None:
        super().__init__(
            query=Query, mutation=Mutation, extensions=[PreparedDocuments, OperationSpans]
        )
        self.documents = Documents(self._schema, introspection=introspection)
        # Replaced when tracing is on (app/tracing.py).
        self.operation_span: OperationSpan = no_span

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Errors the contract expects are answers, not incidents: only bugs are logged.
        log_unexpected(errors)


def create_schema(settings: Settings) -> Schema:
    return Schema(introspection=settings.graphql_introspection)
