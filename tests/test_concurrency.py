"""Races: the database's unique constraints decide, and SQLite locking never shows as a 500."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from app.config import Settings
from app.server import create_app

PASSWORD = "correct horse battery"


async def _serve(settings: Settings, requests: int, make_body: object) -> Counter[int]:
    app = create_app(settings)
    # Run the lifespan (migrations) by hand: httpx's ASGI transport does not.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        lifespan_app = app.app  # type: ignore[attr-defined]
        async with lifespan_app.router.lifespan_context(lifespan_app):
            responses = await asyncio.gather(
                *(c.post("/signup", json=make_body(i)) for i in range(requests))  # type: ignore[operator]
            )
    return Counter(response.status_code for response in responses)


def test_simultaneous_signups_of_one_login_make_one_account(make_settings: object) -> None:
    settings: Settings = make_settings()  # type: ignore[operator]

    def body(i: int) -> dict[str, str]:
        return {"login": "alice", "password": PASSWORD, "email": f"alice{i}@example.com"}

    assert asyncio.run(_serve(settings, 24, body)) == Counter({200: 1, 409: 23})


def test_simultaneous_signups_of_many_logins_all_succeed(make_settings: object) -> None:
    settings: Settings = make_settings()  # type: ignore[operator]

    def body(i: int) -> dict[str, str]:
        return {"login": f"user{i}", "password": PASSWORD, "email": f"user{i}@example.com"}

    assert asyncio.run(_serve(settings, 40, body)) == Counter({200: 40})
