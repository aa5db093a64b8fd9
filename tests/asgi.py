"""Many requests at once against one in-process app (its lifespan run), for races."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
from starlette.applications import Starlette

from app.server import create_app
from core.config import Settings


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    json: object = None
    headers: dict[str, str] = field(default_factory=dict)


async def _gather(
    settings: Settings, prepare: Sequence[Call], calls: Sequence[Call]
) -> list[httpx.Response]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=60) as client:
        lifespan_app = app
        while not isinstance(lifespan_app, Starlette):  # through the outer middleware
            lifespan_app = lifespan_app.app  # type: ignore[attr-defined]
        async with lifespan_app.router.lifespan_context(lifespan_app):
            for call in prepare:
                response = await client.request(
                    call.method, call.url, json=call.json, headers=call.headers
                )
                assert response.status_code == 200, response.text
            client.cookies.clear()  # the calls come from strangers
            responses = await asyncio.gather(
                *(
                    client.request(call.method, call.url, json=call.json, headers=call.headers)
                    for call in calls
                )
            )
    return responses


def responses(
    settings: Settings, calls: Sequence[Call], *, prepare: Sequence[Call] = ()
) -> list[httpx.Response]:
    """The answers to `calls`, in order, all sent at once (after `prepare`, one by one)."""
    return asyncio.run(_gather(settings, prepare, calls))


def statuses(
    settings: Settings, calls: Sequence[Call], *, prepare: Sequence[Call] = ()
) -> Counter[int]:
    """The statuses of `calls`, all sent at once (after `prepare`, sent one by one)."""
    return Counter(response.status_code for response in responses(settings, calls, prepare=prepare))
