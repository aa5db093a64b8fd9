"""The one logging set-up: every logger (ours, uvicorn's, SQLAlchemy's) writes through it.

The standard library's logging with python-json-logger's formatter, rather than structlog:
everything that logs here (uvicorn, SQLAlchemy, alembic, our modules) already logs through
the standard library, and one `dictConfig` handed to uvicorn configures it in every worker
process. structlog would add a second logging API and a bridge back to this one for the
same lines. `LOG_FORMAT=text` (default) writes one readable line per record; `json` one JSON
object per line with `time`, `level`, `logger`, `message`, `request_id` (null outside a
request) and, for errors, `traceback`.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from core.request_id import REQUEST_ID

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = "%(levelname)s %(name)s %(message)s %(request_id)s"
JSON_NAMES = {"levelname": "level", "name": "logger", "exc_info": "traceback"}
# uvicorn adds a coloured copy of some messages; the plain one is enough.
NOT_FIELDS = [*RESERVED_ATTRS, "color_message", "taskName"]


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request being served when it was written."""

    def __init__(self, default: str | None = None) -> None:
        super().__init__()
        self.default = default

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get() or self.default
        return True


class AccessLineFilter(logging.Filter):
    """uvicorn's access line without query values (a reset link's token travels in one).

    The request's parts also become fields of their own in JSON lines.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            client, method, target, version, status = args
            target = redact_query(str(target))
            record.args = (client, method, target, version, status)
            record.__dict__.update(client=client, method=method, path=target, status=status)
        return True


def redact_query(target: str) -> str:
    """`/path?a=1&b=2` → `/path?a=REDACTED&b=REDACTED`: which parameters came, not their values."""
    path, mark, query = target.partition("?")
    if not mark:
        return target
    names = (part.split("=", 1)[0] for part in query.split("&") if part)
    return f"{path}?" + "&".join(f"{name}=REDACTED" for name in names)


def logging_config(log_format: Literal["text", "json"]) -> dict[str, Any]:
    """The `logging.config.dictConfig` of every process, uvicorn's loggers included."""
    formatters: dict[str, dict[str, Any]] = {
        "text": {"format": TEXT_FORMAT},
        "json": {
            "()": JsonFormatter,
            "fmt": JSON_FIELDS,
            "rename_fields": JSON_NAMES,
            "reserved_attrs": NOT_FIELDS,
            "timestamp": "time",
        },
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": RequestIdFilter, "default": "-" if log_format == "text" else None},
            "access_line": {"()": AccessLineFilter},
        },
        "formatters": {log_format: formatters[log_format]},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": log_format,
                "filters": ["request_id"],
            },
        },
        "loggers": {
            # uvicorn's own names; whether access lines are written at all is uvicorn's
            # `access_log` (ACCESS_LOG), which empties the access logger's handlers when off.
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {
                "handlers": ["default"],
                "level": "INFO",
                "propagate": False,
                "filters": ["access_line"],
            },
        },
        "root": {"handlers": ["default"], "level": "INFO"},
    }
