"""SECRET_KEY and the keys derived from it: sealing, digests, the key file."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from core import keys
from core.config import Settings, SettingsError
from core.keys import Keys

KEY = "k" * 32


def test_sealed_secret_opens_only_for_its_account_and_key() -> None:
    sealed = Keys.derive(KEY).seal(b"twenty bytes secret!", user_id=7)
    assert sealed.startswith("aesgcm$1$")
    assert b"twenty" not in sealed.encode()
    assert Keys.derive(KEY).unseal(sealed, user_id=7) == b"twenty bytes secret!"
    with pytest.raises(ValueError, match="SECRET_KEY"):
        Keys.derive(KEY).unseal(sealed, user_id=8)
    with pytest.raises(ValueError, match="SECRET_KEY"):
        Keys.derive("another key of at least 32 chars").unseal(sealed, user_id=7)


def test_sealed_mail_body_opens_only_for_its_message_and_key() -> None:
    text = "Hello é,\n\nhttps://a.example/reset-password?token=abc\n"
    sealed = Keys.derive(KEY).seal_mail(text, message_id="<1@a.example>")
    assert sealed.startswith("aesgcm$1$") and "token" not in sealed
    assert Keys.derive(KEY).unseal_mail(sealed, message_id="<1@a.example>") == text
    with pytest.raises(ValueError, match="SECRET_KEY"):
        Keys.derive(KEY).unseal_mail(sealed, message_id="<2@a.example>")
    with pytest.raises(ValueError, match="SECRET_KEY"):
        Keys.derive(KEY).unseal(sealed, user_id=1)  # another purpose, another key
    with pytest.raises(ValueError, match="known scheme"):
        Keys.derive(KEY).unseal_mail(text, message_id="<1@a.example>")


def test_sealing_twice_gives_different_texts() -> None:
    one = Keys.derive(KEY)
    assert one.seal(b"secret", user_id=1) != one.seal(b"secret", user_id=1)


def test_recovery_digests_are_keyed() -> None:
    assert Keys.derive(KEY).digest("abcd") == Keys.derive(KEY).digest("abcd")
    assert Keys.derive(KEY).digest("abcd") != Keys.derive(KEY + "!").digest("abcd")
    assert Keys.derive(KEY).digest("abcd").startswith("hmac_sha256$1$")


def test_keys_are_not_shown_in_their_repr() -> None:
    assert "second_factor" not in repr(Keys.derive(KEY))


def _sqlite(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'db' / 'app.db'}")


def test_sqlite_without_secret_key_creates_a_private_key_file_once(tmp_path: Path) -> None:
    settings = _sqlite(tmp_path)
    first = keys.load(settings)
    path = tmp_path / "db" / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text().strip()) >= 32
    again = keys.load(settings)
    assert again.second_factor == first.second_factor
    assert os.listdir(path.parent) == ["secret.key"]


def test_processes_starting_together_agree_on_one_key_file(tmp_path: Path) -> None:
    settings = _sqlite(tmp_path)
    with ThreadPoolExecutor(8) as pool:
        found = set(pool.map(lambda _: keys.load(settings).second_factor, range(16)))
    assert len(found) == 1
    assert os.listdir(tmp_path / "db") == ["secret.key"]


def test_a_key_file_with_a_short_key_stops_start_up(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "secret.key").write_text("short\n")
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        keys.load(_sqlite(tmp_path))


def test_secret_key_setting_wins_over_the_file(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'app.db'}", secret_key=KEY)
    assert keys.load(settings).second_factor == Keys.derive(KEY).second_factor
    assert not (tmp_path / "secret.key").exists()
