"""SECRET_KEY: where it comes from, and the keys derived from it. Nothing here touches the database.

Each use gets its own key (HKDF-SHA256 with a purpose label), so a key leaked or misused in
one place says nothing about another. Stored values say how they were made (`aesgcm$1$…`,
`hmac_sha256$1$…`), so a new scheme can be introduced beside the old one.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.engine import make_url

from core.config import SECRET_KEY_MIN, Settings, SettingsError

KEY_FILE = "secret.key"
SEALED_PREFIX = "aesgcm$1$"
DIGEST_PREFIX = "hmac_sha256$1$"
NONCE_BYTES = 12


@dataclass(frozen=True, repr=False)
class Keys:
    """The keys derived from SECRET_KEY, one per purpose."""

    # Keys the throttle's counted values (core/throttle.py): logins, emails, addresses.
    throttle: bytes
    second_factor: bytes
    recovery_codes: bytes
    mail_bodies: bytes

    @classmethod
    def derive(cls, secret_key: str) -> Keys:
        root = secret_key.encode("utf-8", "surrogatepass")
        return cls(
            throttle=_hkdf(root, b"accounts-api/throttle-key/v1"),
            second_factor=_hkdf(root, b"accounts-api/totp-secret/v1"),
            recovery_codes=_hkdf(root, b"accounts-api/recovery-code/v1"),
            mail_bodies=_hkdf(root, b"accounts-api/outbox-body/v1"),
        )

    def seal(self, secret: bytes, *, user_id: int) -> str:
        """A second-factor secret encrypted (AES-256-GCM) and bound to its account.

        The account id is authenticated with it, so a sealed secret copied onto another
        account's row does not open there.
        """
        return _seal(self.second_factor, secret, _account(user_id))

    def unseal(self, stored: str, *, user_id: int) -> bytes:
        """The secret `seal` made; raises ValueError when it cannot be opened with this key."""
        return _unseal(self.second_factor, stored, _account(user_id))

    def seal_mail(self, body: str, *, message_id: str) -> str:
        """A message's text (it may hold a link with a token) encrypted for the outbox.

        Bound to the message's Message-ID, so a sealed text copied onto another row does
        not open there.
        """
        return _seal(self.mail_bodies, body.encode("utf-8"), _message(message_id))

    def unseal_mail(self, stored: str, *, message_id: str) -> str:
        """The text `seal_mail` sealed; ValueError when it does not open."""
        return _unseal(self.mail_bodies, stored, _message(message_id)).decode("utf-8")

    def digest(self, code: str) -> str:
        """A keyed digest of a recovery code: a stolen table alone cannot be searched."""
        mac = hmac.new(self.recovery_codes, code.encode("ascii"), hashlib.sha256)
        return DIGEST_PREFIX + mac.hexdigest()


def load(settings: Settings) -> Keys:
    """The keys from SECRET_KEY, or (SQLite only) from the key file beside the database."""
    if settings.secret_key is not None:
        return Keys.derive(settings.secret_key.get_secret_value())
    # Settings refuse PostgreSQL without SECRET_KEY; SQLite's instances share a machine.
    assert settings.is_sqlite
    return Keys.derive(_file_key(key_file(settings)))


def key_file(settings: Settings) -> Path:
    """`secret.key` in the directory of the SQLite database (`var/` by default)."""
    database = make_url(settings.database_url).database
    if not database or database == ":memory:":
        return Path("var") / KEY_FILE
    return Path(database).parent / KEY_FILE


def _file_key(path: Path) -> str:
    """The key in `path`, created (mode 0600) on first start.

    Processes starting together (WORKERS > 1) may race to create it: each writes a full key
    to a file of its own and links it into place, which succeeds for exactly one of them;
    the others read the winner's.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(48) + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)
        finally:
            draft.unlink()
    key = path.read_text().strip()
    if len(key) < SECRET_KEY_MIN:
        raise SettingsError(
            f"invalid setting SECRET_KEY: {path} holds fewer than {SECRET_KEY_MIN} characters"
        )
    return key


def _hkdf(root: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(root)


def _seal(key: bytes, plain: bytes, context: bytes) -> str:
    """AES-256-GCM under `key`, with `context` authenticated alongside (what the value
    belongs to); stored as `aesgcm$1$` + base64url(nonce + ciphertext + tag)."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, plain, context)
    return SEALED_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def _unseal(key: bytes, stored: str, context: bytes) -> bytes:
    if not stored.startswith(SEALED_PREFIX):
        raise ValueError("not a sealed secret of a known scheme")
    try:
        raw = base64.urlsafe_b64decode(stored[len(SEALED_PREFIX) :])
        return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context)
    except Exception as exc:  # cryptography's InvalidTag: another key, or a changed row
        raise ValueError("the sealed secret does not open with this SECRET_KEY") from exc


def _account(user_id: int) -> bytes:
    return f"user:{user_id}".encode("ascii")


def _message(message_id: str) -> bytes:
    return f"message:{message_id}".encode()
