"""Malformed input over a real socket: a malformed request costs its stream
only (RST_STREAM), a broken connection costs that connection only (GOAWAY),
and the worker goes on serving."""

from __future__ import annotations

import socket
import struct

import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame, SettingsFrame, WindowUpdateFrame

from .util import PREFACE, FrameReader, H2Client, h1_request, summary


@pytest.fixture(scope="module")
def srv(module_server):
    return module_server(tls=False)


@pytest.fixture(scope="module")
def tls_srv(module_server):
    return module_server(tls=True)


@pytest.fixture(scope="module")
def worker(srv):
    return srv.worker_pid()


def _block(*extra, method=b"GET", path=b"/hello", drop=()):
    block = [
        (b":method", method),
        (b":scheme", b"http"),
        (b":authority", b"127.0.0.1"),
        (b":path", path),
    ]
    block = [(n, v) for n, v in block if n not in drop]
    return block + list(extra)


MALFORMED = {
    "uppercase-name": _block((b"X-Upper", b"1")),
    "connection-header": _block((b"connection", b"keep-alive")),
    "transfer-encoding": _block((b"transfer-encoding", b"chunked")),
    "te-gzip": _block((b"te", b"gzip")),
    "missing-path": _block(drop=(b":path",)),
    "missing-method": _block(drop=(b":method",)),
    "empty-path": _block(path=b""),
    "relative-path": _block(path=b"hello"),
    "pseudo-after-regular": [*_block((b"accept", b"*/*")), (b":status", b"200")],
    "unknown-pseudo": _block((b":protocol", b"x")),
    "newline-in-value": _block((b"x-bad", b"a\nb")),
    "nul-in-value": _block((b"x-bad", b"a\x00b")),
    "leading-space-value": _block((b"x-bad", b" a")),
    "space-in-name": _block((b"x bad", b"a")),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_request_resets_only_its_stream(srv, worker, name):
    with H2Client(srv.port) as client:
        client.handshake()
        bad = client.request(block=MALFORMED[name])
        client.response(bad)
        assert client.streams[bad].reset == ErrorCodes.PROTOCOL_ERROR, client.frames
        assert client.resets() == {bad: ErrorCodes.PROTOCOL_ERROR}
        good = client.get("/hello")
        assert good.status == 200 and bytes(good.data) == b"Hello, world!\n"
        assert not client.goaways(), [summary(f) for f in client.frames]
    assert srv.worker_pid() == worker


def test_content_length_mismatch_resets_only_its_stream(srv, worker):
    with H2Client(srv.port) as client:
        client.handshake()
        bad = client.request("/echo", "POST", headers=[("content-length", "10")], body=b"abc")
        client.response(bad)
        assert client.streams[bad].reset == ErrorCodes.PROTOCOL_ERROR
        assert client.get("/hello").status == 200
        assert not client.goaways()


def _frame(frame) -> bytes:
    return frame.serialize()


def _data_on_stream_0() -> bytes:
    frame = DataFrame(1)
    frame.data = b"x"
    raw = bytearray(frame.serialize())
    raw[5:9] = struct.pack(">I", 0)  # hyperframe refuses stream 0 for DATA: patch it
    return bytes(raw)


def _bad_hpack() -> bytes:
    frame = HeadersFrame(1)
    frame.data = b"\xff\xff\xff\xff\xff\xff\xff"  # an index far beyond any table
    frame.flags.add("END_HEADERS")
    frame.flags.add("END_STREAM")
    return frame.serialize()


def _zero_window_update() -> bytes:
    return b"\x00\x00\x04\x08\x00\x00\x00\x00\x00" + struct.pack(">I", 0)


GARBAGE = {
    "data-on-stream-0": (_data_on_stream_0(), {"PROTOCOL_ERROR"}),
    "bad-hpack": (_bad_hpack(), {"PROTOCOL_ERROR", "COMPRESSION_ERROR"}),
    "zero-window-update": (_zero_window_update(), {"PROTOCOL_ERROR"}),
    "even-stream-id": (b"\x00\x00\x00\x01\x05\x00\x00\x00\x02", {"PROTOCOL_ERROR"}),
    "settings-bad-length": (
        b"\x00\x00\x05\x04\x00\x00\x00\x00\x00" + b"\x00" * 5,
        {"FRAME_SIZE_ERROR"},
    ),
    "ping-bad-length": (
        b"\x00\x00\x07\x06\x00\x00\x00\x00\x00" + b"\x00" * 7,
        {"FRAME_SIZE_ERROR"},
    ),
    "continuation-without-headers": (
        b"\x00\x00\x00\x09\x04\x00\x00\x00\x01",
        {"PROTOCOL_ERROR"},
    ),
}
# A frame header announcing more than SETTINGS_MAX_FRAME_SIZE (here the text's
# "GAR" = 4.6 MB, or 16 MiB) must be refused at once (RFC 9113 4.2).
OVERSIZED = {
    "text": b"GARBAGE GARBAGE GARBAGE\r\n\r\n",
    "huge-frame": b"\xff\xff\xff\x00\x00\x00\x00\x00\x01" + b"x" * 64,
}


def _expect_goaway(srv, worker, garbage: bytes, codes: set[str], timeout: float = 10) -> None:
    with H2Client(srv.port, preface=False) as client:
        client.send_raw(PREFACE + _frame(SettingsFrame(0)) + garbage)
        client.wait(lambda: bool(client.goaways()), timeout, what="GOAWAY")
        goaway = client.goaways()[0]
        assert ErrorCodes(goaway.error_code).name in codes, summary(goaway)
        client.wait(lambda: client.closed, what="the server to close the connection")
    # the worker is unharmed and serves new connections over both protocols
    assert srv.worker_pid() == worker
    with H2Client(srv.port) as client:
        assert client.get("/hello").status == 200
    assert h1_request(srv.port, "/hello").status == 200


@pytest.mark.parametrize("name", GARBAGE)
def test_garbage_after_preface_gets_goaway(srv, worker, name):
    garbage, codes = GARBAGE[name]
    _expect_goaway(srv, worker, garbage, codes)


@pytest.mark.parametrize("name", OVERSIZED)
def test_oversized_frame_header_gets_frame_size_error(srv, worker, name):
    _expect_goaway(srv, worker, OVERSIZED[name], {"FRAME_SIZE_ERROR"}, timeout=1.5)


def test_bad_hpack_is_a_compression_error(srv, worker):
    _expect_goaway(srv, worker, _bad_hpack(), {"COMPRESSION_ERROR"})


@pytest.mark.parametrize("secure", [False, True], ids=["h2c", "tls"])
def test_goaway_reaches_a_client_that_is_still_sending(srv, tls_srv, tls_files, secure):
    """After a connection error the worker sends GOAWAY, then FIN, and reads
    on for a moment: a client still writing (here 1 MiB right behind the bad
    frame) reads the GOAWAY and a clean end, not a TCP reset, which can
    destroy the GOAWAY before the client reads it."""
    server = tls_srv if secure else srv
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    if secure:
        context = tls_files.client_context(alpn=["h2"])
        sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
    reader, frames = FrameReader(), []
    with sock:
        bad_ping, _ = GARBAGE["ping-bad-length"]
        sock.sendall(PREFACE + _frame(SettingsFrame(0)) + bad_ping)
        sock.sendall(b"\x00" * (1 << 20))  # (raises if the server reset the connection)
        while data := sock.recv(65536):  # (raises if the server reset the connection)
            frames += reader.feed(data)
    goaways = [f for f in frames if isinstance(f, GoAwayFrame)]
    assert [ErrorCodes(g.error_code).name for g in goaways] == ["FRAME_SIZE_ERROR"]


def test_bad_preface_over_tls_h2(tls_srv, tls_files):
    worker = tls_srv.worker_pid()
    with H2Client(tls_srv.port, tls_files.client_context(alpn=["h2"]), preface=False) as client:
        client.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        client.wait(lambda: client.closed, what="the server to close the connection")
        codes = [ErrorCodes(g.error_code).name for g in client.goaways()]
        assert codes in ([], ["PROTOCOL_ERROR"]), codes
        assert not any(isinstance(f, HeadersFrame) for f in client.frames)
    assert tls_srv.worker_pid() == worker
    with H2Client(tls_srv.port, tls_files.client_context(alpn=["h2"])) as client:
        assert client.get("/hello").status == 200


def test_window_update_overflow_on_stream_resets_it(srv, worker):
    """A stream window pushed past 2**31-1 is a stream error (RFC 9113 6.9.1)."""
    with H2Client(srv.port) as client:
        client.handshake()
        sid = client.request("/sleep?s=0.5")
        frame = WindowUpdateFrame(sid)
        frame.window_increment = 2**31 - 1
        client.send_raw(frame.serialize())
        client.wait(lambda: sid in client.resets() or bool(client.goaways()))
        assert client.resets().get(sid) == ErrorCodes.FLOW_CONTROL_ERROR
        assert not client.goaways()
        assert client.get("/hello").status == 200
    assert srv.worker_pid() == worker
