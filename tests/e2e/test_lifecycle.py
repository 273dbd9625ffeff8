"""Worker lifecycle with HTTP/2 connections open: graceful shutdown,
max_requests restarts, keep-alive timeouts and the master's heartbeat."""

from __future__ import annotations

import signal
import socket
import time

import pytest
from h2.errors import ErrorCodes

from .util import H2Client


def test_sigterm_lets_in_flight_streams_finish(server):
    srv = server(tls=False, threads=12)
    clients = [H2Client(srv.port, timeout=15) for _ in range(2)]
    try:
        sids = [[c.request("/sleep?s=1&hint=1") for _ in range(5)] for c in clients]
        for client, ids in zip(clients, sids, strict=True):  # all ten are running
            client.wait(
                lambda c=client, ids=ids: all(c.streams[s].informational for s in ids),
                what="103 from every stream",
            )
        srv.proc.send_signal(signal.SIGTERM)
        for client, ids in zip(clients, sids, strict=True):
            client.wait(lambda c=client, ids=ids: all(c.streams[s].done for s in ids))
            assert [client.streams[s].status for s in ids] == [200] * 5
            assert all(client.streams[s].ended for s in ids)
            client.wait(lambda c=client: bool(c.goaways()), what="GOAWAY")
            goaway = client.goaways()[0]
            assert goaway.error_code == ErrorCodes.NO_ERROR
            assert goaway.last_stream_id >= max(ids)
        # a connection opened now is not served
        assert not _served(srv.port), "a new connection was served during shutdown"
        assert srv.proc.wait(20) == 0
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", srv.port), timeout=5).close()
    finally:
        for client in clients:
            client.close()


def _served(port: int) -> bool:
    try:
        with H2Client(port, timeout=3) as client:
            sid = client.request("/hello")
            client.wait(lambda: client.streams[sid].done or client.closed, timeout=3)
            return client.streams[sid].status == 200
    except (OSError, AssertionError):
        return False


def test_max_requests_restarts_the_worker_without_failures(server):
    srv = server(tls=False, threads=4, args=["--max-requests", "50"])
    first_worker = srv.worker_pid()
    pids: list[int] = []
    retries = failures = 0
    client = H2Client(srv.port)
    try:
        while len(pids) < 130:
            if client.closed or client.goaways():
                client.close()
                client = H2Client(srv.port)
            sid = client.request("/pid")
            try:
                client.wait(lambda sid=sid, c=client: c.streams[sid].done or c.closed)
            except AssertionError:
                pass
            state = client.streams[sid]
            goaway = client.goaways()
            if state.ended and state.status == 200:
                pids.append(int(bytes(state.data)))
            elif state.reset == ErrorCodes.REFUSED_STREAM or (
                goaway and goaway[0].last_stream_id < sid
            ):
                retries += 1  # refused, safe to retry
                assert retries < 50
            else:
                failures += 1
                pytest.fail(f"request failed: {state} goaway={goaway}")
    finally:
        client.close()
    assert failures == 0
    assert len(set(pids)) >= 2, "the worker never restarted"
    assert pids[0] == first_worker
    # every worker served at most max_requests requests
    assert max(pids.count(p) for p in set(pids)) <= 50
    assert "Autorestarting worker" in srv.log()
    assert srv.worker_pid(other_than=first_worker) != first_worker


def test_keepalive_closes_idle_connection_with_goaway(server):
    srv = server(tls=False, args=["--keep-alive", "1"])
    with H2Client(srv.port) as client:
        assert client.get("/hello").status == 200
        idle_from = time.monotonic()
        client.wait(lambda: bool(client.goaways()), timeout=6, what="GOAWAY on idle")
        elapsed = time.monotonic() - idle_from
        goaway = client.goaways()[0]
        assert goaway.error_code == ErrorCodes.NO_ERROR
        assert goaway.last_stream_id == 1
        assert elapsed < 4.5, f"GOAWAY after {elapsed:.1f} s with keepalive 1"
        client.wait(lambda: client.closed, timeout=6, what="the server to close")


def test_busy_connection_is_not_closed_by_keepalive(server):
    srv = server(tls=False, args=["--keep-alive", "1"])
    with H2Client(srv.port) as client:
        response = client.get("/sleep?s=2.5")
        assert response.status == 200
        assert all(g.last_stream_id >= 1 for g in client.goaways())


def test_long_stream_does_not_trip_the_worker_timeout(server):
    srv = server(tls=False, args=["--timeout", "5"])
    worker = srv.worker_pid()
    with H2Client(srv.port, timeout=20) as client:
        response = client.get("/sleep?s=7", timeout=20)
        assert response.status == 200
        assert bytes(response.data) == b"slept %d\n" % worker
    assert srv.worker_pid() == worker
    assert "WORKER TIMEOUT" not in srv.log()


def _tick_phase(client: H2Client) -> float:
    """When an idle connection's keep-alive GOAWAY arrives: a worker tick."""
    client.wait(lambda: bool(client.goaways()), timeout=6, what="keep-alive GOAWAY")
    return time.monotonic()


def test_keepalive_goaway_is_written_on_the_tick_that_decides_it(server):
    """With keep-alive 1 s, idle from half a tick past a tick, the GOAWAY is due
    at the second tick (1.5 s later); one tick late would be 2.5 s."""
    srv = server(tls=False, args=["--keep-alive", "1"])
    with H2Client(srv.port) as first:
        first.handshake()
        phase = _tick_phase(first)
    time.sleep(max(0.0, phase + 0.5 - time.monotonic()))  # half a tick out of phase
    with H2Client(srv.port) as client:
        assert client.get("/hello").status == 200
        idle_from = time.monotonic()
        client.wait(lambda: bool(client.goaways()), timeout=6, what="keep-alive GOAWAY")
        latency = time.monotonic() - idle_from
    assert latency < 2.0, f"keep-alive GOAWAY {latency:.2f} s after the last response"


def test_shutdown_goaway_is_prompt(server):
    srv = server(tls=False, args=["--keep-alive", "1"])
    with H2Client(srv.port) as first:
        first.handshake()
        phase = _tick_phase(first)
    with H2Client(srv.port) as client:
        client.handshake()
        time.sleep(max(0.0, phase + 0.5 - time.monotonic()))  # half a tick out of phase
        signalled = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        client.wait(lambda: bool(client.goaways()), timeout=6, what="shutdown GOAWAY")
        latency = time.monotonic() - signalled
    assert latency < 0.3, f"GOAWAY {latency:.2f} s after SIGTERM"
