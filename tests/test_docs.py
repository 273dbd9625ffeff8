"""The documentation site: generated pages match the code, the site builds
with no warning, and the tutorial's commands do what the tutorial says."""

from __future__ import annotations

import ast
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ASGI_WORKER, REPO, ServerFactory, free_port


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


DOC_PAGES = sorted((REPO / "docs").rglob("*.md"))


@pytest.mark.parametrize("page", DOC_PAGES, ids=lambda p: str(p.relative_to(REPO / "docs")))
def test_every_code_block_of_the_page_runs(page, tmp_path):
    """Each command a page shows runs as shown (see tests/docs_blocks.py)."""
    from tests.docs_blocks import PageRun

    run = PageRun(tmp_path)
    run.make_certificate()
    run.run_page(page)


NGINX_MAIN = """
daemon off;
{user}
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{}}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/site.conf;
}}
"""

BOTH_APPS = """
from flask_app import app as site
from grpc_app import app as grpc


def app(environ, start_response):
    grpc_call = environ.get("CONTENT_TYPE", "").startswith("application/grpc")
    return (grpc if grpc_call else site)(environ, start_response)
"""


def test_nginx_example_in_front(tmp_path):
    """docs/howto/proxies.md's nginx configuration, run by Debian's nginx in
    front of GThreadH2: a page through proxy_pass arrives over HTTP/1.1, a
    gRPC call through grpc_pass stays HTTP/2 with its trailers."""
    from tests.docs_blocks import PageRun, wait_listening

    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is not installed (.ci/run installs nginx-light)"
    run = PageRun(tmp_path)
    run.make_certificate()
    (tmp_path / "both.py").write_text(BOTH_APPS)
    run.step_command("gunicorn -c behind_nginx.conf.py --bind 127.0.0.1:8000 both:app")
    site = (REPO / "examples" / "howto" / "nginx.conf").read_text()
    nginx_port = free_port()
    site = site.replace("listen 8443", f"listen 127.0.0.1:{nginx_port}")
    (tmp_path / "site.conf").write_text(run.rewrite_ports(site))
    user = "user root;" if os.geteuid() == 0 else ""
    (tmp_path / "nginx.conf").write_text(NGINX_MAIN.format(tmp=tmp_path, user=user))
    proc = subprocess.Popen(
        [
            nginx,
            "-p",
            str(tmp_path),
            "-c",
            str(tmp_path / "nginx.conf"),
            "-e",
            str(tmp_path / "error.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_listening(nginx_port, proc, tmp_path / "error.log")
        page = run.shell(f"curl -sS --cacert cert.pem https://localhost:{nginx_port}/")
        assert page == "Flask over HTTP/1.1\n"
        assert run.shell(f"python grpc_client.py localhost:{nginx_port}") == "Hello, gRPC\n"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
        run.stop_server()
