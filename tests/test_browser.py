"""The pages and cross-site cookies in a real browser: Debian's Chromium, driven by Playwright.

Every test talks to real server processes. Chromium is never downloaded: without
/usr/bin/chromium these tests say so and skip (and fail under CI, which installs it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Error,
    Page,
    Route,
    expect,
    sync_playwright,
)

from tests.servers import Certificate, HttpsServer, Server, StaticSite

CHROMIUM = Path("/usr/bin/chromium")
# Flags that keep a headless Chromium from reaching out on its own (updates, sync, QUIC
# probes) and make it run as root in a container. *.test names all lead to this machine.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP *.test 127.0.0.1",
]
TIMEOUT_MS = 15_000
PASSWORD = "a long enough password"

# A frontend on another origin: it calls every endpoint with the browser's cookies, as a
# single-page application on another host would.
FRONTEND = """<!doctype html>
<html><head><meta charset="utf-8"><title>Frontend</title></head>
<body>
<script>
async function call(api, method, path, body) {
  const init = {method: method, credentials: "include", headers: {}};
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  try {
    const response = await fetch(api + path, init);
    const type = response.headers.get("content-type") || "";
    const answer = type.startsWith("application/json") ? await response.json() : type;
    return {status: response.status, body: answer};
  } catch (error) {
    return {error: String(error)};
  }
}
async function picture() {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 16;
  const blob = await new Promise(done => canvas.toBlob(done, "image/png"));
  const form = new FormData();
  form.append("avatar", blob, "me.png");
  return form;
}
async function useAccount(api, login, password) {
  const steps = {};
  const credentials = {login: login, password: password};
  const email = login + "@example.com";
  steps.signup = await call(api, "POST", "/signup", {...credentials, email: email});
  steps.logout = await call(api, "POST", "/logout");
  steps.login = await call(api, "POST", "/login", credentials);
  steps.read = await call(api, "GET", "/profile");
  steps.update = await call(api, "PUT", "/profile", {firstname: "Frontend"});
  steps.avatar = await call(api, "PUT", "/avatar", await picture());
  const avatar = (steps.avatar.body || {}).avatar || "/avatars/none";
  steps.image = await call(api, "GET", avatar);
  const change = {old_password: password, new_password: password + " too"};
  steps.password = await call(api, "PUT", "/password", change);
  steps.graphql = await call(api, "POST", "/graphql", {query: "{ me { username firstname } }"});
  steps.delete = await call(api, "DELETE", "/profile");
  steps.after = await call(api, "GET", "/profile");
  return steps;
}
</script>
</body></html>
"""


@dataclass(frozen=True)
class Sites:
    """The service (three ways configured) and the frontends that call it."""

    plain: Server  # HTTP; CORS_ORIGINS lists only `listed`
    listed: StaticSite  # http://127.0.0.1:<port>: same site as `plain`, another origin
    unlisted: StaticSite
    none: HttpsServer  # https://api.test: COOKIE_SAMESITE=none for https://front.test
    lax: HttpsServer  # the same with the default SameSite=Lax
    front: StaticSite  # https://front.test:<port>: another site


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium first")
        pytest.skip(f"browser tests need Debian's Chromium at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def sites(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory, browser: Browser
) -> Iterator[Sites]:
    # The database first: while Playwright's sync API runs, its event loop is this thread's
    # running loop, and the PostgreSQL set-up (asyncio.run) cannot start inside it.
    directory = tmp_path_factory.mktemp("browser")
    certificate = Certificate.issue(directory, "api.test", "front.test", "127.0.0.1")
    listed, unlisted = StaticSite(FRONTEND), StaticSite(FRONTEND)
    front = StaticSite(FRONTEND, certificate)
    front_origin = f"https://front.test:{front.port}"
    secure = {"COOKIE_SECURE": "true", "CORS_ORIGINS": front_origin}
    servers: list[Server] = [
        Server(module_database_url, directory, CORS_ORIGINS=f"http://127.0.0.1:{listed.port}"),
        HttpsServer(certificate, module_database_url, directory, COOKIE_SAMESITE="none", **secure),
        HttpsServer(certificate, module_database_url, directory, **secure),
    ]
    try:
        plain, none, lax = (server.wait_ready() for server in servers)
        assert isinstance(none, HttpsServer) and isinstance(lax, HttpsServer)
        yield Sites(plain, listed, unlisted, none, lax, front)
    finally:
        for server in servers:
            server.stop()
        for site in (listed, unlisted, front):
            site.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies, no storage) per test."""
    # The throw-away certificate is not in Chromium's store; HTTP tests are unaffected.
    context = browser.new_context(ignore_https_errors=True)
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


def _offline_page(context: BrowserContext, origin: str) -> tuple[Page, list[str]]:
    """A page that may reach only `origin`, and what went wrong on it.

    Requests anywhere else are refused and recorded, as are console errors (where a
    Content-Security-Policy refusal shows) and uncaught script errors.
    """
    problems: list[str] = []

    def only_origin(route: Route) -> None:
        if route.request.url.startswith(origin + "/"):
            route.continue_()
        else:
            problems.append(f"request to {route.request.url}")
            route.abort()

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    def script_error(error: Error) -> None:
        problems.append(f"script error: {error}")

    context.route("**/*", only_origin)
    page = context.new_page()
    page.on("console", console)
    page.on("pageerror", script_error)
    return page, problems


def test_graphiql_runs_a_query_offline_with_the_session_cookie(
    sites: Sites, context: BrowserContext
) -> None:
    server = sites.plain
    signup = {"login": "grace", "password": PASSWORD, "email": "grace@example.com"}
    # The context's request client shares the browser's cookie jar: GraphiQL must send it.
    assert context.request.post(f"{server.url}/signup", data=signup).status == 200
    page, problems = _offline_page(context, server.url)

    page.goto(f"{server.url}/graphql")
    editor = page.locator(".graphiql-query-editor .CodeMirror")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.type("{ me { username } }")
    typed = editor.evaluate("element => element.CodeMirror.getValue()")
    assert typed.replace(" ", "").startswith("{me{username}}")
    page.locator(".graphiql-execute-button").click()

    expect(page.locator(".graphiql-response")).to_contain_text('"username": "grace"')
    assert problems == []


def test_graphiql_keeps_doc_explorer_history_and_editors(
    sites: Sites, context: BrowserContext
) -> None:
    server = sites.plain
    page, problems = _offline_page(context, server.url)
    page.goto(f"{server.url}/graphql")

    expect(page.get_by_role("button", name="Variables")).to_be_visible()
    expect(page.get_by_role("button", name="Headers")).to_be_visible()
    expect(page.get_by_role("button", name="Show History")).to_be_visible()
    page.get_by_role("button", name="Show Documentation Explorer").click()
    explorer = page.locator(".graphiql-doc-explorer")
    explorer.get_by_text("Mutation", exact=True).click()
    expect(explorer.locator(".graphiql-doc-explorer-field-name", has_text="login")).to_have_count(1)
    assert problems == []


def test_docs_lists_every_rest_endpoint_offline(sites: Sites, context: BrowserContext) -> None:
    server = sites.plain
    with server.client() as client:
        paths = client.get("/openapi.json").json()["paths"]
    page, problems = _offline_page(context, server.url)
    page.goto(f"{server.url}/docs")

    expect(page.locator('.opblock-summary-path[data-path="/login"]')).to_be_visible()
    shown = page.locator(".opblock-summary-path").evaluate_all(
        "elements => elements.map(element => element.dataset.path)"
    )
    assert set(shown) == set(paths)
    assert problems == []


def _use_account(context: BrowserContext, page_url: str, api: str, login: str) -> Any:
    page = context.new_page()
    page.goto(page_url)
    return page.evaluate("(args) => useAccount(...args)", [api, login, PASSWORD])


def _assert_every_step_worked(outcome: Any, login: str) -> None:
    statuses = {step: answer.get("status") for step, answer in outcome.items()}
    assert statuses == {
        **dict.fromkeys(
            ["signup", "logout", "login", "read", "update", "avatar", "image", "password"], 200
        ),
        **{"graphql": 200, "delete": 200, "after": 403},
    }, json.dumps(outcome)
    assert outcome["read"]["body"]["username"] == login
    assert outcome["avatar"]["body"]["firstname"] == "Frontend"
    assert outcome["image"]["body"] == "image/png"
    assert outcome["graphql"]["body"]["data"]["me"] == {"username": login, "firstname": "Frontend"}


def test_listed_origin_uses_every_endpoint_with_credentials(
    sites: Sites, context: BrowserContext
) -> None:
    frontend = f"http://127.0.0.1:{sites.listed.port}/"
    outcome = _use_account(context, frontend, sites.plain.url, "heidi")
    _assert_every_step_worked(outcome, "heidi")


def test_unlisted_origin_is_refused(sites: Sites, context: BrowserContext) -> None:
    frontend = f"http://127.0.0.1:{sites.unlisted.port}/"
    outcome = _use_account(context, frontend, sites.plain.url, "ivan")

    for step, answer in outcome.items():
        assert "Failed to fetch" in answer.get("error", ""), (step, json.dumps(outcome))
    with sites.plain.client() as client:
        login = client.post("/login", json={"login": "ivan", "password": PASSWORD})
    assert login.status_code == 403  # the preflight refused, so no account was made


READ_THROTTLED = """async (api) => {
    for (let attempt = 0; attempt < 200; attempt++) {
        const response = await fetch(api + "/login", {
            method: "POST",
            credentials: "include",
            headers: {"content-type": "application/json"},
            body: JSON.stringify({login: "rita", password: "not her password " + attempt}),
        });
        if (response.status === 429) {
            return {
                retryAfter: response.headers.get("retry-after"),
                requestId: response.headers.get("x-request-id"),
            };
        }
    }
    return null;
}"""


def test_listed_origin_reads_retry_after_and_request_id(
    sites: Sites, context: BrowserContext
) -> None:
    # Without Access-Control-Expose-Headers the browser hides both from fetch() (null).
    page = context.new_page()
    page.goto(f"http://127.0.0.1:{sites.listed.port}/")
    throttled = page.evaluate(READ_THROTTLED, sites.plain.url)
    assert throttled is not None, "no 429 came"
    assert int(throttled["retryAfter"]) >= 1
    assert throttled["requestId"]


def test_another_site_uses_every_endpoint_with_samesite_none(
    sites: Sites, context: BrowserContext
) -> None:
    frontend = f"https://front.test:{sites.front.port}/"
    api = f"https://api.test:{sites.none.port}"
    outcome = _use_account(context, frontend, api, "judy")
    _assert_every_step_worked(outcome, "judy")


def test_another_site_loses_the_session_with_samesite_lax(
    sites: Sites, context: BrowserContext
) -> None:
    frontend = f"https://front.test:{sites.front.port}/"
    api = f"https://api.test:{sites.lax.port}"
    outcome = _use_account(context, frontend, api, "mallory")

    # CORS lets the frontend read the answers, but a Lax cookie never rides a cross-site
    # request: signing up and logging in work, and every next request is not logged in.
    assert outcome["signup"]["status"] == 200, json.dumps(outcome)
    assert outcome["login"]["status"] == 200
    for step in ("logout", "read", "update", "avatar", "password", "delete"):
        assert outcome[step]["status"] == 403, (step, json.dumps(outcome))
    assert outcome["graphql"]["body"]["data"]["me"] is None


def test_reset_page_sends_json_and_without_javascript_keeps_the_password_out_of_the_url(
    sites: Sites, browser: Browser, context: BrowserContext
) -> None:
    server = sites.plain
    url = f"{server.url}/reset-password?token=not-a-real-token"
    new_password = "a brand new passphrase"
    page, problems = _offline_page(context, server.url)
    page.goto(url)
    with page.expect_request(f"{server.url}/password/reset") as sent:
        page.fill("#new-password", new_password)
        page.fill("#repeat-password", new_password)
        page.click("button")
    request = sent.value
    assert request.method == "POST" and request.headers["content-type"] == "application/json"
    assert request.post_data_json == {"token": "not-a-real-token", "new_password": new_password}
    expect(page.locator("#outcome")).to_contain_text("this link is invalid or has expired")
    assert page.url == url
    # The browser logs the 400 answer as a console error; nothing else went wrong.
    assert [p for p in problems if "400" not in p] == []

    without_js = browser.new_context(java_script_enabled=False)
    try:
        page = without_js.new_page()
        page.goto(url)
        with page.expect_request(lambda r: r.is_navigation_request()) as sent:
            page.fill("#new-password", new_password)
            page.fill("#repeat-password", new_password)
            page.click("button")
        request = sent.value
    finally:
        without_js.close()
    assert request.method == "POST" and request.url == url
