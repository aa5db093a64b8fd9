"""CORS only for configured origins, never reflected; bounded password-hashing queue."""

from __future__ import annotations

import asyncio

import pytest

from core.errors import TooManyRequests
from core.security import PasswordHasher
from tests.types import MakeClient


def test_cors_allows_only_listed_origins_with_credentials(make_client: MakeClient) -> None:
    client = make_client(cors_origins="https://app.example")
    allowed = client.get("/healthz", headers={"origin": "https://app.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    other = client.get("/healthz", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    preflight = client.options(
        "/graphql",
        headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_no_cors_headers_without_configured_origins(make_client: MakeClient) -> None:
    response = make_client().get("/healthz", headers={"origin": "https://app.example"})
    assert "access-control-allow-origin" not in response.headers


def test_hashing_queue_is_bounded() -> None:
    async def flood() -> list[object]:
        hasher = PasswordHasher(10, max_waiting=0)
        return await asyncio.gather(
            *(hasher.hash("a long enough password", client="192.0.2.1") for _ in range(20)),
            return_exceptions=True,
        )

    results = asyncio.run(flood())
    refused = [r for r in results if isinstance(r, TooManyRequests)]

    assert refused, "a flood past the queue bound must be refused quickly"
    assert all(isinstance(r, str | TooManyRequests) for r in results)
    assert refused[0].retry_after == 1


def test_listed_origin_can_read_a_413(make_client: MakeClient) -> None:
    client = make_client(cors_origins="https://app.example")
    response = client.post(
        "/login",
        content=b"x" * (1024 * 1024 + 1),
        headers={"origin": "https://app.example", "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["access-control-allow-origin"] == "https://app.example"


def test_listed_origin_can_read_retry_after_and_request_id(make_client: MakeClient) -> None:
    # A 429's Retry-After is what a frontend shows ("try again in 30 s"); without being
    # exposed, the browser hides it from fetch().
    client = make_client(cors_origins="https://app.example")
    response = client.get("/healthz", headers={"origin": "https://app.example"})
    exposed = {
        name.strip().lower()
        for name in response.headers["access-control-expose-headers"].split(",")
    }
    assert exposed == {"retry-after", "x-request-id"}


@pytest.mark.parametrize(
    "refused",
    [
        {"origin": "https://evil.example", "access-control-request-method": "POST"},
        {"origin": "https://app.example", "access-control-request-method": "PATCH"},
        {
            "origin": "https://app.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type, x-evil",
        },
    ],
)
def test_refused_preflight_is_a_json_error(
    make_client: MakeClient, refused: dict[str, str]
) -> None:
    client = make_client(cors_origins="https://app.example")
    preflight = client.options("/login", headers=refused)
    assert preflight.status_code == 400
    assert preflight.headers["content-type"] == "application/json"
    assert set(preflight.json()) == {"message"}
    assert "not allowed" in preflight.json()["message"]
    if refused["origin"] != "https://app.example":
        assert "access-control-allow-origin" not in preflight.headers
