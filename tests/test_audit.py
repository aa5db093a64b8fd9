"""The GraphQL-over-HTTP audit (graphql-http's auditServer) against a real server process."""

from __future__ import annotations

import shutil
import subprocess

from tests.servers import ROOT
from tests.types import StartServer

AUDIT = ROOT / "tests" / "audit"


def test_graphql_over_http_audit_has_no_errors_and_no_warnings(start_server: StartServer) -> None:
    node = shutil.which("node")
    assert node is not None, "the audit needs Node.js (node) on the PATH"
    assert (AUDIT / "node_modules" / "graphql-http").is_dir(), (
        "graphql-http is not installed: run `make test`, or `npm ci` in tests/audit"
    )
    server = start_server().wait_ready()
    result = subprocess.run(  # noqa: S603 (a fixed command on loopback)
        [node, str(AUDIT / "audit.mjs"), f"{server.url}/graphql"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 errors or warnings" in result.stdout
