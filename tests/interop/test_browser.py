"""Debian's headless Chromium loads a page with 30 subresources over h2.

The page's script counts the resources whose ``nextHopProtocol`` is h2 and
puts the count in its title; the access log must show the page and the 30
subresources as HTTP/2.0. Browsers speak HTTP/2 over TLS only.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.interop.app import SUBRESOURCES

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--ignore-certificate-errors", "--virtual-time-budget=15000",
]  # fmt: skip


def test_chromium_loads_a_page_with_30_subresources_over_h2(srv, tmp_path):
    if not srv.tls:
        pytest.skip("browsers speak HTTP/2 over TLS only")
    browser = shutil.which("chromium")
    assert browser, "chromium is not installed (.ci/run installs it)"
    seen = len(srv.log())
    out = subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
         f"{srv.url}/page"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    title = re.search(r"<title>(.*?)</title>", out.stdout)
    assert title, out.stdout[-2000:] + out.stderr[-2000:]
    assert title[1] == f"loaded {SUBRESOURCES}", out.stdout[-2000:]
    log = srv.log()[seen:]
    assert len(re.findall(r'"GET /sub/\S+ HTTP/2\.0" 200', log)) == SUBRESOURCES, log[-3000:]
    assert re.search(r'"GET /page HTTP/2\.0" 200', log), log[-3000:]
