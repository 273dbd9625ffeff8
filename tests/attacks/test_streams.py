"""Too many streams, and request smuggling through malformed HTTP/2 requests.

* Beyond ``http2_max_concurrent_streams`` (here 4) a stream is refused with
  RST_STREAM(REFUSED_STREAM); the connection lives and serves the admitted
  streams. Each refusal costs a reset token, so refusing cannot be turned
  into a flood either.
* A malformed request (RFC 9113 8.1, 8.2, 8.3) is reset with
  RST_STREAM(PROTOCOL_ERROR) on its own stream, its app never answers, and
  the next stream on the same connection gets a 200: nothing a downstream
  HTTP/1.1 parser could read as a second request gets through.
* Host and :authority: a Host that differs from :authority is malformed
  (RFC 9113 8.3.1 SHOULD), as are two Host fields; one Host that agrees, or
  one Host without :authority, is served with that host.
"""

from __future__ import annotations

import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import RstStreamFrame

from tests.attacks.support import (
    H2Client,
    RawConn,
    assert_logged_once,
    assert_serves,
    config,
    goaway_code,
    headers_frame,
    raw_frame,
    responses,
    summary,
)

MAX_STREAMS = 4
RESET_BUDGET = 20


@pytest.fixture(scope="module")
def srv(module_server):
    return module_server(
        tls=False,
        threads=4,
        config_text=config(
            http2_max_concurrent_streams=MAX_STREAMS,
            http2_max_reset_streams=RESET_BUDGET,
            http2_reset_streams_per_second=0,
        ),
    )


@pytest.fixture
def worker(srv):
    return srv.worker_pid()


# -- too many streams ----------------------------------------------------------------


def test_streams_beyond_the_limit_are_refused_and_the_connection_lives(srv, worker):
    with H2Client(srv.port) as client:
        client.handshake()
        client.ignore_stream_limit()
        sids = [client.request("/sleep?s=0.5") for _ in range(10)]
        for sid in sids:
            client.response(sid)
        admitted = [sid for sid in sids if client.streams[sid].status == 200]
        refused = [sid for sid in sids if client.streams[sid].reset == ErrorCodes.REFUSED_STREAM]
        assert admitted == sids[:MAX_STREAMS]
        assert refused == sids[MAX_STREAMS:]
        for sid in admitted:
            assert bytes(client.streams[sid].data) == b"slept %d\n" % worker
        assert not client.goaways()
        again = client.get("/hello")  # refused streams are safe to retry
        assert again.status == 200
    assert srv.worker_pid() == worker


def test_refusal_flood_gets_enhance_your_calm(srv, worker):
    """Four slow streams fill the limit; every further HEADERS is refused
    and costs a token: past the budget, GOAWAY(ENHANCE_YOUR_CALM)."""
    start = len(srv.log())
    with RawConn(srv.port) as conn:
        slow = b"".join(conn.request(sid, "/sleep?s=1") for sid in range(1, 2 * MAX_STREAMS, 2))
        flood = b"".join(
            conn.request(sid) for sid in range(2 * MAX_STREAMS + 1, 2 * MAX_STREAMS + 200, 2)
        )
        conn.send(slow + flood)
        conn.wait_closed(10)
    refused = [sid for sid, code in conn.resets().items() if code == ErrorCodes.REFUSED_STREAM]
    assert RESET_BUDGET - 1 <= len(refused) <= RESET_BUDGET + 1
    assert [goaway_code(g) for g in conn.goaways()] == ["ENHANCE_YOUR_CALM"]
    assert_logged_once(srv, start, "stream reset flood", "ENHANCE_YOUR_CALM")
    assert_serves(srv, worker)


# -- smuggling --------------------------------------------------------------------------


def _block(*extra, method=b"GET", path=b"/headers", drop=(), authority=b"127.0.0.1"):
    block = [
        (b":method", method),
        (b":scheme", b"http"),
        (b":authority", authority),
        (b":path", path),
    ]
    return [(n, v) for n, v in block if n not in drop] + list(extra)


SMUGGLED = b"GET /admin HTTP/1.1\r\nHost: internal\r\n\r\n"

# name: header block (bodyless GET unless listed in BODIES)
MALFORMED = {
    # connection-specific fields (RFC 9113 8.2.2)
    "connection": _block((b"connection", b"close")),
    "keep-alive": _block((b"keep-alive", b"timeout=5")),
    "proxy-connection": _block((b"proxy-connection", b"keep-alive")),
    "transfer-encoding": _block((b"transfer-encoding", b"chunked")),
    "upgrade": _block((b"upgrade", b"h2c")),
    "te-not-trailers": _block((b"te", b"gzip")),
    # CR, LF, NUL in values, in pseudo-header values too (RFC 9113 8.2.1)
    "cr-in-value": _block((b"x-a", b"a\rb")),
    "lf-in-value": _block((b"x-a", b"a\nx-injected: 1")),
    "crlf-in-value": _block((b"x-a", b"a\r\n\r\n" + SMUGGLED)),
    "nul-in-value": _block((b"x-a", b"a\x00b")),
    "crlf-in-path": _block(path=b"/headers HTTP/1.1\r\nHost: x\r\n\r\n" + SMUGGLED),
    "crlf-in-method": _block(method=b"GET /admin HTTP/1.1\r\n"),
    "crlf-in-authority": _block(authority=b"a\r\nx-injected: 1"),
    # field names: uppercase, separators, empty
    "uppercase-name": _block((b"X-Upper", b"1")),
    "uppercase-host": _block((b"Host", b"127.0.0.1")),
    "colon-in-name": _block((b"x:a", b"1")),
    "space-in-name": _block((b"x a", b"1")),
    "empty-name": _block((b"", b"1")),
    # pseudo-headers: duplicated, missing, unknown, misplaced (RFC 9113 8.3)
    "duplicate-method": [(b":method", b"POST"), *_block()],
    "duplicate-path": [*_block(), (b":path", b"/admin")],
    "duplicate-authority": [(b":authority", b"evil"), *_block()],
    "duplicate-scheme": [(b":scheme", b"https"), *_block()],
    "missing-method": _block(drop=(b":method",)),
    "missing-scheme": _block(drop=(b":scheme",)),
    "missing-path": _block(drop=(b":path",)),
    "status-in-request": _block((b":status", b"200")),
    "unknown-pseudo": [*_block()[:4], (b":smuggle", b"1")],
    "pseudo-after-regular": [*_block()[:3], (b"accept", b"*/*"), (b":path", b"/headers")],
    # :path not origin-form (RFC 9113 8.3.1)
    "absolute-form-path": _block(path=b"http://internal/admin"),
    "authority-form-path": _block(path=b"internal:80"),
    "asterisk-for-get": _block(path=b"*"),
    "empty-path": _block(path=b""),
    "space-in-path": _block(path=b"/a b"),
    # Host against :authority (RFC 9113 8.3.1)
    "host-differs": _block((b"host", b"internal")),
    "two-hosts": _block((b"host", b"127.0.0.1"), (b"host", b"internal")),
    # content-length that the body contradicts (RFC 9113 8.1.1)
    "length-but-no-body": _block((b"content-length", b"5"), method=b"POST", path=b"/echo"),
    "length-shorter-than-body": _block((b"content-length", b"4"), method=b"POST", path=b"/echo"),
    "length-longer-than-body": _block((b"content-length", b"400"), method=b"POST", path=b"/echo"),
    "length-zero-with-body": _block((b"content-length", b"0"), method=b"POST", path=b"/echo"),
    "two-lengths": _block(
        (b"content-length", b"4"), (b"content-length", b"44"), method=b"POST", path=b"/echo"
    ),
    "signed-length": _block((b"content-length", b"+4"), method=b"POST", path=b"/echo"),
    "chunked-body": _block((b"transfer-encoding", b"chunked"), method=b"POST", path=b"/echo"),
}
BODIES = {
    "length-shorter-than-body": b"abcd" + SMUGGLED,
    "length-longer-than-body": SMUGGLED,
    "length-zero-with-body": SMUGGLED,
    "two-lengths": b"abcd",
    "signed-length": b"abcd",
    "chunked-body": b"4\r\nabcd\r\n0\r\n\r\n" + SMUGGLED,
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_request_is_reset_and_the_next_stream_is_served(srv, worker, name):
    start = len(srv.log())
    with H2Client(srv.port) as client:
        client.handshake()
        bad = client.request(block=MALFORMED[name], body=BODIES.get(name))
        state = client.response(bad)
        assert state.reset == ErrorCodes.PROTOCOL_ERROR, [summary(f) for f in client.frames]
        assert state.status is None, f"the app answered: {state.status} {bytes(state.data)!r}"
        # Only this stream is reset, once (later DATA on it is ignored).
        rsts = [f for f in client.frames if isinstance(f, RstStreamFrame)]
        assert [(f.stream_id, f.error_code) for f in rsts] == [(bad, ErrorCodes.PROTOCOL_ERROR)]
        good = client.get("/headers")
        assert good.status == 200, good
        assert b"internal" not in bytes(good.data)
        assert not client.goaways()
    assert_logged_once(srv, start, f"stream {bad}", "PROTOCOL_ERROR")
    assert_serves(srv, worker)


def test_many_malformed_streams_stay_within_the_reset_budget(srv, worker):
    """A burst of malformed requests within the reset budget is answered
    stream by stream, and the connection serves on (past the budget:
    test_rapid_reset.py)."""
    with H2Client(srv.port) as client:
        client.handshake()
        for name in list(MALFORMED)[: RESET_BUDGET - 2]:
            client.response(client.request(block=MALFORMED[name], body=BODIES.get(name)))
        assert client.get("/hello").status == 200
        assert not client.goaways()
    assert_serves(srv, worker)


@pytest.mark.parametrize(
    ("name", "block", "host"),
    [
        ("host-agrees", _block((b"host", b"127.0.0.1")), "127.0.0.1"),
        (
            "host-without-authority",
            _block((b"host", b"h.example"), drop=(b":authority",)),
            "h.example",
        ),
        ("authority-only", _block(), "127.0.0.1"),
    ],
)
def test_host_that_agrees_is_served(srv, worker, name, block, host):
    with H2Client(srv.port) as client:
        response = client.response(client.request(block=block))
        assert response.status == 200, response
        assert response.json()["host"] == host
        assert not client.goaways()


def test_raw_smuggling_attempt_never_reaches_the_app_twice(srv, worker):
    """The same attempt with a hand-written HPACK block (no h2 in the way):
    CL 0 with a body holding a second request; then a clean request."""
    with RawConn(srv.port) as conn:
        block = conn.block("/once?id=smuggle", "POST", extra=[(b"content-length", b"0")])
        conn.send(headers_frame(1, block, end_stream=False) + raw_frame(0x0, 0x1, 1, SMUGGLED))
        conn.send(conn.request(3, "/hello"))
        conn.wait(lambda: 3 in responses(conn.frames), what="the clean request")
        assert conn.resets().get(1) == ErrorCodes.PROTOCOL_ERROR
        assert responses(conn.frames) == {3: 200}
    runs = srv.state_dir / "once-smuggle"
    assert not runs.exists() or len(runs.read_text().splitlines()) <= 1


def test_frames_in_flight_after_a_reset_are_ignored(srv, worker):
    """RFC 9113 5.1: DATA the client had already sent on a stream the server
    reset is ignored, not answered with a second RST_STREAM(STREAM_CLOSED)."""
    with RawConn(srv.port) as conn:
        block = conn.block("/echo", "POST", extra=[(b"content-length", b"4")])
        conn.send(
            headers_frame(1, block, end_stream=False)
            + raw_frame(0x0, 0x0, 1, b"abcd" + SMUGGLED)  # over the length: malformed
            + raw_frame(0x0, 0x1, 1)  # END_STREAM, already on its way
            + conn.request(3, "/hello")
        )
        conn.wait(lambda: 3 in responses(conn.frames), what="the next response")
        rsts = [(f.stream_id, f.error_code) for f in conn.frames if isinstance(f, RstStreamFrame)]
        assert rsts == [(1, ErrorCodes.PROTOCOL_ERROR)]
