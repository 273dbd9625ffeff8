"""Slow clients, with Gunicorn's ``--timeout 3``.

* zero window: SETTINGS_INITIAL_WINDOW_SIZE 0, then a large GET: the stream
  is reset with RST_STREAM(CANCEL) after ~timeout, the connection lives;
* slow reader: a large window, then never a read: the connection is closed
  after ~timeout and the worker's memory stays bounded;
* slowloris on the TLS handshake (half a ClientHello), on the cleartext
  preface ("PRI * HT") and, beyond the brief, on an HTTP/1.1 request head:
  the connection is closed after ~timeout.

Meanwhile other clients are served at once (``--threads 2``, or ``1`` for
slowloris): none of these attacks may hold a pool thread.
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from dataclasses import dataclass, field

import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import DataFrame

from tests.attacks.support import (
    H2Client,
    RawConn,
    assert_logged_once,
    assert_serves,
    h1_request,
    responses,
    rss_kib,
    wait_for_file,
    window_update,
)

TIMEOUT = 3
ARGS = ["--timeout", str(TIMEOUT)]
SERVED_WITHIN = 1.0  # seconds another client may wait while an attack runs
# The server checks its deadlines on a 1 s tick: closed between timeout and
# timeout + 1 tick, plus scheduling slack on a busy machine.
EARLIEST, LATEST = TIMEOUT - 0.5, TIMEOUT + 2.5


@pytest.fixture(scope="module")
def h2c2(module_server):
    return module_server(tls=False, threads=2, args=ARGS)


@pytest.fixture(scope="module")
def h2c1(module_server):
    return module_server(tls=False, threads=1, args=ARGS)


@pytest.fixture(scope="module")
def tls1(module_server):
    return module_server(tls=True, threads=1, args=ARGS)


def _others_are_served(srv, tls_files=None) -> None:
    """An HTTP/1.1 and an HTTP/2 request on new connections, each at once."""
    h1_context = h2_context = None
    if srv.tls:
        h1_context = tls_files.client_context(alpn=("http/1.1",))
        h2_context = tls_files.client_context()
    started = time.monotonic()
    answer = h1_request(srv.port, "/hello", context=h1_context, timeout=10)
    h1_took = time.monotonic() - started
    assert answer.status == 200
    started = time.monotonic()
    with H2Client(srv.port, h2_context, timeout=10) as client:
        assert client.get("/hello").status == 200
    h2_took = time.monotonic() - started
    assert h1_took < SERVED_WITHIN, f"HTTP/1.1 request took {h1_took:.2f} s"
    assert h2_took < SERVED_WITHIN, f"HTTP/2 request took {h2_took:.2f} s"


# -- zero window ------------------------------------------------------------------


@dataclass
class ZeroWindow:
    reset: int | None
    elapsed: float
    data_frames: int
    produced: int
    next_status: int | None
    goaways: int
    log: str


@pytest.fixture(scope="module")
def zero_window(h2c2):
    """Runs the attack once: a GET whose app produces without end, on a
    connection whose stream windows start at 0."""
    srv = h2c2
    worker = srv.worker_pid()
    start = len(srv.log())
    with RawConn(srv.port, client_settings=[(SettingCodes.INITIAL_WINDOW_SIZE, 0)]) as conn:
        conn.send(conn.request(1, "/close-tracker?id=zerowin"))
        requested = time.monotonic()
        conn.wait(lambda: 1 in responses(conn.frames), what="the response head")
        _others_are_served(srv)
        conn.wait(lambda: 1 in conn.resets(), timeout=LATEST + 2, what="RST_STREAM")
        elapsed = time.monotonic() - requested
        produced = int(wait_for_file(srv.state_dir / "closed-zerowin", timeout=3))
        # the same connection serves on
        conn.send(conn.request(3, "/hello") + window_update(3, 1000))
        conn.wait(
            lambda: any(f.stream_id == 3 and "END_STREAM" in f.flags for f in conn.frames),
            what="a response on the same connection",
        )
        seen = ZeroWindow(
            reset=conn.resets().get(1),
            elapsed=elapsed,
            data_frames=sum(
                1 for f in conn.frames if isinstance(f, DataFrame) and f.stream_id == 1 and f.data
            ),
            produced=produced,
            next_status=responses(conn.frames).get(3),
            goaways=len(conn.goaways()),
            log="",
        )
    time.sleep(0.3)
    seen.log = srv.log()[start:]
    assert_serves(srv, worker)
    return seen


def test_zero_window_stream_is_cancelled_after_timeout(zero_window):
    seen = zero_window
    assert seen.reset == ErrorCodes.CANCEL
    assert EARLIEST <= seen.elapsed <= LATEST, f"reset after {seen.elapsed:.2f} s"
    assert seen.data_frames == 0
    assert seen.produced < 4096, "the app ran to its end: close() was not called on reset"
    assert seen.next_status == 200 and seen.goaways == 0  # the connection lives


def test_zero_window_cancel_is_logged(zero_window):
    lines = [
        line
        for line in zero_window.log.splitlines()
        if "stream 1" in line and ("window" in line or "CANCEL" in line)
    ]
    assert len(lines) == 1, zero_window.log


# -- slow reader ------------------------------------------------------------------


def test_slow_reader_is_closed_after_timeout_with_bounded_memory(h2c2):
    srv = h2c2
    worker = srv.worker_pid()
    before = rss_kib(worker)
    start = len(srv.log())
    conn = RawConn(
        srv.port, client_settings=[(SettingCodes.INITIAL_WINDOW_SIZE, 2**31 - 1)], rcvbuf=4096
    )
    with conn:
        conn.send(window_update(0, 2**31 - 1 - 65535) + conn.request(1, "/big?mb=64"))
        requested = time.monotonic()
        _others_are_served(srv)
        peak = before
        while "read nothing" not in srv.log()[start:]:
            assert time.monotonic() - requested < LATEST + 3, "never closed"
            peak = max(peak, rss_kib(worker))
            time.sleep(0.05)
        elapsed = time.monotonic() - requested
        assert EARLIEST <= elapsed <= LATEST, f"closed after {elapsed:.2f} s"
        assert peak - before < 8 * 1024, f"RSS grew by {(peak - before) // 1024} MiB"
        conn.sock.settimeout(5)
        conn.wait_closed(10)  # the rest of what the kernel held, then EOF
        assert conn.received < 64 << 20
    assert_logged_once(srv, start, "read nothing", f"{TIMEOUT}s")
    assert_serves(srv, worker)


# -- slowloris --------------------------------------------------------------------


def _client_hello(tls_files) -> bytes:
    """The bytes of a real ClientHello, as a client would send them."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = tls_files.client_context().wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    assert hello[:1] == b"\x16" and len(hello) > 100  # a handshake record
    return hello


@dataclass
class Slowloris:
    """What a slowloris run observed."""

    start: int  # log offset
    worker: int
    closed_after: list[float] = field(default_factory=list)
    log: str = ""


def _slowloris(srv, payload: bytes, tls_files=None, count: int = 10) -> Slowloris:
    """``count`` connections send ``payload`` and stop; others are served
    meanwhile; returns when each was closed, counted from its last byte."""
    seen = Slowloris(len(srv.log()), srv.worker_pid())
    socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(count)]
    try:
        for sock in socks:
            sock.sendall(payload)
        sent = time.monotonic()
        time.sleep(0.2)
        _others_are_served(srv, tls_files)
        open_socks = {sock: None for sock in socks}
        while open_socks:
            assert time.monotonic() - sent < LATEST + 3, "slowloris connections left open"
            readable, _, _ = select.select(list(open_socks), [], [], 0.2)
            for sock in readable:
                try:
                    data = sock.recv(4096)
                except ConnectionResetError:
                    data = b""
                assert not data, f"the server answered a slowloris: {data[:60]!r}"
                seen.closed_after.append(time.monotonic() - sent)
                del open_socks[sock]
    finally:
        for sock in socks:
            sock.close()
    seen.log = srv.log()[seen.start :]
    return seen


@pytest.fixture(scope="module")
def tls_slowloris(tls1, tls_files):
    hello = _client_hello(tls_files)
    return _slowloris(tls1, hello[: len(hello) // 2], tls_files)


@pytest.fixture(scope="module")
def preface_slowloris(h2c1):
    return _slowloris(h2c1, b"PRI * HT")


@pytest.mark.usefixtures("worker_class")  # the servers below are per worker class
@pytest.mark.parametrize("attack", ["tls_slowloris", "preface_slowloris"])
def test_slowloris_is_closed_after_timeout(request, attack):
    seen = request.getfixturevalue(attack)
    assert len(seen.closed_after) == 10
    assert min(seen.closed_after) >= EARLIEST, seen.closed_after
    assert max(seen.closed_after) <= LATEST, seen.closed_after


def test_worker_serves_after_slowloris(tls1, h2c1, tls_files, tls_slowloris, preface_slowloris):
    assert_serves(tls1, tls_slowloris.worker, tls_files)
    assert_serves(h2c1, preface_slowloris.worker)


def _mentions_slow_client(log: str, words: tuple[str, ...]) -> list[str]:
    return [
        line
        for line in log.splitlines()
        if "127.0.0.1" in line and any(w.lower() in line.lower() for w in words)
    ]


# Logged, but not once per connection: one line per worker tick that closes
# some (10 connections opened together span one to a few ticks under load).


def test_tls_slowloris_is_logged(tls_slowloris):
    lines = _mentions_slow_client(tls_slowloris.log, ("handshake", "TLS"))
    assert 1 <= len(lines) < 10, tls_slowloris.log


def test_preface_slowloris_is_logged(preface_slowloris):
    lines = _mentions_slow_client(preface_slowloris.log, ("preface", "timed out", "timeout"))
    assert 1 <= len(lines) < 10, preface_slowloris.log


def test_http11_slowloris_holds_no_thread(h2c1):
    with socket.create_connection(("127.0.0.1", h2c1.port), timeout=10) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        time.sleep(0.2)
        _others_are_served(h2c1)
