"""The README's curl examples, run in the order written against a real server."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import ROOT
from tests.types import StartServer

SECTIONS = ("## Trying it with curl", "## The same in GraphQL")


def _examples() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index(SECTIONS[0])
    end = readme.index("\n## ", readme.index(SECTIONS[1]) + 1)
    return "\n".join(re.findall(r"```sh\n(.*?)```", readme[start:end], re.DOTALL))


def test_readme_examples_run_in_order(start_server: StartServer, tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("the README's examples need curl")
    server = start_server().wait_ready()
    script = _examples()
    assert script.count("127.0.0.1:8000") == 1, "the port appears once, as $API"
    script = script.replace("http://127.0.0.1:8000", server.url)
    # The examples run from the repository's folder, with `make run`'s .venv and var/.
    (tmp_path / "var").mkdir()
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))

    # The script is the README's own text; bash and curl come from PATH as for a reader.
    result = subprocess.run(  # noqa: S603
        ["bash", "-euo", "pipefail", "-c", script],  # noqa: S607
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "HTTP/1.1 200" in out
    assert '"firstname":"Alice"' in out
    assert '{"message":"Password changed"}' in out
    assert '{"message":"Logged out"}' in out
    assert '{"data":{"login":{"username":"alice"' in out
    assert re.search(r'\{"data":\{"me":\{"username":"alice","firstname":"Alice".*"/avatars/', out)
    assert out.count("PERSISTED_QUERY_NOT_FOUND") == 1
    assert out.count('{"data":{"me":{"username":"alice"}}}') == 2
    assert (tmp_path / "var" / "stored.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "var" / "cookies.txt").exists()
