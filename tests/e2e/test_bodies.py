"""Large bodies in both directions with bounded worker memory, and
``wsgi.input`` semantics that match Gunicorn's HTTP/1.1 for the same body."""

from __future__ import annotations

import hashlib
import json
import os

import h2.events as h2e
import pytest

from tests.apps import big_sha256

from .util import H2Client, curl, h1_request, rss_kib

MIB = 1024 * 1024
RSS_GROWTH_LIMIT_KIB = 50 * 1024  # measured: ~1 MiB; buffering a body would be 100
LINES_BODY = (
    b"first line\n"
    b"second line, a longer one\n"
    b"x\n"
    b"\n"
    b"\r\n"
    b"a line of sixty characters ........................... end\n"
    b"last line without a newline"
)


@pytest.fixture(scope="module")
def srv(module_server):
    return module_server(tls=False, threads=4)


@pytest.fixture(scope="module")
def tls_srv(module_server):
    return module_server(tls=True, threads=4)


@pytest.fixture(scope="module")
def baseline(srv):
    """The worker's RSS before any large body went through it."""
    worker = srv.worker_pid()
    assert h1_request(srv.port, "/hello").status == 200
    return worker, rss_kib(worker)


def test_100mib_upload_over_one_h2_stream(srv, baseline, tmp_path):
    worker, rss_before = baseline
    upload = tmp_path / "upload.bin"
    digest = hashlib.sha256()
    with open(upload, "wb") as f:
        for _ in range(100):
            block = os.urandom(MIB)
            digest.update(block)
            f.write(block)
    try:
        out = curl(
            "--http2-prior-knowledge",
            "--data-binary",
            f"@{upload}",
            "-H",
            "Content-Type: application/octet-stream",
            "-w",
            "\n%{http_version}",
            srv.url + "/upload-count",
            timeout=120,
        )
    finally:
        upload.unlink()
    assert out.returncode == 0, out.stderr
    body, _, version = out.stdout.rpartition("\n")
    assert version == "2"
    assert json.loads(body) == {"count": 100 * MIB, "sha256": digest.hexdigest()}
    assert srv.worker_pid() == worker
    growth = rss_kib(worker, "VmHWM") - rss_before
    assert growth < RSS_GROWTH_LIMIT_KIB, f"worker peak RSS grew by {growth} KiB on upload"


def test_100mib_download_over_h2(srv, baseline, tmp_path):
    worker, rss_before = baseline
    target = tmp_path / "download.bin"
    out = curl(
        "--http2-prior-knowledge",
        "-o",
        str(target),
        "-w",
        "%{http_version} %{size_download}",
        srv.url + "/big?mb=100",
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"2 {100 * MIB}"
    digest = hashlib.sha256()
    with open(target, "rb") as f:
        while block := f.read(MIB):
            digest.update(block)
    target.unlink()
    assert digest.hexdigest() == big_sha256(100)
    assert srv.worker_pid() == worker
    growth = rss_kib(worker, "VmHWM") - rss_before
    assert growth < RSS_GROWTH_LIMIT_KIB, f"worker peak RSS grew by {growth} KiB on download"


def test_download_over_tls_with_raw_client(tls_srv, tls_files):
    with H2Client(tls_srv.port, tls_files.client_context(alpn=["h2"]), timeout=60) as client:
        response = client.get("/big?mb=8")
        assert response.status == 200
        assert hashlib.sha256(response.data).hexdigest() == big_sha256(8)


def test_upload_over_tls_with_raw_client(tls_srv, tls_files):
    payload = os.urandom(3 * MIB + 17)
    with H2Client(tls_srv.port, tls_files.client_context(alpn=["h2"]), timeout=60) as client:
        response = client.get("/upload-count", method="POST", body=payload)
        assert response.status == 200
        assert response.json() == {
            "count": len(payload),
            "sha256": hashlib.sha256(payload).hexdigest(),
        }


@pytest.mark.parametrize("n", [1000, 40_000, 200_000])
def test_a_stalled_reader_lets_in_one_window_past_its_read(srv, n):
    """The window reopens for what the app reads (for a read(n), as they
    arrive: the n bytes and the next n, which a loop of read(n) asks for
    next, or half a window if that is more; a whole frame at most beyond),
    never for what merely arrives: a client cannot fill memory behind an
    app that stopped reading."""
    frame, window = 16384, 65535
    limit = window + max(2 * n, window // 2) + frame
    with H2Client(srv.port) as client:
        sid = client.request(f"/read-then-stall?n={n}&s=5", "POST", end=False)
        conn, state = client.conn, client.streams[sid]
        sent = 0

        def send_what_the_window_allows() -> None:
            nonlocal sent
            while sent <= limit and (room := min(conn.local_flow_control_window(sid), frame)):
                conn.send_data(sid, b"x" * room)
                sent += room
            client.flush()

        while not state.data:  # until the app has read and said so
            send_what_the_window_allows()
            client.pump(0.5)
        round_trip = 0
        while sent <= limit:  # until the server stops reopening the window
            send_what_the_window_allows()
            round_trip += 1
            ping = b"%08d" % round_trip
            conn.ping(ping)  # credit owed for what was sent arrives before its ACK
            client.flush()
            client.wait(
                lambda ping=ping: any(
                    isinstance(e, h2e.PingAckReceived) and e.ping_data == ping
                    for e in client.events
                ),
                what="PING ACK",
            )
            if conn.local_flow_control_window(sid) <= 0:
                break
        assert state.data.startswith(b"%d\n" % n)
        assert sent <= limit, f"{sent} body bytes let in behind a read({n})"
        assert sent >= min(window, n), "less than the app read was let in"
        conn.reset_stream(sid)
        client.flush()


# -- wsgi.input semantics: HTTP/2 must read like HTTP/1.1 ---------------------------


def _h1(srv, path: str, body: bytes, chunked: bool) -> object:
    response = h1_request(srv.port, path, "POST", body=body, chunked=chunked)
    assert response.status == 200, response.raw[:300]
    return response.json()


def _h2(srv, path: str, body: bytes, with_length: bool, frame_size: int) -> object:
    headers = [("content-length", str(len(body)))] if with_length else []
    with H2Client(srv.port) as client:
        sid = client.request(path, "POST", headers=headers, end=False)
        for i in range(0, len(body), frame_size):  # many small DATA frames
            client.send_body(sid, body[i : i + frame_size], end=False)
        client.send_body(sid, b"", end=True)
        response = client.response(sid)
        assert response.status == 200, bytes(response.data)
        return response.json()


LINES = pytest.param("/lines", marks=pytest.mark.wsgi)  # readline() is WSGI's


@pytest.mark.parametrize("path", [LINES, "/echo-chunks?n=7", "/echo-chunks?n=4096", "/echo"])
@pytest.mark.parametrize("with_length", [True, False], ids=["content-length", "no-length"])
def test_input_reads_like_http11(srv, path, with_length):
    if path == "/echo":
        expected = LINES_BODY
        got = []
        for frame_size in (3, 16384):
            headers = [("content-length", str(len(LINES_BODY)))] if with_length else []
            with H2Client(srv.port) as client:
                sid = client.request("/echo", "POST", headers=headers, end=False)
                for i in range(0, len(LINES_BODY), frame_size):
                    client.send_body(sid, LINES_BODY[i : i + frame_size], end=False)
                client.send_body(sid, b"", end=True)
                got.append(bytes(client.response(sid).data))
        h1 = h1_request(srv.port, "/echo", "POST", body=LINES_BODY, chunked=not with_length)
        assert got == [expected, expected] and h1.body == expected
        return
    reference = _h1(srv, path, LINES_BODY, chunked=not with_length)
    for frame_size in (1, 5, 16384):
        assert _h2(srv, path, LINES_BODY, with_length, frame_size) == reference, frame_size


@pytest.mark.wsgi
def test_lines_reference_is_sane(srv):
    """The HTTP/1.1 answer used as reference is what file-like reading means."""
    steps = _h1(srv, "/lines", LINES_BODY, chunked=False)
    assert steps[:5] == [
        ["readline", "first line\n"],
        ["readline(5)", "secon"],
        ["read(3)", "d l"],
        ["readline(0)", ""],
        ["readline", "ine, a longer one\n"],
    ]
    assert steps[-2:] == [["read", ""], ["readline-at-eof", ""]]
    assert "".join(data for _, data in steps).encode() == LINES_BODY


@pytest.mark.parametrize("path", [LINES, "/echo-chunks?n=13", "/upload-count"])
@pytest.mark.parametrize("with_length", [True, False], ids=["content-length", "chunked"])
def test_curl_h1_and_h2_bodies_read_the_same(srv, tmp_path, path, with_length):
    """curl sends the same body over both protocols; without a length it is
    chunked over HTTP/1.1 and length-less DATA over HTTP/2."""
    body_file = tmp_path / "lines.txt"
    body_file.write_bytes(LINES_BODY * 50)
    extra = [] if with_length else ["-H", "Transfer-Encoding: chunked"]
    results = []
    for flag in ("--http1.1", "--http2-prior-knowledge"):
        out = curl(flag, *extra, "--data-binary", f"@{body_file}", srv.url + path)
        assert out.returncode == 0, out.stderr
        results.append(json.loads(out.stdout))
    assert results[0] == results[1]
    if path == "/upload-count":
        assert results[1]["count"] == len(LINES_BODY) * 50


def test_expect_100_continue_over_h2(srv):
    """The 100 comes when the app reads the body; the client then sends it."""
    with H2Client(srv.port) as client:
        sid = client.request("/echo", "POST", headers=[("expect", "100-continue")], end=False)
        client.wait(lambda: bool(client.streams[sid].informational) or client.streams[sid].done)
        assert dict(client.streams[sid].informational[0])[b":status"] == b"100"
        client.send_body(sid, b"sent after 100", end=True)
        response = client.response(sid)
        assert response.status == 200 and bytes(response.data) == b"sent after 100"
        # an app that does not read the body sends no 100
        sid = client.request("/hello", "POST", headers=[("expect", "100-continue")], end=False)
        response = client.response(sid)
        assert response.status == 200 and response.informational == []
