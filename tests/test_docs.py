"""The documentation site: generated pages match the code, the site builds
with no warning, and the tutorial's commands do what the tutorial says."""

from __future__ import annotations

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
