"""Header-block attacks: CONTINUATION floods and HPACK bombs.

With ``http2_max_header_list_size = 16384``: a decoded list above it gets a
431 on its stream, above twice it GOAWAY(ENHANCE_YOUR_CALM). A header block
is also capped while it arrives (CONTINUATION frames without END_HEADERS):
GOAWAY(ENHANCE_YOUR_CALM) before the flood ends, never after. Memory is
checked with the worker's peak RSS (VmHWM) against its RSS before.
"""

from __future__ import annotations

import pytest

from tests.attacks.support import (
    RawConn,
    assert_logged_once,
    assert_serves,
    config,
    continuation,
    goaway_code,
    headers_frame,
    responses,
    rss_kib,
    summary,
)

LIST_SIZE = 16384
CONFIG = config(http2_max_header_list_size=LIST_SIZE)
PEAK_LIMIT_KIB = 4 * 1024  # "a few MiB"
FLOOD_FRAMES = 100_000  # never reached: the server stops the flood long before


@pytest.fixture(scope="module")
def srv(module_server):
    return module_server(tls=False, threads=2, config_text=CONFIG)


@pytest.fixture
def worker(srv):
    return srv.worker_pid()


def _hpack_string(data: bytes) -> bytes:
    """An HPACK string literal, no Huffman (RFC 7541 5.2)."""
    return _hpack_int(len(data), 7, 0) + data


def _hpack_int(value: int, prefix: int, first: int) -> bytes:
    limit = (1 << prefix) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal_indexed(name: bytes, value: bytes) -> bytes:
    """Literal header field with incremental indexing, new name (RFC 7541 6.2.1)."""
    return b"\x40" + _hpack_string(name) + _hpack_string(value)


def _peak_growth_kib(pid: int, before: int) -> int:
    return rss_kib(pid, "VmHWM") - before


def _flood(conn: RawConn, frame: bytes, batch: int = 8) -> int:
    """Send ``frame`` over and over until the server answers or closes;
    returns how many were sent."""
    sent = 0
    chunk = frame * batch
    while sent < FLOOD_FRAMES and not conn.goaways() and not conn.send_failed:
        if not conn.send(chunk):
            break
        sent += batch
        conn.pump(0)
    return sent


@pytest.mark.parametrize("fragment", [0, 1024, 16384], ids=["empty", "1KiB", "16KiB"])
def test_continuation_flood_is_stopped_while_it_arrives(srv, worker, fragment):
    before = rss_kib(worker)
    start = len(srv.log())
    with RawConn(srv.port) as conn:
        conn.send(headers_frame(1, conn.block("/hello"), end_headers=False))
        sent = _flood(conn, continuation(1, b"\x00" * fragment))
        conn.wait_closed(10)
    assert sent < FLOOD_FRAMES, "the server let the whole flood in"
    goaways = conn.goaways()
    assert [goaway_code(g) for g in goaways] == ["ENHANCE_YOUR_CALM"], [
        summary(f) for f in conn.frames
    ]
    assert goaways[0].last_stream_id == 0  # stream 1 never started
    assert _peak_growth_kib(worker, before) < PEAK_LIMIT_KIB
    line = assert_logged_once(srv, start, "closed", "ENHANCE_YOUR_CALM")
    assert "CONTINUATION" in line or "header block" in line, line
    assert_serves(srv, worker)


def _big_block(conn: RawConn, total: int) -> bytes:
    """A valid request block whose decoded list is about ``total`` bytes
    (distinct 4000-byte values, so no entry is referenced twice)."""
    block = conn.block("/hello")
    count = total // 4042 + 1
    extra = [(f"x-big-{i:02d}".encode(), bytes([97 + i % 26]) * 4000) for i in range(count)]
    return block + conn.encoder.encode(extra, huffman=False)


def _split(sid: int, block: bytes, size: int = 4096) -> bytes:
    """HEADERS + CONTINUATION frames of ``size`` bytes, END_HEADERS on the last."""
    pieces = [block[i : i + size] for i in range(0, len(block), size)]
    out = headers_frame(sid, pieces[0], end_headers=len(pieces) == 1)
    for n, piece in enumerate(pieces[1:], start=2):
        out += continuation(sid, piece, end_headers=n == len(pieces))
    return out


@pytest.mark.parametrize("kind", ["long-block", "bomb-block"])
def test_huge_block_in_continuation_frames_gets_goaway(srv, worker, kind):
    """One block over twice the limit, split over CONTINUATION frames:
    long on the wire (48 KB of literals), or short (20 KB) but decoding to
    80 MB (an HPACK bomb)."""
    before = rss_kib(worker)
    start = len(srv.log())
    with RawConn(srv.port) as conn:
        if kind == "long-block":
            block = _big_block(conn, 3 * LIST_SIZE)
            assert len(block) > 2 * LIST_SIZE
        else:
            block = _bomb(conn, 20_000)
            assert len(block) < 2 * LIST_SIZE
        conn.send(_split(1, block))
        conn.wait_closed(10)
    assert [goaway_code(g) for g in conn.goaways()] == ["ENHANCE_YOUR_CALM"]
    assert not responses(conn.frames), "the request was answered"
    assert _peak_growth_kib(worker, before) < PEAK_LIMIT_KIB
    line = assert_logged_once(srv, start, "closed", "ENHANCE_YOUR_CALM")
    assert ("header block" if kind == "long-block" else "Oversized header") in line, line
    assert_serves(srv, worker)


def test_block_between_limit_and_twice_gets_431_and_the_connection_lives(srv, worker):
    with RawConn(srv.port) as conn:
        block = _big_block(conn, LIST_SIZE + LIST_SIZE // 2)
        conn.send(_split(1, block) + conn.request(3, "/hello"))
        conn.wait(lambda: len(responses(conn.frames)) == 2, what="both responses")
        assert responses(conn.frames) == {1: 431, 3: 200}
        assert not conn.goaways()
    assert srv.worker_pid() == worker


def _bomb(conn: RawConn, refs: int) -> bytes:
    """A small block that decodes huge: one ~4 KB literal added to the
    dynamic table, then referenced ``refs`` times (one byte each)."""
    return (
        conn.block("/hello")
        + literal_indexed(b"x-bomb", b"a" * 4000)
        + bytes([0x80 | 62]) * refs  # indexed field 62: the newest dynamic entry
    )


def test_hpack_bomb_gets_goaway_without_memory(srv, worker):
    """12,000 references to a 4 KB entry: 16 KB on the wire, 48 MB decoded."""
    before = rss_kib(worker)
    start = len(srv.log())
    with RawConn(srv.port) as conn:
        block = _bomb(conn, 12_000)
        assert len(block) <= 16384
        conn.send(headers_frame(1, block))
        conn.wait_closed(10)
    assert [goaway_code(g) for g in conn.goaways()] == ["ENHANCE_YOUR_CALM"]
    assert not responses(conn.frames)
    assert _peak_growth_kib(worker, before) < PEAK_LIMIT_KIB
    assert_logged_once(srv, start, "Oversized header block", "ENHANCE_YOUR_CALM")
    assert_serves(srv, worker)


def test_hpack_bomb_across_streams_is_bounded_per_request(srv, worker):
    """The entry stays in the dynamic table: each later request costs a few
    bytes and decodes to ~24 KB. Each gets 431, none decodes past the cap,
    and the connection goes on."""
    before = rss_kib(worker)
    with RawConn(srv.port) as conn:
        conn.send(headers_frame(1, _bomb(conn, 0)))
        frames = b"".join(
            headers_frame(sid, conn.block("/hello") + bytes([0x80 | 62]) * 6)
            for sid in range(3, 103, 2)
        )
        conn.send(frames + conn.request(103, "/hello"))
        conn.wait(lambda: 103 in responses(conn.frames), what="the last response")
        found = responses(conn.frames)
        assert found[1] == 200 and found[103] == 200
        assert {found[sid] for sid in range(3, 103, 2)} == {431}
        assert not conn.goaways()
    assert _peak_growth_kib(worker, before) < PEAK_LIMIT_KIB
    assert srv.worker_pid() == worker


def test_moderate_bomb_gets_431_on_its_stream_only(srv, worker):
    start = len(srv.log())
    with RawConn(srv.port) as conn:
        conn.send(headers_frame(1, _bomb(conn, 5)) + conn.request(3, "/hello"))
        conn.wait(lambda: len(responses(conn.frames)) == 2, what="both responses")
        assert responses(conn.frames) == {1: 431, 3: 200}
        assert not conn.goaways()
    assert_logged_once(srv, start, "431")
    assert srv.worker_pid() == worker
