"""The link pages of the email flows: `GET /verify-email` and `GET /reset-password`.

Small, self-contained HTML (no third-party asset; inline style and script allowed by their
hashes in the page's Content-Security-Policy) that finish the action by calling the JSON
API from the browser. Opening a page changes nothing: only the button does.
"""

from __future__ import annotations

import base64
import hashlib
from html import escape
from pathlib import Path
from string import Template

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

PAGES = Path(__file__).with_name("templates")


def _csp_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def _page(title: str, content_file: str, endpoint: str) -> tuple[bytes, str]:
    """The page's HTML and its Content-Security-Policy, built once at start-up."""
    style = (PAGES / "page.css").read_text(encoding="utf-8")
    script = (PAGES / "page.js").read_text(encoding="utf-8")
    html = Template((PAGES / "page.html").read_text(encoding="utf-8")).substitute(
        title=escape(title),
        style=style,
        script=script,
        endpoint=escape(endpoint),
        content=(PAGES / content_file).read_text(encoding="utf-8"),
    )
    policy = "; ".join(
        (
            "default-src 'none'",
            f"script-src {_csp_hash(script)}",
            f"style-src {_csp_hash(style)}",
            "connect-src 'self'",
            "form-action 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        )
    )
    return html.encode("utf-8"), policy


def link_page_routes() -> list[Route]:
    routes = []
    for path, title, content, endpoint in (
        ("/verify-email", "Confirm your email address", "verify_email.html", "/email/verify"),
        ("/reset-password", "Choose a new password", "reset_password.html", "/password/reset"),
    ):
        body, policy = _page(title, content, endpoint)

        async def page(request: Request, body: bytes = body, policy: str = policy) -> Response:
            return HTMLResponse(body, headers={"content-security-policy": policy})

        routes.append(Route(path, page, methods=["GET"]))
    return routes
