"""AsgiH2's HTTP/1.1 with each of its parsers (``http1_parser``): h11 and
httptools must serve the same bytes the same way. The rest of the suite
runs AsgiH2 on the parser ``auto`` picks (httptools when installed); this
module keeps the other one honest, on the shapes HTTP/1.1 clients send:
keep-alive and pipelining, HTTP/1.0, chunked and large uploads,
``Expect: 100-continue``, trailers, 1xx, HEAD, the head-size limit,
malformed and smuggling requests, Upgrade, WebSockets."""

from __future__ import annotations

import hashlib
import socket

import pytest
from websockets.sync.client import connect

from tests.conftest import ASGI_WORKER

from .util import h1_exchange, parse_h1

PARSERS = ["h11", "httptools"]


@pytest.fixture(scope="module", params=PARSERS)
def srv(request, module_server, worker_class):
    if worker_class != ASGI_WORKER:
        pytest.skip("AsgiH2's HTTP/1.1 parsers")
    if request.param == "httptools":
        pytest.importorskip("httptools")
    server = module_server(tls=False, config_text=f"http1_parser = {request.param!r}\n")
    server.parser = request.param
    return server


def get(path: str, extra: str = "", version: str = "1.1") -> bytes:
    return f"GET {path} HTTP/{version}\r\nHost: x\r\n{extra}\r\n".encode()


def test_keep_alive_and_pipelining(srv):
    """Three requests in one write, answered in order on one connection."""
    raw = get("/hello") + get("/headers", "X-One: 1\r\n") + get("/hello", "Connection: close\r\n")
    responses = parse_h1(h1_exchange(srv.port, raw, until_close=True))
    assert [r.status for r in responses] == [200, 200, 200]
    assert responses[1].json()["x-one"] == "1"
    assert responses[2].header("connection") == "close"


def test_a_pipelined_upload_behind_a_slow_request(srv):
    """A POST pipelined behind a slow GET: its 2 MiB body is still arriving
    when its turn comes, and must be read then."""
    body = b"u" * (2 * 1024 * 1024)
    raw = get("/sleep?s=0.3") + (
        b"POST /upload-count HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n" % len(body)
    )
    data = h1_exchange(srv.port, raw, body_parts=[body], until_close=True)
    slow, upload = parse_h1(data)
    assert slow.status == 200 and upload.status == 200
    assert upload.json()["count"] == len(body)


def test_http10_with_and_without_keep_alive(srv):
    """HTTP/1.0 closes after the response unless the client asks to keep the
    connection; httptools honours that, h11 always closes (both allowed)."""
    closed = parse_h1(h1_exchange(srv.port, get("/hello", version="1.0"), until_close=True))
    assert closed[0].status == 200 and closed[0].body == b"Hello, world!\n"
    if srv.parser == "h11":
        raw = get("/hello", "Connection: keep-alive\r\n", version="1.0")
        (response,) = parse_h1(h1_exchange(srv.port, raw, until_close=True))
        assert response.header("connection") == "close"
        return
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        for _ in range(2):  # the same connection serves both
            sock.sendall(get("/hello", "Connection: keep-alive\r\n", version="1.0"))
            data = b""
            while not data.endswith(b"Hello, world!\n"):
                piece = sock.recv(65536)
                assert piece, data
                data += piece
            assert b"connection: keep-alive" in data.lower()


def test_http10_streamed_response_ends_with_the_connection(srv):
    """No length and no chunked coding in HTTP/1.0: the close ends the body."""
    raw = h1_exchange(
        srv.port, get("/pieces?bytes=100000&length=0", version="1.0"), until_close=True
    )
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding" not in head.lower()
    assert len(body) == 100000


@pytest.mark.parametrize("size", [0, 1, 65535, 3 * 1024 * 1024 + 7])
def test_chunked_upload(srv, size):
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    chunks = [body[i : i + 10000] for i in range(0, len(body), 10000)]
    framed = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    request = b"POST /upload-count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    (response,) = parse_h1(h1_exchange(srv.port, request, body_parts=[framed]))
    assert response.status == 200
    assert response.json()["count"] == size
    assert response.json()["sha256"] == hashlib.sha256(body).hexdigest()


def test_request_trailers_never_become_headers(srv):
    """A chunked request's trailer fields arrive after the head (httptools
    reports them as headers): they must not reach the app as headers, where
    a forged Host or X-Forwarded-For would count."""
    body = b"3\r\nabc\r\n0\r\nX-Forwarded-For: 6.6.6.6\r\nX-Trailer: t\r\n\r\n"
    request = b"POST /headers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    (response,) = parse_h1(h1_exchange(srv.port, request))
    seen = response.json()
    assert seen["host"] == "x"
    assert "x-forwarded-for" not in seen and "x-trailer" not in seen, seen


def test_expect_100_continue(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                     b"Expect: 100-continue\r\n\r\n")  # fmt: skip
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(b"hello")
        data = b""
        while b"hello" not in data:
            data += sock.recv(65536)
        assert data.startswith(b"HTTP/1.1 200")


def test_trailers_only_to_a_client_that_takes_them(srv):
    (with_te,) = parse_h1(h1_exchange(srv.port, get("/trailers", "TE: trailers\r\n")))
    assert with_te.body == b"part one\npart two\n"
    assert with_te.trailers == [("x-checksum", "abc123"), ("x-count", "2")]
    (without,) = parse_h1(h1_exchange(srv.port, get("/trailers")))
    assert without.body == b"part one\npart two\n" and without.trailers == []


def test_early_hints_then_the_response(srv):
    hint, final = parse_h1(h1_exchange(srv.port, get("/early-hints")))
    assert hint.status == 103 and hint.header("link") == "</style.css>; rel=preload; as=style"
    assert final.status == 200 and final.body == b"after hints\n"


def test_head_has_no_body_and_the_connection_goes_on(srv):
    raw = b"HEAD /pieces?bytes=1000 HTTP/1.1\r\nHost: x\r\n\r\n" + get(
        "/hello", "Connection: close\r\n"
    )
    data = h1_exchange(srv.port, raw, until_close=True)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"content-length: 1000" in head.lower()
    assert rest.startswith(b"HTTP/1.1 200")  # no body in between
    assert rest.endswith(b"Hello, world!\n")


def test_a_head_over_the_limit_is_refused(srv):
    huge = "X-Big: " + "a" * 9000 + "\r\n"  # over limit_request_field_size (8190)
    data = h1_exchange(srv.port, get("/hello", huge), until_close=True)
    assert data.startswith((b"HTTP/1.1 431", b"HTTP/1.1 400")), data[:100]
    many = "".join(f"X-H{i}: v\r\n" for i in range(200))  # over limit_request_fields (100)
    data = h1_exchange(srv.port, get("/hello", many), until_close=True)
    assert data.startswith((b"HTTP/1.1 431", b"HTTP/1.1 400")), data[:100]


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"GET /hello HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET /hello HTTP/1.1\r\nX: a\nb\r\n\r\n",
        b"GET /hel lo HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /hello HTTP/9.9\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
        b"GET /hello HTTP/1.1\r\n\r\n",
        b"GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ],
    ids=[
        "cl-and-te",
        "two-cl",
        "space-before-colon",
        "bare-lf",
        "space-in-target",
        "version",
        "tls",
        "no-host",
        "two-hosts",
    ],
)
def test_malformed_and_smuggling_requests_get_4xx_and_close(srv, raw):
    """Refused, and the connection closed (h1_exchange returns on the close).
    Content-Length with Transfer-Encoding may instead be served by the
    chunked coding alone, then closed (RFC 9112 6.3): h11 does that."""
    data = h1_exchange(srv.port, raw, until_close=True)
    if b"Transfer-Encoding" in raw and srv.parser == "h11":
        assert len(parse_h1(data)) == 1
        return
    assert data.startswith((b"HTTP/1.1 400", b"HTTP/1.1 505")), data[:200]
    assert b"Hello" not in data  # the request was never served


def test_an_upgrade_we_do_not_serve_is_a_plain_request(srv):
    raw = get("/hello", "Connection: Upgrade\r\nUpgrade: foo/1\r\n")
    (response,) = parse_h1(h1_exchange(srv.port, raw, until_close=True))
    assert response.status == 200 and response.body == b"Hello, world!\n"


def test_websocket_echo(srv):
    with connect(f"ws://127.0.0.1:{srv.port}/ws", open_timeout=5) as ws:
        ws.send("over HTTP/1.1")
        assert ws.recv(timeout=5) == "over HTTP/1.1"
        ws.send(b"x" * 300_000)
        assert ws.recv(timeout=5) == b"x" * 300_000


def test_half_close_after_pipelined_requests_and_mid_body(srv):
    """FIN after three whole requests: three responses, then the close. FIN
    in the middle of a body: that request is never served (the connection
    closes)."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(get("/sleep?s=0.05") * 3)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while piece := sock.recv(65536):
            data += piece
    assert data.count(b"HTTP/1.1 200") == 3, data[:300]
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nshort")
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while piece := sock.recv(65536):
            data += piece
    assert b"short" not in data
