"""RFC 9113 section 6, part one: DATA (6.1), HEADERS (6.2), PRIORITY (6.3),
RST_STREAM (6.4), SETTINGS (6.5, 6.5.2, 6.5.3), PING (6.7) and GOAWAY (6.8),
as h2spec's ``http2/6.1`` to ``6.8`` and ``generic/3.*`` check them, with the
exact frames asserted. WINDOW_UPDATE, flow control, CONTINUATION and
section 7 are in ``test_rfc9113_s6_9_s7.py``."""

from __future__ import annotations

import pytest

from h2workers.config import H2Settings
from h2workers.proto import events as ev

from .util import (
    ACK,
    CANCEL,
    DEFAULT_MAX_FRAME,
    ENABLE_PUSH,
    END_HEADERS,
    END_STREAM,
    ENHANCE_YOUR_CALM,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    HEADER_TABLE_SIZE,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    MAX_FRAME_SIZE,
    MAX_HEADER_LIST_SIZE,
    MAX_WINDOW,
    NO_ERROR,
    PADDED,
    PING,
    PRIORITY,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    RST_STREAM,
    SETTINGS,
    SETTINGS_ACK,
    STREAM_CLOSED,
    Peer,
    assert_alive,
    assert_connection_error,
    assert_stream_error,
    assert_stream_or_connection_error,
    data,
    frame,
    goaway,
    goaway_frame,
    open_post,
    ping,
    ping_ack,
    priority,
    request_block,
    resp_data,
    resp_headers,
    respond,
    rst,
    rst_stream,
    settings,
    wire_connection_error,
    wu,
)

# -- 6.1 DATA ---------------------------------------------------------------------------


def test_data_frames_are_delivered_in_order():
    """6.1: DATA frames carry the request body (h2spec generic/3.1/1-2)."""
    peer = Peer()
    open_post(peer)
    peer.send(data(1, b"one "), data(1, b"two "), data(1, b"three", end_stream=True))
    assert [e.data for e in peer.events[-3:]] == [b"one ", b"two ", b"three"]
    assert peer.events[-1].end_stream


def test_data_on_stream_zero_is_protocol_error():
    """6.1: DATA not associated with a stream: connection error
    PROTOCOL_ERROR (h2spec http2/6.1/1)."""
    assert_connection_error(Peer(), PROTOCOL_ERROR, 0, data(0, b"test"))


def test_data_after_end_stream_is_stream_closed():
    """6.1: DATA on a stream not "open" or "half-closed (local)" MUST get a
    stream error STREAM_CLOSED (h2spec http2/6.1/2)."""
    peer = Peer()
    peer.open(1)
    assert_stream_error(peer, 1, STREAM_CLOSED, data(1, b"test", end_stream=True))


def test_data_pad_length_too_large_is_protocol_error():
    """6.1: padding as long as the payload or longer is a connection error
    PROTOCOL_ERROR (h2spec http2/6.1/3)."""
    peer = Peer()
    open_post(peer)
    bad = frame(0x0, PADDED | END_STREAM, 1, bytes((6,)) + b"test")
    assert_connection_error(peer, PROTOCOL_ERROR, 1, bad)


def test_padding_is_stripped_and_counts_for_flow_control():
    """6.1: padding is not body (h2spec generic/3.1/3), but "the entire DATA
    frame payload is included in flow control": with a 100-octet window, 50
    octets + Pad Length + 49 padding fit, and the padding is credited back."""
    peer = Peer(H2Settings(initial_window_size=100))
    open_post(peer)
    got = peer.exchange(data(1, b"p" * 50, pad=49))
    assert peer.events[-1] == ev.RequestData(1, b"p" * 50, False)
    assert got == [wu(0, 50), wu(1, 50)]  # Pad Length + padding, nobody reads them


def test_padding_over_the_window_is_flow_control_error():
    """6.1 / 6.9.1: 50 octets + Pad Length + 50 padding exceed a 100-octet
    window: FLOW_CONTROL_ERROR (stream or connection)."""
    peer = Peer(H2Settings(initial_window_size=100))
    open_post(peer)
    assert_stream_or_connection_error(peer, 1, FLOW_CONTROL_ERROR, 1, data(1, b"p" * 50, pad=50))


# -- 6.2 HEADERS ----------------------------------------------------------------------


def test_headers_with_padding_and_priority():
    """6.2: a padded HEADERS frame and one with the PRIORITY flag open
    streams normally (h2spec generic/3.2/1-3)."""
    peer = Peer()
    assert peer.exchange(peer.request(1, pad=10)) == []
    assert peer.exchange(peer.request(3, priority=(1, 63, True), pad=3)) == []
    one, three = peer.started()
    assert one.head.path == three.head.path == b"/"
    assert (three.head.priority.weight, three.head.priority.depends_on) == (64, 1)


@pytest.mark.parametrize("other", ["PRIORITY", "HEADERS"])
def test_headers_without_end_headers_then_other_frame(other):
    """6.2: a HEADERS frame without END_HEADERS MUST be followed by a
    CONTINUATION of the same stream: connection error PROTOCOL_ERROR
    (h2spec http2/6.2/1 PRIORITY, http2/6.2/2 HEADERS on stream 3)."""
    peer = Peer()
    first = peer.request(1, end_headers=False)
    second = priority(1, 0, 255) if other == "PRIORITY" else peer.request(3)
    assert_connection_error(peer, PROTOCOL_ERROR, 0, first, second)


def test_headers_on_stream_zero_is_protocol_error():
    """6.2: HEADERS with stream id 0: connection error PROTOCOL_ERROR
    (h2spec http2/6.2/3)."""
    peer = Peer()
    assert_connection_error(peer, PROTOCOL_ERROR, 0, peer.request(0))


def test_headers_pad_length_too_large_is_protocol_error():
    """6.2: padding that exceeds the remaining payload: connection error
    PROTOCOL_ERROR (h2spec http2/6.2/4)."""
    peer = Peer()
    block = peer.encode(request_block())
    bad = frame(HEADERS, PADDED | END_HEADERS | END_STREAM, 1, bytes((len(block) + 1,)) + block)
    assert_connection_error(peer, PROTOCOL_ERROR, 0, bad)


# -- 6.3 PRIORITY ----------------------------------------------------------------------


def test_priority_on_stream_zero_is_protocol_error():
    """6.3: PRIORITY with stream id 0: connection error PROTOCOL_ERROR
    (h2spec http2/6.3/1)."""
    assert_connection_error(Peer(), PROTOCOL_ERROR, 0, priority(0, 1, 15))


@pytest.mark.parametrize("length", [4, 6])
def test_priority_of_wrong_length_is_frame_size_error(length):
    """6.3: a PRIORITY frame of a length other than 5 is a stream error
    FRAME_SIZE_ERROR (h2spec http2/6.3/2); a connection error is allowed."""
    peer = Peer()
    open_post(peer)
    bad = frame(PRIORITY, 0, 1, b"\0" * length)
    assert_stream_or_connection_error(peer, 1, FRAME_SIZE_ERROR, 1, bad)


# -- 6.4 RST_STREAM -------------------------------------------------------------------


def test_rst_stream_on_stream_zero_is_protocol_error():
    """6.4: RST_STREAM on stream 0: connection error PROTOCOL_ERROR
    (h2spec http2/6.4/1)."""
    assert_connection_error(Peer(), PROTOCOL_ERROR, 0, rst_stream(0))


def test_rst_stream_on_idle_stream_is_protocol_error():
    """6.4: RST_STREAM on an idle stream: connection error PROTOCOL_ERROR
    (h2spec http2/6.4/2)."""
    assert_connection_error(Peer(), PROTOCOL_ERROR, 0, rst_stream(1))


@pytest.mark.parametrize("length", [3, 5])
def test_rst_stream_of_wrong_length_is_frame_size_error(length):
    """6.4: a RST_STREAM of a length other than 4: connection error
    FRAME_SIZE_ERROR (h2spec http2/6.4/3)."""
    peer = Peer()
    open_post(peer)
    assert_connection_error(peer, FRAME_SIZE_ERROR, 1, frame(RST_STREAM, 0, 1, b"\0" * length))


def test_rst_stream_cancels_the_stream():
    """6.4: RST_STREAM ends the stream at once; the application is told and
    nothing more is sent on it (h2spec generic/3.4/1)."""
    peer = Peer()
    open_post(peer)
    assert peer.exchange(rst_stream(1, CANCEL)) == []
    assert peer.events[-1] == ev.StreamAborted(1, CANCEL, by_peer=True)
    assert respond(peer, 1, b"late") == []


# -- 6.5 SETTINGS -----------------------------------------------------------------------


def test_settings_ack_with_payload_is_frame_size_error():
    """6.5: a SETTINGS ACK with a length other than 0 MUST be a connection
    error FRAME_SIZE_ERROR (h2spec http2/6.5/1)."""
    assert_connection_error(Peer(), FRAME_SIZE_ERROR, 0, frame(SETTINGS, ACK, 0, b"\0"))


def test_settings_on_a_stream_is_protocol_error():
    """6.5: SETTINGS with a stream id other than 0: connection error
    PROTOCOL_ERROR (h2spec http2/6.5/2)."""
    peer = Peer()
    assert_connection_error(peer, PROTOCOL_ERROR, 0, frame(SETTINGS, 0, 1, b"\0\3\0\0\0\x64"))


def test_settings_length_not_multiple_of_six_is_frame_size_error():
    """6.5: a length that is not a multiple of 6: connection error
    FRAME_SIZE_ERROR (h2spec http2/6.5/3)."""
    assert_connection_error(Peer(), FRAME_SIZE_ERROR, 0, frame(SETTINGS, 0, 0, b"\0\3\0"))


@pytest.mark.parametrize(
    "pair, code",
    [
        ((ENABLE_PUSH, 2), PROTOCOL_ERROR),  # h2spec http2/6.5.2/1
        ((INITIAL_WINDOW_SIZE, MAX_WINDOW + 1), FLOW_CONTROL_ERROR),  # http2/6.5.2/2
        ((MAX_FRAME_SIZE, DEFAULT_MAX_FRAME - 1), PROTOCOL_ERROR),  # http2/6.5.2/3
        ((MAX_FRAME_SIZE, 1 << 24), PROTOCOL_ERROR),  # http2/6.5.2/4
    ],
    ids=["enable-push-2", "window-2^31", "frame-size-16383", "frame-size-2^24"],
)
def test_settings_values_out_of_range(pair, code):
    """6.5.2: values outside the defined ranges are connection errors."""
    assert_connection_error(Peer(), code, 0, settings(pair))


@pytest.mark.parametrize(
    "pair",
    [
        (ENABLE_PUSH, 0),
        (ENABLE_PUSH, 1),
        (INITIAL_WINDOW_SIZE, MAX_WINDOW),
        (MAX_FRAME_SIZE, DEFAULT_MAX_FRAME),
        (MAX_FRAME_SIZE, (1 << 24) - 1),
        (HEADER_TABLE_SIZE, 0),
        (HEADER_TABLE_SIZE, (1 << 32) - 1),
        (MAX_HEADER_LIST_SIZE, 0),
        (0xFF, 1),  # unknown: MUST be ignored (h2spec http2/6.5.2/5)
    ],
    ids=lambda p: f"{p[0]:#x}={p[1]}",
)
def test_settings_values_in_range_are_acknowledged(pair):
    """6.5.2 / 6.5.3: in-range values and unknown identifiers are accepted:
    SETTINGS ACK, and the connection goes on."""
    peer = Peer()
    assert peer.exchange(settings(pair), ping()) == [SETTINGS_ACK, ping_ack()]


def test_each_settings_frame_is_acknowledged_once():
    """6.5.3: every SETTINGS (even empty: h2spec generic/3.5/1, http2/6.5.3/2)
    gets exactly one ACK, in order; a SETTINGS ACK is not acknowledged."""
    peer = Peer()
    got = peer.exchange(settings(), settings((INITIAL_WINDOW_SIZE, 10)), settings(ack=True))
    assert got == [SETTINGS_ACK, SETTINGS_ACK]


def test_last_value_in_a_settings_frame_wins():
    """6.5.3: values are processed in order: the last INITIAL_WINDOW_SIZE of
    a frame applies (h2spec http2/6.5.3/1, 100 then 1)."""
    peer = Peer()
    pairs = ((INITIAL_WINDOW_SIZE, 100), (INITIAL_WINDOW_SIZE, 1))
    assert peer.exchange(settings(*pairs)) == [SETTINGS_ACK]
    peer.open(1)
    assert respond(peer, 1, b"hello") == [resp_headers(1), resp_data(1, 1, end_stream=False)]


def test_header_list_over_advertised_limit_gets_431():
    """6.5.2 / 10.5.1: a field section over our SETTINGS_MAX_HEADER_LIST_SIZE
    may be refused; the server answers that one request with 431 and the
    connection goes on."""
    peer = Peer(H2Settings(max_header_list_size=1000))
    assert peer.exchange(peer.request(1, request_block(extra=[(b"x-big", b"b" * 1200)]))) == [
        resp_headers(1, end_stream=True)
    ]
    assert peer.blocks(1) == [[(b":status", b"431"), (b"content-length", b"0")]]
    assert_alive(peer)
    peer.open(3)


def test_header_list_far_over_the_limit_is_enhance_your_calm():
    """10.5.1: a field section far beyond the advertised limit ends the
    connection (ENHANCE_YOUR_CALM); decoding stops early."""
    peer = Peer(H2Settings(max_header_list_size=1000))
    block = request_block(extra=[(b"x-big", b"b" * 3000)])
    assert_connection_error(peer, ENHANCE_YOUR_CALM, 0, peer.request(1, block))


# -- 6.7 PING ----------------------------------------------------------------------------


def test_ping_is_answered_with_same_payload():
    """6.7: a PING gets a PING with ACK and the identical payload
    (h2spec http2/6.7/1, generic/3.7/1)."""
    peer = Peer()
    assert peer.exchange(ping(b"\x00\xffopaque")) == [ping_ack(b"\x00\xffopaque")]


def test_ping_ack_is_not_answered():
    """6.7: a PING with ACK MUST NOT be answered (h2spec http2/6.7/2)."""
    peer = Peer()
    assert peer.exchange(ping(b"unexpect", ack=True), ping(b"expected")) == [ping_ack(b"expected")]


def test_ping_on_a_stream_is_protocol_error():
    """6.7: PING with a stream id other than 0: connection error
    PROTOCOL_ERROR (h2spec http2/6.7/3)."""
    assert_connection_error(Peer(), PROTOCOL_ERROR, 0, frame(PING, 0, 1, b"\0" * 8))


@pytest.mark.parametrize("length", [0, 6, 9])
def test_ping_of_wrong_length_is_frame_size_error(length):
    """6.7: a PING of a length other than 8: connection error
    FRAME_SIZE_ERROR (h2spec http2/6.7/4)."""
    assert_connection_error(Peer(), FRAME_SIZE_ERROR, 0, frame(PING, 0, 0, b"\0" * length))


def test_ping_is_answered_while_data_waits_for_window():
    """6.7: PING responses SHOULD be given priority: they go out while a
    response is blocked by flow control."""
    peer = Peer(client_settings=[(INITIAL_WINDOW_SIZE, 0)])
    peer.open(1)
    assert respond(peer, 1, b"x" * 10) == [resp_headers(1)]
    assert peer.exchange(ping()) == [ping_ack()]


# -- 6.8 GOAWAY --------------------------------------------------------------------------


def test_goaway_on_a_stream_is_protocol_error():
    """6.8: GOAWAY with a stream id other than 0: connection error
    PROTOCOL_ERROR (h2spec http2/6.8/1)."""
    assert_connection_error(Peer(), PROTOCOL_ERROR, 0, frame(0x7, 0, 1, b"\0" * 8))


def test_client_goaway_lets_open_streams_finish():
    """6.8: after a client's GOAWAY(NO_ERROR) (h2spec generic/3.8/1), streams
    it already opened may still complete."""
    peer = Peer()
    peer.open(1)
    assert peer.exchange(goaway_frame(1)) == []
    assert peer.events[-1] == ev.ConnectionEnded(NO_ERROR, True, True, "peer sent GOAWAY")
    assert peer.answer(1) == [resp_headers(1), resp_data(1, 2)]
    assert peer.core.finished


def test_server_shutdown_goaway_refuses_newer_streams():
    """6.8: the server's GOAWAY names the last stream it will process; newer
    streams are not processed (REFUSED_STREAM: safe to retry, 8.7) while
    older ones complete, then the connection is done."""
    peer = Peer()
    peer.open(1)
    peer.core.start_shutdown()
    assert peer.frames() == [goaway(NO_ERROR, 1)]
    assert peer.exchange(peer.request(3)) == [rst(3, REFUSED_STREAM)]
    assert peer.answer(1) == [resp_headers(1), resp_data(1, 2)]
    assert peer.core.finished


# -- over a socket ----------------------------------------------------------------------------


def test_wire_settings_on_stream_is_protocol_error(wire_server):
    """6.5 over a socket: GOAWAY(PROTOCOL_ERROR), then close."""
    with wire_server.connect() as wire:
        wire_connection_error(wire, PROTOCOL_ERROR, 0, frame(SETTINGS, 0, 1, b"\0\3\0\0\0\x64"))


def test_wire_ping_of_wrong_length(wire_server):
    """6.7 over a socket: GOAWAY(FRAME_SIZE_ERROR), then close."""
    with wire_server.connect() as wire:
        wire_connection_error(wire, FRAME_SIZE_ERROR, 0, frame(PING, 0, 0, b"\0" * 6))
