"""The field rules on their own: each returns the value to store or names the broken field."""

from __future__ import annotations

import re

import pytest

from core import rules
from core.errors import InvalidInput


@pytest.mark.parametrize("login", ["abc", "a" * 32, "Alice_B.c-d", "007"])
def test_login_accepts_three_to_32_allowed_characters(login: str) -> None:
    assert rules.login(login) == login


@pytest.mark.parametrize("login", ["ab", "a" * 33, "al ice", "alice@example.com", "élise", ""])
def test_login_refuses_anything_else_naming_the_field(login: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        rules.login(login, "username")
    assert refused.value.field == "username"


def test_login_json_schema_says_what_the_rule_enforces() -> None:
    pattern = re.compile(str(rules.SCHEMAS["login"]["pattern"]))
    for value in ["abc", "a" * 32, "ab", "a" * 33, "a-b.c_d", "a b", "a@b"]:
        accepted = True
        try:
            rules.login(value)
        except InvalidInput:
            accepted = False
        assert bool(pattern.search(value)) == accepted, value


def test_email_is_normalised_and_limited() -> None:
    assert rules.email("Alice@Example.COM") == "Alice@example.com"
    with pytest.raises(InvalidInput):
        rules.email("not an address")
    with pytest.raises(InvalidInput):
        rules.email("a" * 64 + "@" + "b" * 186 + ".com")


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short", "8 to 1024"),
        ("x" * 1025, "8 to 1024"),
        ("my alice password", "login"),
        ("MY ALICE PASSWORD", "login"),
        ("alice@example.com", "login"),
        ("password1234", "common"),
    ],
)
def test_password_rules(password: str, why: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        rules.password(password, login="alice", email="alice@example.com")
    assert why in refused.value.message


def test_password_equal_to_the_email_is_refused_ignoring_case() -> None:
    with pytest.raises(InvalidInput, match="email"):
        rules.password("Bob@Example.com", login="alice", email="bob@example.com")


def test_long_passphrase_is_kept_whole() -> None:
    passphrase = "a long passphrase that goes on " * 30
    assert rules.password(passphrase, login="alice", email="a@b.co") == passphrase


def test_names_are_trimmed_and_refuse_control_characters() -> None:
    assert rules.name("  Ada  ", "firstname") == "Ada"
    assert rules.name("", "lastname") == ""
    with pytest.raises(InvalidInput, match="control"):
        rules.name("Ada\x00", "firstname")
    with pytest.raises(InvalidInput, match="64"):
        rules.name("x" * 65, "lastname")


def test_lookup_key_folds_case_and_names_no_account_for_impossible_input() -> None:
    assert rules.lookup_key("Alice") == "alice"
    assert rules.lookup_key("Alice@Example.com") == "alice@example.com"
    assert rules.lookup_key("x" * 255) is None
    assert rules.lookup_key("al\x00ice") is None


@pytest.mark.parametrize(
    "char", ["\u202e", "\u202d", "\u2066", "\u200b", "\u2060", "\ufeff", "\u00ad", "\u061c"]
)
def test_names_refuse_invisible_format_characters(char: str) -> None:
    with pytest.raises(InvalidInput, match="formatting") as refused:
        rules.name(f"Ada{char}Lovelace", "lastname")
    assert refused.value.field == "lastname"


@pytest.mark.parametrize("char", ["\u2028", "\u2029"])
def test_names_and_login_lookups_refuse_line_and_paragraph_separators(char: str) -> None:
    # Unicode's own line breaks (Zl, Zp): JavaScript and many log viewers break lines there,
    # so a name holding one could forge a second line wherever it is shown.
    with pytest.raises(InvalidInput, match="line") as refused:
        rules.name(f"Ada{char}Lovelace", "firstname")
    assert refused.value.field == "firstname"
    assert rules.lookup_key(f"alice{char}") is None


@pytest.mark.parametrize(
    "name", ["\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "क्\u200dष", "👩\u200d💻", "Zoë"]
)
def test_names_keep_joiners_and_ordinary_letters(name: str) -> None:
    assert rules.name(name, "firstname") == name


def test_lookup_key_checks_the_length_after_folding() -> None:
    assert rules.lookup_key("İ" * 254) is None
    assert rules.lookup_key("İ" * 17) is None  # 34 characters folded: no login is that long
    assert rules.lookup_key("İ" * 125 + "@b.co") is None
    assert rules.lookup_key("İ" * 16) == "i̇" * 16
