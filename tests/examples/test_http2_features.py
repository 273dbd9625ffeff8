"""examples/http2_features: the site on every worker class (the WSGI app on
the WSGI workers, the ASGI app on AsgiH2), read by the frame script the
README of the folder walks through, and checked for what it claims to show."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import ASGI_WORKER, REPO
from tests.e2e.util import h1_request

EXAMPLE = REPO / "examples" / "http2_features"
SCRIPT = EXAMPLE / "frames.py"
PHOTOS = [f"/photo/{n}.png" for n in (1, 2, 3, 4)]


def example_server(server, worker_class: str, tls: bool = True):
    app = "asgi_app:app" if worker_class == ASGI_WORKER else "wsgi_app:app"
    return server(tls=tls, args=["--pythonpath", str(EXAMPLE)], app=app, threads=16)


def run_script(url: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), url, "--timeout", "30", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def finished_order(output: str) -> list[str]:
    line = next(line for line in output.splitlines() if line.startswith("finished in this order:"))
    return line.split(":", 1)[1].split()


def summary_rows(output: str) -> dict[str, tuple[str, str]]:
    """path -> (status, the rest of the row) from the script's summary table."""
    rows = {}
    for line in output.split("stream  status  bytes    path", 1)[1].splitlines():
        match = re.match(r"\s*(\d+)\s+(\S+)\s+(\d+)\s+(\S+)(.*)", line)
        if match:
            rows[match.group(4) + (" (pushed)" if "(pushed)" in line else "")] = (
                match.group(2),
                match.group(5),
            )
    return rows


def test_each_feature_shows_on_the_wire(server, worker_class, tls_files):
    srv = example_server(server, worker_class)
    out = run_script(f"https://127.0.0.1:{srv.port}/", "--cafile", str(tls_files.ca))
    rows = summary_rows(out)
    assert all(status == "200" for status, _ in rows.values()), rows
    # push: the page's CSS and JS promised on its stream, and served
    assert "/style.css (pushed)" in rows and "/app.js (pushed)" in rows
    assert re.search(r"PUSH_PROMISE\s+stream 1 .*:path: /style.css", out)
    # trailers: the checksum after the body
    assert re.search(
        r"HEADERS\s+stream 17\s+\[END_HEADERS,END_STREAM\] x-sha256: [0-9a-f]{64}", out
    )
    order = finished_order(out)
    # priority: the page before every photo; photo 4, raised to u=0 once
    # its response started, before the photos still at u=5
    assert order.index("/") < min(order.index(p) for p in PHOTOS)
    assert order.index("/photo/4.png") < max(order.index(p) for p in PHOTOS[:3])
    # multiplexing: six 300 ms waits on one connection, all answered
    assert sum(path.startswith("/slow") for path in order) == 6


def test_a_client_without_push_gets_early_hints(server, worker_class, tls_files):
    srv = example_server(server, worker_class)
    out = run_script(f"https://127.0.0.1:{srv.port}/", "--cafile", str(tls_files.ca), "--no-push")
    assert "PUSH_PROMISE" not in out
    hint = re.search(r"HEADERS\s+stream 1\s+\[END_HEADERS\]\s+:status: 103 (.*)", out)
    assert hint is not None, out[:3000]
    assert "link: </style.css>; rel=preload; as=style" in hint.group(1)
    assert summary_rows(out)["/"][1].strip() == "(after a 103)"


def test_cleartext_prior_knowledge(server, worker_class):
    srv = example_server(server, worker_class, tls=False)
    out = run_script(f"http://127.0.0.1:{srv.port}/")
    assert all(status == "200" for status, _ in summary_rows(out).values())


@pytest.mark.parametrize("path", ["/nope", "/../pyproject.toml", "/photo/99.png", "/.hidden"])
def test_unknown_paths_are_404(server, worker_class, path):
    srv = example_server(server, worker_class, tls=False)
    assert h1_request(srv.port, path).status == 404
