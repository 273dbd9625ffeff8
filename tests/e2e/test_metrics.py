"""Gunicorn's statsd figures keep working for HTTP/2 requests, and h2workers
adds its own (h2workers/metrics.py): a UDP socket here plays the statsd
server of ``--statsd-host``."""

from __future__ import annotations

import socket
import time

import pytest
from h2.errors import ErrorCodes

from .util import H2Client


@pytest.fixture
def statsd():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    try:
        yield sock
    finally:
        sock.close()


def collect(sock: socket.socket, wanted: list[str], timeout: float = 10.0) -> list[str]:
    """Datagrams until every ``wanted`` prefix was seen (or the timeout)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(any(line.startswith(w) for line in seen) for w in wanted):
            break
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        seen += data.decode().splitlines()
    return seen


def test_statsd_counts_http2_streams_and_events(server, statsd):
    port = statsd.getsockname()[1]
    srv = server(
        tls=False,
        threads=8,
        args=["--statsd-host", f"127.0.0.1:{port}"],
        config_text="http2_max_concurrent_streams = 2\n",
    )
    with H2Client(srv.port) as client:
        client.handshake()
        assert client.get("/hello").status == 200
        client.ignore_stream_limit()
        sids = [client.request("/sleep?s=0.5") for _ in range(3)]  # the third is refused
        client.conn.reset_stream(sids[0], ErrorCodes.CANCEL)
        client.flush()
        client.response(sids[1])
        wanted = [
            "gunicorn.requests:",  # Gunicorn's own, through the access log
            "gunicorn.request.status.200:",
            "h2workers.streams.refused:1|c",
            "h2workers.streams.reset_by_client.cancel:1|c",
            "h2workers.connections.h2:1|g",  # the connection is open
        ]
        lines = collect(statsd, wanted)
    for prefix in wanted:
        assert any(line.startswith(prefix) for line in lines), (prefix, lines)


def test_statsd_gauges_connections_by_protocol(server, statsd):
    """One HTTP/2 and one kept-alive HTTP/1.1 connection open: the gauges
    say two connections, one of each protocol."""
    port = statsd.getsockname()[1]
    srv = server(tls=False, args=["--statsd-host", f"127.0.0.1:{port}", "--keep-alive", "30"])
    with H2Client(srv.port) as client, socket.create_connection(("127.0.0.1", srv.port)) as h1:
        assert client.get("/hello").status == 200
        h1.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert h1.recv(65536).startswith(b"HTTP/1.1 200")  # and the connection stays open
        wanted = [
            "h2workers.connections:2|g",
            "h2workers.connections.h2:1|g",
            "h2workers.connections.http1:1|g",
        ]
        lines = collect(statsd, wanted)
    for prefix in wanted:
        assert any(line.startswith(prefix) for line in lines), (prefix, lines[-20:])
