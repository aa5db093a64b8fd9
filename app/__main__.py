"""`python -m app` serves; `python -m app migrate` only migrates."""

from __future__ import annotations

import asyncio
import logging
import sys

import uvicorn

from core.config import SettingsError, load_settings


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
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
    uvicorn.run(
        "app.asgi:app",
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        proxy_headers=False,
        access_log=settings.access_log,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
