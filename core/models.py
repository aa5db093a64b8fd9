"""Tables only. Times are UNIX seconds (float) so both databases compare them alike."""

from __future__ import annotations

from sqlalchemy import Index, LargeBinary, Text
from sqlmodel import Column, Field, SQLModel

from core.rules import EMAIL_MAX, LOGIN_MAX, NAME_MAX

SESSION_ID_MAX = 32
USER_AGENT_MAX = 256
IP_ADDRESS_MAX = 64


class User(SQLModel, table=True):
    __tablename__ = "users"
    # SQLite: an id is never given again once its account is deleted (as PostgreSQL's
    # sequence), so nothing still keyed by an old id can attach to a new account.
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    login: str = Field(max_length=LOGIN_MAX)
    # Lower-cased copies carry the case-insensitive uniqueness the contract asks for,
    # enforced by the database itself rather than by a check-then-insert.
    login_key: str = Field(max_length=LOGIN_MAX, unique=True)
    email: str = Field(max_length=EMAIL_MAX)
    email_key: str = Field(max_length=EMAIL_MAX, unique=True)
    firstname: str = Field(default="", max_length=NAME_MAX)
    lastname: str = Field(default="", max_length=NAME_MAX)
    password_hash: str = Field(max_length=128)
    created_at: float
    # Email: set by following a verification link (or a password reset sent to this
    # address); cleared when the address changes.
    email_verified: bool = Field(default=False)


class Session(SQLModel, table=True):
    __tablename__ = "sessions"

    # SHA-256 of the cookie's token: a leaked table cannot be replayed as cookies.
    token_hash: str = Field(primary_key=True, max_length=64)
    # The session's public name (GET /sessions, DELETE /sessions/{id}): random on its own,
    # so it says nothing about the token.
    id: str = Field(max_length=SESSION_ID_MAX, unique=True, index=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    created_at: float
    expires_at: float = Field(index=True)
    last_seen_at: float
    # Where the session was started from, for the user's list of devices.
    user_agent: str = Field(
        default="", max_length=USER_AGENT_MAX, sa_column_kwargs={"server_default": ""}
    )
    ip_address: str = Field(
        default="", max_length=IP_ADDRESS_MAX, sa_column_kwargs={"server_default": ""}
    )


class Avatar(SQLModel, table=True):
    __tablename__ = "avatars"

    user_id: int = Field(primary_key=True, foreign_key="users.id", ondelete="CASCADE")
    key: str = Field(max_length=64, unique=True)
    content_type: str = Field(max_length=32)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: float


class ThrottleEvent(SQLModel, table=True):
    """One counted event of a rate limit (core/throttle.py)."""

    __tablename__ = "throttle_events"
    __table_args__ = (Index("ix_throttle_events_key_at", "key", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    # HMAC-SHA-256 of the limit's name and the counted value (a login, an address…):
    # never the value itself.
    key: str = Field(max_length=64)
    at: float
    expires_at: float = Field(index=True)


class Device(SQLModel, table=True):
    """A browser that has logged in to an account (the `device_id` cookie)."""

    __tablename__ = "devices"

    # SHA-256 of the cookie's token, as for sessions.
    token_hash: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    created_at: float
    expires_at: float = Field(index=True)


# Email (core/mail/, core/email_flows.py) ------------------------------------------------


class EmailToken(SQLModel, table=True):
    """A verification or password-reset token; only its SHA-256 is kept."""

    __tablename__ = "email_tokens"
    __table_args__ = (Index("ix_email_tokens_user_kind", "user_id", "kind"),)

    token_hash: str = Field(primary_key=True, max_length=64)
    # Null for the stand-in a reset request for an unknown account writes (the same work
    # either way); such a row can never be used.
    user_id: int | None = Field(default=None, foreign_key="users.id", ondelete="CASCADE")
    kind: str = Field(max_length=16)
    # The address (its case-insensitive key) the token was sent to.
    email_key: str = Field(max_length=EMAIL_MAX)
    created_at: float
    expires_at: float = Field(index=True)


class PersistedDocument(SQLModel, table=True):
    """A GraphQL document a client registered under its SHA-256 (automatic persisted queries)."""

    __tablename__ = "persisted_documents"

    hash: str = Field(primary_key=True, max_length=64)
    document: str = Field(sa_column=Column(Text, nullable=False))
    # UTF-8 bytes of `document`, so the store's total size is one SUM away.
    size: int
    last_used_at: float = Field(index=True)


class OutboxMessage(SQLModel, table=True):
    """A message to deliver, written in the transaction of the change that causes it."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_state_due", "state", "next_attempt_at"),
        Index("ix_outbox_user_created", "user_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # Kept when the account goes: a committed message is still delivered.
    user_id: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    kind: str = Field(max_length=16)
    state: str = Field(max_length=16)
    recipient: str = Field(max_length=EMAIL_MAX)
    display_name: str = Field(default="", max_length=2 * NAME_MAX + 1)
    subject: str = Field(max_length=200)
    message_id: str = Field(max_length=200)
    # The text, sealed (core/keys.py: it may hold a link with a token), until it is sent;
    # erased then.
    body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: float
    next_attempt_at: float
    attempts: int = Field(default=0)
    sent_at: float | None = Field(default=None)
    # The request that caused the message: the sender logs its work under this id.
    request_id: str | None = Field(default=None, max_length=128)


class SecurityEvent(SQLModel, table=True):
    """One line of a user's security log (core/events.py)."""

    __tablename__ = "security_events"
    __table_args__ = (Index("ix_security_events_user_id_at", "user_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE")
    kind: str = Field(max_length=32)
    at: float = Field(index=True)
    ip_address: str = Field(max_length=IP_ADDRESS_MAX)
    user_agent: str = Field(max_length=USER_AGENT_MAX)


class TotpSecret(SQLModel, table=True):
    """A user's second factor (core/totp.py); on once `enabled_at` is set."""

    __tablename__ = "totp_secrets"

    user_id: int = Field(primary_key=True, foreign_key="users.id", ondelete="CASCADE")
    # Sealed with a key derived from SECRET_KEY (`aesgcm$1$…`, core/keys.py), never in clear.
    secret: str = Field(max_length=200)
    created_at: float
    enabled_at: float | None = None
    # The time step of the last code accepted: that code, and older ones, are refused.
    last_step: int | None = None


class RecoveryCode(SQLModel, table=True):
    """A single-use recovery code, kept only as a keyed digest; used ones are deleted."""

    __tablename__ = "recovery_codes"
    __table_args__ = (Index("ix_recovery_codes_user_id_digest", "user_id", "digest", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE")
    digest: str = Field(max_length=100)
