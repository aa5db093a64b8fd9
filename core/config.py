from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Literal

from annotated_types import Ge, Le
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core import persisted

MiB = 1024 * 1024
SECRET_KEY_MIN = 32
DAY = 24 * 3600
# Every number has a range (README "Settings"): a value past it is a mistake that would
# otherwise hang the service (bcrypt cost 31) or fail long after start-up (a date past the
# year 9999). Counts stay below PostgreSQL's 32-bit integer; windows hold a month at most.
COUNT_MAX = 1_000_000_000
WINDOW_MAX = 30 * DAY
# Pydantic's error types for a number outside its range (NaN and infinities included).
OUT_OF_RANGE = frozenset({"greater_than_equal", "less_than_equal", "finite_number"})
# A host name as RFC 1123 spells it: dot-separated labels of letters, digits and inner hyphens
# (and underscores, which Docker Compose service names may hold and resolvers accept).
HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# The most SESSIONS_PER_USER may be: GraphQL's cost pre-pass counts a session list at this length.
SESSIONS_PER_USER_MAX = 1000


class Settings(BaseSettings):
    """Every setting, read from the environment under the contract's names."""

    model_config = SettingsConfigDict(case_sensitive=False, frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    database_url: str = "sqlite+aiosqlite:///var/app.db"
    # Each step doubles the cost: 12 is ~0.25 s here, 16 ~4 s, 31 would be days per login.
    bcrypt_rounds: int = Field(default=12, ge=4, le=16)
    # Browsers cap a cookie's Max-Age at 400 days.
    session_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60, le=400 * DAY)
    # Live sessions per user: each login adds one for SESSION_TTL_SECONDS, so a script that
    # logs in over and over would otherwise grow the table (and the user's list) unbounded.
    sessions_per_user: int = Field(default=50, ge=1, le=SESSIONS_PER_USER_MAX)
    cookie_secure: bool = False
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    avatar_max_bytes: int = Field(default=6 * MiB, ge=1024, le=64 * MiB)
    public_url: str = ""
    graphql_introspection: bool = True
    login_failures_per_account: int = Field(default=10, ge=1, le=COUNT_MAX)
    login_failures_per_ip: int = Field(default=100, ge=1, le=COUNT_MAX)
    login_failure_window_seconds: int = Field(default=900, ge=1, le=WINDOW_MAX)
    # Hostile input (issue 11): every path that hashes a password or decodes an image is
    # limited (core/throttle.py), and a browser that logged in before gets past an account
    # lock through its device cookie unless the device itself failed this many times.
    signups_per_ip: int = Field(default=20, ge=1, le=COUNT_MAX)
    signup_window_seconds: int = Field(default=3600, ge=1, le=WINDOW_MAX)
    password_resets_per_ip: int = Field(default=20, ge=1, le=COUNT_MAX)
    login_failures_per_device: int = Field(default=10, ge=1, le=COUNT_MAX)
    avatar_uploads_per_hour: int = Field(default=20, ge=1, le=COUNT_MAX)
    trusted_proxies: Annotated[tuple[IPNetwork, ...], NoDecode] = ()
    workers: int = Field(default=1, ge=1, le=64)
    # One log line per request costs about a tenth of the throughput; a load balancer in
    # front usually keeps these lines already.
    access_log: bool = False
    migrate_on_start: bool = True
    # Each process opens up to twice this many connections (the pool and its overflow).
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_pool_timeout_seconds: float = Field(default=10.0, ge=0.1, le=300, allow_inf_nan=False)
    # Cookies for frontends on another site: `none` lets a listed frontend on another site
    # use the session from fetch(..., {credentials: "include"}); it is only safe (and only
    # accepted by browsers) on HTTPS, and only useful with origins listed in CORS_ORIGINS.
    cookie_samesite: Literal["lax", "strict", "none"] = "lax"
    # Persisted GraphQL documents (schema/persisted.py): a manifest of pre-registered
    # documents, `{"<sha256 hex>": "<document>"}`, checked at start-up; and whether only
    # pre-registered documents may run (an allow-list; clients then cannot register any).
    graphql_persisted_documents: str = ""
    graphql_persisted_only: bool = False

    @field_validator("cookie_samesite", mode="before")
    @classmethod
    def _lower_samesite(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_samesite_none(self) -> Settings:
        if self.cookie_samesite == "none":
            if not self.cookie_secure:
                raise ValueError("COOKIE_SAMESITE=none needs COOKIE_SECURE=true (HTTPS)")
            if not self.cors_origins:
                raise ValueError(
                    "COOKIE_SAMESITE=none needs CORS_ORIGINS to list the frontends' origins"
                )
        return self

    # Operations: logs, metrics and traces (README "Operating it").
    log_format: Literal["text", "json"] = "text"
    # Who may read GET /metrics: the socket's peer, or behind TRUSTED_PROXIES the client they
    # forward for, must be in one of these networks; anyone else gets a 404.
    metrics_allow: Annotated[tuple[IPNetwork, ...], NoDecode] = (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("::1/128"),
    )
    # The standard OpenTelemetry variable: traces are exported (OTLP over HTTP) only when it is
    # set. The SDK reads every other OTEL_* variable itself; this one is the switch, checked here
    # so a mistyped endpoint stops start-up instead of failing every export.
    otel_exporter_otlp_endpoint: str = ""

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_log_format(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("metrics_allow", mode="before")
    @classmethod
    def _split_metrics_allow(cls, value: object) -> object:
        return cls._split_networks(value)

    @field_validator("otel_exporter_otlp_endpoint")
    @classmethod
    def _check_otlp_endpoint(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https:// (OTLP over HTTP)")
        return value

    # Email (verification, password reset, notices; core/mail/). SMTP_URL empty writes each
    # message as a .eml file into MAIL_DIR instead of sending it. APP_URL is the base of the
    # links in messages (empty: PUBLIC_URL, else http://HOST:PORT; see `app_base_url`).
    smtp_url: str = ""
    mail_from: str = "Accounts <no-reply@localhost>"
    mail_dir: str = "var/mail"
    app_url: str = ""
    email_token_ttl_seconds: int = Field(default=86400, ge=60, le=365 * DAY)
    # A reset link is a key to the account for as long as it works: a week at most.
    password_reset_ttl_seconds: int = Field(default=1800, ge=60, le=7 * DAY)
    emails_per_account_per_hour: int = Field(default=5, ge=1, le=COUNT_MAX)

    # Account security (sessions you can see, the security log, TOTP). SECRET_KEY is the root
    # of the keys that seal second-factor secrets (core/keys.py); unset with SQLite, a random
    # one is kept in a file beside the database.
    secret_key: SecretStr | None = Field(default=None, validate_default=True)
    security_event_retention_days: int = Field(default=90, ge=1, le=36500)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            for origin in value:
                # Credentials are always allowed, and browsers refuse `*` with them;
                # a reflected wildcard would hand every site the user's session.
                if origin == "*" or not str(origin).startswith(("http://", "https://")):
                    raise ValueError(f"{origin!r} is not an origin like https://app.example")
            return tuple(str(origin).rstrip("/") for origin in value)
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(
                ipaddress.ip_network(part.strip(), strict=False)
                for part in value.split(",")
                if part.strip()
            )
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("graphql_persisted_documents")
    @classmethod
    def _check_manifest(cls, value: str) -> str:
        if value:
            persisted.read_manifest(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("app_url")
    @classmethod
    def _check_app_url(cls, value: str) -> str:
        return cls._check_public_url(value)

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: str) -> str:
        if value:
            # Parsed where it is used; checked here so a typo stops start-up, not the sender.
            from core.mail.delivery import parse_smtp_url

            parse_smtp_url(value)
        return value

    @field_validator("mail_from")
    @classmethod
    def _check_mail_from(cls, value: str) -> str:
        from core.mail.message import parse_sender

        parse_sender(value)
        return value

    @field_validator("mail_dir")
    @classmethod
    def _check_mail_dir(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("smtp_url"):
            return value  # messages go to the SMTP server; the directory is never used
        problem = _unwritable(Path(value))
        if problem:
            raise ValueError(
                f"{value!r} {problem} (the .eml files go there while SMTP_URL is empty)"
            )
        return value

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            labels = value.removesuffix(".").split(".")
            if len(value) > 253 or not all(HOST_LABEL.fullmatch(label) for label in labels):
                raise ValueError(
                    f"{value!r} is not an IP address or host name "
                    "(no scheme, port or brackets: 127.0.0.1, ::1, 0.0.0.0, localhost)"
                ) from None
        return value

    @property
    def app_base_url(self) -> str:
        """Where the links in messages point: APP_URL, else PUBLIC_URL, else HOST:PORT."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return self.app_url or self.public_url or f"http://{host}:{self.port}"

    @field_validator("secret_key")
    @classmethod
    def _check_secret_key(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            value = None  # an empty variable is an unset one
        if value is None:
            # Instances sharing a PostgreSQL database must share the key, so none is made up.
            if not str(info.data.get("database_url", "sqlite")).startswith("sqlite"):
                raise ValueError("required with PostgreSQL: any string of at least 32 characters")
            return None
        if len(value.get_secret_value()) < SECRET_KEY_MIN:
            raise ValueError(f"must be at least {SECRET_KEY_MIN} characters")
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _unwritable(directory: Path) -> str:
    """Why files cannot be written into `directory` (made when needed); empty when they can.

    Nothing is created here: the nearest existing folder must be a writable directory.
    """
    existing = directory
    try:
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent
        if not existing.is_dir():
            return f"cannot be created: {str(existing)!r} is not a directory"
    except OSError as exc:
        return f"cannot be checked: {exc.strerror}"
    if not os.access(existing, os.W_OK | os.X_OK):
        if existing == directory:
            return "is not writable"
        return f"cannot be created: {str(existing)!r} is not writable"
    return ""


class SettingsError(Exception):
    """Raised at start-up when the environment holds an invalid setting."""


def bounds(name: str) -> tuple[float, float] | None:
    """The range a numeric setting accepts (both ends included), None for other settings."""
    rules = Settings.model_fields[name].metadata
    low = next((rule.ge for rule in rules if isinstance(rule, Ge)), None)
    high = next((rule.le for rule in rules if isinstance(rule, Le)), None)
    if low is None or high is None:
        return None
    return float(low), float(high)  # type: ignore[arg-type]


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(f"invalid setting {'; '.join(map(_problem, exc.errors()))}") from None


def _problem(error: ErrorDetails) -> str:
    if not error["loc"]:
        return error["msg"]  # a rule across settings (a model validator) names them itself
    name = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    limits = bounds(name) if name in Settings.model_fields else None
    if limits is not None and error["type"] in OUT_OF_RANGE:
        low, high = (f"{limit:.0f}" if limit.is_integer() else str(limit) for limit in limits)
        message = f"{str(error['input'])[:40]} is out of range; use {low} to {high}"
    return f"{name.upper()}: {message}"
