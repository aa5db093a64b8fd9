"""The rate limiter's pure parts: what a client address counts as, and what is stored."""

from __future__ import annotations

import pytest

from core.keys import Keys
from core.security import network
from core.throttle import HOUR, Limit


@pytest.mark.parametrize(
    ("address", "counted_as"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("not an address", "not an address"),
    ],
)
def test_clients_count_per_ipv4_address_or_ipv6_64_network(address: str, counted_as: str) -> None:
    assert network(address) == counted_as


def test_keys_are_keyed_hashes_that_depend_on_the_limit_and_the_secret_key() -> None:
    secret = Keys.derive("k" * 32).throttle
    signups = Limit("signup_client", 20, HOUR, "", secret)
    logins = Limit("login_client", 100, 900, "", secret)
    key = signups.key("alice@example.com")
    assert len(key.digest) == 64 and "alice" not in key.digest
    assert key == signups.key("alice@example.com")
    assert key.digest != logins.key("alice@example.com").digest
    elsewhere = Limit("signup_client", 20, HOUR, "", Keys.derive("x" * 32).throttle)
    assert key.digest != elsewhere.key("alice@example.com").digest
    assert "secret" not in repr(signups)
    assert signups.for_client("2001:db8::1") == signups.for_client("2001:db8::2")
    assert -(2**63) <= key.lock_id < 2**63
