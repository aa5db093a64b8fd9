"""Email flows on both faces, delivered to a real SMTP server (aiosmtpd) and followed.

Verification on signup and on a change of address, resend, password reset by login or
email, notices; tokens single use, expiring and kind-bound; the hourly limit; the same
answer and the same database work for unknown accounts.
"""

from __future__ import annotations

import time

import pyotp
import pytest
from starlette.testclient import TestClient

from core import email_flows
from tests.faces import Face
from tests.mail import Mailbox, Received, query, stored_text
from tests.types import MakeClient, MakeSettings

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"
UNUSABLE = "token: " + email_flows.UNUSABLE_LINK


@pytest.fixture
def client(make_client: MakeClient, mailbox: Mailbox) -> TestClient:
    """The app sending through the test's SMTP server (the `face` fixture uses this)."""
    return make_client(smtp_url=mailbox.url)


def signup(face: Face, mailbox: Mailbox, login: str = "alice") -> Received:
    """Sign up `login` and take its verification message."""
    assert face.signup(login, PASSWORD, f"{login}@example.com").status == 200
    message = mailbox.next(to=f"{login}@example.com")
    assert message.subject == "Confirm your email address"
    return message


def barrier(face: Face, mailbox: Mailbox, login: str = "alice") -> None:
    """Nothing arrived since the last message taken: a message sent now (a password change
    notice, which always goes) is the next to arrive."""
    assert face.change_password(PASSWORD, NEW_PASSWORD).status == 200
    assert face.change_password(NEW_PASSWORD, PASSWORD).status == 200
    for _ in range(2):
        assert mailbox.next(to=f"{login}@example.com").subject == "Your password was changed"


def test_signup_sends_a_verification_link_that_verifies_once(
    face: Face, mailbox: Mailbox, make_settings: MakeSettings
) -> None:
    received = signup(face, mailbox)
    message = received.message
    assert message["From"] == "Accounts <no-reply@localhost>"
    assert message["Date"] and message["Message-ID"]
    token = received.token
    assert len(token) >= 43  # 256 bits, URL-safe base64
    assert f"{make_settings().app_base_url}/verify-email?token={token}" in received.text
    assert received.text.count(token) == 1
    assert all(token not in str(value) for value in message.values())
    assert face.account().data == {
        "email": "alice@example.com",
        "email_verified": False,
        "totp_enabled": False,
        "created_at": face.account().data["created_at"],
    }
    assert face.verify_email(token).status == 200
    account = face.account().data
    assert account is not None and account["email_verified"] is True
    reused = face.verify_email(token)
    assert (reused.status, reused.message) == (400, UNUSABLE)


def test_the_database_keeps_only_token_hashes_and_erases_sent_bodies(
    face: Face, mailbox: Mailbox, make_settings: MakeSettings
) -> None:
    token = signup(face, mailbox).token
    settings = make_settings()
    hashes = [row[0] for row in query(settings, "SELECT token_hash FROM email_tokens")]
    assert len(hashes) == 1 and token not in hashes[0]
    deadline = time.monotonic() + 5
    while query(settings, "SELECT body FROM outbox")[0][0] is not None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert query(settings, "SELECT state FROM outbox") == [("sent",)]


def test_links_and_tokens_are_never_stored_in_the_clear(
    make_client: MakeClient, make_settings: MakeSettings
) -> None:
    down = Mailbox()  # not started: the messages wait in the outbox with their text
    client = make_client(smtp_url=down.url)
    body = {"login": "alice", "password": PASSWORD, "email": "alice@example.com"}
    assert client.post("/signup", json=body).status_code == 200
    assert client.post("/password/forgot", json={"login": "alice"}).status_code == 200
    settings = make_settings()
    bodies = [row[0] for row in query(settings, "SELECT body FROM outbox ORDER BY id")]
    assert len(bodies) == 2 and all(b.startswith("aesgcm$1$") for b in bodies)
    stored = stored_text(settings)
    for link in ("/verify-email?token=", "/reset-password?token=", "Hello alice"):
        assert link not in stored
    down.start()
    try:
        arrived = down.wait(2, timeout=40)  # in the order their retries come due
    finally:
        down.stop()
    for message in arrived:
        assert message.token not in stored
    (reset,) = (m for m in arrived if m.subject == "Reset your password")
    new = {"token": reset.token, "new_password": NEW_PASSWORD}
    assert client.post("/password/reset", json=new).status_code == 200


def test_account_is_created_at_signup_time_and_needs_a_login(face: Face, mailbox: Mailbox) -> None:
    assert face.account().status == 403
    before = time.time()
    signup(face, mailbox)
    account = face.account().data
    assert account is not None
    from datetime import datetime

    created = datetime.fromisoformat(account["created_at"])
    assert created.utcoffset() is not None
    assert before - 1 <= created.timestamp() <= time.time() + 1


def test_unknown_token_is_refused_with_the_one_message(face: Face) -> None:
    for token in ("", "x", "a" * 43, "\u00e9\ud800"):
        verify, reset = face.verify_email(token), face.reset_password(token, NEW_PASSWORD)
        assert (verify.status, verify.message) == (400, UNUSABLE)
        assert (reset.status, reset.message) == (400, UNUSABLE)


def test_email_change_tells_the_old_address_and_verifies_the_new(
    face: Face, mailbox: Mailbox
) -> None:
    first = signup(face, mailbox).token
    assert face.send_verification().status == 200
    second = mailbox.next(to="alice@example.com").token
    assert face.verify_email(first).status == 200
    assert face.send_verification().status == 200  # verified: nothing is sent
    assert face.update_profile(email="alice@new.example").status == 200
    notice = mailbox.next(to="alice@example.com")
    assert notice.subject == "Your email address was changed"
    assert "alice@example.com" in notice.text and "alice@new.example" in notice.text
    verification = mailbox.next(to="alice@new.example")
    assert verification.subject == "Confirm your email address"
    account = face.account().data
    assert account is not None and account["email_verified"] is False
    # A link sent to the old address no longer verifies anything.
    assert (face.verify_email(second).status, face.verify_email(second).message) == (
        400,
        UNUSABLE,
    )
    assert face.verify_email(verification.token).status == 200
    account = face.account().data
    assert account is not None and account["email_verified"] is True


def test_profile_update_without_a_new_address_sends_nothing(face: Face, mailbox: Mailbox) -> None:
    signup(face, mailbox)
    assert face.update_profile(firstname="Alice", email="ALICE@example.com").status == 200
    barrier(face, mailbox)


def test_resend_sends_a_new_link_unless_verified(face: Face, mailbox: Mailbox) -> None:
    signup(face, mailbox)
    assert face.send_verification().status == 200
    again = mailbox.next(to="alice@example.com")
    assert face.verify_email(again.token).status == 200
    assert face.send_verification().status == 200
    barrier(face, mailbox)


def test_resend_needs_a_login(face: Face) -> None:
    assert face.send_verification().status == 403


def test_resend_is_limited_per_account_per_hour(
    make_client: MakeClient, mailbox: Mailbox, face: Face
) -> None:
    limited = type(face)(make_client(smtp_url=mailbox.url, emails_per_account_per_hour=3))
    signup(limited, mailbox)
    for _ in range(2):
        assert limited.send_verification().status == 200
        mailbox.next(to="alice@example.com")
    refused = limited.send_verification()
    assert refused.status == 429
    assert refused.retry_after is not None and 3000 < refused.retry_after <= 3600
    # Notices are not counted: they always go.
    barrier(limited, mailbox)


def test_password_reset_by_login_or_email(face: Face, mailbox: Mailbox) -> None:
    signup(face, mailbox)
    old_session = dict(face.client.cookies)
    face.client.cookies.clear()
    assert face.request_password_reset("ALICE").status == 200
    by_login = mailbox.next(to="alice@example.com")
    assert face.request_password_reset("Alice@Example.com").status == 200
    by_email = mailbox.next(to="alice@example.com")
    assert by_login.subject == by_email.subject == "Reset your password"
    assert "/reset-password?token=" in by_login.text
    assert by_login.token != by_email.token
    assert face.reset_password(by_login.token, NEW_PASSWORD).status == 200
    # No session started, the old one ended.
    assert "session_id" not in face.client.cookies
    assert face.profile().status == 403
    face.client.cookies.update(old_session)
    assert face.profile().status == 403
    face.client.cookies.clear()
    notice = mailbox.next(to="alice@example.com")
    assert notice.subject == "Your password was reset"
    # Using one reset token spent every reset token of the account.
    for token in (by_login.token, by_email.token):
        outcome = face.reset_password(token, "yet another passphrase")
        assert (outcome.status, outcome.message) == (400, UNUSABLE)
    assert face.login("alice", PASSWORD).status == 403
    assert face.login("alice", NEW_PASSWORD).status == 200
    account = face.account().data
    assert account is not None and account["email_verified"] is True


def test_newer_reset_message_leaves_an_older_one_usable(face: Face, mailbox: Mailbox) -> None:
    signup(face, mailbox)
    face.client.cookies.clear()
    face.request_password_reset("alice")
    older = mailbox.next(to="alice@example.com").token
    face.request_password_reset("alice")
    newer = mailbox.next(to="alice@example.com").token
    assert face.reset_password(older, NEW_PASSWORD).status == 200
    assert face.reset_password(newer, PASSWORD).status == 400


def test_password_change_ends_outstanding_reset_links(face: Face, mailbox: Mailbox) -> None:
    signup(face, mailbox)
    face.request_password_reset("alice")
    token = mailbox.next(to="alice@example.com").token
    assert face.change_password(PASSWORD, NEW_PASSWORD).status == 200
    assert mailbox.next(to="alice@example.com").subject == "Your password was changed"
    outcome = face.reset_password(token, "yet another passphrase")
    assert (outcome.status, outcome.message) == (400, UNUSABLE)
    face.client.cookies.clear()
    assert face.login("alice", NEW_PASSWORD).status == 200


def test_email_change_ends_reset_links_sent_to_the_old_address(
    face: Face, mailbox: Mailbox
) -> None:
    signup(face, mailbox)
    face.request_password_reset("alice")
    token = mailbox.next(to="alice@example.com").token
    assert face.update_profile(email="alice@new.example").status == 200
    assert mailbox.next(to="alice@example.com").subject == "Your email address was changed"
    mailbox.next(to="alice@new.example")
    outcome = face.reset_password(token, NEW_PASSWORD)
    assert (outcome.status, outcome.message) == (400, UNUSABLE)
    # Changing back to the address it was sent to does not bring it back.
    assert face.update_profile(email="alice@example.com").status == 200
    mailbox.next(to="alice@new.example")
    mailbox.next(to="alice@example.com")
    outcome = face.reset_password(token, NEW_PASSWORD)
    assert (outcome.status, outcome.message) == (400, UNUSABLE)
    face.client.cookies.clear()
    assert face.login("alice", PASSWORD).status == 200


def test_weak_new_password_is_refused_and_leaves_the_token_usable(
    face: Face, mailbox: Mailbox
) -> None:
    signup(face, mailbox)
    face.request_password_reset("alice")
    token = mailbox.next(to="alice@example.com").token
    for weak in ("short", "my-alice-secret", "alice@example.com", "password1234"):
        outcome = face.reset_password(token, weak)
        assert outcome.status == 400 and outcome.message.startswith("new password"), weak
    assert face.reset_password(token, NEW_PASSWORD).status == 200


def test_reset_clears_the_failed_login_count(
    make_client: MakeClient, mailbox: Mailbox, face: Face
) -> None:
    limited = type(face)(make_client(smtp_url=mailbox.url, login_failures_per_account=3))
    signup(limited, mailbox)
    limited.client.cookies.clear()
    for _ in range(3):
        assert limited.login("alice", "not the password").status == 403
    assert limited.login("alice", PASSWORD).status == 429
    limited.request_password_reset("alice")
    assert limited.reset_password(mailbox.next().token, NEW_PASSWORD).status == 200
    assert limited.login("alice", NEW_PASSWORD).status == 200


def test_token_of_the_other_kind_is_refused(face: Face, mailbox: Mailbox) -> None:
    verification = signup(face, mailbox).token
    face.request_password_reset("alice")
    reset = mailbox.next(to="alice@example.com").token
    wrong = face.reset_password(verification, NEW_PASSWORD)
    assert (wrong.status, wrong.message) == (400, UNUSABLE)
    wrong = face.verify_email(reset)
    assert (wrong.status, wrong.message) == (400, UNUSABLE)
    # Neither was spent by the failed use.
    assert face.verify_email(verification).status == 200
    assert face.reset_password(reset, NEW_PASSWORD).status == 200


def test_tokens_expire(face: Face, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch) -> None:
    verification = signup(face, mailbox).token
    face.request_password_reset("alice")
    reset = mailbox.next(to="alice@example.com").token
    # The reset link lives PASSWORD_RESET_TTL_SECONDS (30 minutes), verification a day.
    later = time.time() + 1800 + 1
    monkeypatch.setattr(email_flows, "now", lambda: later)
    assert face.verify_email(verification).status == 200
    expired = face.reset_password(reset, NEW_PASSWORD)
    assert (expired.status, expired.message) == (400, UNUSABLE)


def test_ttl_settings_are_followed(
    make_client: MakeClient, mailbox: Mailbox, face: Face, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = type(face)(
        make_client(smtp_url=mailbox.url, email_token_ttl_seconds=60, password_reset_ttl_seconds=60)
    )
    received = signup(short, mailbox)
    assert "expires in 1 minute" in received.text
    short.request_password_reset("alice")
    reset = mailbox.next(to="alice@example.com")
    assert "expires in 1 minute" in reset.text
    later = time.time() + 61
    monkeypatch.setattr(email_flows, "now", lambda: later)
    assert short.verify_email(received.token).status == 400
    assert short.reset_password(reset.token, NEW_PASSWORD).status == 400


def test_reset_request_answers_alike_and_does_the_same_work_for_unknown_accounts(
    face: Face, mailbox: Mailbox, make_settings: MakeSettings
) -> None:
    signup(face, mailbox)
    face.client.cookies.clear()
    settings = make_settings()

    def rows() -> tuple[int, int]:
        tokens = query(settings, "SELECT count(*) FROM email_tokens")[0][0]
        messages = query(settings, "SELECT count(*) FROM outbox")[0][0]
        return int(tokens), int(messages)

    outcomes = []
    for login in ("alice", "nobody", "alice@example.com", "nobody@example.com", "x" * 300):
        before = rows()
        outcomes.append(face.request_password_reset(login))
        after = rows()
        assert (after[0] - before[0], after[1] - before[1]) == (1, 1), login
    assert {(o.status, o.message) for o in outcomes} == {(outcomes[0].status, outcomes[0].message)}
    assert outcomes[0].status == 200
    # Nothing typed for a request that sends nothing is kept.
    stored = query(settings, "SELECT email_key FROM email_tokens WHERE user_id IS NULL")
    stored += query(settings, "SELECT recipient FROM outbox WHERE user_id IS NULL")
    assert len(stored) == 6 and {value for (value,) in stored} == {""}
    # The sender settles those rows like the others, as void, without sending them.
    deadline = time.monotonic() + 10
    while query(settings, "SELECT count(*) FROM outbox WHERE state = 'waiting'")[0][0]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert query(settings, "SELECT DISTINCT state FROM outbox WHERE user_id IS NULL") == [("void",)]
    # Two messages, both to alice; nothing for the unknown names.
    for _ in range(2):
        assert mailbox.next(to="alice@example.com").subject == "Reset your password"
    assert face.login("alice", PASSWORD).status == 200
    barrier(face, mailbox)


def test_reset_request_over_the_hourly_limit_answers_alike_and_sends_nothing(
    make_client: MakeClient, mailbox: Mailbox, face: Face
) -> None:
    limited = type(face)(make_client(smtp_url=mailbox.url, emails_per_account_per_hour=2))
    signup(limited, mailbox)
    answered = limited.request_password_reset("alice")
    mailbox.next(to="alice@example.com")
    over = limited.request_password_reset("alice")
    assert (over.status, over.message) == (answered.status, answered.message) == (200, over.message)
    barrier(limited, mailbox)


def test_password_change_sends_a_notice(face: Face, mailbox: Mailbox) -> None:
    signup(face, mailbox)
    assert face.change_password(PASSWORD, NEW_PASSWORD).status == 200
    notice = mailbox.next(to="alice@example.com")
    assert notice.subject == "Your password was changed"
    assert "alice" in notice.text and "token" not in notice.text


def test_failed_change_sends_nothing(face: Face, mailbox: Mailbox) -> None:
    signup(face, mailbox)
    assert face.change_password("not the password", NEW_PASSWORD).status == 403
    face.client.cookies.clear()
    # A signup refused as a conflict rolls back its verification message with it.
    assert face.signup("alice", PASSWORD, "other@example.com").status == 409
    assert face.login("alice", PASSWORD).status == 200
    barrier(face, mailbox)


def test_rest_profile_bodies_keep_their_five_keys(client: TestClient, mailbox: Mailbox) -> None:
    body = {"login": "alice", "password": PASSWORD, "email": "alice@example.com"}
    keys = {"username", "email", "firstname", "lastname", "avatar"}
    assert set(client.post("/signup", json=body).json()) == keys
    assert set(client.get("/profile").json()) == keys
    assert set(client.put("/profile", json={"firstname": "A"}).json()) == keys
    assert set(client.get("/account").json()) == {
        "email",
        "email_verified",
        "totp_enabled",
        "created_at",
    }


def test_email_flows_are_in_the_security_log(face: Face, mailbox: Mailbox) -> None:
    verification = signup(face, mailbox).token
    assert face.verify_email(verification).status == 200
    assert face.update_profile(email="alice@example.org").status == 200
    mailbox.next(to="alice@example.com")  # the notice to the old address
    mailbox.next(to="alice@example.org")  # the new address's verification
    face.request_password_reset("alice")
    assert (
        face.reset_password(mailbox.next(to="alice@example.org").token, NEW_PASSWORD).status == 200
    )
    assert face.login("alice", NEW_PASSWORD).status == 200
    kinds = [event["kind"] for event in face.security_events().data]
    assert kinds == [
        "LOGIN",
        "PASSWORD_RESET",
        "PASSWORD_RESET_REQUESTED",
        "EMAIL_CHANGED",
        "EMAIL_VERIFIED",
        "SIGNUP",
    ]


def test_reset_requests_for_unknown_accounts_log_nothing(
    face: Face, mailbox: Mailbox, make_settings: MakeSettings
) -> None:
    signup(face, mailbox)
    assert face.request_password_reset("nobody@example.com").status == 200
    assert query(make_settings(), "SELECT kind FROM security_events") == [("SIGNUP",)]


def test_reset_requests_are_limited_per_client_address(
    make_client: MakeClient, mailbox: Mailbox, face: Face
) -> None:
    limited = type(face)(make_client(smtp_url=mailbox.url, password_resets_per_ip=2))
    for _ in range(2):
        assert limited.request_password_reset("anyone").status == 200
    refused = limited.request_password_reset("anyone")
    assert refused.status == 429
    assert refused.retry_after is not None and 0 < refused.retry_after <= 3600


def test_reset_leaves_the_second_factor_on(face: Face, mailbox: Mailbox) -> None:
    signup(face, mailbox)
    secret = face.start_totp_setup().data["secret"]
    assert face.confirm_totp(pyotp.TOTP(secret).at(time.time() - 30)).status == 200
    assert face.account().data["totp_enabled"] is True
    face.client.cookies.clear()
    face.request_password_reset("alice")
    assert (
        face.reset_password(mailbox.next(to="alice@example.com").token, NEW_PASSWORD).status == 200
    )
    refused = face.login("alice", NEW_PASSWORD)
    assert (refused.status, refused.code) == (403, "TOTP_REQUIRED")
    assert face.login("alice", NEW_PASSWORD, otp=pyotp.TOTP(secret).now()).status == 200
