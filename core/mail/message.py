"""Building RFC 5322 messages with the standard library, so no value can become a header."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid


def parse_sender(value: str) -> Address:
    """MAIL_FROM (`Name <address>` or a bare address) as an Address; ValueError if invalid."""
    message = EmailMessage()
    try:
        message["From"] = value
        addresses = message["From"].addresses
    except (ValueError, IndexError, TypeError) as exc:
        raise ValueError(f"not an address like 'Accounts <no-reply@example.com>' ({exc})") from None
    if len(addresses) != 1 or not addresses[0].domain:
        raise ValueError("must name exactly one address like 'Accounts <no-reply@example.com>'")
    address: Address = addresses[0]
    return address


def new_message_id(sender: Address) -> str:
    return make_msgid(domain=sender.domain)


def display_name(value: str) -> str:
    """A name fit for a header: line breaks and other control or format characters become
    spaces (the API refuses them already; this holds whatever reaches the builder)."""
    cleaned = "".join(" " if unicodedata.category(char)[0] in "CZ" else char for char in value)
    return " ".join(cleaned.split())


def build(
    *,
    sender: Address,
    recipient: str,
    name: str,
    subject: str,
    body: str,
    message_id: str,
    date: float,
) -> EmailMessage:
    """A UTF-8 plain-text message. Header values go through the email package's header
    registry, which refuses line breaks, so nothing in them can start a new header."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = Address(display_name=display_name(name), addr_spec=recipient)
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.fromtimestamp(date, UTC))
    message["Message-ID"] = message_id
    # 7bit keeps each link on one line, readable in the raw .eml; a body that is not ASCII
    # (an international address) needs quoted-printable.
    message.set_content(body, charset="utf-8", cte="7bit" if body.isascii() else "quoted-printable")
    return message
