"""What every service call needs, built once per process."""

from __future__ import annotations

from dataclasses import dataclass

from app.config import Settings
from app.db import Database
from app.security import PasswordHasher
from app.throttle import Limits


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    db: Database
    passwords: PasswordHasher
    limits: Limits

    @classmethod
    def create(cls, settings: Settings) -> Runtime:
        return cls(
            settings=settings,
            db=Database(settings),
            passwords=PasswordHasher(settings.bcrypt_rounds),
            limits=Limits(
                per_account=settings.login_failures_per_account,
                per_client=settings.login_failures_per_ip,
                window=settings.login_failure_window_seconds,
            ),
        )
