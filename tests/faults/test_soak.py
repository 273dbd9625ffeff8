"""Soak: many requests over reused HTTP/2 connections (h2load), then the
worker's resources are compared with what it held after a warm-up.

N comes from ``H2W_SOAK`` (default 200000, so CI stays fast; the full soak
is ``H2W_SOAK=1000000``). 10 connections, 10 streams each in flight, two
routes in turn. Checked on counts only, never timings:

* RSS grows by less than 10 MiB after the warm-up;
* the number of threads (/proc/PID/task) is unchanged;
* the number of open descriptors (/proc/PID/fd) comes back to the warm
  baseline once the clients disconnect: no socket and so no HTTP/2 session
  is left behind.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.attacks.support import (
    RawConn,
    fd_count,
    headers_frame,
    rss_kib,
    thread_count,
    window_update,
)
from tests.e2e.util import h2load

SOAK = int(os.environ.get("H2W_SOAK", "200000"))
WARMUP = max(2000, SOAK // 10)
CLIENTS, STREAMS = 10, 10
RSS_GROWTH_LIMIT_KIB = 10 * 1024


def _load(srv, n: int) -> dict[str, int]:
    urls = [f"{srv.url}/hello", f"{srv.url}/headers"]
    result = h2load(
        urls[0],
        "-n",
        str(n),
        "-c",
        str(CLIENTS),
        "-m",
        str(STREAMS),
        urls[1],
        timeout=max(120.0, n / 2000),
    )
    assert result["succeeded"] == n and result["2xx"] == n, result
    assert result["failed"] == result["errored"] == result["timeout"] == 0, result
    return result


def _settled_fds(pid: int, timeout: float = 10.0) -> int:
    """The descriptor count once it has not changed for half a second."""
    deadline = time.monotonic() + timeout
    last, since = fd_count(pid), time.monotonic()
    while time.monotonic() - since < 0.5 and time.monotonic() < deadline:
        time.sleep(0.05)
        count = fd_count(pid)
        if count != last:
            last, since = count, time.monotonic()
    return last


def _fds_back_to(pid: int, expected: int, timeout: float = 10.0) -> int:
    """Wait for the descriptor count to come back to ``expected``
    (connections are closed by the worker's loop as clients leave)."""
    deadline = time.monotonic() + timeout
    while (count := fd_count(pid)) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return count


@pytest.fixture(scope="module")
def soak(module_server) -> dict[str, dict[str, int]]:
    """Runs the soak once: figures when idle, after the warm-up, at the end."""
    srv = module_server(tls=False, threads=4)
    pid = srv.worker_pid()
    idle = {"rss": rss_kib(pid), "threads": thread_count(pid), "fds": _settled_fds(pid)}
    _load(srv, WARMUP)
    warm = {"rss": rss_kib(pid), "threads": thread_count(pid), "fds": _settled_fds(pid)}
    _load(srv, SOAK)
    fds = _fds_back_to(pid, warm["fds"])
    end = {"rss": rss_kib(pid), "threads": thread_count(pid), "fds": fds}
    print(
        f"\nsoak {SOAK} requests (warm-up {WARMUP}) over {CLIENTS} connections: "
        f"RSS {warm['rss']} -> {end['rss']} KiB ({end['rss'] - warm['rss']:+d} KiB), "
        f"threads {warm['threads']} -> {end['threads']}, fds {warm['fds']} -> {end['fds']} "
        f"(idle: RSS {idle['rss']} KiB, {idle['threads']} threads, {idle['fds']} fds)"
    )
    return {
        "idle": idle,
        "warm": warm,
        "end": end,
        "same_worker": {"ok": int(srv.worker_pid() == pid)},
        "tracebacks": {"count": srv.log().count("Traceback")},
    }


def test_soak_leaves_no_thread_descriptor_or_session(soak):
    warm, end = soak["warm"], soak["end"]
    assert end["threads"] == warm["threads"]
    assert end["fds"] == warm["fds"], "descriptors (sessions) left after the clients left"
    assert soak["same_worker"]["ok"], "the worker was replaced"
    assert soak["tracebacks"]["count"] == 0


def test_soak_rss_growth_after_warmup_below_10_mib(soak):
    growth = soak["end"]["rss"] - soak["warm"]["rss"]
    assert growth < RSS_GROWTH_LIMIT_KIB, f"RSS grew {growth} KiB over {SOAK} requests"


def _run_streams(conn: RawConn, first: int, count: int, block: bytes) -> int:
    """``count`` GETs, 100 in flight at a time; returns the next stream id."""
    sid = first
    while count:
        batch = min(100, count)
        conn.send(b"".join(headers_frame(s, block) for s in range(sid, sid + 2 * batch, 2)))
        conn.wait(
            lambda n=batch: sum(1 for f in conn.frames if "END_STREAM" in f.flags) >= n,
            what="a batch of responses",
        )
        ends = sum(1 for f in conn.frames if "END_STREAM" in f.flags)
        assert ends == batch and not conn.goaways() and not conn.resets()
        conn.forget()
        sid += 2 * batch
        count -= batch
    return sid


def test_long_lived_connection_keeps_no_memory_per_stream(server):
    srv = server(tls=False, threads=4)
    pid = srv.worker_pid()
    with RawConn(srv.port, timeout=20) as conn:
        # a connection window for all the bodies; primes the HPACK table
        conn.send(window_update(0, 2**31 - 1 - 65535) + conn.request(1, "/hello"))
        conn.wait(lambda: any("END_STREAM" in f.flags for f in conn.frames))
        conn.forget()
        block = conn.block("/hello")  # fully indexed from now on
        sid = _run_streams(conn, 3, 5000, block)
        warm = rss_kib(pid)
        _run_streams(conn, sid, 60_000, block)
        growth = rss_kib(pid) - warm  # the connection is still open
    print(f"\none connection, 60000 more streams: RSS {growth:+d} KiB")
    assert growth < 2 * 1024, f"RSS grew {growth} KiB over 60,000 streams on one connection"
