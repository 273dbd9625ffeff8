"""Rapid reset (CVE-2023-44487): HEADERS + RST_STREAM pairs.

Every RST_STREAM a client sends costs a token of the per-connection
``http2_max_reset_streams`` bucket (here 20, never refilled); once spent the
server answers GOAWAY(ENHANCE_YOUR_CALM) and closes the connection. A stream
cancelled while its application runs stops that application at its next
write (its iterable's close() is called), and a stream reset before a pool
thread picked it up never runs the application at all.
"""

from __future__ import annotations

import time

import pytest
from h2.errors import ErrorCodes

from tests.attacks.support import (
    EYC,
    H2Client,
    RawConn,
    assert_logged_once,
    assert_serves,
    config,
    goaway_code,
    rst,
    summary,
    wait_for_file,
)

BUDGET = 20
CONFIG = config(http2_max_reset_streams=BUDGET, http2_reset_streams_per_second=0)


@pytest.fixture(scope="module")
def servers(module_server):
    return {
        False: module_server(tls=False, threads=2, config_text=CONFIG),
        True: module_server(tls=True, threads=2, config_text=CONFIG),
    }


def _context(srv, tls_files):
    return tls_files.client_context() if srv.tls else None


def _runs(srv, name: str) -> int:
    """How many times /once?id=<name> ran (one line per run)."""
    path = srv.state_dir / f"once-{name}"
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "tls"])
def test_rapid_reset_beyond_the_budget_gets_goaway(servers, tls_files, tls):
    srv = servers[tls]
    worker = srv.worker_pid()
    start = len(srv.log())
    name = "rapid" + ("tls" if tls else "clear")
    context = _context(srv, tls_files)
    with RawConn(srv.port, context) as conn:
        pairs = b"".join(
            conn.request(sid, f"/once?id={name}") + rst(sid) for sid in range(1, 400, 2)
        )
        conn.send(pairs)  # 200 pairs; the server may close before it has read them all
        conn.wait_closed(10)
    goaways = conn.goaways()
    assert len(goaways) == 1, [summary(f) for f in conn.frames]
    assert goaway_code(goaways[0]) == "ENHANCE_YOUR_CALM"
    assert conn.frames[-1] is goaways[0], "frames after the GOAWAY"
    # The GOAWAY came on the first RST_STREAM past the budget: stream 2*BUDGET+1.
    assert goaways[0].last_stream_id <= 2 * (BUDGET + 1) + 1, summary(goaways[0])
    # No application ran more often than the budget allows (most never ran:
    # their reset arrived with their HEADERS).
    assert _runs(srv, name) <= BUDGET + 1
    assert_logged_once(srv, start, "stream reset flood", "ENHANCE_YOUR_CALM")
    assert_serves(srv, worker, tls_files)


def test_resets_within_the_budget_are_fine_and_add_up(servers):
    """The budget is per connection and cumulative (no refill here): 15 pairs
    are served on, 10 more trip it."""
    srv = servers[False]
    worker = srv.worker_pid()
    with RawConn(srv.port) as conn:
        conn.send(b"".join(conn.request(sid) + rst(sid) for sid in range(1, 31, 2)))
        conn.send(conn.request(31, "/hello"))
        conn.wait(lambda: any(f.stream_id == 31 and "END_STREAM" in f.flags for f in conn.frames))
        assert not conn.goaways()
        conn.send(b"".join(conn.request(sid) + rst(sid) for sid in range(33, 53, 2)))
        conn.wait_closed(10)
        assert [goaway_code(g) for g in conn.goaways()] == ["ENHANCE_YOUR_CALM"]
    # A fresh connection has a fresh budget.
    with RawConn(srv.port) as conn:
        conn.send(b"".join(conn.request(sid) + rst(sid) for sid in range(1, 31, 2)))
        conn.send(conn.request(31, "/hello"))
        conn.wait(lambda: any(f.stream_id == 31 and "END_STREAM" in f.flags for f in conn.frames))
        assert not conn.goaways()
    assert srv.worker_pid() == worker


def test_cancelled_slow_stream_stops_its_app(servers):
    """RST_STREAM on a stream whose app is still producing: the app's
    iterable is closed at its next write and produces nothing more."""
    srv = servers[False]
    state = srv.state_dir
    with H2Client(srv.port) as client:
        sid = client.request("/ticker?id=cancelled&n=500&dt=0.02")  # 10 s of work
        client.wait(lambda: len(client.streams[sid].data) >= 5 * 1024, what="5 chunks")
        client.conn.reset_stream(sid, ErrorCodes.CANCEL)
        client.flush()
        reset_at = time.monotonic()
        closed = int(wait_for_file(state / "closed-cancelled", timeout=5))
        assert time.monotonic() - reset_at < 2.0, "close() came late"
        time.sleep(0.5)  # had the app gone on, 25 more chunks would be counted
        assert int((state / "ticks-cancelled").read_text()) == closed
        assert closed < 100, f"the app produced {closed} of 500 chunks"
        # the connection and the pool thread serve on
        response = client.get("/hello", timeout=5)
        assert response.status == 200
        assert not client.goaways()


def test_rapid_reset_of_slow_streams_runs_little_app_work(servers):
    """Within the budget, ten slow streams reset as soon as they are opened:
    each app either never ran or was closed at once, and both pool threads
    are free right after."""
    srv = servers[False]
    state = srv.state_dir
    names = [f"rr{i}" for i in range(10)]
    with RawConn(srv.port) as conn:
        frames = b"".join(
            conn.request(2 * i + 1, f"/ticker?id={name}&n=200&dt=0.05") + rst(2 * i + 1)
            for i, name in enumerate(names)
        )
        conn.send(frames)
        conn.send(conn.request(21, "/hello"))
        started = time.monotonic()
        conn.wait(lambda: any(f.stream_id == 21 and "END_STREAM" in f.flags for f in conn.frames))
        assert time.monotonic() - started < 2.0, "no pool thread was free"
        assert not conn.goaways()
    time.sleep(0.3)
    ran = [n for n in names if (state / f"ticks-{n}").exists()]
    for name in ran:
        closed = int(wait_for_file(state / f"closed-{name}", timeout=3))
        assert closed <= 2, f"{name} produced {closed} chunks after its reset"
    assert len(ran) <= 2, f"apps of reset streams ran: {ran}"


def test_reset_budget_is_spent_by_refused_and_malformed_streams_too(servers):
    """Malformed streams (here: uppercase header names) also cost a token."""
    srv = servers[False]
    worker = srv.worker_pid()
    with RawConn(srv.port) as conn:
        bad = b"".join(
            conn.request(sid, extra=[(b"X-Upper", b"1")]) for sid in range(1, 2 * BUDGET + 11, 2)
        )
        conn.send(bad)
        conn.wait_closed(10)
    resets = conn.resets()
    assert resets and set(resets.values()) == {ErrorCodes.PROTOCOL_ERROR}
    assert len(resets) <= BUDGET + 1
    assert [goaway_code(g) for g in conn.goaways()] == [EYC.name]
    assert_serves(srv, worker)
