"""Sessions a user can see and end ("your devices"), on both faces."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from tests.faces import Face

PASSWORD = "correct horse battery"
LAPTOP = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 19_0) Safari/605.1"


def _two_devices(face: Face) -> Face:
    """alice signed up on `face` (the laptop) and logged in on a phone, which is returned."""
    face.client.headers["user-agent"] = LAPTOP
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    phone = face.beside(PHONE)
    assert phone.login("alice", PASSWORD).status == 200
    return phone


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() == timedelta(0), text  # ISO 8601 with its UTC offset
    return moment


def test_session_list_shows_each_device_newest_first(face: Face) -> None:
    phone = _two_devices(face)
    seen_from_laptop = face.sessions()
    assert seen_from_laptop.status == 200
    newest, oldest = seen_from_laptop.data
    assert (newest["user_agent"], newest["current"]) == (PHONE, False)
    assert (oldest["user_agent"], oldest["current"]) == (LAPTOP, True)
    assert newest["ip_address"] == oldest["ip_address"] == "127.0.0.1"
    assert _time(newest["created_at"]) >= _time(oldest["created_at"])
    for session in (newest, oldest):
        assert set(session) == {
            "id",
            "created_at",
            "last_seen_at",
            "expires_at",
            "user_agent",
            "ip_address",
            "current",
        }
        lifetime = _time(session["expires_at"]) - _time(session["created_at"])
        assert lifetime == timedelta(days=30)
        assert _time(session["last_seen_at"]) >= _time(session["created_at"])
    seen_from_phone = phone.sessions().data
    assert [s["current"] for s in seen_from_phone] == [True, False]
    assert [s["id"] for s in seen_from_phone] == [newest["id"], oldest["id"]]


def test_session_ids_are_random_and_reveal_nothing_about_the_cookie(face: Face) -> None:
    phone = _two_devices(face)
    ids = [session["id"] for session in face.sessions().data]
    assert len(set(ids)) == 2 and all(len(i) >= 22 for i in ids)
    for client in (face.client, phone.client):
        token = client.cookies["session_id"]
        digest = hashlib.sha256(token.encode()).hexdigest()
        for session_id in ids:
            assert session_id not in token and session_id not in digest
            assert token[:8] not in session_id


def test_revoked_session_is_refused_to_its_device_at_once(face: Face) -> None:
    phone = _two_devices(face)
    phone_id = face.sessions().data[0]["id"]
    assert phone.profile().status == 200
    revoked = face.revoke_session(phone_id)
    assert revoked.status == 200
    assert phone.profile().status == 403
    assert face.profile().status == 200
    assert [s["user_agent"] for s in face.sessions().data] == [LAPTOP]
    # Ended once; afterwards the id is unknown.
    again = face.revoke_session(phone_id)
    assert again.status == 404 and again.code in (None, "NOT_FOUND")


def test_another_users_session_id_answers_like_an_unknown_one(face: Face) -> None:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    bob = face.beside("Bob's browser")
    assert bob.signup("bob", PASSWORD, "bob@example.com").status == 200
    bobs_id = bob.sessions().data[0]["id"]
    foreign = face.revoke_session(bobs_id)
    unknown = face.revoke_session("A" * 22)
    assert (foreign.status, foreign.message, foreign.code) == (
        unknown.status,
        unknown.message,
        unknown.code,
    )
    assert foreign.status == 404
    assert bob.profile().status == 200


def test_malformed_session_ids_are_unknown_ones(face: Face) -> None:
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    for odd in ("x" * 5000, "é", "a b", "%00", "..", "' OR 1=1 --"):
        assert face.revoke_session(odd).status == 404, odd
    assert face.profile().status == 200


def test_revoking_the_current_session_is_a_logout(face: Face) -> None:
    phone = _two_devices(face)
    own_id = next(s["id"] for s in face.sessions().data if s["current"])
    assert face.revoke_session(own_id).status == 200
    assert "session_id" not in face.client.cookies
    assert face.profile().status == 403
    assert phone.profile().status == 200
    kinds = [event["kind"] for event in phone.security_events().data]
    assert kinds[0] == "LOGOUT"
    assert "SESSION_REVOKED" not in kinds


def test_revoke_other_sessions_ends_all_but_the_current(face: Face) -> None:
    phone = _two_devices(face)
    tablet = face.beside("Tablet")
    assert tablet.login("alice", PASSWORD).status == 200
    ended = face.revoke_other_sessions()
    assert ended.status == 200
    assert ended.data == {"ended": 2}
    assert phone.profile().status == 403
    assert tablet.profile().status == 403
    assert face.profile().status == 200
    assert [s["current"] for s in face.sessions().data] == [True]
    kinds = [event["kind"] for event in face.security_events().data]
    assert kinds.count("SESSION_REVOKED") == 1
    assert face.revoke_other_sessions().data == {"ended": 0}


def test_user_agent_is_cut_to_256_characters(face: Face) -> None:
    face.client.headers["user-agent"] = "U" * 1000
    assert face.signup("alice", PASSWORD, "alice@example.com").status == 200
    [session] = face.sessions().data
    assert session["user_agent"] == "U" * 256
    [event] = face.security_events().data
    assert event["user_agent"] == "U" * 256


def test_session_operations_need_a_login(face: Face) -> None:
    for outcome in (
        face.sessions(),
        face.revoke_session("A" * 22),
        face.revoke_other_sessions(),
        face.security_events(),
        face.start_totp_setup(),
        face.confirm_totp("123456"),
        face.disable_totp(PASSWORD),
    ):
        assert outcome.status == 403, outcome
        assert outcome.code in (None, "UNAUTHENTICATED")
