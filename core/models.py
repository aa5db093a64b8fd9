"""Tables only. Times are UNIX seconds (float) so both databases compare them alike."""

from __future__ import annotations

from sqlalchemy import Index, LargeBinary, Text
from sqlmodel import Column, Field, SQLModel

from core.rules import EMAIL_MAX, LOGIN_MAX, NAME_MAX


class User(SQLModel, table=True):
    __tablename__ = "users"

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


class Session(SQLModel, table=True):
    __tablename__ = "sessions"

    # SHA-256 of the cookie's token: a leaked table cannot be replayed as cookies.
    token_hash: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    created_at: float
    expires_at: float = Field(index=True)
    last_seen_at: float


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


class PersistedDocument(SQLModel, table=True):
    """A GraphQL document a client registered under its SHA-256 (automatic persisted queries)."""

    __tablename__ = "persisted_documents"

    hash: str = Field(primary_key=True, max_length=64)
    document: str = Field(sa_column=Column(Text, nullable=False))
    # UTF-8 bytes of `document`, so the store's total size is one SUM away.
    size: int
    last_used_at: float = Field(index=True)
