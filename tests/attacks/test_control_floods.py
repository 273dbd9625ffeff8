"""Control-frame floods: SETTINGS, PING, PRIORITY, WINDOW_UPDATE, empty DATA
and unknown frame types.

Each costs a token of ``http2_max_control_frames`` (here 50, no refill;
SETTINGS one more per 8 entries). When the bucket is empty: GOAWAY
(ENHANCE_YOUR_CALM) and the connection closes, so the ACKs a flood earns
are bounded by the budget. A second server refills 100 tokens a second: a
client that pings at that rate is never cut off. DATA the server sends
earns its client's WINDOW_UPDATEs back (one token per frame, one more per
4 KiB), so a client with a tiny window is slow, never "a flood".
"""

from __future__ import annotations

import hashlib
import re
import struct
import time

import pytest
from hyperframe.frame import PingFrame, PriorityFrame, SettingsFrame

from h2workers.peerlog import BURST as PEER_LOG_BURST
from tests.apps import big_sha256
from tests.attacks.support import (
    PREFACE,
    FrameReader,
    H2Client,
    RawConn,
    assert_logged_once,
    assert_serves,
    config,
    goaway_code,
    headers_frame,
    ping,
    raw_frame,
    settings,
    summary,
    window_update,
)
from tests.e2e.util import nghttp_get

BUDGET = 50
FLOOD = 1000


@pytest.fixture(scope="module")
def srv(module_server):
    return module_server(
        tls=False,
        threads=2,
        config_text=config(http2_max_control_frames=BUDGET, http2_control_frames_per_second=0),
    )


@pytest.fixture(scope="module")
def refilled(module_server):
    return module_server(
        tls=False,
        threads=2,
        args=["--keep-alive", "30"],  # PINGs alone do not keep a connection busy
        config_text=config(http2_max_control_frames=BUDGET, http2_control_frames_per_second=100),
    )


def _priority(stream_id: int) -> bytes:
    frame = PriorityFrame(stream_id)
    frame.depends_on, frame.stream_weight = 0, 15
    return frame.serialize()


def _wide_settings() -> bytes:
    """SETTINGS with 40 entries (unknown ids, which must be ignored): 6 tokens."""
    payload = b"".join(struct.pack(">HI", 0x100 + i, i) for i in range(40))
    return raw_frame(0x4, 0, 0, payload)


def _empty_data(conn: RawConn) -> bytes:
    opening = headers_frame(1, conn.block("/echo", "POST"), end_stream=False)
    return opening + raw_frame(0x0, 0, 1) * FLOOD


FLOODS = {
    # name: (bytes of the flood for a connection, ACK frame type, max ACKs)
    "ping": (lambda c: b"".join(ping(i) for i in range(FLOOD)), PingFrame, BUDGET),
    "settings": (lambda c: settings() * FLOOD, SettingsFrame, BUDGET + 1),
    "wide-settings": (lambda c: _wide_settings() * FLOOD, SettingsFrame, BUDGET // 6 + 2),
    "priority": (lambda c: b"".join(_priority(2 * i + 1) for i in range(FLOOD)), None, 0),
    "window-update": (lambda c: window_update(0, 1) * FLOOD, None, 0),
    "empty-data": (_empty_data, None, 0),
    "unknown-type": (lambda c: raw_frame(0xFA, 0, 0, b"12345678") * FLOOD, None, 0),
}


@pytest.mark.parametrize("kind", FLOODS)
def test_control_flood_gets_goaway_with_bounded_acks(srv, kind):
    build, ack_type, max_acks = FLOODS[kind]
    worker = srv.worker_pid()
    start = len(srv.log())
    with RawConn(srv.port) as conn:
        conn.wait(lambda: conn.count(SettingsFrame, "ACK") == 1, what="the SETTINGS ACK")
        conn.send(build(conn))
        conn.wait_closed(10)
    goaways = conn.goaways()
    assert [goaway_code(g) for g in goaways] == ["ENHANCE_YOUR_CALM"], [
        summary(f) for f in conn.frames
    ]
    assert conn.frames[-1] is goaways[0]
    if ack_type is not None:
        acks = conn.count(ack_type, "ACK")
        assert acks <= max_acks, f"{acks} ACKs for a budget of {BUDGET}"
        assert acks >= max_acks // 2, f"only {acks} ACKs: the budget is not what stopped it"
    assert_logged_once(srv, start, "control frame flood", "ENHANCE_YOUR_CALM")
    assert_serves(srv, worker)


def test_flood_spread_over_connections_is_counted_per_connection(srv):
    """Forty PINGs on each of five connections: each within its own budget."""
    conns = [RawConn(srv.port) for _ in range(5)]
    try:
        for conn in conns:
            conn.send(b"".join(ping(i) for i in range(40)))
        for conn in conns:
            conn.wait(lambda c=conn: c.count(PingFrame, "ACK") == 40, what="40 PING ACKs")
            assert not conn.goaways()
    finally:
        for conn in conns:
            conn.close()


def test_a_flood_from_many_connections_is_logged_in_a_few_lines(srv):
    """Forty connections flood PINGs: each gets its GOAWAY, but the log
    holds a few lines of it a second and one line counting the rest, which
    together account for all forty."""
    start = len(srv.log())
    conns = [RawConn(srv.port) for _ in range(40)]
    try:
        for conn in conns:
            conn.send(b"".join(ping(i) for i in range(FLOOD)))
        for conn in conns:
            conn.wait_closed(10)
            assert [goaway_code(g) for g in conn.goaways()] == ["ENHANCE_YOUR_CALM"]
    finally:
        for conn in conns:
            conn.close()
    deadline = time.monotonic() + 10  # the count is written at the worker's next tick
    while "more like this" not in (text := srv.log()[start:]) and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [ln for ln in text.splitlines() if "control frame flood" in ln]
    counted = [int(m.group(1)) for ln in lines if (m := re.search(r"(\d+) more like this", ln))]
    written = len(lines) - len(counted)
    assert written + sum(counted) == 40, lines
    assert written <= 3 * PEER_LOG_BURST, lines  # at most three seconds' worth


def _paced_pings(port: int, rounds: int, per_round: int, gap: float) -> RawConn:
    conn = RawConn(port)
    for round_ in range(rounds):
        conn.send(b"".join(ping(round_ * 1000 + i) for i in range(per_round)))
        conn.wait(
            lambda n=per_round * (round_ + 1): conn.count(PingFrame, "ACK") == n,
            what=f"PING ACKs of round {round_}",
        )
        time.sleep(gap)
    return conn


def test_budget_refills_over_time(refilled):
    """100 PINGs, 20 a second (double the burst of 50 in all): all ACKed, no
    GOAWAY. Then a burst of 200 trips the burst budget."""
    with _paced_pings(refilled.port, rounds=5, per_round=20, gap=1.0) as conn:
        assert not conn.goaways()
        conn.send(b"".join(ping(i) for i in range(200)))
        conn.wait_closed(10)
        assert [goaway_code(g) for g in conn.goaways()] == ["ENHANCE_YOUR_CALM"]


def test_pings_under_the_refill_rate_are_never_cut_off(refilled):
    """30 PINGs every 0.4 s: 75 a second, under the 100 refilled, each burst
    under the burst budget. A token bucket never cuts this client off."""
    with _paced_pings(refilled.port, rounds=5, per_round=30, gap=0.4) as conn:
        assert not conn.goaways()


class CountingClient(H2Client):
    """Counts the frames it sends, by type."""

    def __init__(self, *args, **kwargs) -> None:
        self.sent_reader = FrameReader()
        self.sent_types: list[str] = []
        self._preface_left = len(PREFACE)
        super().__init__(*args, **kwargs)

    def send_raw(self, data: bytes) -> None:
        skip = min(self._preface_left, len(data))
        self._preface_left -= skip
        for frame in self.sent_reader.feed(data[skip:]):
            self.sent_types.append(type(frame).__name__)
        super().send_raw(data)


def test_download_earns_its_window_updates(srv):
    """A 4 MiB download makes the client send far more WINDOW_UPDATEs than
    the budget of 50: the DATA it receives pays for them."""
    worker = srv.worker_pid()
    with CountingClient(srv.port, timeout=20) as client:
        response = client.get("/big?mb=4", timeout=20)
        assert response.status == 200 and len(response.data) == 4 << 20
        updates = client.sent_types.count("WindowUpdateFrame")
        assert updates > BUDGET, f"only {updates} WINDOW_UPDATEs: the test proves nothing"
        assert not client.goaways(), [summary(g) for g in client.goaways()]
        assert client.get("/hello").status == 200
    assert srv.worker_pid() == worker


@pytest.mark.parametrize("window_bits", [8, 10])
def test_a_tiny_window_is_slow_not_a_flood(srv, tmp_path, window_bits):
    """nghttp with a 255- or 1,023-byte stream window credits every few
    hundred bytes: 1 MiB takes thousands of WINDOW_UPDATEs against a budget
    of 50 with no refill. Each lets a DATA frame out, which pays it back, so
    the download completes instead of ending in GOAWAY(ENHANCE_YOUR_CALM)."""
    seen = len(srv.log())
    body = nghttp_get(f"{srv.url}/big?mb=1", f"-w{window_bits}", "-W16")
    assert hashlib.sha256(body).hexdigest() == big_sha256(1)
    assert "ENHANCE_YOUR_CALM" not in srv.log()[seen:]
