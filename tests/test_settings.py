"""Every setting has a range or a form, documented, and start-up refuses anything else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.config import Settings, SettingsError, bounds, load_settings
from tests.servers import ROOT
from tests.types import StartServer

NUMERIC = sorted(
    name for name, field in Settings.model_fields.items() if field.annotation in (int, float)
)


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else str(value)


def _readme_row(name: str) -> str:
    readme = (ROOT / "README.md").read_text()
    settings = readme[
        readme.index("## Settings") : readme.index("\n## ", readme.index("## Settings"))
    ]
    rows = [line for line in settings.splitlines() if f"`{name.upper()}`" in line.split(" | ")[0]]
    assert rows, f"{name.upper()} has no row in the README's settings table"
    return rows[0]


@pytest.mark.parametrize("name", NUMERIC)
def test_every_numeric_setting_has_a_documented_range(name: str) -> None:
    limits = bounds(name)
    assert limits is not None, f"{name.upper()} needs both a lower and an upper bound"
    low, high = (_number(limit) for limit in limits)
    # The README writes large numbers with thousands separators.
    assert f"{low}\u2013{high}" in _readme_row(name).replace(",", ""), name.upper()


@pytest.mark.parametrize("name", NUMERIC)
def test_numbers_out_of_range_stop_start_up_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    limits = bounds(name)
    assert limits is not None
    low, high = limits
    step = 1 if Settings.model_fields[name].annotation is int else 0.01
    for accepted in (low, high):
        monkeypatch.setenv(name.upper(), _number(accepted))
        assert getattr(load_settings(), name) == accepted
    for refused in (_number(low - step), _number(high + step), "1" + "0" * 30):
        monkeypatch.setenv(name.upper(), refused)
        with pytest.raises(SettingsError) as error:
            load_settings()
        message = str(error.value)
        assert message.startswith(f"invalid setting {name.upper()}: "), message
        assert f"use {_number(low)} to {_number(high)}" in message
        assert "\n" not in message


@pytest.mark.parametrize(
    "value",
    [
        "127.0.0.1",
        "0.0.0.0",  # noqa: S104
        "::",
        "::1",
        "localhost",
        "api.example.com.",
        "accounts_db",
    ],
)
def test_host_accepts_addresses_and_host_names(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("HOST", value)
    assert load_settings().host == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "http://127.0.0.1",
        "127.0.0.1:8000",
        "[::1]",
        "a..b",
        "-a.example",
        "a b",
        "x" * 64,
        "é.example",
    ],
)
def test_host_that_is_no_address_or_host_name_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("HOST", value)
    with pytest.raises(
        SettingsError, match=r"^invalid setting HOST: .*not an IP address or host name"
    ):
        load_settings()


def test_mail_dir_that_cannot_be_made_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("MAIL_DIR", str(tmp_path / "a-file" / "mail"))
    with pytest.raises(SettingsError, match=r"^invalid setting MAIL_DIR: .*not a directory"):
        load_settings()
    # With an SMTP server the directory is never used, so it is not checked.
    monkeypatch.setenv("SMTP_URL", "smtp://mail.example.com")
    assert load_settings().smtp_url == "smtp://mail.example.com"


def test_mail_dir_not_made_yet_under_a_writable_folder_is_fine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MAIL_DIR", str(tmp_path / "var" / "mail"))
    assert load_settings().mail_dir == str(tmp_path / "var" / "mail")
    assert not (tmp_path / "var").exists()  # checked, not made: the sender makes it


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BCRYPT_ROUNDS", "31"),
        ("AVATAR_MAX_BYTES", str(10**12)),
        ("DB_POOL_TIMEOUT_SECONDS", "0"),
        ("SESSION_TTL_SECONDS", str(10**12)),
        ("HOST", "http://0.0.0.0"),
        ("MAIL_DIR", "/dev/null/mail"),
    ],
)
def test_server_with_an_absurd_setting_exits_with_one_line_naming_it(
    start_server: StartServer, name: str, value: str
) -> None:
    # Before the ranges, BCRYPT_ROUNDS=31 started a server whose every login took days.
    server = start_server(**{name: value})
    assert server.process.wait(timeout=60) == 2
    lines = server.log().splitlines()
    assert len(lines) == 1, lines
    assert re.match(f"invalid setting {name}: ", lines[0]), lines[0]
    assert "Traceback" not in server.log()
