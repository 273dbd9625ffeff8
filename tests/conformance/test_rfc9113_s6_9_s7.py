"""RFC 9113 section 6, part two: WINDOW_UPDATE (6.9), the flow-control
window (6.9.1), initial window size changes (6.9.2) and CONTINUATION (6.10),
and section 7 (error codes), as h2spec's ``http2/6.9`` to ``6.10`` and
``http2/7`` check them, with the exact frames asserted."""

from __future__ import annotations

import struct

import pytest

from h2workers.config import H2Settings
from h2workers.proto import events as ev

from .util import (
    DEFAULT_MAX_FRAME,
    DEFAULT_WINDOW,
    ENHANCE_YOUR_CALM,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    INITIAL_WINDOW_SIZE,
    INTERNAL_ERROR,
    MAX_WINDOW,
    PING,
    PROTOCOL_ERROR,
    SETTINGS,
    SETTINGS_ACK,
    WINDOW_UPDATE,
    Peer,
    assert_alive,
    assert_connection_error,
    assert_stream_error,
    assert_stream_or_connection_error,
    continuation,
    data,
    frame,
    goaway_frame,
    headers,
    open_post,
    ping,
    ping_ack,
    request_block,
    resp_data,
    resp_headers,
    respond,
    rst_stream,
    settings,
    window_update,
    wire_connection_error,
)

# -- 6.9 WINDOW_UPDATE --------------------------------------------------------------------


def test_window_update_of_zero_on_connection_is_protocol_error():
    """6.9: an increment of 0 for the connection: connection error
    PROTOCOL_ERROR (h2spec http2/6.9/1)."""
    assert_connection_error(Peer(), PROTOCOL_ERROR, 0, window_update(0, 0))


def test_window_update_of_zero_on_stream_is_protocol_error():
    """6.9: an increment of 0 for a stream: stream error PROTOCOL_ERROR
    (h2spec http2/6.9/2); this server makes it a connection error (5.4.1)."""
    peer = Peer()
    open_post(peer)
    assert_stream_or_connection_error(peer, 1, PROTOCOL_ERROR, 1, window_update(1, 0))


@pytest.mark.parametrize("length", [3, 5])
def test_window_update_of_wrong_length_is_frame_size_error(length):
    """6.9: a WINDOW_UPDATE of a length other than 4: connection error
    FRAME_SIZE_ERROR (h2spec http2/6.9/3)."""
    assert_connection_error(Peer(), FRAME_SIZE_ERROR, 0, frame(WINDOW_UPDATE, 0, 0, b"\1" * length))


def test_window_update_reserved_bit_is_ignored():
    """6.9: the reserved bit before the 31-bit increment MUST be ignored when
    receiving: 0x80000003 is an increment of 3."""
    peer = Peer(client_settings=[(INITIAL_WINDOW_SIZE, 0)])
    peer.open(1)
    assert respond(peer, 1, b"abc") == [resp_headers(1)]
    reserved = frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 0x8000_0003))
    assert peer.exchange(reserved) == [resp_data(1, 3)]


def test_window_updates_are_accepted():
    """6.9: WINDOW_UPDATE for the connection and for a stream (h2spec
    generic/3.9/1-2)."""
    peer = Peer()
    open_post(peer)
    assert peer.exchange(window_update(0, 1), window_update(1, 1)) == []
    assert_alive(peer)


# -- 6.9.1 the flow-control window ----------------------------------------------------------


def test_initial_window_of_one_octet():
    """6.9.1: with SETTINGS_INITIAL_WINDOW_SIZE 1 the server sends one octet of
    DATA, then waits for WINDOW_UPDATE (h2spec http2/6.9.1/1)."""
    peer = Peer()
    assert peer.exchange(settings((INITIAL_WINDOW_SIZE, 1))) == [SETTINGS_ACK]
    peer.open(1)
    assert respond(peer, 1, b"hello") == [resp_headers(1), resp_data(1, 1, end_stream=False)]
    assert peer.exchange(window_update(1, 4)) == [resp_data(1, 4)]


def test_connection_window_overflow_is_flow_control_error():
    """6.9.1: a WINDOW_UPDATE taking the connection window over 2^31-1:
    connection error FLOW_CONTROL_ERROR (h2spec http2/6.9.1/2)."""
    peer = Peer()
    assert_connection_error(
        peer, FLOW_CONTROL_ERROR, 0, window_update(0, MAX_WINDOW), window_update(0, MAX_WINDOW)
    )


def test_stream_window_overflow_is_stream_error():
    """6.9.1: taking a stream window over 2^31-1: RST_STREAM with
    FLOW_CONTROL_ERROR for that stream (h2spec http2/6.9.1/3)."""
    peer = Peer()
    open_post(peer)
    assert_stream_error(
        peer, 1, FLOW_CONTROL_ERROR, window_update(1, MAX_WINDOW), window_update(1, MAX_WINDOW)
    )


def test_client_data_over_our_window_is_flow_control_error():
    """6.9.1: a sender MUST NOT exceed the receiver's window; the server
    answers FLOW_CONTROL_ERROR (stream or connection)."""
    peer = Peer(H2Settings(initial_window_size=100))
    open_post(peer)
    assert_stream_or_connection_error(peer, 1, FLOW_CONTROL_ERROR, 1, data(1, b"x" * 101))


def test_empty_data_with_end_stream_needs_no_window():
    """6.9.1: an empty DATA frame with END_STREAM may be sent with no window."""
    peer = Peer(H2Settings(initial_window_size=100))
    open_post(peer)
    peer.send(data(1, b"x" * 100), data(1, b"", end_stream=True))
    assert peer.events[-1] == ev.RequestData(1, b"", True)
    assert_alive(peer)


def test_connection_window_limits_the_server():
    """6.9.1 / 6.9.2: the client's 65535-octet connection window binds even
    when its stream window is larger; SETTINGS never changes it, only
    WINDOW_UPDATE on stream 0 does."""
    peer = Peer(client_settings=[(INITIAL_WINDOW_SIZE, MAX_WINDOW)])
    peer.open(1)
    sizes = [DEFAULT_MAX_FRAME] * 3 + [DEFAULT_WINDOW - 3 * DEFAULT_MAX_FRAME]
    assert respond(peer, 1, b"c" * 70_000) == [
        resp_headers(1), *[resp_data(1, n, end_stream=False) for n in sizes]
    ]  # fmt: skip
    assert peer.exchange(window_update(0, 10)) == [resp_data(1, 10, end_stream=False)]
    assert peer.exchange(window_update(0, 10_000)) == [resp_data(1, 70_000 - DEFAULT_WINDOW - 10)]


# -- 6.9.2 initial flow-control window size ---------------------------------------------------


def test_initial_window_change_applies_to_open_streams():
    """6.9.2: a new SETTINGS_INITIAL_WINDOW_SIZE adjusts every open stream's
    window by the difference (h2spec http2/6.9.2/1: 0, then 10)."""
    peer = Peer(client_settings=[(INITIAL_WINDOW_SIZE, 0)])
    peer.open(1)
    assert respond(peer, 1, b"hello") == [resp_headers(1)]
    assert peer.exchange(settings((INITIAL_WINDOW_SIZE, 10))) == [SETTINGS_ACK, resp_data(1, 5)]


def test_initial_window_change_can_make_a_window_negative():
    """6.9.2: a smaller SETTINGS_INITIAL_WINDOW_SIZE can make a stream window
    negative; the server then waits until WINDOW_UPDATEs make it positive
    (h2spec http2/6.9.2/2)."""
    peer = Peer(client_settings=[(INITIAL_WINDOW_SIZE, 5)])
    peer.open(1)
    got = respond(peer, 1, b"hello world")
    assert got == [resp_headers(1), resp_data(1, 5, end_stream=False)]
    assert peer.exchange(settings((INITIAL_WINDOW_SIZE, 3))) == [SETTINGS_ACK]  # window -2
    assert peer.exchange(window_update(1, 2)) == []  # window 0
    assert peer.exchange(window_update(1, 1)) == [resp_data(1, 1, end_stream=False)]
    assert peer.exchange(window_update(1, 100)) == [resp_data(1, 5)]


def test_initial_window_over_maximum_is_flow_control_error():
    """6.9.2: SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1: connection error
    FLOW_CONTROL_ERROR (h2spec http2/6.9.2/3)."""
    peer = Peer()
    assert_connection_error(peer, FLOW_CONTROL_ERROR, 0, frame(SETTINGS, 0, 0, b"\0\4\x80\0\0\0"))


def test_initial_window_change_overflowing_a_stream_is_flow_control_error():
    """6.9.2: a change of SETTINGS_INITIAL_WINDOW_SIZE that takes any stream
    window over 2^31-1 MUST be a connection error FLOW_CONTROL_ERROR."""
    peer = Peer()
    peer.open(1)
    assert peer.exchange(window_update(1, 1000)) == []
    too_big = settings((INITIAL_WINDOW_SIZE, MAX_WINDOW))
    assert_connection_error(peer, FLOW_CONTROL_ERROR, 1, too_big)


# -- 6.10 CONTINUATION --------------------------------------------------------------------------


def test_multiple_continuations_complete_a_request():
    """6.10: HEADERS then several CONTINUATION frames form one request,
    which is answered (h2spec http2/6.10/1, generic/3.10/1-2)."""
    peer = Peer()
    block = peer.encode(request_block(extra=[(b"x-a", b"1"), (b"x-b", b"2")]))
    frames = [headers(1, block[:4], end_headers=False)]
    frames += [continuation(1, block[i : i + 4], end_headers=False) for i in range(4, 12, 4)]
    frames.append(continuation(1, block[12:]))
    assert peer.exchange(*frames) == []
    assert peer.started()[0].head.headers == [(b"x-a", b"1"), (b"x-b", b"2")]
    assert peer.answer(1) == [resp_headers(1), resp_data(1, 2)]


def _open_block(peer: Peer) -> tuple[bytes, bytes]:
    block = peer.encode(request_block())
    return headers(1, block[:3], end_stream=False, end_headers=False), block[3:]


@pytest.mark.parametrize(
    "follow",
    ["DATA", "CONTINUATION-stream-0", "CONTINUATION-stream-3"],  # h2spec http2/6.10/2-3
)
def test_field_block_must_continue_on_its_stream(follow):
    """6.10: after a frame without END_HEADERS only a CONTINUATION of the same
    stream may follow: anything else is a connection error PROTOCOL_ERROR."""
    peer = Peer()
    first, rest = _open_block(peer)
    second = {
        "DATA": data(1, b"test", end_stream=True),
        "CONTINUATION-stream-0": continuation(0, rest),
        "CONTINUATION-stream-3": continuation(3, rest),
    }[follow]
    middle = [continuation(1, rest[:1], end_headers=False)] if follow == "DATA" else []
    assert_connection_error(peer, PROTOCOL_ERROR, 0, first, *middle, second)


@pytest.mark.parametrize(
    "before", ["HEADERS-END_HEADERS", "CONTINUATION-END_HEADERS", "DATA"]
)  # h2spec http2/6.10/4-6
def test_continuation_without_open_field_block_is_protocol_error(before):
    """6.10: a CONTINUATION not preceded by HEADERS, PUSH_PROMISE or
    CONTINUATION without END_HEADERS: connection error PROTOCOL_ERROR."""
    peer = Peer()
    block = peer.encode(request_block(method=b"POST"))
    if before == "HEADERS-END_HEADERS":
        sent = [headers(1, block, end_stream=False)]
    elif before == "CONTINUATION-END_HEADERS":
        first = headers(1, block[:3], end_stream=False, end_headers=False)
        sent = [first, continuation(1, block[3:])]
    else:
        sent = [headers(1, block, end_stream=False), data(1, b"test")]
    peer.send(*sent)
    assert peer.frames() == []
    assert_connection_error(peer, PROTOCOL_ERROR, 1, continuation(1, peer.encode([(b"x", b"1")])))


def test_endless_continuations_end_the_connection():
    """6.10 / 10.5: a field block that never ends (a CONTINUATION flood) is
    not buffered forever: the connection is closed (ENHANCE_YOUR_CALM)."""
    peer = Peer()
    first, _ = _open_block(peer)
    flood = [continuation(1, b"", end_headers=False) for _ in range(100)]
    assert_connection_error(peer, ENHANCE_YOUR_CALM, 0, first, *flood)


# -- 7 error codes -----------------------------------------------------------------------------


def test_goaway_with_unknown_error_code():
    """7: unknown error codes MUST NOT trigger special behaviour; they may be
    taken as INTERNAL_ERROR (h2spec http2/7/1): the client's GOAWAY ends the
    connection, and the server writes nothing after it."""
    peer = Peer()
    assert peer.exchange(goaway_frame(0, 0xFF)) == []
    assert peer.events[-1] == ev.ConnectionEnded(INTERNAL_ERROR, True, False, "peer sent GOAWAY")
    assert peer.core.finished


def test_rst_stream_with_unknown_error_code():
    """7: a RST_STREAM with an unknown code resets the stream like any other
    (reported as INTERNAL_ERROR); the connection goes on (h2spec http2/7/2)."""
    peer = Peer()
    open_post(peer)
    assert peer.exchange(rst_stream(1, 0xFF), ping()) == [ping_ack()]
    assert peer.events[-1] == ev.StreamAborted(1, INTERNAL_ERROR, by_peer=True)


# -- over a socket ----------------------------------------------------------------------------


def test_wire_connection_window_overflow(wire_server):
    """6.9.1 over a socket: GOAWAY(FLOW_CONTROL_ERROR), then close."""
    with wire_server.connect() as wire:
        wire_connection_error(
            wire, FLOW_CONTROL_ERROR, 0, window_update(0, MAX_WINDOW), window_update(0, MAX_WINDOW)
        )


def test_wire_flow_control_one_octet_window(wire_server):
    """6.9.1 / 6.9.2 over a socket: with an initial window of 1 the worker
    sends exactly one octet, and the rest when the window opens."""
    with wire_server.connect((INITIAL_WINDOW_SIZE, 1)) as wire:
        wire.send(wire.request(1, b"/hello"))
        assert wire.wait(lambda: any(f.ftype == 0 for f in wire.raw))
        wire.send(ping())  # anything else the server had to send is out before the ACK
        assert wire.wait(lambda: wire.raw[-1].ftype == PING)
        assert wire.take() == [resp_headers(1), resp_data(1, 1, end_stream=False), ping_ack()]
        wire.send(window_update(1, 13))
        assert wire.wait(lambda: wire.ended(1))
        assert wire.take() == [resp_data(1, 13)]
        assert wire.body(1) == b"Hello, world!\n"


def test_wire_window_update_reopens_upload(wire_server):
    """6.9 over a socket: a request body larger than the stream window is
    received as the server sends WINDOW_UPDATEs (which must never be 0)."""
    size = 3 * DEFAULT_WINDOW
    with wire_server.connect() as wire:
        length = (b"content-length", str(size).encode())
        wire.send(wire.request(1, b"/upload-count", b"POST", [length], end_stream=False))
        window, sent = DEFAULT_WINDOW, 0
        while sent < size:
            chunk = min(window, DEFAULT_MAX_FRAME, size - sent)
            if chunk:
                wire.send(data(1, b"u" * chunk, end_stream=sent + chunk == size))
                sent, window = sent + chunk, window - chunk
                continue
            seen = len(wire.raw)
            assert wire.wait(lambda n=seen: len(wire.raw) > n)
            updates = [f for f in wire.raw[seen:] if f.ftype == WINDOW_UPDATE]
            assert all(int.from_bytes(f.payload, "big") > 0 for f in updates)
            window += sum(int.from_bytes(f.payload, "big") for f in updates if f.sid == 1)
        assert wire.wait(lambda: wire.ended(1))
        assert b'"count": %d' % size in wire.body(1)
