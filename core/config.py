from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MiB = 1024 * 1024
SECRET_KEY_MIN = 32

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Settings(BaseSettings):
    """Every setting, read from the environment under the contract's names."""

    model_config = SettingsConfigDict(case_sensitive=False, frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    database_url: str = "sqlite+aiosqlite:///var/app.db"
    bcrypt_rounds: int = Field(default=12, ge=4, le=31)
    session_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    cookie_secure: bool = False
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    avatar_max_bytes: int = Field(default=6 * MiB, ge=1024, le=64 * MiB)
    public_url: str = ""
    graphql_introspection: bool = True
    login_failures_per_account: int = Field(default=10, ge=1)
    login_failures_per_ip: int = Field(default=100, ge=1)
    login_failure_window_seconds: int = Field(default=900, ge=1)
    trusted_proxies: Annotated[tuple[IPNetwork, ...], NoDecode] = ()
    workers: int = Field(default=1, ge=1, le=64)
    # One log line per request costs about a tenth of the throughput; a load balancer in
    # front usually keeps these lines already.
    access_log: bool = False
    migrate_on_start: bool = True
    db_pool_size: int = Field(default=10, ge=1, le=1000)
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0)
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

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

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


class SettingsError(Exception):
    """Raised at start-up when the environment holds an invalid setting."""


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors()
        )
        raise SettingsError(f"invalid setting {problems}") from None
