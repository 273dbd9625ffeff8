"""The interop matrix: independent HTTP/2 clients x checks x worker x transport.

Sizes and piece shapes are chosen to cross our boundaries, not to cover
every combination: 1 MiB + 1 in 1,000-byte pieces (past the 1 MiB
high-water mark in pieces smaller than a frame: the first round's stall),
16 MiB through ``wsgi.file_wrapper`` in 8 KiB blocks, 100 MiB in 4 MiB
``write()`` calls (pieces larger than any window; TLS only, for time).
"""

from __future__ import annotations

import functools
import hashlib

import pytest

from tests.apps import HELLO, pieces_body
from tests.e2e.util import run_tool
from tests.interop.clients import (
    Client,
    Curl,
    GoClient,
    H2load,
    Httpx,
    Nghttp,
    NodeClient,
)

MIB = 1 << 20
DOWNLOADS = {  # id: (size, piece, mode, TLS only)
    "1MiB+1-in-1000B-pieces": (MIB + 1, 1000, "iter", False),
    "16MiB-file_wrapper-8KiB": (16 * MIB, 8192, "file", False),
    "100MiB-in-4MiB-writes": (100 * MIB, 4 * MIB, "write", True),
}
UPLOADS = {"1MiB": (MIB, False), "16MiB": (16 * MIB, False), "100MiB": (100 * MIB, True)}


def _clients(tls_files) -> list[Client]:
    return [
        Curl(tls_files),
        Nghttp(tls_files),
        # nghttp with non-default settings: 16 MiB frames and windows, a
        # header table of 0, and a tiny (1 KiB) window.
        Nghttp(tls_files, "-w", "24", "-W", "30", "-c", "0", label="-large-window-table0"),
        Nghttp(tls_files, "-w", "10", "-W", "16", label="-tiny-window", most=16 * MIB),
        H2load(tls_files),
        Httpx(tls_files),
        GoClient(tls_files),
        NodeClient(tls_files),
    ]


CLIENT_NAMES = ["curl", "nghttp", "nghttp-large-window-table0", "nghttp-tiny-window",
                "h2load", "httpx", "go", "node"]  # fmt: skip


@pytest.fixture(scope="session")
def clients(tls_files, tmp_path_factory) -> dict[str, Client]:
    GoClient.build(tmp_path_factory.mktemp("go"))
    return {c.name: c for c in _clients(tls_files)}


@functools.cache
def sha_of(size: int) -> str:
    return hashlib.sha256(pieces_body(size)).hexdigest()


def _client(clients: dict[str, Client], name: str, check: str, srv) -> Client:
    client = clients[name]
    reason = client.cannot(check, srv)
    if reason:
        pytest.skip(reason + " (see docs/interop.md)")
    return client


@pytest.mark.parametrize("name", CLIENT_NAMES)
def test_get(srv, clients, name):
    result = _client(clients, name, "get", srv).get(srv, f"{srv.url}/hello")
    assert result["status"] == 200, result
    if "sha256" in result:
        assert result["sha256"] == hashlib.sha256(HELLO).hexdigest(), result
    else:
        assert result["bytes"] == len(HELLO), result


@pytest.mark.parametrize("name", CLIENT_NAMES)
def test_100_concurrent_streams(srv, clients, name):
    result = _client(clients, name, "concurrent", srv).concurrent(
        srv, f"{srv.url}/pieces?bytes=20000&piece=1000", 100
    )
    assert result["ok"] == 100, result
    assert result.get("connections", 1) == 1, result  # all on one connection


@pytest.mark.parametrize("name", CLIENT_NAMES)
@pytest.mark.parametrize("shape", DOWNLOADS)
def test_download(srv, clients, name, shape):
    size, piece, mode, tls_only = DOWNLOADS[shape]
    if tls_only and not srv.tls:
        pytest.skip("the largest size runs over TLS only")
    client = _client(clients, name, "download", srv)
    if size > getattr(client, "most", 0) > 0:
        pytest.skip(f"{name} is slow by design: {client.most} bytes at most")
    result = client.download(srv, f"{srv.url}/pieces?bytes={size}&piece={piece}&mode={mode}")
    assert result["status"] == 200, result
    if "sha256" in result:
        assert (result["sha256"], result["bytes"]) == (sha_of(size), size), result
    else:
        assert result["bytes"] == size, result


@pytest.mark.parametrize("name", CLIENT_NAMES)
@pytest.mark.parametrize("shape", UPLOADS)
def test_upload(srv, clients, name, shape, payloads):
    size, tls_only = UPLOADS[shape]
    if tls_only and not srv.tls:
        pytest.skip("the largest size runs over TLS only")
    client = _client(clients, name, "upload", srv)
    result = client.upload(srv, f"{srv.url}/upload-count", payloads[size])
    assert result["status"] == 200, result
    if "json" in result:
        assert result["json"] == {"count": size, "sha256": sha_of(size)}


@pytest.mark.parametrize("name", CLIENT_NAMES)
def test_echo_with_trailers(srv, clients, name, payloads):
    client = _client(clients, name, "trailers", srv)
    result = client.trailers(srv, f"{srv.url}/echo-trailers", payloads[MIB])
    assert result["status"] == 200, result
    assert result["trailers"].get("x-sha256") == sha_of(MIB), result
    assert result["trailers"].get("x-count") == str(MIB), result
    if "sha256" in result:
        assert (result["sha256"], result["bytes"]) == (sha_of(MIB), MIB)


@pytest.mark.parametrize("name", CLIENT_NAMES)
def test_cancel_mid_download_then_reuse_the_connection(srv, clients, name):
    client = _client(clients, name, "cancel", srv)
    result = client.cancel(
        srv, f"{srv.url}/pieces?bytes={100 * MIB}&piece=65536", f"{srv.url}/hello"
    )
    assert result["cancelled_after"] >= MIB, result
    assert result["status"] == 200, result
    assert result["sha256"] == hashlib.sha256(HELLO).hexdigest(), result
    assert result.get("connections", 1) == 1, result


def test_server_log_is_clean(srv):
    log = srv.log()
    assert "Traceback" not in log, log[-3000:]
    assert "[ERROR]" not in log, log[-3000:]
    assert "WORKER TIMEOUT" not in log, log[-3000:]


@pytest.mark.parametrize("size", [100_000, MIB])
def test_curl_gets_a_response_sent_before_its_upload_was_read(
    srv, clients, payloads, size, tmp_path
):
    """A route that answers without reading the body (a 405 or 413 to an
    upload): curl 7.88 stops uploading when it sees the response and fails
    on the RST_STREAM(NO_ERROR) that RFC 9113 8.1 allows. The server reads
    and drops up to 1 MiB of the body before answering, so uploads up to
    that size get their answer every time (the first round: 6 in 10)."""
    body = tmp_path / "body.bin"
    body.write_bytes(payloads[MIB].read_bytes()[:size])
    curl = clients["curl"]
    assert isinstance(curl, Curl)
    for _ in range(5):
        out = run_tool([*curl.base(srv), "-o", "/dev/null", "-w", "%{http_code}",
                        "--data-binary", f"@{body}", f"{srv.url}/hello"])  # fmt: skip
        assert (out.returncode, out.stdout) == (0, "200"), out.stderr
