"""Field rules, the same for both APIs. Each check returns the value to store.

The limits are written here once; the table columns (models.py) and the REST layer's JSON
Schemas (`SCHEMAS`, for the OpenAPI document) are derived from them.
"""

from __future__ import annotations

import re
import unicodedata

from email_validator import EmailNotValidError, validate_email
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from core.errors import InvalidInput

LOGIN_MIN, LOGIN_MAX = 3, 32
LOGIN_CHARS = r"A-Za-z0-9_.\-"
LOGIN_PATTERN = re.compile(f"[{LOGIN_CHARS}]{{{LOGIN_MIN},{LOGIN_MAX}}}")
EMAIL_MAX = 254
PASSWORD_MIN, PASSWORD_MAX = 8, 1024
NAME_MAX = 64

# JSON Schema of each rule, as far as JSON Schema can say it (not: no login inside the
# password, no common password).
SCHEMAS: dict[str, dict[str, object]] = {
    "login": {"type": "string", "pattern": f"^{LOGIN_PATTERN.pattern}$"},
    "email": {"type": "string", "format": "email", "maxLength": EMAIL_MAX},
    "password": {"type": "string", "minLength": PASSWORD_MIN, "maxLength": PASSWORD_MAX},
    "name": {"type": "string", "maxLength": NAME_MAX},
}

# zxcvbn's list of the 30,000 most common passwords from public breaches; only those that
# pass the length rule can reach this check. A set lookup costs the same at any length.
_COMMON_PASSWORDS = frozenset(
    word for word in FREQUENCY_LISTS["passwords"] if len(word) >= PASSWORD_MIN
)


def login(value: str, field: str = "login") -> str:
    if not LOGIN_PATTERN.fullmatch(value):
        raise InvalidInput(field, f"use {LOGIN_MIN} to {LOGIN_MAX} characters of A-Z a-z 0-9 _ . -")
    return value


def email(value: str, field: str = "email") -> str:
    if len(value) > EMAIL_MAX:
        raise InvalidInput(field, f"at most {EMAIL_MAX} characters")
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput(field, f"not a valid email address ({exc})") from None
    # Its case-insensitive key fits the same column: email-validator limits the address to
    # 254 bytes of UTF-8, and folding never makes more characters than that ("İ", the one
    # character whose lower case is longer, is two bytes and folds to two characters).
    return checked.normalized


def password(value: str, *, login: str, email: str, field: str = "password") -> str:
    if not PASSWORD_MIN <= len(value) <= PASSWORD_MAX:
        raise InvalidInput(field, f"use {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    folded = value.lower()
    if login.lower() in folded:
        raise InvalidInput(field, "must not contain the login")
    if folded == email.lower():
        raise InvalidInput(field, "must not be the email address")
    if folded in _COMMON_PASSWORDS:
        raise InvalidInput(field, "is one of the most common passwords; choose another")
    return value


# Zero-width (non-)joiners are part of how some scripts are written (Persian, Indic
# scripts, emoji sequences); every other format character (bidi overrides, zero-width
# spaces, ...) only disguises what a name looks like.
_JOINERS = frozenset("\u200c\u200d")


def name(value: str, field: str) -> str:
    value = value.strip()
    if len(value) > NAME_MAX:
        raise InvalidInput(field, f"at most {NAME_MAX} characters")
    if _has_control(value):
        raise InvalidInput(field, "must not contain control characters")
    if _has_break(value):
        raise InvalidInput(field, "must not contain line or paragraph separators")
    if any(unicodedata.category(char) == "Cf" and char not in _JOINERS for char in value):
        raise InvalidInput(field, "must not contain invisible formatting characters")
    return value


def lookup_key(value: str) -> str | None:
    """The key a login form's input is looked up by; None when it can name no account.

    Checked after folding, which can lengthen the text past any column it could match.
    """
    if len(value) > EMAIL_MAX or _has_control(value) or _has_break(value):
        return None
    folded = key(value)
    if len(folded) > (EMAIL_MAX if "@" in folded else LOGIN_MAX):
        return None
    return folded


def _has_control(value: str) -> bool:
    # Cc: control characters (NUL included, which PostgreSQL cannot store);
    # Cs: lone surrogates, which no database encoding accepts.
    return any(unicodedata.category(char) in ("Cc", "Cs") for char in value)


def _has_break(value: str) -> bool:
    # Zl, Zp: U+2028 and U+2029, line breaks to JavaScript, many log viewers and editors,
    # so a name holding one could start a forged second line wherever it is shown.
    return any(unicodedata.category(char) in ("Zl", "Zp") for char in value)


def key(value: str) -> str:
    """The case-insensitive form under which logins and emails are unique."""
    return value.lower()
