"""Plain-text message templates (files in texts/), rendered with `string.Template`.

A template's first line is its subject (`Subject: ...`), then a blank line, then the body.
Only the body takes values; subjects hold nothing a user typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from string import Template

TEMPLATES = Path(__file__).with_name("texts")


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    body: str


@cache
def _load(name: str) -> tuple[str, Template]:
    head, _, body = (TEMPLATES / f"{name}.txt").read_text(encoding="utf-8").partition("\n\n")
    if not head.startswith("Subject: "):
        raise ValueError(f"template {name}: the first line must be 'Subject: ...'")
    return head.removeprefix("Subject: ").strip(), Template(body)


def render(name: str, **values: str) -> Rendered:
    """The template `name` with every `$placeholder` filled; a missing value is a KeyError."""
    subject, body = _load(name)
    return Rendered(subject=subject, body=body.substitute(values))


def duration(seconds: int) -> str:
    """A TTL in words: '24 hours', '30 minutes', '90 seconds'."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0 and seconds >= size and not (unit == "day" and seconds < 2 * size):
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"
