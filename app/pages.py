"""The pages a browser opens (GraphiQL at /graphql, Swagger UI at /docs) and their assets.

Everything a page loads comes from this service: the npm packages pinned in
`static/package-lock.json` (installed by `make` into `static/node_modules`) and this
service's own small files beside them. Each is served under a URL that names its version
(`/assets/graphiql@4.1.2/…`; for our own files, a digest of the content), so it can be cached
for a year, and the pages allow no script, style or connection from any other host.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from html import escape
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

from rest_compat.translator import message_response
from schema.view import GraphQLView

STATIC = Path(__file__).resolve().with_name("static")
PACKAGES = STATIC / "node_modules"
ASSET_CACHE = "public, max-age=31536000, immutable"

# What the pages load from each npm package, and the package's licence texts.
VENDORED: dict[str, tuple[str, ...]] = {
    "react": ("umd/react.production.min.js", "LICENSE"),
    "react-dom": ("umd/react-dom.production.min.js", "LICENSE"),
    "graphiql": ("graphiql.min.js", "graphiql.min.css", "LICENSE"),
    "swagger-ui-dist": (
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "LICENSE",
        "NOTICE",
        "swagger-ui-bundle.js.LICENSE.txt",
    ),
}
OWN = ("graphiql.js", "docs.js", "pages.css")
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css"}

# Fonts and icons come inline in the packages' style sheets (data: URLs); nothing else may
# load, run or connect anywhere but here.
PAGE_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)


class AssetsMissing(RuntimeError):
    """The npm packages the pages need are not installed."""


@dataclass(frozen=True)
class Assets:
    """Every file the pages may load: its versioned URL, and the file behind each URL."""

    urls: dict[str, str]  # "graphiql/graphiql.min.js" -> "/assets/graphiql@4.1.2/graphiql.min.js"
    files: dict[str, Path]  # "graphiql@4.1.2/graphiql.min.js" -> the file

    @classmethod
    def load(cls) -> Assets:
        urls: dict[str, str] = {}
        files: dict[str, Path] = {}
        for package, names in VENDORED.items():
            try:
                manifest = json.loads((PACKAGES / package / "package.json").read_bytes())
            except FileNotFoundError:
                raise AssetsMissing(
                    f"{PACKAGES / package} is missing: `make run` (or `make assets`) installs "
                    "the pages' npm packages pinned in app/static/package-lock.json"
                ) from None
            for name in names:
                key = f"{package}@{manifest['version']}/{name}"
                urls[f"{package}/{name}"] = f"/assets/{key}"
                files[key] = PACKAGES / package / name
        for name in OWN:
            digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]
            key = f"accounts@{digest}/{name}"
            urls[name] = f"/assets/{key}"
            files[key] = STATIC / name
        for path in files.values():
            if not path.is_file():
                raise AssetsMissing(f"{path} is missing: reinstall with `make assets`")
        return cls(urls=urls, files=files)

    def tags(self, *names: str) -> str:
        """The <link>/<script> elements that load these files, in this order."""
        lines = []
        for name in names:
            url = escape(self.urls[name])
            if name.endswith(".css"):
                lines.append(f'<link rel="stylesheet" href="{url}">')
            elif name.endswith(".js"):
                lines.append(f'<script src="{url}"></script>')
            else:
                lines.append(f'<link rel="license" href="{url}">')
        return "\n    ".join(lines)


@cache
def assets() -> Assets:
    return Assets.load()


async def asset(request: Request) -> Response:
    path = assets().files.get(request.path_params["path"])
    if path is None:
        return message_response(404, "No such asset")
    media_type = MEDIA_TYPES.get(path.suffix, "text/plain")
    return FileResponse(
        path, media_type=f"{media_type}; charset=utf-8", headers={"cache-control": ASSET_CACHE}
    )


PAGE = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>{title}</title>
    <link rel="icon" href="data:,">
    {head}
  </head>
  <body>
    <div id="{root}">Loading…</div>
    {scripts}
  </body>
</html>
"""


def page(title: str, root: str, head: tuple[str, ...], scripts: tuple[str, ...]) -> Response:
    html = PAGE.format(
        title=escape(title),
        root=root,
        head=assets().tags(*head),
        scripts=assets().tags(*scripts),
    )
    return HTMLResponse(html, headers={"content-security-policy": PAGE_POLICY})


def graphiql_page() -> Response:
    return page(
        "GraphiQL · Accounts API",
        "graphiql",
        head=(
            "graphiql/graphiql.min.css",
            "pages.css",
            "graphiql/LICENSE",
            "react/LICENSE",
            "react-dom/LICENSE",
        ),
        scripts=(
            "react/umd/react.production.min.js",
            "react-dom/umd/react-dom.production.min.js",
            "graphiql/graphiql.min.js",
            "graphiql.js",
        ),
    )


async def docs(request: Request) -> Response:
    return page(
        "REST API · Accounts API",
        "swagger-ui",
        head=(
            "swagger-ui-dist/swagger-ui.css",
            "swagger-ui-dist/LICENSE",
            "swagger-ui-dist/NOTICE",
            "swagger-ui-dist/swagger-ui-bundle.js.LICENSE.txt",
        ),
        scripts=("swagger-ui-dist/swagger-ui-bundle.js", "docs.js"),
    )


class GraphiQLView(GraphQLView):
    """The /graphql view; when Strawberry decides a browser wants the IDE, this page."""

    async def render_graphql_ide(self, request: Request) -> Response:
        return graphiql_page()
