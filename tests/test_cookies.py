"""COOKIE_SAMESITE: the cookies' SameSite attribute, and the start-up checks for `none`."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from core.config import SettingsError, load_settings
from tests.faces import send_json
from tests.types import MakeClient

SIGNUP = {"login": "carol", "password": "a long enough password", "email": "carol@example.com"}
GRAPHQL_SIGNUP = {
    "query": "mutation($i: SignupInput!) { signup(input: $i) { username } }",
    "variables": {"i": SIGNUP},
}
FRONTEND = "https://app.example"


def _signup_cookie(make_client: MakeClient, face: str, **settings: object) -> str:
    client = make_client(**settings)
    if face == "rest":
        response: httpx.Response = send_json(client, "POST", "/signup", SIGNUP)
    else:
        response = send_json(client, "POST", "/graphql", GRAPHQL_SIGNUP)
    assert response.status_code == 200, response.text
    cookie: str = response.headers["set-cookie"]
    return cookie


@pytest.mark.parametrize("face", ["rest", "graphql"])
def test_samesite_defaults_to_lax_without_partitioned(make_client: MakeClient, face: str) -> None:
    cookie = _signup_cookie(make_client, face)
    assert cookie.endswith("; Path=/; HttpOnly; SameSite=Lax")
    assert "Partitioned" not in cookie


@pytest.mark.parametrize("face", ["rest", "graphql"])
def test_samesite_strict_is_written_as_strict(make_client: MakeClient, face: str) -> None:
    cookie = _signup_cookie(make_client, face, cookie_samesite="strict")
    assert "; SameSite=Strict" in cookie
    assert "Partitioned" not in cookie


@pytest.mark.parametrize("face", ["rest", "graphql"])
def test_samesite_none_adds_secure_and_partitioned(make_client: MakeClient, face: str) -> None:
    cookie = _signup_cookie(
        make_client, face, cookie_samesite="none", cookie_secure=True, cors_origins=FRONTEND
    )
    assert cookie.endswith("; Path=/; HttpOnly; SameSite=None; Secure; Partitioned")


def test_clearing_cookie_carries_the_same_attributes(make_client: MakeClient) -> None:
    client = make_client(cookie_samesite="none", cookie_secure=True, cors_origins=FRONTEND)
    send_json(client, "POST", "/signup", SIGNUP)
    # A Secure cookie goes back only over HTTPS.
    response = client.get("https://testserver/logout")
    assert response.status_code == 200
    assert response.headers["set-cookie"] == (
        'session_id=""; Max-Age=0; Path=/; HttpOnly; SameSite=None; Secure; Partitioned'
    )


def test_samesite_is_read_case_insensitively(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COOKIE_SAMESITE", "Strict")
    assert load_settings().cookie_samesite == "strict"


@pytest.mark.parametrize("value", ["lox", "", "None; Secure"])
def test_unknown_samesite_stops_start_up(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("COOKIE_SAMESITE", value)
    with pytest.raises(SettingsError, match="COOKIE_SAMESITE"):
        load_settings()


@pytest.mark.parametrize(
    ("settings", "missing"),
    [
        ({"CORS_ORIGINS": FRONTEND}, "COOKIE_SECURE"),
        ({"COOKIE_SECURE": "true"}, "CORS_ORIGINS"),
        ({}, "COOKIE_SECURE"),
    ],
)
def test_samesite_none_needs_secure_and_origins(
    monkeypatch: pytest.MonkeyPatch, settings: dict[str, str], missing: str
) -> None:
    monkeypatch.setenv("COOKIE_SAMESITE", "none")
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert "COOKIE_SAMESITE" in str(refused.value)
    assert missing in str(refused.value)


def test_samesite_none_with_secure_and_origins_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COOKIE_SAMESITE", "none")
    monkeypatch.setenv("COOKIE_SECURE", "true")
    monkeypatch.setenv("CORS_ORIGINS", FRONTEND)
    assert load_settings().cookie_samesite == "none"


def test_server_refuses_samesite_none_without_origins() -> None:
    env = {**os.environ, "COOKIE_SAMESITE": "none", "COOKIE_SECURE": "true", "CORS_ORIGINS": ""}
    result = subprocess.run(
        [sys.executable, "-m", "app"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "COOKIE_SAMESITE" in result.stderr
    assert "CORS_ORIGINS" in result.stderr
