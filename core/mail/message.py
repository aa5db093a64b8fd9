"""Building RFC 5322 messages with the standard library, so no value can become a header."""

from __future__ import annotations

import email
import email.policy
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from email_validator import validate_email

# The headers `build` writes, and the only ones a built message may read back with.
HEADERS: tuple[str, ...] = ("From", "To", "Subject", "Date", "Message-ID")
HEADERS += ("Content-Type", "Content-Transfer-Encoding", "MIME-Version")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message and its SMTP envelope, which is never read back from the headers."""

    message: EmailMessage
    sender: str
    recipient: str


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
    spaces (the API refuses them already; this holds whatever reaches the builder), and no
    RFC 2047 encoded-word survives: the email package (3.11) decodes one even inside a
    quoted name and writes out what it decodes to, line breaks included. A name is never
    meant as one, so its `=?` is broken apart."""
    cleaned = "".join(" " if unicodedata.category(char)[0] in "CZ" else char for char in value)
    return " ".join(cleaned.split()).replace("=?", "= ?")


def mailbox(address: str) -> tuple[str, str]:
    """An address's local part and its domain in ASCII (an international domain as
    punycode, which every server takes). ValueError if it is not an address."""
    checked = validate_email(address, check_deliverability=False)
    return checked.local_part, checked.ascii_domain


def build(
    *,
    sender: Address,
    recipient: str,
    name: str,
    subject: str,
    body: str,
    message_id: str,
    date: float,
) -> Outgoing:
    """A UTF-8 plain-text message. Header values go through the email package's header
    registry, and the result is read back before it goes out: a name that would not read
    back as written (the package unquotes a long name when it folds it, so its commas or
    `<…>` would become addresses) is left out, and a message whose headers still would not
    (an added header, another address) is a ValueError."""
    local, domain = mailbox(recipient)
    for shown in (display_name(name), ""):
        to = Address(display_name=shown, username=local, domain=domain)
        message = EmailMessage()
        message["From"] = sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = format_datetime(datetime.fromtimestamp(date, UTC))
        message["Message-ID"] = message_id
        # 7bit keeps each link on one line, readable in the raw .eml; a body that is not
        # ASCII (an international address) needs quoted-printable.
        cte = "7bit" if body.isascii() else "quoted-printable"
        message.set_content(body, charset="utf-8", cte=cte)
        if _reads_back(message, sender=sender.addr_spec, recipient=to.addr_spec, name=shown):
            return Outgoing(message=message, sender=sender.addr_spec, recipient=to.addr_spec)
    raise ValueError("the message's headers would not read back as written")


def _reads_back(message: EmailMessage, *, sender: str, recipient: str, name: str) -> bool:
    utf8 = not (sender + recipient).isascii()
    raw = message.as_bytes(policy=email.policy.SMTPUTF8 if utf8 else email.policy.SMTP)
    # Read as text: the bytes parser would turn an address's UTF-8 into surrogates.
    back = email.message_from_string(raw.decode("utf-8"), policy=email.policy.default)
    try:
        (to,) = back["To"].addresses
        (sent_by,) = back["From"].addresses
    except (TypeError, ValueError):
        return False
    as_written = (to.addr_spec, to.display_name, sent_by.addr_spec) == (recipient, name, sender)
    return as_written and sorted(back.keys()) == sorted(HEADERS)
