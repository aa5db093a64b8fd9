"""Account scenarios every face must honour; each runs against REST and GraphQL."""

from __future__ import annotations

import pytest

from core import security
from tests.faces import Face

PASSWORD = "correct horse battery"


def signup_alice(face: Face) -> None:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200


def test_signup_returns_profile_and_logs_in(face: Face) -> None:
    outcome = face.signup("alice", PASSWORD, "alice@example.com")
    assert outcome.status == 200
    assert outcome.profile == {
        "username": "alice",
        "email": "alice@example.com",
        "firstname": "",
        "lastname": "",
        "avatar": None,
    }
    assert face.profile().profile == outcome.profile


def test_signup_with_taken_login_in_other_case_conflicts(face: Face) -> None:
    signup_alice(face)
    face.client.cookies.clear()
    assert face.signup("ALICE", PASSWORD, "other@example.com").status == 409


def test_signup_with_taken_email_in_other_case_conflicts(face: Face) -> None:
    signup_alice(face)
    face.client.cookies.clear()
    assert face.signup("bob", PASSWORD, "Alice@Example.com").status == 409


def test_signup_with_invalid_fields_is_bad_input(face: Face) -> None:
    cases = [
        ("al", PASSWORD, "a@example.com"),
        ("a" * 33, PASSWORD, "a@example.com"),
        ("al@ce", PASSWORD, "a@example.com"),
        ("al ice", PASSWORD, "a@example.com"),
        ("alice", PASSWORD, "not-an-email"),
        ("alice", PASSWORD, "a" * 250 + "@example.com"),
        ("alice", "short1!", "a@example.com"),
        ("alice", "x" * 1025, "a@example.com"),
        ("alice", "my-alice-password", "a@example.com"),
        ("alice", "A@Example.com", "a@example.com"),
        ("alice", "password1234", "a@example.com"),
    ]
    for login, password, email in cases:
        outcome = face.signup(login, password, email)
        assert outcome.status == 400, (login, password, email, outcome)
        assert outcome.message
    assert face.login("alice", PASSWORD).status == 403


def test_login_by_login_or_email_in_any_case(face: Face) -> None:
    signup_alice(face)
    for name in ("alice", "ALICE", "alice@example.com", "Alice@EXAMPLE.com"):
        face.client.cookies.clear()
        outcome = face.login(name, PASSWORD)
        assert outcome.status == 200, name
        assert outcome.profile is not None and outcome.profile["username"] == "alice"
        assert face.profile().status == 200


def test_login_wrong_password_and_unknown_login_answer_alike(face: Face) -> None:
    signup_alice(face)
    face.client.cookies.clear()
    wrong = face.login("alice", "not the password")
    unknown = face.login("nobody", "not the password")
    assert wrong.status == unknown.status == 403
    assert wrong.message == unknown.message
    assert face.profile().status == 403


def test_long_passphrase_works_and_its_90th_character_matters(face: Face) -> None:
    passphrase = "".join(chr(0x61 + i % 26) for i in range(100)) + "!"
    passphrase = passphrase[:100]
    assert face.signup("alice", passphrase, "alice@example.com").status == 200
    face.client.cookies.clear()
    changed = passphrase[:89] + ("X" if passphrase[89] != "X" else "Y") + passphrase[90:]
    assert face.login("alice", changed).status == 403
    assert face.login("alice", passphrase).status == 200


def test_logout_ends_session(face: Face) -> None:
    signup_alice(face)
    assert face.logout().status == 200
    assert face.profile().status == 403
    assert face.logout().status == 403


def test_profile_needs_login(face: Face) -> None:
    assert face.profile().status == 403
    assert face.update_profile(firstname="x").status == 403
    assert face.delete_profile().status == 403
    assert face.change_password(PASSWORD, "another good passphrase").status == 403


def test_update_profile_changes_only_given_fields(face: Face) -> None:
    signup_alice(face)
    outcome = face.update_profile(firstname="  Alice  ", lastname="Liddell")
    assert outcome.status == 200
    assert outcome.profile is not None
    assert (outcome.profile["firstname"], outcome.profile["lastname"]) == ("Alice", "Liddell")
    outcome = face.update_profile(username="alice2", email="a2@example.com")
    assert outcome.profile == {
        "username": "alice2",
        "email": "a2@example.com",
        "firstname": "Alice",
        "lastname": "Liddell",
        "avatar": None,
    }
    assert face.profile().profile == outcome.profile
    face.client.cookies.clear()
    assert face.login("alice2", PASSWORD).status == 200


def test_update_profile_rejects_invalid_fields(face: Face) -> None:
    signup_alice(face)
    for fields in (
        {"username": "no"},
        {"username": "with@at"},
        {"email": "nope"},
        {"firstname": "x" * 65},
        {"lastname": "tab\there"},
        {"firstname": "bell\x07"},
    ):
        assert face.update_profile(**fields).status == 400, fields
    assert face.profile().profile == {
        "username": "alice",
        "email": "alice@example.com",
        "firstname": "",
        "lastname": "",
        "avatar": None,
    }


def test_update_profile_to_taken_name_conflicts(face: Face) -> None:
    signup_alice(face)
    face.client.cookies.clear()
    assert face.signup("bob", PASSWORD, "bob@example.com").status == 200
    assert face.update_profile(username="Alice").status == 409
    assert face.update_profile(email="ALICE@example.com").status == 409
    assert face.update_profile(username="BOB").profile["username"] == "BOB"  # type: ignore[index]


def test_delete_profile_removes_account_and_logs_out(face: Face) -> None:
    signup_alice(face)
    assert face.delete_profile().status == 200
    assert face.profile().status == 403
    assert face.login("alice", PASSWORD).status == 403
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200


def test_change_password_checks_old_one(face: Face) -> None:
    signup_alice(face)
    assert face.change_password("wrong old password", "a brand new passphrase").status == 403
    assert face.profile().status == 200
    assert face.change_password(PASSWORD, "short").status == 400
    assert face.change_password(PASSWORD, "a brand new passphrase").status == 200
    assert face.profile().status == 200
    face.client.cookies.clear()
    assert face.login("alice", PASSWORD).status == 403
    assert face.login("alice", "a brand new passphrase").status == 200


def test_login_with_unstorable_input_is_a_plain_wrong_login(face: Face) -> None:
    signup_alice(face)
    for login in ("a\x00lice", "\ud800alice", "x" * 5000, "alice\n"):
        outcome = face.login(login, PASSWORD)
        assert outcome.status == 403, (login[:10], outcome)


def test_fields_with_unstorable_characters_are_bad_input(face: Face) -> None:
    assert face.signup("alice", "pass\x00word-long", "alice@example.com").status == 200
    assert face.update_profile(firstname="\ud800").status == 400
    assert face.update_profile(lastname="a\x00b").status == 400
    assert face.update_profile(email="a\x00@example.com").status == 400
    assert face.signup("bob", PASSWORD, "b\ud800@example.com").status == 400


def test_names_and_logins_with_line_or_paragraph_separators_are_refused(face: Face) -> None:
    signup_alice(face)
    for char in ("\u2028", "\u2029"):
        assert face.update_profile(firstname=f"Ada{char}Lovelace").status == 400
        assert face.update_profile(lastname=f"Love{char}lace").status == 400
        assert face.update_profile(username=f"alice{char}").status == 400
        assert face.signup(f"bob{char}", PASSWORD, "bob@example.com").status == 400
        face.client.cookies.clear()
        assert face.login(f"alice{char}", PASSWORD).status == 403
        assert face.login("alice", PASSWORD).status == 200
    assert face.profile().profile == {
        "username": "alice",
        "email": "alice@example.com",
        "firstname": "",
        "lastname": "",
        "avatar": None,
    }


def test_input_that_case_folding_lengthens_is_never_a_500(face: Face) -> None:
    # "İ".lower() is two characters: 254 of them fold past every column they could match.
    signup_alice(face)
    for login in ("İ" * 254, "İ" * 31, "İ" * 200 + "@example.com"):
        assert face.login(login, PASSWORD).status == 403, login[:3]
    # The longest such address that email-validator accepts still fits once folded.
    longest = "İ" * 124 + "@b.co"
    assert face.update_profile(email="İ" + longest).status == 400
    assert face.update_profile(email=longest).status == 200
    assert face.login(longest.lower(), PASSWORD).status == 200


def test_unknown_login_costs_a_password_check_like_a_wrong_password(
    face: Face, monkeypatch: pytest.MonkeyPatch
) -> None:
    signup_alice(face)
    checks: list[str] = []
    real_check = security._verify

    def counted(password: str, stored: str) -> bool:
        checks.append(password)
        return real_check(password, stored)

    monkeypatch.setattr(security, "_verify", counted)
    assert face.login("alice", "wrong password 1").status == 403
    assert face.login("nobody", "wrong password 2").status == 403
    assert face.login("nobody@example.com", "wrong password 3").status == 403
    assert checks == ["wrong password 1", "wrong password 2", "wrong password 3"]
