"""`python -m app` serves; `python -m app migrate` only migrates."""

from __future__ import annotations

import asyncio
import logging.config
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from app.logs import logging_config
from core.config import SettingsError, load_settings


def main(argv: list[str]) -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    log_config = logging_config(settings.log_format)
    logging.config.dictConfig(log_config)
    if argv[:1] == ["migrate"]:
        from core.db import Database

        async def migrate() -> None:
            database = Database(settings)
            await database.migrate()
            await database.dispose()

        asyncio.run(migrate())
        return 0
    if argv:
        print("usage: python -m app [migrate]", file=sys.stderr)
        return 2
    with metrics_directory(settings.workers):
        uvicorn.run(
            "app.asgi:app",
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            proxy_headers=False,
            # httptools with bounds on the request line and headers (app/protocol.py).
            http="app.protocol:BoundedHttpTools",
            log_config=log_config,
            access_log=settings.access_log,
            server_header=False,
            timeout_graceful_shutdown=10,
        )
    return 0


@contextmanager
def metrics_directory(workers: int) -> Iterator[None]:
    """prometheus-client's multiprocess mode, for as long as the server runs, if WORKERS > 1.

    The directory is new for each run (files left by an earlier one would be added to this
    one's counts) and set before any worker imports prometheus-client, which reads it then.
    One process needs none: its registry is the figure, process metrics included.
    """
    for name in ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir"):
        os.environ.pop(name, None)
    if workers == 1:
        yield
        return
    directory = tempfile.mkdtemp(prefix="accounts-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    try:
        yield
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
