"""The security log, on both faces: what is recorded, in which order, for how long."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from core.config import Settings
from core.db import Database
from tests.faces import FACES, Face
from tests.types import MakeClient, MakeSettings

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"
HOME = "Home browser/1.0"
CAFE = "Cafe laptop/2.0"


def _events_in_database(settings: Settings) -> int:
    async def count() -> int:
        database = Database(settings)
        async with database.engine.connect() as connection:
            found = await connection.execute(text("SELECT count(*) FROM security_events"))
            value = int(found.scalar_one())
        await database.dispose()
        return value

    return asyncio.run(count())


def test_event_log_after_a_scripted_history_lists_exactly_those_events(face: Face) -> None:
    face.client.headers["user-agent"] = HOME
    cafe = face.beside(CAFE)
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    assert cafe.login("alice", "not the password").status == 403
    assert cafe.login("alice", PASSWORD).status == 200
    assert face.change_password(PASSWORD, NEW_PASSWORD).status == 200
    assert cafe.profile().status == 403  # the change ended the cafe's session
    assert face.revoke_other_sessions().status == 200
    log = face.security_events()
    assert log.status == 200
    assert [(event["kind"], event["user_agent"]) for event in log.data] == [
        ("SESSION_REVOKED", HOME),
        ("PASSWORD_CHANGED", HOME),
        ("LOGIN", CAFE),
        ("LOGIN_FAILED", CAFE),
        ("SIGNUP", HOME),
    ]
    times = [datetime.fromisoformat(event["at"]) for event in log.data]
    assert times == sorted(times, reverse=True)
    assert all(moment.utcoffset() == timedelta(0) for moment in times)
    assert {event["ip_address"] for event in log.data} == {"127.0.0.1"}


def test_failed_login_is_recorded_for_the_account_named_by_login_or_email(face: Face) -> None:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    other = face.beside("Someone else")
    assert other.login("ALICE", "guess one!").status == 403
    assert other.login("Alice@Example.com", "guess two!").status == 403
    assert other.login("nobody", "guess three").status == 403
    log = face.security_events().data
    assert [(e["kind"], e["user_agent"]) for e in log[:2]] == [("LOGIN_FAILED", "Someone else")] * 2
    assert len(log) == 3


def test_logout_and_email_change_are_recorded(face: Face) -> None:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    assert face.update_profile(email="alice@example.com", firstname="Alice").status == 200
    assert face.update_profile(email="ALICE@example.com").status == 200  # the same address
    assert face.update_profile(email="alice@example.org").status == 200
    assert face.logout().status == 200
    assert face.login("alice", PASSWORD).status == 200
    kinds = [event["kind"] for event in face.security_events().data]
    assert kinds == ["LOGIN", "LOGOUT", "EMAIL_CHANGED", "SIGNUP"]


def test_limit_takes_the_newest_events(face: Face) -> None:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    for _ in range(55):
        assert face.revoke_other_sessions().status == 200
    assert len(face.security_events().data) == 50
    assert [e["kind"] for e in face.security_events(limit=1).data] == ["SESSION_REVOKED"]
    every = face.security_events(limit=200).data
    assert len(every) == 56
    assert every[-1]["kind"] == "SIGNUP"


def test_limit_outside_1_to_200_is_bad_input(face: Face) -> None:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    for limit in (0, -1, 201, 2**31 - 1):
        outcome = face.security_events(limit=limit)
        assert outcome.status == 400, limit
        assert outcome.code in (None, "BAD_USER_INPUT")
        if face.name == "graphql":
            assert outcome.code == "BAD_USER_INPUT"


def test_events_older_than_the_retention_are_purged_as_new_ones_arrive(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    face = FACES["rest"](make_client(security_event_retention_days=2))
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    assert face.logout().status == 200
    assert face.login("alice", PASSWORD).status == 200
    later = time.time() + 2 * 86400 + 60
    monkeypatch.setattr("core.events.now", lambda: later)
    assert [e["kind"] for e in face.security_events().data] == ["LOGIN", "LOGOUT", "SIGNUP"]
    assert face.revoke_other_sessions().status == 200
    assert [e["kind"] for e in face.security_events().data] == ["SESSION_REVOKED"]


def test_events_are_deleted_with_the_account(face: Face, make_settings: MakeSettings) -> None:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    bob = face.beside("Bob")
    assert bob.signup("bob", PASSWORD, "bob@example.com").status == 200
    assert face.logout().status == 200
    assert face.login("alice", PASSWORD).status == 200
    assert _events_in_database(make_settings()) == 4
    assert face.delete_profile().status == 200
    assert _events_in_database(make_settings()) == 1
    assert [e["kind"] for e in bob.security_events().data] == ["SIGNUP"]
