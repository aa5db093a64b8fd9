"""Several real server processes sharing one database: nothing lives in an instance.

On PostgreSQL (TEST_DATABASE=postgresql) this is the scale-out set-up; on SQLite the same
tests show that processes sharing one file agree as well.
"""

from __future__ import annotations

import re
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pyotp
import pytest

from tests.images import encode
from tests.servers import Server
from tests.types import StartServer

PASSWORD = "correct horse battery"


def _cookie(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    return {"cookie": f"session_id={response.cookies['session_id']}"}


def _signup(server: Server, login: str = "alice") -> dict[str, str]:
    body = {"login": login, "password": PASSWORD, "email": f"{login}@example.com"}
    return _cookie(httpx.post(f"{server.url}/signup", json=body))


def _profile(server: Server, cookie: dict[str, str]) -> httpx.Response:
    return httpx.get(f"{server.url}/profile", headers=cookie)


@pytest.fixture
def pair(start_server: StartServer) -> tuple[Server, Server]:
    first = start_server()
    second = start_server()
    return first.wait_ready(), second.wait_ready()


def test_session_made_on_one_instance_works_on_the_other(pair: tuple[Server, Server]) -> None:
    a, b = pair
    cookie = _signup(a)
    response = _profile(b, cookie)
    assert response.status_code == 200
    assert response.json()["username"] == "alice"


def test_logout_on_one_instance_ends_the_session_on_the_other(
    pair: tuple[Server, Server],
) -> None:
    a, b = pair
    cookie = _signup(a)
    assert _profile(a, cookie).status_code == 200
    assert httpx.post(f"{b.url}/logout", headers=cookie).status_code == 200
    assert _profile(a, cookie).status_code == 403


def test_password_change_on_one_instance_ends_other_sessions_everywhere(
    pair: tuple[Server, Server],
) -> None:
    a, b = pair
    old = _signup(a)
    login = {"login": "alice", "password": PASSWORD}
    other = _cookie(httpx.post(f"{b.url}/login", json=login))
    change = {"old_password": PASSWORD, "new_password": "another fine passphrase"}
    response = httpx.put(f"{a.url}/password", json=change, headers=old)
    new = _cookie(response)
    for server in (a, b):
        assert _profile(server, old).status_code == 403
        assert _profile(server, other).status_code == 403
        assert _profile(server, new).status_code == 200


def test_deletion_on_one_instance_is_seen_at_once_by_the_other(
    pair: tuple[Server, Server],
) -> None:
    a, b = pair
    cookie = _signup(a)
    assert _profile(b, cookie).status_code == 200
    assert httpx.delete(f"{a.url}/profile", headers=cookie).status_code == 200
    assert _profile(b, cookie).status_code == 403


def test_avatar_uploaded_through_one_is_served_by_the_other(pair: tuple[Server, Server]) -> None:
    a, b = pair
    cookie = _signup(a)
    files = {"avatar": ("me.png", encode("PNG"), "image/png")}
    response = httpx.put(f"{a.url}/avatar", files=files, headers=cookie)
    assert response.status_code == 200, response.text
    path = httpx.URL(response.json()["avatar"]).path
    served = httpx.get(f"{b.url}{path}")
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png"
    assert served.content == httpx.get(f"{a.url}{path}").content


def test_simultaneous_signups_spread_over_both_make_one_account(
    start_server: StartServer,
) -> None:
    # All from one address, so its sign-up limit is raised out of the way.
    pair = [start_server(SIGNUPS_PER_IP="100") for _ in range(2)]
    for server in pair:
        server.wait_ready()

    def attempt(i: int) -> int:
        server = pair[i % 2]
        body = {"login": "alice", "password": PASSWORD, "email": f"alice{i}@example.com"}
        return httpx.post(f"{server.url}/signup", json=body, timeout=30).status_code

    with ThreadPoolExecutor(24) as pool:
        statuses = Counter(pool.map(attempt, range(24)))
    assert statuses == Counter({200: 1, 409: 23})


def test_throttling_counts_attempts_made_on_both(start_server: StartServer) -> None:
    limits = {"LOGIN_FAILURES_PER_ACCOUNT": "4"}
    a = start_server(**limits).wait_ready()
    b = start_server(**limits).wait_ready()
    _signup(a)
    wrong = {"login": "alice", "password": "not the password"}
    for server in (a, b, a, b):
        assert httpx.post(f"{server.url}/login", json=wrong).status_code == 403
    for server in (a, b):
        refused = httpx.post(f"{server.url}/login", json={**wrong, "password": PASSWORD})
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) > 0


def test_instances_starting_together_migrate_exactly_once(
    start_server: StartServer, fresh_database_url: str
) -> None:
    servers = [start_server(fresh_database_url) for _ in range(3)]
    for server in servers:
        server.wait_ready()
    logs = "".join(server.log() for server in servers)
    assert len(re.findall(r"Running upgrade\s+->", logs)) == 1
    cookie = _signup(servers[0])
    assert _profile(servers[2], cookie).status_code == 200


def test_workers_setting_runs_that_many_server_processes(start_server: StartServer) -> None:
    server = start_server(WORKERS="2").wait_ready()

    def workers() -> int:
        # uvicorn spawns each worker with multiprocessing (beside its resource tracker).
        pid = server.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        commands = [Path(f"/proc/{child}/cmdline").read_bytes() for child in children]
        return sum(b"spawn_main" in command for command in commands)

    deadline = time.monotonic() + 30
    while workers() < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert workers() == 2
    cookie = _signup(server)
    # Whichever worker takes each connection, the session is known to it.
    assert all(_profile(server, cookie).status_code == 200 for _ in range(10))
    assert server.stop() in (0, -signal.SIGTERM)


def test_simultaneous_wrong_logins_over_two_instances_get_exactly_the_limits(
    start_server: StartServer,
) -> None:
    limits = {"LOGIN_FAILURES_PER_IP": "5", "TRUSTED_PROXIES": "127.0.0.1/32"}
    pair = [start_server(**limits) for _ in range(2)]
    for server in pair:
        server.wait_ready()
    _signup(pair[0])

    def attempt(i: int, login: str, address: str) -> int:
        body = {"login": login, "password": "not the password"}
        headers = {"x-forwarded-for": address}
        return httpx.post(
            f"{pair[i % 2].url}/login", json=body, headers=headers, timeout=60
        ).status_code

    # One address, many names: its limit of 5. One account, many addresses: its 10.
    with ThreadPoolExecutor(40) as pool:
        by_address = Counter(pool.map(lambda i: attempt(i, f"user{i}", "192.0.2.1"), range(30)))
        by_account = Counter(pool.map(lambda i: attempt(i, "alice", f"198.51.100.{i}"), range(40)))
    assert by_address == Counter({403: 5, 429: 25})
    assert by_account == Counter({403: 10, 429: 30})


def test_session_revoked_on_one_instance_is_refused_by_the_other_at_once(
    pair: tuple[Server, Server],
) -> None:
    a, b = pair
    laptop = _signup(a)
    login = {"login": "alice", "password": PASSWORD}
    phone = _cookie(httpx.post(f"{b.url}/login", json=login, headers={"user-agent": "Phone"}))
    listed = httpx.get(f"{b.url}/sessions", headers=laptop).json()
    assert [(s["user_agent"], s["current"]) for s in listed] == [
        ("Phone", False),
        ("python-httpx/" + httpx.__version__, True),
    ]
    assert _profile(b, phone).status_code == 200
    revoked = httpx.delete(f"{a.url}/sessions/{listed[0]['id']}", headers=laptop)
    assert revoked.status_code == 200
    assert _profile(b, phone).status_code == 403
    assert _profile(a, phone).status_code == 403
    # And the other way round: every other session ended through b, seen by a.
    tablet = _cookie(httpx.post(f"{a.url}/login", json=login))
    ended = httpx.delete(f"{b.url}/sessions", headers=laptop)
    assert ended.json() == {"message": "Every other session ended", "ended": 1}
    assert _profile(a, tablet).status_code == 403
    assert _profile(a, laptop).status_code == 200


def test_one_totp_code_sent_to_both_instances_at_once_logs_in_once(
    pair: tuple[Server, Server],
) -> None:
    a, b = pair
    cookie = _signup(a)
    secret = httpx.post(f"{a.url}/totp/setup", headers=cookie).json()["secret"]
    totp = pyotp.TOTP(secret)
    if 30 - time.time() % 30 < 5:
        time.sleep(6)
    previous = totp.at(time.time() - 30)
    confirmed = httpx.post(f"{b.url}/totp/confirm", json={"code": previous}, headers=cookie)
    assert confirmed.status_code == 200, confirmed.text
    body = {"login": "alice", "password": PASSWORD, "otp": totp.now()}

    def attempt(i: int) -> int:
        return httpx.post(f"{pair[i % 2].url}/login", json=body, timeout=30).status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = Counter(pool.map(attempt, range(6)))
    assert statuses == Counter({200: 1, 403: 5})
