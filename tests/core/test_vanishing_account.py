"""An account deleted while one of its requests is half-way answers "not logged in", not 500.

The deletion is slipped in at the slow step (hashing, image decoding) of a real service call
on a real database, where a second request could land in production.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from core import accounts, avatars, sessions
from core.errors import NotAuthenticated
from core.runtime import Runtime
from core.sessions import Principal
from tests.images import encode
from tests.types import MakeSettings

PASSWORD = "correct horse battery"
T = TypeVar("T")


def _delete_first(
    rt: Runtime, principal: Principal, step: Callable[..., Awaitable[T]]
) -> Callable[..., Awaitable[T]]:
    async def deleting(*args: object, **kwargs: object) -> T:
        await accounts.delete_account(rt, principal)
        return await step(*args, **kwargs)

    return deleting


async def _signed_up(rt: Runtime) -> Principal:
    await rt.db.migrate()
    signed_in = await accounts.signup(
        rt, login="alice", password=PASSWORD, email="a@b.co", client="127.0.0.1", user_agent="test"
    )
    principal = await sessions.resolve(rt.db, signed_in.session.token)
    assert principal is not None
    return principal


def test_password_change_of_an_account_deleted_meanwhile(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        rt = Runtime.create(make_settings())
        try:
            principal = await _signed_up(rt)
            monkeypatch.setattr(
                rt.passwords, "hash", _delete_first(rt, principal, rt.passwords.hash)
            )
            with pytest.raises(NotAuthenticated):
                await accounts.change_password(
                    rt,
                    principal,
                    old_password=PASSWORD,
                    new_password="another passphrase",
                    client="t",
                    user_agent="test",
                )
        finally:
            rt.passwords.close()
            await rt.db.dispose()

    asyncio.run(scenario())


def test_avatar_of_an_account_deleted_meanwhile(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        rt = Runtime.create(make_settings())
        try:
            principal = await _signed_up(rt)
            monkeypatch.setattr(
                rt.images, "normalise", _delete_first(rt, principal, rt.images.normalise)
            )
            with pytest.raises(NotAuthenticated):
                await avatars.replace(rt, principal, encode("PNG"))
        finally:
            rt.passwords.close()
            await rt.db.dispose()

    asyncio.run(scenario())
