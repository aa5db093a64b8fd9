"""Password hashing and session tokens, without a database or HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import bcrypt
import pytest

from core.security import SCHEME, VERSION, PasswordHasher, new_session_token, token_digest


@pytest.fixture
def hasher() -> Iterator[PasswordHasher]:
    hasher = PasswordHasher(4)
    yield hasher
    hasher.close()


def test_stored_hash_says_how_it_was_made(hasher: PasswordHasher) -> None:
    stored = asyncio.run(hasher.hash("correct horse battery"))
    scheme, version, inner = stored.split("$", 2)
    assert (scheme, version) == (SCHEME, VERSION)
    assert inner.startswith("$2b$04$")
    assert "correct horse" not in stored
    assert not hasher.needs_rehash(stored)


def test_right_password_verifies_and_a_wrong_one_does_not(hasher: PasswordHasher) -> None:
    stored = asyncio.run(hasher.hash("correct horse battery"))
    assert asyncio.run(hasher.verify("correct horse battery", stored))
    assert not asyncio.run(hasher.verify("correct horse batterY", stored))


def test_every_character_of_a_long_passphrase_counts(hasher: PasswordHasher) -> None:
    passphrase = "x" * 89 + "a" + "y" * 10
    stored = asyncio.run(hasher.hash(passphrase))
    changed = passphrase[:89] + "b" + passphrase[90:]
    assert asyncio.run(hasher.verify(passphrase, stored))
    assert not asyncio.run(hasher.verify(changed, stored))


def test_hash_from_before_the_scheme_prefix_verifies_and_asks_for_an_upgrade(
    hasher: PasswordHasher,
) -> None:
    current = asyncio.run(hasher.hash("correct horse battery"))
    legacy = current.split("$", 2)[2]  # the bare bcrypt hash, as stored before
    assert asyncio.run(hasher.verify("correct horse battery", legacy))
    assert hasher.needs_rehash(legacy)


def test_other_rounds_ask_for_an_upgrade(hasher: PasswordHasher) -> None:
    stronger = PasswordHasher(5)
    try:
        assert hasher.needs_rehash(asyncio.run(stronger.hash("correct horse battery")))
    finally:
        stronger.close()


@pytest.mark.parametrize(
    "stored", ["", "plain text", "md5$1$abc", f"{SCHEME}$1$not bcrypt", "$2b$04$short"]
)
def test_unknown_or_damaged_hashes_never_verify(hasher: PasswordHasher, stored: str) -> None:
    assert not asyncio.run(hasher.verify("anything at all", stored))
    assert hasher.needs_rehash(stored)


def test_raw_bcrypt_of_the_password_is_not_accepted(hasher: PasswordHasher) -> None:
    # Without the keyed pre-hash a stolen table of plain bcrypt hashes would verify.
    plain = bcrypt.hashpw(b"correct horse battery", bcrypt.gensalt(4)).decode()
    assert not asyncio.run(hasher.verify("correct horse battery", plain))


def test_session_tokens_are_long_random_and_stored_as_a_digest() -> None:
    tokens = {new_session_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(len(token) >= 43 for token in tokens)
    token = tokens.pop()
    assert token_digest(token) == token_digest(token)
    assert token not in token_digest(token) and len(token_digest(token)) == 64
