"""What every service call needs, built once per process."""

from __future__ import annotations

from dataclasses import dataclass

from core.config import Settings
from core.db import Database
from core.images import ImageWork
from core.keys import Keys, load
from core.mail.message import parse_sender
from core.mail.outbox import Outbox
from core.security import PasswordHasher
from core.throttle import Limits


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    db: Database
    passwords: PasswordHasher
    images: ImageWork
    limits: Limits
    outbox: Outbox
    keys: Keys

    @classmethod
    def create(cls, settings: Settings) -> Runtime:
        keys = load(settings)
        return cls(
            settings=settings,
            db=Database(settings),
            passwords=PasswordHasher(settings.bcrypt_rounds),
            images=ImageWork(),
            limits=Limits.from_settings(settings, keys.throttle),
            outbox=Outbox(parse_sender(settings.mail_from), keys),
            keys=keys,
        )
