"""Delivery: .eml files by default, SMTP when set; the outbox survives a mail server that is
down, a `kill -9` and several instances sharing the database; nothing can inject a header."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import signal
import socket
import ssl
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from aiosmtpd.smtp import AuthResult
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from starlette.testclient import TestClient

from core import keys
from core.config import Settings
from core.db import MIGRATIONS, Database, now
from core.mail import outbox, sender
from core.mail.delivery import FileDelivery, SmtpDelivery, parse_smtp_url
from core.mail.message import HEADERS, build, parse_sender
from core.mail.templates import render
from tests.mail import Mailbox, parse, query
from tests.servers import TEST_SECRET_KEY, free_port
from tests.types import MakeClient, MakeSettings, StartServer

PASSWORD = "correct horse battery"
ALICE = {"login": "alice", "password": PASSWORD, "email": "alice@example.com"}


def test_messages_are_eml_files_in_mail_dir_by_default(
    client: TestClient, make_settings: MakeSettings
) -> None:
    assert client.post("/signup", json=ALICE).status_code == 200
    directory = Path(make_settings().mail_dir)
    deadline = time.monotonic() + 10
    while not list(directory.glob("*.eml")):
        assert time.monotonic() < deadline, "no .eml file written"
        time.sleep(0.05)
    (path,) = directory.glob("*.eml")
    assert not list(directory.glob("*.tmp"))
    message = parse(path.read_bytes())
    assert message["To"].addresses[0].addr_spec == "alice@example.com"
    assert message["Subject"] == "Confirm your email address"
    body = message.get_content()
    token = re.search(r"/verify-email\?token=([A-Za-z0-9_-]+)", body)
    assert token is not None
    # The link is on one line of the raw file, ready to be copied.
    assert token.group(0).encode() in path.read_bytes()
    assert client.post("/email/verify", json={"token": token.group(1)}).status_code == 200


def test_mail_server_down_messages_wait_then_arrive_once(
    make_client: MakeClient, make_settings: MakeSettings
) -> None:
    mailbox = Mailbox()  # not started: its port refuses connections
    client = make_client(smtp_url=mailbox.url)
    for login in ("alice", "bob", "carol"):
        body = {"login": login, "password": PASSWORD, "email": f"{login}@example.com"}
        assert client.post("/signup", json=body).status_code == 200
    settings = make_settings()
    deadline = time.monotonic() + 10
    while query(settings, "SELECT count(*) FROM outbox WHERE attempts > 0")[0][0] < 3:
        assert time.monotonic() < deadline, "the sender never tried"
        time.sleep(0.05)
    assert asyncio.run(_counts(settings)) == {"waiting": 3, "failed": 0}
    # The first retry comes within 60 s.
    for (due,) in query(settings, "SELECT next_attempt_at FROM outbox"):
        assert due <= time.time() + 60
    mailbox.start()
    try:
        arrived = mailbox.wait(3, timeout=40)
        time.sleep(sender.POLL_SECONDS + 1)
        assert len(mailbox.messages()) == 3
        assert sorted(m.to for m in arrived) == [
            f"{n}@example.com" for n in ("alice", "bob", "carol")
        ]
        assert asyncio.run(_counts(settings)) == {"waiting": 0, "failed": 0}
    finally:
        mailbox.stop()


async def _counts(settings: Settings) -> dict[str, int]:
    database = Database(settings)
    try:
        return await outbox.counts(database)
    finally:
        await database.dispose()


def test_two_instances_deliver_a_burst_of_fifty_exactly_once(
    start_server: StartServer, mailbox: Mailbox
) -> None:
    options = {
        "SMTP_URL": mailbox.url,
        "EMAILS_PER_ACCOUNT_PER_HOUR": "1000",
        "PASSWORD_RESETS_PER_IP": "1000",
    }
    servers = [start_server(**options), start_server(**options)]
    a, b = (server.wait_ready() for server in servers)
    assert httpx.post(f"{a.url}/signup", json=ALICE).status_code == 200
    mailbox.next(to="alice@example.com")

    def request(i: int) -> int:
        server = (a, b)[i % 2]
        return httpx.post(f"{server.url}/password/forgot", json={"login": "alice"}).status_code

    with ThreadPoolExecutor(10) as pool:
        assert set(pool.map(request, range(50))) == {200}
    mailbox.wait(51, timeout=60)
    # Long enough for either instance to have sent anything a second time.
    time.sleep(sender.POLL_SECONDS * 2)
    resets = mailbox.messages()[1:]
    assert len(resets) == 50
    ids = Counter(str(m.message["Message-ID"]) for m in resets)
    tokens = Counter(m.token for m in resets)
    assert len(ids) == len(tokens) == 50


def test_kill_9_after_a_reset_request_only_delays_its_message(
    start_server: StartServer, mailbox: Mailbox
) -> None:
    down = f"smtp://127.0.0.1:{free_port()}"
    server = start_server(SMTP_URL=down).wait_ready()
    assert httpx.post(f"{server.url}/signup", json=ALICE).status_code == 200
    answer = httpx.post(f"{server.url}/password/forgot", json={"login": "alice"})
    assert answer.status_code == 200
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL

    restarted = start_server(SMTP_URL=mailbox.url).wait_ready()
    messages = mailbox.wait(2, timeout=40)
    assert sorted(m.subject for m in messages) == [
        "Confirm your email address",
        "Reset your password",
    ]
    reset = next(m for m in messages if m.subject == "Reset your password")
    body = {"token": reset.token, "new_password": "a brand new passphrase"}
    assert httpx.post(f"{restarted.url}/password/reset", json=body).status_code == 200


def test_header_injection_through_the_api_is_refused(
    client: TestClient, make_client: MakeClient, mailbox: Mailbox
) -> None:
    app = make_client(smtp_url=mailbox.url)
    injected = {**ALICE, "login": "eve\r\nBcc: evil@example.com"}
    assert app.post("/signup", json=injected).status_code == 400
    assert app.post("/signup", json=ALICE).status_code == 200
    mailbox.next(to="alice@example.com")
    for name in (
        "Eve\r\nBcc: evil@example.com",
        "Eve\nBcc: evil@example.com",
        "Eve\u2028Bcc: x@y.z",
    ):
        assert app.put("/profile", json={"firstname": name}).status_code in (200, 400)
    # What names may hold (quotes, commas, angle brackets) stays inside the To header.
    tricky = {"firstname": 'Eve "x", <evil@example.com>', "lastname": "Bcc: evil@example.com"}
    assert app.put("/profile", json=tricky).status_code == 200
    change = {"old_password": PASSWORD, "new_password": "a brand new passphrase"}
    assert app.put("/password", json=change).status_code == 200
    notice = mailbox.next(to="alice@example.com")
    message = notice.message
    assert [a.addr_spec for a in message["To"].addresses] == ["alice@example.com"]
    assert message.get_all("Bcc") is None and message.get_all("Cc") is None
    assert all("evil" not in r for r in notice.recipients)


def test_header_injection_in_name_or_login_cannot_add_a_header() -> None:
    sender_address = parse_sender("Accounts <no-reply@example.com>")
    evil = "eve\r\nBcc: evil@example.com"
    rendered = render("password_changed", login=evil)
    crlf = base64.b64encode(b"x\r\nCc: other@example.com").decode()
    for name in (
        f"{evil} \n\rCc: other@example.com",
        "=?utf-8?q?a=0D=0ABcc:_evil@example.com?=",
        f"=?utf-8?b?{crlf}?=",
        "=?utf-8?q?x=22_=3Cevil=40example.com=3E=2C_z?=",
        "J\u00f6ran ==??utf-8?q?=0D=0ABcc:_evil@example.com?=",
    ):
        outgoing = build(
            sender=sender_address,
            recipient="alice@example.com",
            name=name,
            subject=rendered.subject,
            body=rendered.body,
            message_id="<1@example.com>",
            date=now(),
        )
        assert (outgoing.sender, outgoing.recipient) == (
            "no-reply@example.com",
            "alice@example.com",
        )
        parsed = parse(outgoing.message.as_bytes())
        assert sorted(parsed.keys()) == sorted(HEADERS), name
        assert [a.addr_spec for a in parsed["To"].addresses] == ["alice@example.com"]
    with pytest.raises(ValueError):
        parse_sender("Accounts <a@example.com>\r\nBcc: evil@example.com")


def test_encoded_words_in_names_add_no_header_and_no_recipient(
    make_client: MakeClient, mailbox: Mailbox
) -> None:
    app = make_client(smtp_url=mailbox.url)
    assert app.post("/signup", json=ALICE).status_code == 200
    mailbox.next(to="alice@example.com")
    crlf = base64.b64encode(b"x\r\nCc: other@example.com").decode()
    names = {
        "firstname": "=?utf-8?q?a=0D=0ABcc:_evil@example.com?=",
        "lastname": f"=?utf-8?b?{crlf}?=",
    }
    assert app.put("/profile", json=names).status_code == 200
    change = {"old_password": PASSWORD, "new_password": "a brand new passphrase"}
    assert app.put("/password", json=change).status_code == 200
    notice = mailbox.next(to="alice@example.com")  # alice alone in the envelope
    assert notice.subject == "Your password was changed"
    assert sorted(notice.message.keys()) == sorted(HEADERS)
    assert [a.addr_spec for a in notice.message["To"].addresses] == ["alice@example.com"]
    assert notice.message.get_all("Bcc") is None and notice.message.get_all("Cc") is None


@pytest.mark.parametrize("smtputf8", [False, True])
def test_a_message_that_cannot_go_fails_alone_and_the_rest_of_the_batch_is_sent(
    make_settings: MakeSettings, caplog: pytest.LogCaptureFixture, smtputf8: bool
) -> None:
    settings = make_settings()
    mailbox = Mailbox(enable_SMTPUTF8=smtputf8).start()
    recipients = (
        "j\u00f6ran@example.com",  # needs SMTPUTF8: fails where the server lacks it
        "carol@example.com",  # its body will not open: moved onto another Message-ID
        "not an address",
        "alice@b\u00fccher.example",  # an international domain goes as punycode
        "bob@example.com",
    )

    async def scenario() -> list[tuple[object, ...]]:
        database = Database(settings)
        await database.migrate()
        box = outbox.Outbox(parse_sender(settings.mail_from), keys.load(settings))
        async with database.write() as db:
            for recipient in recipients:
                box.add(
                    db,
                    user_id=None,
                    kind=outbox.NOTICE,
                    recipient=recipient,
                    name="",
                    message=render("password_changed", login="someone"),
                    at=now(),
                )
        async with database.engine.begin() as connection:
            await connection.execute(
                text("UPDATE outbox SET message_id = '<moved@localhost>' WHERE recipient = :r"),
                {"r": "carol@example.com"},
            )
        assert await sender.Sender(database, box, SmtpDelivery(mailbox.url)).run_once() == 5
        rows = await _rows(database, "SELECT recipient, state FROM outbox ORDER BY id")
        await database.dispose()
        return rows

    try:
        with caplog.at_level(logging.INFO, logger="accounts.mail"):
            rows = asyncio.run(scenario())
        arrived = mailbox.wait(3 if smtputf8 else 2)
    finally:
        mailbox.stop()
    first = "sent" if smtputf8 else "failed"
    assert [state for _, state in rows] == [first, "failed", "failed", "sent", "sent"]
    assert [m.recipients for m in arrived] == [
        *([("j\u00f6ran@example.com",)] if smtputf8 else []),
        ("alice@xn--bcher-kva.example",),
        ("bob@example.com",),
    ]
    lines = [record.getMessage() for record in caplog.records]
    refused = [] if smtputf8 else ["refused for good: the address needs SMTPUTF8"]
    reasons = [re.sub(r"^mail \d+ | \(.*|,.*", "", line) for line in lines]
    assert reasons == [*refused, "cannot be built", "cannot be built"]
    for line in lines:
        assert "@" not in line and "j\u00f6ran" not in line and "carol" not in line


def test_link_pages_call_the_api_under_a_self_only_policy_and_change_nothing_by_opening(
    make_client: MakeClient, mailbox: Mailbox
) -> None:
    client = make_client(smtp_url=mailbox.url)
    assert client.post("/signup", json=ALICE).status_code == 200
    verification = mailbox.next(to="alice@example.com").token
    client.post("/password/forgot", json={"login": "alice"})
    reset = mailbox.next(to="alice@example.com").token
    for path, token, endpoint in (
        ("/verify-email", verification, "/email/verify"),
        ("/reset-password", reset, "/password/reset"),
    ):
        page = client.get(f"{path}?token={token}")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        html = page.text
        assert f'data-endpoint="{endpoint}"' in html
        # Without JavaScript the form posts (to this page, which answers 405): the new
        # password never lands in a URL, where logs and history would keep it.
        assert re.findall(r"<form[^>]*>", html) == ['<form id="action" method="post">']
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
        # Nothing is loaded from anywhere: no src or href, no URL in the page.
        assert not re.search(r"\b(src|href)=|https?:", html)
        policy = dict(
            part.strip().split(" ", 1)
            for part in page.headers["content-security-policy"].split(";")
        )
        assert policy["default-src"] == "'none'"
        assert policy["connect-src"] == "'self'"
        assert "unsafe" not in page.headers["content-security-policy"]
        for tag, directive in (("script", "script-src"), ("style", "style-src")):
            (inline,) = re.findall(f"<{tag}>(.*?)</{tag}>", html, re.S)
            digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
            assert policy[directive] == f"'sha256-{digest}'"
        assert page.headers["cache-control"] == "no-store"
    assert '<label for="new-password">' in client.get("/reset-password").text
    # Opening the pages verified and reset nothing: both tokens still work.
    assert client.get("/account").json()["email_verified"] is False
    assert client.post("/email/verify", json={"token": verification}).status_code == 200
    body = {"token": reset, "new_password": "a brand new passphrase"}
    assert client.post("/password/reset", json=body).status_code == 200


def test_settings_refuse_invalid_email_values(make_settings: MakeSettings) -> None:
    from core.config import SettingsError, load_settings

    for name, value in (
        ("SMTP_URL", "http://mail.example.com"),
        ("SMTP_URL", "smtp://"),
        ("SMTP_URL", "smtp://mail.example.com:99999"),
        ("MAIL_FROM", "not an address"),
        ("MAIL_FROM", "a@b.c, d@e.f"),
        ("APP_URL", "example.com"),
        ("EMAIL_TOKEN_TTL_SECONDS", "59"),
        ("PASSWORD_RESET_TTL_SECONDS", "30"),
        ("EMAILS_PER_ACCOUNT_PER_HOUR", "0"),
    ):
        with pytest.MonkeyPatch.context() as env:
            env.setenv(name, value)
            with pytest.raises(SettingsError, match=name):
                load_settings()
    settings = Settings(email_token_ttl_seconds=60, password_reset_ttl_seconds=60)
    assert settings.app_base_url == "http://127.0.0.1:8000"
    assert Settings(public_url="https://a.example").app_base_url == "https://a.example"
    assert (
        Settings(public_url="https://a.example", app_url="https://b.example/").app_base_url
        == "https://b.example"
    )


def test_sender_gives_up_after_a_day_and_logs_it(
    make_settings: MakeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings()

    async def scenario() -> tuple[dict[str, int], list[tuple[object, ...]]]:
        database = Database(settings)
        await database.migrate()
        box = outbox.Outbox(parse_sender(settings.mail_from), keys.load(settings))
        old = now() - sender.MAX_AGE - 1
        await _queue_notice(database, box, at=old)
        down = SmtpDelivery(f"smtp://127.0.0.1:{free_port()}")
        assert await sender.Sender(database, box, down).run_once() == 1
        counts = await outbox.counts(database)
        rows = await _rows(database, "SELECT state, body FROM outbox")
        await database.dispose()
        return counts, rows

    with caplog.at_level(logging.WARNING, logger="accounts.mail"):
        counts, rows = asyncio.run(scenario())
    assert counts == {"waiting": 0, "failed": 1}
    assert rows == [("failed", None)]
    assert any("given up" in record.message for record in caplog.records)


async def _rows(database: Database, sql: str) -> list[tuple[object, ...]]:
    async with database.engine.connect() as connection:
        return [tuple(row) for row in (await connection.execute(text(sql))).all()]


def test_sender_survives_a_database_hiccup_and_stops_promptly(
    fresh_database_url: str, tmp_path: Path
) -> None:
    settings = Settings(database_url=fresh_database_url, secret_key=TEST_SECRET_KEY)

    async def scenario() -> tuple[int, float]:
        database = Database(settings)
        box = outbox.Outbox(parse_sender(settings.mail_from), keys.load(settings))
        running = sender.Sender(database, box, FileDelivery(tmp_path / "out"), poll_seconds=0.1)
        running.start()
        await asyncio.sleep(0.3)  # passes fail: the tables do not exist yet
        await database.migrate()
        await _queue_notice(database, box)
        for _ in range(int((sender.ERROR_PAUSE + 10) / 0.05)):  # the pause after an error
            if list((tmp_path / "out").glob("*.eml")):
                break
            await asyncio.sleep(0.05)
        started = time.monotonic()
        await running.stop()
        stopped = time.monotonic() - started
        await database.dispose()
        return len(list((tmp_path / "out").glob("*.eml"))), stopped

    delivered, stop_seconds = asyncio.run(scenario())
    assert delivered == 1
    assert stop_seconds < 1


@pytest.fixture
def certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A self-signed certificate for 127.0.0.1, trusted by this process's TLS clients; the
    server-side context that presents it."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(  # noqa: S603  (a fixed command; the paths are the test's own)
        [
            "/usr/bin/openssl",
            *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", f"subjectAltName=IP:127.0.0.1,DNS:{socket.gethostname()}"),
        ],
        check=True,
        capture_output=True,
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


Login = tuple[bytes, bytes, bool]


def _recording(logins: list[Login]) -> Any:
    """An aiosmtpd authenticator that notes each login (and whether it came over TLS)."""

    def authenticator(
        server: object, session: Any, envelope: object, mechanism: str, data: Any
    ) -> AuthResult:
        logins.append((data.login, data.password, session.ssl is not None))
        return AuthResult(success=(data.login, data.password) == (b"mail user", b"p@ss:w/rd%"))

    return authenticator


def _local_name() -> str:
    """A name of this machine that resolves to 127.0.0.1: not loopback by its spelling,
    so the service must treat it as another host."""
    name = socket.gethostname()
    if socket.gethostbyname(name) != "127.0.0.1":
        pytest.skip(f"{name} does not resolve to 127.0.0.1 here")
    return name


@pytest.mark.parametrize("host", ["127.0.0.1", "this machine by name"])
def test_smtp_url_uses_starttls_and_its_url_decoded_credentials(
    make_client: MakeClient, certificate: ssl.SSLContext, host: str
) -> None:
    host = _local_name() if host == "this machine by name" else host
    logins: list[Login] = []
    mailbox = Mailbox(
        tls_context=certificate,
        require_starttls=True,
        auth_required=True,
        authenticator=_recording(logins),
    ).start()
    try:
        password = quote("p@ss:w/rd%", safe="")
        client = make_client(smtp_url=f"smtp://mail%20user:{password}@{host}:{mailbox.port}")
        assert client.post("/signup", json=ALICE).status_code == 200
        assert mailbox.next(to="alice@example.com").subject == "Confirm your email address"
    finally:
        mailbox.stop()
    assert logins == [(b"mail user", b"p@ss:w/rd%", True)]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_credentials_go_to_another_host_only_after_starttls(
    make_settings: MakeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings()
    logins: list[Login] = []
    # A server that offers no STARTTLS and would take a password in the clear.
    mailbox = Mailbox(auth_required=True, auth_require_tls=False, authenticator=_recording(logins))
    mailbox.start()
    credentials = f"mail%20user:{quote('p@ss:w/rd%', safe='')}"

    async def scenario(host: str) -> list[tuple[object, ...]]:
        database = Database(settings)
        await database.migrate()
        box = outbox.Outbox(parse_sender(settings.mail_from), keys.load(settings))
        await _queue_notice(database, box)
        delivery = SmtpDelivery(f"smtp://{credentials}@{host}:{mailbox.port}")
        await sender.Sender(database, box, delivery).run_once()
        rows = await _rows(database, "SELECT state FROM outbox ORDER BY id")
        await database.dispose()
        return rows

    try:
        with caplog.at_level(logging.WARNING, logger="accounts.mail"):
            assert asyncio.run(scenario(_local_name())) == [("waiting",)]
        assert logins == [] and mailbox.messages() == []
        assert "STARTTLS extension not supported" in caplog.text
        assert "p@ss" not in caplog.text
        # To this machine by a loopback address, STARTTLS stays "when offered".
        assert asyncio.run(scenario("127.0.0.1")) == [("waiting",), ("sent",)]
        assert logins == [(b"mail user", b"p@ss:w/rd%", False)]
    finally:
        mailbox.stop()


def test_smtp_url_credentials_are_checked_for_tls_by_host() -> None:
    def required(url: str) -> bool:
        return parse_smtp_url(url).requires_starttls

    assert required("smtp://u:p@smtp.example.com:587")
    assert required("smtp://u@192.0.2.1")
    assert required("smtp://:p@[2001:db8::1]")
    assert not required("smtp://smtp.example.com:587")  # no credentials
    assert not required("smtps://u:p@smtp.example.com")  # TLS from the start
    for local in ("localhost", "LOCALHOST", "127.0.0.1", "127.1.2.3", "[::1]"):
        assert not required(f"smtp://u:p@{local}:25")


def test_smtps_url_uses_tls_from_the_start(
    make_client: MakeClient, certificate: ssl.SSLContext
) -> None:
    mailbox = Mailbox(ssl_context=certificate).start()
    try:
        client = make_client(smtp_url=f"smtps://127.0.0.1:{mailbox.port}")
        assert client.post("/signup", json=ALICE).status_code == 200
        assert mailbox.next(to="alice@example.com").subject == "Confirm your email address"
    finally:
        mailbox.stop()


def test_bodies_stored_in_the_clear_before_0006_are_sealed_by_it_and_still_sent(
    fresh_database_url: str, mailbox: Mailbox
) -> None:
    settings = Settings(database_url=fresh_database_url, secret_key=TEST_SECRET_KEY)
    link = "http://127.0.0.1:8000/verify-email?token=a-token-from-before-the-upgrade"

    def upgrade_to_0005(connection: Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, "0005")

    async def scenario() -> list[tuple[object, ...]]:
        database = Database(settings)
        async with database.engine.begin() as connection:
            await connection.run_sync(upgrade_to_0005)
            await connection.execute(
                text(
                    "INSERT INTO outbox (kind, state, recipient, display_name, subject,"
                    " message_id, body, created_at, next_attempt_at, attempts)"
                    " VALUES ('verify', 'waiting', 'a@example.com', '', 'Confirm',"
                    " '<legacy@localhost>', :body, :at, :at, 0)"
                ),
                {"body": f"Hello a,\n\n{link}\n", "at": now()},
            )
        await database.migrate()
        stored = await _rows(database, "SELECT body FROM outbox")
        box = outbox.Outbox(parse_sender(settings.mail_from), keys.load(settings))
        assert await sender.Sender(database, box, SmtpDelivery(mailbox.url)).run_once() == 1
        await database.dispose()
        return stored

    ((body,),) = asyncio.run(scenario())
    assert isinstance(body, str) and body.startswith("aesgcm$1$") and "token" not in body
    assert link in mailbox.next(to="a@example.com").text


async def _queue_notice(database: Database, box: outbox.Outbox, at: float | None = None) -> None:
    """One notice to a@example.com in the outbox, as a password change leaves it."""
    async with database.write() as db:
        box.add(
            db,
            user_id=None,
            kind=outbox.NOTICE,
            recipient="a@example.com",
            name="",
            message=render("password_changed", login="a"),
            at=now() if at is None else at,
        )
