"""The worker classes under Gunicorn's own options, as its workers are run:
``worker_class`` in ``gunicorn.conf.py``, ``--preload``, and several
listeners at once (another TCP port, IPv6, a unix socket)."""

from __future__ import annotations

import socket

import h2.config
import h2.connection
import h2.events
import pytest

from tests.conftest import free_port

from .util import H2Client


def h2c_get(sock: socket.socket, path: str = "/hello") -> int:
    """One HTTP/2 GET over a connected socket (h2c prior knowledge): its status."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
    conn.initiate_connection()
    block = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"x"),
             (b":path", path.encode())]  # fmt: skip
    conn.send_headers(1, block, end_stream=True)
    sock.sendall(conn.data_to_send())
    status = 0
    while True:
        data = sock.recv(65536)
        assert data, "closed before the response ended"
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                status = int(dict(event.headers)[b":status"])
            if isinstance(event, h2.events.StreamEnded):
                return status
        sock.sendall(conn.data_to_send())


def test_worker_class_from_the_config_file(server, worker_class):
    srv = server(tls=False, config_text=f"worker_class = {worker_class!r}\n")
    with H2Client(srv.port) as client:
        assert client.get("/hello").status == 200
    assert f"Using worker: {worker_class}" in srv.log()


def test_preload(server, tls_files):
    """The app imported in the master, before the fork (and, for the green
    classes, before their monkey-patching: Gunicorn warns; it still serves)."""
    srv = server(tls=True, args=["--preload"])
    with H2Client(srv.port, tls_files.client_context(alpn=["h2"])) as client:
        assert client.get("/hello").status == 200


def test_several_listeners_tcp_ipv6_and_unix(server, tmp_path):
    other = free_port()
    unix = tmp_path / "h2w.sock"
    args = ["-b", f"127.0.0.1:{other}", "-b", f"unix:{unix}"]
    ipv6 = socket.has_ipv6
    if ipv6:
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind(("::1", 0))
        except OSError:
            ipv6 = False
    v6port = free_port() if ipv6 else 0
    if ipv6:
        args += ["-b", f"[::1]:{v6port}"]
    srv = server(tls=False, args=args)
    for port in (srv.port, other):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            assert h2c_get(sock) == 200
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(unix))
        assert h2c_get(sock) == 200
    if not ipv6:
        pytest.skip("no IPv6 loopback here (the IPv4 and unix listeners passed)")
    with socket.create_connection(("::1", v6port), timeout=10) as sock:
        assert h2c_get(sock) == 200
