"""Which time step a code belongs to: one step of drift either way, nothing at or before the
last step accepted (pyotp computes the codes, as an authenticator app would)."""

from __future__ import annotations

import pyotp

from core.totp import matching_step

SECRET = pyotp.random_base32()
RAW = pyotp.TOTP(SECRET).byte_secret()
AT = 1_800_000_015.0  # in the middle of a step
STEP = int(AT // 30)


def _code(moment: float) -> str:
    return pyotp.TOTP(SECRET).at(moment)


def test_codes_of_this_step_and_one_either_side_match() -> None:
    for offset in (-1, 0, 1):
        assert matching_step(RAW, _code(AT + 30 * offset), at=AT, after=None) == STEP + offset


def test_codes_two_steps_away_do_not_match() -> None:
    for offset in (-2, 2, 10):
        assert matching_step(RAW, _code(AT + 30 * offset), at=AT, after=None) is None


def test_steps_at_or_before_the_last_accepted_one_are_refused() -> None:
    assert matching_step(RAW, _code(AT - 30), at=AT, after=STEP - 2) == STEP - 1
    assert matching_step(RAW, _code(AT - 30), at=AT, after=STEP - 1) is None
    assert matching_step(RAW, _code(AT), at=AT, after=STEP) is None
    assert matching_step(RAW, _code(AT + 30), at=AT, after=STEP) == STEP + 1


def test_what_people_type_around_a_code_is_ignored() -> None:
    code = _code(AT)
    assert matching_step(RAW, f" {code[:3]} {code[3:]} ", at=AT, after=None) == STEP
    assert matching_step(RAW, code + "0", at=AT, after=None) is None
    assert matching_step(RAW, "x" * 100, at=AT, after=None) is None
