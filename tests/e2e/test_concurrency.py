"""A connection's streams run side by side; idle connections hold no thread."""

from __future__ import annotations

import time

import pytest
from hyperframe.frame import PingFrame

from .util import H2Client, h1_request, h2load


def test_20_streams_on_one_connection_run_concurrently(server):
    srv = server(tls=False, threads=24)
    with H2Client(srv.port) as client:
        client.handshake()
        started = time.monotonic()
        sids = [client.request("/sleep?s=1") for _ in range(20)]
        client.wait(lambda: all(client.streams[s].done for s in sids), timeout=15, what="20 sleeps")
        elapsed = time.monotonic() - started
        assert [client.streams[s].status for s in sids] == [200] * 20
    # serially this would take 20 s; with 24 threads about 1 s
    assert elapsed < 2.5, f"20 concurrent 1 s streams took {elapsed:.2f} s"


def test_h2load_20_streams_one_connection(server):
    srv = server(tls=False, threads=24)
    started = time.monotonic()
    result = h2load(srv.url + "/sleep?s=1", "-n20", "-c1", "-m20", timeout=60)
    elapsed = time.monotonic() - started
    assert result["succeeded"] == 20 and result["2xx"] == 20, result
    assert elapsed < 3.5, f"h2load took {elapsed:.2f} s for 20 concurrent 1 s streams"


def test_green_workers_run_2000_streams_at_once(server, worker_class):
    """A green worker is bounded by connections and streams, never by a thread
    count: 2,000 streams that each sleep 1 s, 100 on each of 20 connections."""
    if worker_class.endswith("GThreadH2"):
        pytest.skip("GThreadH2 runs as many streams at once as it has threads, by design")
    srv = server(tls=False)
    started = time.monotonic()
    result = h2load(srv.url + "/sleep?s=1", "-n2000", "-c20", "-m100", timeout=60)
    elapsed = time.monotonic() - started
    assert result["succeeded"] == 2000 and result["2xx"] == 2000, result
    # h2load's own start-up and 20 connections' handshakes included
    assert elapsed < 2.5, f"2,000 concurrent 1 s streams took {elapsed:.2f} s"


def test_stalled_stream_does_not_hold_up_the_others(server):
    """A download the client stops reading (stream window exhausted) leaves the
    connection's other streams free to run."""
    srv = server(tls=False, threads=4)
    with H2Client(srv.port, auto_ack=False) as client:
        client.handshake()
        client.conn.increment_flow_control_window(64 << 20)  # connection window only
        client.flush()
        big = client.request("/big?mb=8")
        client.wait(lambda: len(client.streams[big].data) >= 65535, what="a full stream window")
        started = time.monotonic()
        for _ in range(10):
            sid = client.request("/hello")
            response = client.response(sid, timeout=5)
            assert response.status == 200
        assert time.monotonic() - started < 2.0
        assert len(client.streams[big].data) == 65535 and not client.streams[big].done
        # reading again lets the stalled stream finish
        client.auto_ack = True
        client.conn.acknowledge_received_data(65535, big)
        client.flush()
        assert len(client.response(big, timeout=30).data) == 8 << 20


def test_idle_h2_connections_do_not_delay_http11(server):
    srv = server(tls=False, threads=4, args=["--keep-alive", "30"])
    clients = []
    try:
        for _ in range(100):
            client = H2Client(srv.port, timeout=10)
            clients.append(client)
        for client in clients:
            client.handshake()
        started = time.monotonic()
        response = h1_request(srv.port, "/hello", timeout=10)
        elapsed = time.monotonic() - started
        assert response.status == 200
        assert elapsed < 1.0, f"HTTP/1.1 request took {elapsed:.2f} s behind 100 idle h2"
        # a request on one of the idle connections is served too
        assert clients[50].get("/hello").status == 200
        # every idle connection is still open: it answers a PING
        for i, client in enumerate(clients):
            client.conn.ping(b"%08d" % i)
            client.flush()
        for i, client in enumerate(clients):
            client.wait(
                lambda c=client, i=i: any(
                    isinstance(f, PingFrame) and "ACK" in f.flags and f.opaque_data == b"%08d" % i
                    for f in c.frames
                ),
                timeout=10,
                what=f"PING ACK on connection {i}",
            )
            assert not client.closed and not client.goaways()
    finally:
        for client in clients:
            client.close()
