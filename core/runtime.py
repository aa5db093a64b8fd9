"""What every service call needs, built once per process."""

from __future__ import annotations

from dataclasses import dataclass

from core.config import Settings
from core.db import Database
from core.images import ImageWork
from core.keys import Keys, load
from core.security import PasswordHasher
from core.throttle import Limits


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    db: Database
    passwords: PasswordHasher
    images: ImageWork
    limits: Limits
    keys: Keys

    @classmethod
    def create(cls, settings: Settings) -> Runtime:
        return cls(
            settings=settings,
            db=Database(settings),
            passwords=PasswordHasher(settings.bcrypt_rounds),
            images=ImageWork(),
            limits=Limits(
                per_account=settings.login_failures_per_account,
                per_client=settings.login_failures_per_ip,
                window=settings.login_failure_window_seconds,
            ),
            keys=load(settings),
        )
