"""The documentation site: generated pages match the code, the site builds
with no warning, and the tutorial's commands do what the tutorial says."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ASGI_WORKER, REPO, ServerFactory


def test_generated_reference_matches_the_code():
    done = subprocess.run(
        [sys.executable, str(REPO / "docs" / "gen_reference.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_site_builds_strictly(tmp_path):
    pytest.importorskip("material", reason="pip install mkdocs-material (the test extra has it)")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WARNING" not in done.stderr, done.stderr[-3000:]


@pytest.fixture(scope="module")
def factory(tls_files, tmp_path_factory):
    servers = ServerFactory(tls_files, tmp_path_factory.mktemp("tutorial"))
    try:
        yield servers
    finally:
        servers.stop_all()


def curl(tls_files, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    assert shutil.which("curl"), "curl is not installed (.ci/run installs it)"
    return subprocess.run(
        ["curl", "-sS", "-v", "--cacert", str(tls_files.ca), *args, f"https://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_tutorial_wsgi_app(factory, tls_files):
    srv = factory(
        worker="h2workers.GThreadH2",
        args=["--pythonpath", str(REPO / "examples" / "tutorial")],
        app="wsgi_app:app",
    )
    h2 = curl(tls_files, srv.port)
    assert h2.stdout == "Hello over HTTP/2.0\n", h2.stderr
    assert "HTTP/2 103" in h2.stderr and "HTTP/2 200" in h2.stderr
    assert curl(tls_files, srv.port, "--http1.1").stdout == "Hello over HTTP/1.1\n"


def test_tutorial_asgi_app(factory, tls_files):
    srv = factory(
        worker=ASGI_WORKER,
        args=["--pythonpath", str(REPO / "examples" / "tutorial")],
        app="asgi_app:app",
    )
    h2 = curl(tls_files, srv.port)
    assert h2.stdout == "Hello over HTTP/2\n", h2.stderr
    assert "x-answer: 42" in h2.stderr  # the trailer
    assert curl(tls_files, srv.port, "--http1.1").stdout == "Hello over HTTP/1.1\n"


LOG_LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}


def logged_lines() -> set[tuple[str, str]]:
    """(level, format) of every logging call in h2workers whose owner is a
    logger (``log``, ``self.log``, ``ctx.peer_log``...)."""
    found = set()
    for path in (REPO / "h2workers").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in LOG_LEVELS or "log" not in ast.unparse(node.func.value):
                continue
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                level = "error" if node.func.attr == "exception" else node.func.attr
                found.add((level, first.value))  # exception() is error() with the traceback
    return found


def documented_lines() -> set[tuple[str, str]]:
    text = (REPO / "docs" / "reference" / "logs.md").read_text()
    return set(re.findall(r"^\| (\w+) \| `([^`]+)` \|", text, re.MULTILINE))


def test_every_log_line_is_in_the_reference_and_every_listed_one_is_written():
    in_code, in_docs = logged_lines(), documented_lines()
    assert len(in_code) > 30  # the scan found the calls
    assert in_code - in_docs == set(), "add to docs/reference/logs.md"
    assert in_docs - in_code == set(), "no longer written: remove from docs/reference/logs.md"
