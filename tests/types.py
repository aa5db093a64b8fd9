"""The fixtures' factory types, so tests call them with checked arguments and results."""

from __future__ import annotations

from typing import Protocol

from starlette.testclient import TestClient

from core.config import Settings
from tests.faces import Face
from tests.servers import Server


class MakeSettings(Protocol):
    """Settings for this test's database, with some values changed."""

    def __call__(self, **overrides: object) -> Settings: ...


class MakeClient(Protocol):
    """An in-process client of an app built with some settings changed (lifespan run)."""

    def __call__(self, **overrides: object) -> TestClient: ...


class StartServer(Protocol):
    """A real `python -m app` process, on this test's database unless another is named."""

    def __call__(self, database: str | None = None, **settings: str) -> Server: ...


class MakeFace(Protocol):
    """One face (REST or GraphQL, per the test's parameter) of an app with some settings
    changed."""

    def __call__(self, **overrides: object) -> Face: ...
