"""GraphiQL at /graphql and Swagger UI at /docs: pages whose every file is the service's own."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from app.pages import ASSET_CACHE, VENDORED

BROWSER = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
SOURCES = ("script-src", "style-src", "connect-src", "font-src", "img-src", "default-src")


def _loaded(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


@pytest.mark.parametrize("path", ["/graphql", "/docs"])
def test_page_loads_only_versioned_assets_of_its_own(client: TestClient, path: str) -> None:
    response = client.get(path, headers=BROWSER)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    urls = [url for url in _loaded(response.text) if url != "data:,"]
    assert urls
    for url in urls:
        assert re.fullmatch(r"/assets/[a-z-]+@[0-9a-f.]+/[\w./-]+", url), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["cache-control"] == ASSET_CACHE
    assert "//" not in response.text.replace("<!doctype", "")


@pytest.mark.parametrize("path", ["/graphql", "/docs"])
def test_page_policy_names_no_other_host(client: TestClient, path: str) -> None:
    policy = client.get(path, headers=BROWSER).headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "connect-src"):
        assert directives[name] == "'self'"
    for name in SOURCES:
        sources = directives.get(name, "").split()
        assert all(source in {"'self'", "'none'", "data:"} for source in sources), name
    assert directives["frame-ancestors"] == "'none'"


def test_scripts_and_styles_have_their_media_types(client: TestClient) -> None:
    html = client.get("/graphql", headers=BROWSER).text
    for url in _loaded(html):
        if url.endswith((".js", ".css")):
            kind = "text/javascript" if url.endswith(".js") else "text/css"
            assert client.get(url).headers["content-type"] == f"{kind}; charset=utf-8"


def test_every_vendored_package_ships_its_licence(client: TestClient) -> None:
    pages = client.get("/graphql", headers=BROWSER).text + client.get("/docs").text
    licences = re.findall(r'<link rel="license" href="([^"]+)"', pages)
    assert {url.split("/")[2].split("@")[0] for url in licences} == set(VENDORED)
    for url in licences:
        response = client.get(url)
        assert response.status_code == 200
        assert re.search(r"copyright|licen[cs]e", response.text, re.IGNORECASE), url


def test_unknown_or_unversioned_asset_is_404(client: TestClient) -> None:
    for url in (
        "/assets/graphiql@0.0.1/graphiql.min.js",
        "/assets/graphiql/graphiql.min.js",
        "/assets/graphiql@4.1.2/package.json",
        "/assets/accounts@000000000000/graphiql.js",
        "/assets/../core/config.py",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "message" in response.json()


def test_graphql_api_requests_still_get_json(client: TestClient) -> None:
    response = client.get("/graphql", params={"query": "{ me { username } }"}, headers=BROWSER)
    assert response.json() == {"data": {"me": None}}
    assert "default-src 'none'" in response.headers["content-security-policy"]
