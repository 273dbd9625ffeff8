"""What an application can do beyond a plain response: early hints,
trailers, failing before or after the response started, being reset by
the client; and the access log line of an HTTP/2 request."""

from __future__ import annotations

import re
import time

import h2.events as h2e
import pytest
from h2.errors import ErrorCodes

from tests.apps import pieces_body
from tests.conftest import ASGI_WORKER

from .util import H2Client, h1_exchange, h1_request, parse_h1, wait_for_file

LINK = b"</style.css>; rel=preload; as=style"


@pytest.fixture(scope="module")
def srv(module_server, tmp_path_factory):
    access_log = tmp_path_factory.mktemp("access") / "access.log"
    server = module_server(tls=False, threads=8, args=["--access-logfile", str(access_log)])
    server.access_log = access_log
    return server


@pytest.fixture(scope="module")
def tls_srv(module_server):
    return module_server(tls=True, threads=8)


# -- early hints -------------------------------------------------------------------


def test_early_hints_over_h2(srv):
    with H2Client(srv.port) as client:
        response = client.get("/early-hints")
        assert response.status == 200 and bytes(response.data) == b"after hints\n"
        assert len(response.informational) == 1
        hints = dict(response.informational[0])
        assert hints[b":status"] == b"103"
        assert hints[b"link"] == LINK
        kinds = [type(e) for e in client.events if getattr(e, "stream_id", 0) == 1]
        assert kinds.index(h2e.InformationalResponseReceived) < kinds.index(h2e.ResponseReceived)


def test_early_hints_over_h2_tls(tls_srv, tls_files):
    with H2Client(tls_srv.port, tls_files.client_context(alpn=["h2"])) as client:
        response = client.get("/early-hints")
        assert response.status == 200
        assert dict(response.informational[0])[b"link"] == LINK


def test_early_hints_over_http11(srv):
    raw = h1_exchange(
        srv.port, b"GET /early-hints HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert raw.startswith(b"HTTP/1.1 103 Early Hints\r\n"), raw[:200]
    hint, final = parse_h1(raw)
    assert hint.status == 103 and hint.header("link") == LINK.decode()
    assert final.status == 200 and final.body == b"after hints\n"


def test_http1_early_hints_off_keeps_them_for_http2_only(module_server):
    """``http1_early_hints = False`` (behind nginx before 1.29, which takes a
    103 from its upstream for the final response): HTTP/1.1 clients get the
    final response alone, HTTP/2 clients still get the 103."""
    srv = module_server(tls=False, config_text="http1_early_hints = False\n")
    raw = h1_exchange(
        srv.port, b"GET /early-hints HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    (final,) = parse_h1(raw)
    assert final.status == 200 and final.body == b"after hints\n"
    with H2Client(srv.port) as client:
        response = client.get("/early-hints")
        assert response.status == 200
        assert dict(response.informational[0])[b":status"] == b"103"


# -- trailers --------------------------------------------------------------------------


def test_trailers_over_h2(srv):
    with H2Client(srv.port) as client:
        response = client.get("/trailers", headers=[("te", "trailers")])
        assert response.status == 200
        assert bytes(response.data) == b"part one\npart two\n"
        assert response.trailers == [(b"x-checksum", b"abc123"), (b"x-count", b"2")]
        assert any(isinstance(e, h2e.TrailersReceived) for e in client.events)


def test_trailers_over_http11_with_te(srv):
    response = h1_request(srv.port, "/trailers", headers=[("TE", "trailers")])
    assert response.status == 200
    assert (response.header("transfer-encoding") or "").lower() == "chunked"
    assert response.body == b"part one\npart two\n"
    assert response.trailers == [("x-checksum", "abc123"), ("x-count", "2")]
    assert response.raw.endswith(b"0\r\nx-checksum: abc123\r\nx-count: 2\r\n\r\n")


def test_no_trailers_over_http11_without_te(srv):
    response = h1_request(srv.port, "/trailers")
    assert response.status == 200 and response.body == b"part one\npart two\n"
    assert response.trailers == []


# -- failures -----------------------------------------------------------------------------


def test_error_gives_500_and_other_streams_go_on(srv):
    with H2Client(srv.port) as client:
        slow = client.request("/sleep?s=0.5")
        failing = client.request("/error")
        fine = client.request("/hello")
        for sid in (slow, failing, fine):
            client.response(sid)
        assert client.streams[failing].status == 500
        assert client.streams[slow].status == 200
        assert client.streams[fine].status == 200
        assert client.get("/hello").status == 200
        assert not client.goaways() and not client.resets()
    assert "boom (expected by the test)" in srv.log()


def test_error_after_start_resets_that_stream_only(srv):
    with H2Client(srv.port) as client:
        slow = client.request("/sleep?s=0.5")
        failing = client.request("/error-after-start")
        client.response(failing)
        client.response(slow)
        assert client.streams[failing].status == 200  # the head went out
        assert client.streams[failing].reset == ErrorCodes.INTERNAL_ERROR
        assert not client.streams[failing].ended
        assert client.resets() == {failing: ErrorCodes.INTERNAL_ERROR}
        assert client.streams[slow].status == 200
        assert client.get("/hello").status == 200
        assert not client.goaways()


def test_http11_error_after_start_closes_the_connection(srv):
    raw = h1_exchange(
        srv.port, b"GET /error-after-start HTTP/1.1\r\nHost: x\r\n\r\n", until_close=True
    )  # no Connection: close: the server must close it itself
    assert raw.startswith(b"HTTP/1.1 200")
    assert not raw.endswith(b"0\r\n\r\n"), "a failed response must not look complete"


def test_client_reset_calls_close_on_the_iterable(srv):
    with H2Client(srv.port, auto_ack=False) as client:  # the server fills the window, then waits
        sid = client.request("/close-tracker?id=h2reset")
        client.wait(lambda: len(client.streams[sid].data) >= 65535, what="the first window")
        client.conn.reset_stream(sid, ErrorCodes.CANCEL)
        client.flush()
        sent = wait_for_file(srv.state_dir / "closed-h2reset")
        assert int(sent) < 4096, "close() came only after the whole body was produced"
        # the connection still serves a new stream
        client.auto_ack = True
        client.conn.increment_flow_control_window(1 << 20)
        client.flush()
        response = client.get("/hello")
        assert response.status == 200 and bytes(response.data) == b"Hello, world!\n"
        assert not client.goaways()


def test_http11_disconnect_calls_close_on_the_iterable(srv):
    import socket

    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(b"GET /close-tracker?id=h1reset HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 200")
    wait_for_file(srv.state_dir / "closed-h1reset")


def test_head_over_h2_has_length_but_no_body(srv):
    with H2Client(srv.port) as client:
        response = client.get("/big?mb=1", method="HEAD")
        assert response.status == 200
        assert response.header(b"content-length") == b"1048576"
        assert bytes(response.data) == b""
        assert client.get("/hello").status == 200


# -- access log ------------------------------------------------------------------------------


def test_access_log_line_for_h2(srv):
    with H2Client(srv.port) as client:
        assert client.get("/hello?from=h2").status == 200
    assert h1_request(srv.port, "/hello?from=h1").status == 200
    deadline = time.monotonic() + 10
    while True:
        text = srv.access_log.read_text() if srv.access_log.exists() else ""
        h2_lines = [line for line in text.splitlines() if "from=h2" in line]
        h1_lines = [line for line in text.splitlines() if "from=h1" in line]
        if h2_lines and h1_lines:
            break
        assert time.monotonic() < deadline, f"access log lines missing:\n{text}"
        time.sleep(0.05)
    line = h2_lines[0]
    assert '"GET /hello?from=h2 HTTP/2.0"' in line, line
    assert re.search(r'" 200 14 ', line), line
    assert line.startswith("127.0.0.1 "), line
    # same shape as the HTTP/1.1 line
    assert re.sub(r"\[.*?\]|from=h\d|HTTP/[\d.]+", "", line) == re.sub(
        r"\[.*?\]|from=h\d|HTTP/[\d.]+", "", h1_lines[0]
    )


def test_access_log_host_is_the_authority_and_gunicorn_socket_is_none(
    server, tmp_path, worker_class
):
    """``%({host}i)s`` shows the :authority, as Gunicorn logs Host; and
    ``gunicorn.socket`` is present but None over HTTP/2 (the socket is the
    connection's, not the stream's)."""
    log = tmp_path / "access.log"
    srv = server(tls=False, args=["--access-logfile", str(log),
                                  "--access-logformat", "host=%({host}i)s %(r)s"])  # fmt: skip
    with H2Client(srv.port) as client:
        environ = client.get("/environ?socket=1").json()
    assert environ["gunicorn.socket"] == "NoneType"
    if worker_class != ASGI_WORKER:  # an ASGI app has no socket over either protocol
        # the worker's socket class: eventlet's is GreenSocket (as in Gunicorn's eventlet worker)
        socket_class = h1_request(srv.port, "/environ?socket=1").json()["gunicorn.socket"]
        assert socket_class in ("socket", "GreenSocket")
    line = f'host={environ["HTTP_HOST"]} GET /environ?socket=1 HTTP/2.0'
    wait_for_file(log)
    deadline = time.monotonic() + 10
    while line not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


@pytest.mark.parametrize("tls", [False, True], ids=["cleartext", "tls"])
def test_a_file_on_disk_is_sent_whole_over_both_protocols(server, tls_files, tls):
    """``wsgi.file_wrapper`` over a real file: Gunicorn's HTTP/1.1 sends it
    with ``socket.sendfile`` in cleartext (a green socket needs its own, as
    Gunicorn's eventlet worker patched in); HTTP/2 reads it in blocks."""
    srv = server(tls=tls)
    size = (1 << 20) + 7
    expected = pieces_body(size)
    path = f"/pieces?bytes={size}&piece=65536&mode=disk"
    context = tls_files.client_context(alpn=["http/1.1"]) if tls else None
    response = h1_request(srv.port, path, context=context, timeout=30)
    assert response.status == 200 and response.body == expected
    h2_context = tls_files.client_context(alpn=["h2"]) if tls else None
    with H2Client(srv.port, h2_context, timeout=30) as client:
        sid = client.request(path)
        client.wait(lambda: client.streams[sid].done, what="the file over HTTP/2")
        assert client.streams[sid].status == 200
        assert bytes(client.streams[sid].data) == expected
