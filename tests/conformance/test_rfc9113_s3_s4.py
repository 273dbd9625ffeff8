"""RFC 9113 section 3 (starting HTTP/2, the connection preface) and section 4
(frame format, frame size, field section compression), as h2spec's
``http2/3.5`` and ``http2/4.1`` to ``4.3`` check them, and stricter: every
case asserts the exact frames the server writes."""

from __future__ import annotations

import itertools
import time

import pytest

from h2workers.config import H2Settings
from h2workers.proto import events as ev

from .util import (
    ACK,
    COMPRESSION_ERROR,
    CONTINUATION,
    DATA,
    DEFAULT_MAX_FRAME,
    ENABLE_PUSH,
    END_HEADERS,
    END_STREAM,
    FRAME_SIZE_ERROR,
    GOAWAY,
    HEADER_TABLE_SIZE,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    MAX_CONCURRENT_STREAMS,
    MAX_FRAME_SIZE,
    MAX_HEADER_LIST_SIZE,
    PADDED,
    PING,
    PREFACE,
    PRIORITY_FLAG,
    PROTOCOL_ERROR,
    SETTINGS,
    SETTINGS_ACK,
    WINDOW_UPDATE,
    Peer,
    Wire,
    assert_alive,
    assert_connection_error,
    assert_stream_or_connection_error,
    continuation,
    data,
    frame,
    goaway,
    headers,
    open_post,
    ping,
    ping_ack,
    priority,
    request_block,
    resp_data,
    resp_headers,
    settings,
    window_update,
    wire_connection_error,
)

# -- 3.4 HTTP/2 connection preface ------------------------------------------------


def test_server_preface_is_one_settings_frame_first():
    """3.4: the server connection preface is a SETTINGS frame, the first frame
    the server sends; the client's SETTINGS is acknowledged (6.5.3). 8.4 and
    6.5.2: a server never advertises SETTINGS_ENABLE_PUSH other than 0."""
    peer = Peer(H2Settings(max_concurrent_streams=7, initial_window_size=1000))
    first, *rest = peer.server_preface
    assert first[:3] == ("SETTINGS", 0, 0)
    values = dict(first[3])
    assert len(values) == len(first[3])  # each identifier once
    assert values[MAX_CONCURRENT_STREAMS] == 7
    assert values[INITIAL_WINDOW_SIZE] == 1000
    assert values[MAX_FRAME_SIZE] == DEFAULT_MAX_FRAME
    assert values[MAX_HEADER_LIST_SIZE] == 65_536
    assert values.get(ENABLE_PUSH, 0) == 0
    assert values.get(HEADER_TABLE_SIZE, 4096) == 4096
    # Then only connection-level WINDOW_UPDATEs and the ACK of our SETTINGS.
    assert rest[-1] == SETTINGS_ACK
    assert all(f[0] == "WINDOW_UPDATE" and f[1] == 0 for f in rest[:-1])


def test_preface_in_single_bytes_is_accepted():
    """3.4: the preface may arrive in any number of pieces."""
    peer = Peer(handshake=False)
    for byte in PREFACE + settings():
        peer.send(bytes((byte,)))
    assert peer.server_preface[0][:3] == ("SETTINGS", 0, 0)
    assert peer.frames() == [SETTINGS_ACK]
    assert_alive(peer)


@pytest.mark.parametrize(
    "preface",
    [
        b"INVALID CONNECTION PREFACE\r\n\r\n",  # h2spec http2/3.5/2
        b"PRI * HTTP/2.0\r\n\r\nSX\r\n\r\n",
        b"PRI * HTTP/1.1\r\n\r\nSM\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    ],
    ids=["garbage", "wrong-magic", "wrong-version", "http1-request"],
)
def test_invalid_preface_is_a_connection_error(preface):
    """3.4: an invalid connection preface is a connection error of type
    PROTOCOL_ERROR; no stream was processed (last stream id 0)."""
    peer = Peer(handshake=False)
    assert_connection_error(peer, PROTOCOL_ERROR, 0, preface + settings())


@pytest.mark.parametrize(
    "first",
    [ping(), window_update(0, 1000), frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x82\x87\x84")],
    ids=["PING", "WINDOW_UPDATE", "HEADERS"],
)
def test_preface_not_followed_by_settings_is_a_connection_error(first):
    """3.4: the client preface "MUST be followed by a SETTINGS frame"; anything
    else makes the preface invalid: connection error PROTOCOL_ERROR."""
    peer = Peer(handshake=False)
    assert_connection_error(peer, PROTOCOL_ERROR, 0, PREFACE, first)


# -- 4.1 frame format ---------------------------------------------------------------


@pytest.mark.parametrize(
    "unknown",
    [
        frame(0x16, 0, 0, b"\0" * 8),  # h2spec http2/4.1/1
        frame(0xFA, 0xFF, 1, b"abc"),  # on an idle stream, every flag set
        frame(0xFF, 0, 3, b""),
    ],
    ids=["stream-0", "idle-stream-all-flags", "empty"],
)
def test_unknown_frame_type_is_ignored(unknown):
    """4.1 / 5.5: implementations MUST ignore and discard frames of unknown
    types; they do not open streams either."""
    peer = Peer()
    assert peer.exchange(unknown, ping()) == [ping_ack()]
    peer.open(1)  # stream 1 still idle: a request may open it


@pytest.mark.parametrize("flags", [0x16, 0xFE], ids=["0x16", "0xfe"])
def test_undefined_ping_flags_are_ignored(flags):
    """4.1: flags with no defined meaning for a frame type MUST be ignored
    (h2spec http2/4.1/2); the ACK bit (0x1) is clear, so this is a request."""
    peer = Peer()
    assert peer.exchange(frame(PING, flags, 0, b"12345678")) == [ping_ack(b"12345678")]


def test_undefined_headers_and_data_flags_are_ignored():
    """4.1: undefined flags (0x2, 0x10, 0x40, 0x80 on HEADERS and DATA) are
    ignored; they change nothing of the request."""
    peer = Peer()
    block = peer.encode(request_block(method=b"POST"))
    assert peer.exchange(frame(HEADERS, END_HEADERS | 0xD2, 1, block)) == []
    assert peer.exchange(frame(DATA, END_STREAM | 0xF6, 1, b"body")) == []
    started, body = peer.events
    assert isinstance(started, ev.RequestStarted) and not started.end_stream
    assert body == ev.RequestData(1, b"body", True)


def test_reserved_stream_id_bit_is_ignored():
    """4.1: the reserved bit of the stream identifier MUST be ignored on
    receipt (h2spec http2/4.1/3), on stream 0 and on a request stream."""
    peer = Peer()
    assert peer.exchange(frame(PING, 0, 0, b"reserved", reserved=True)) == [ping_ack(b"reserved")]
    block = peer.encode(request_block())
    assert peer.exchange(frame(HEADERS, END_HEADERS | END_STREAM, 1, block, reserved=True)) == []
    assert [e.stream_id for e in peer.started()] == [1]
    assert peer.answer(1) == [resp_headers(1), resp_data(1, 2)]


# -- 4.2 frame size -----------------------------------------------------------------


def test_data_of_max_frame_size_is_accepted():
    """4.2: an endpoint MUST be capable of receiving frames up to 2^14 octets
    (h2spec http2/4.2/1)."""
    peer = Peer()
    open_post(peer)
    got = peer.exchange(data(1, b"x" * DEFAULT_MAX_FRAME, end_stream=True))
    assert peer.events[-1] == ev.RequestData(1, b"x" * DEFAULT_MAX_FRAME, True)
    assert [f[0] for f in got] in ([], ["WINDOW_UPDATE"])  # connection credit only
    assert_alive(peer)


def test_data_over_max_frame_size_is_frame_size_error():
    """4.2: a frame over SETTINGS_MAX_FRAME_SIZE gets FRAME_SIZE_ERROR; for
    DATA a stream error suffices, a connection error is allowed
    (h2spec http2/4.2/2)."""
    peer = Peer()
    open_post(peer)
    assert_stream_or_connection_error(
        peer, 1, FRAME_SIZE_ERROR, 1, data(1, b"x" * (DEFAULT_MAX_FRAME + 1), end_stream=True)
    )


def test_headers_over_max_frame_size_is_connection_error():
    """4.2: a frame carrying a field block that is too large MUST be a
    connection error FRAME_SIZE_ERROR (h2spec http2/4.2/3)."""
    peer = Peer()
    fields = request_block(extra=[(b"x-dummy%d" % i, b"a" * 4000) for i in range(5)])
    block = peer.encoder.encode(fields, huffman=False)
    assert len(block) > DEFAULT_MAX_FRAME
    assert_connection_error(peer, FRAME_SIZE_ERROR, 0, headers(1, block))


def test_oversized_frame_on_stream_zero_is_connection_error():
    """4.2: any frame on stream 0 over the limit alters connection state:
    connection error FRAME_SIZE_ERROR, even for an unknown type."""
    peer = Peer()
    assert_connection_error(peer, FRAME_SIZE_ERROR, 0, frame(0xFA, 0, 0, b"x" * 16_385))


def test_larger_advertised_max_frame_size_is_honoured():
    """4.2 / 6.5.2: frames up to our advertised SETTINGS_MAX_FRAME_SIZE are
    accepted, one octet more is FRAME_SIZE_ERROR."""
    peer = Peer(H2Settings(max_frame_size=32_768, initial_window_size=100_000))
    open_post(peer)
    peer.send(data(1, b"y" * 32_768))
    assert peer.events[-1] == ev.RequestData(1, b"y" * 32_768, False)
    assert_stream_or_connection_error(peer, 1, FRAME_SIZE_ERROR, 1, data(1, b"y" * 32_769))


@pytest.mark.parametrize(
    "client_max, sizes",
    [(None, [16_384, 16_384, 7_232]), (20_000, [20_000, 20_000])],
    ids=["default", "20000"],
)
def test_server_frames_respect_client_max_frame_size(client_max, sizes):
    """4.2: an endpoint MUST NOT send a frame longer than the peer's
    SETTINGS_MAX_FRAME_SIZE (16384 until the peer says otherwise)."""
    pairs = [] if client_max is None else [(MAX_FRAME_SIZE, client_max)]
    peer = Peer(client_settings=[*pairs, (INITIAL_WINDOW_SIZE, 1 << 20)])
    peer.send(window_update(0, 1 << 20))
    peer.open(1)
    peer.core.respond(1, 200, [])
    peer.core.send_body(1, b"z" * 40_000, end_stream=True)
    got = peer.frames()
    assert got == [
        resp_headers(1),
        *[resp_data(1, size, i == len(sizes) - 1) for i, size in enumerate(sizes)],
    ]


@pytest.mark.parametrize(
    "short, last",
    [
        (frame(HEADERS, END_HEADERS | END_STREAM | PRIORITY_FLAG, 1, b"\0\0\0"), 0),
        (frame(HEADERS, END_HEADERS | END_STREAM | PADDED, 1, b""), 0),
        (frame(GOAWAY, 0, 0, b"\0" * 7), 0),
        (frame(SETTINGS, 0, 0, b"\0" * 7), 0),
        (frame(WINDOW_UPDATE, 0, 0, b"\0\0\0\0\1"), 0),
    ],
    ids=["headers-priority-3", "headers-padded-0", "goaway-7", "settings-7", "window-update-5"],
)
def test_frame_too_small_or_wrong_length_is_frame_size_error(short, last):
    """4.2: a frame too small to contain mandatory frame data (or with a
    length its type forbids) is FRAME_SIZE_ERROR; these frames alter the
    connection state or carry a field block: connection error."""
    assert_connection_error(Peer(), FRAME_SIZE_ERROR, last, short)


def test_padded_data_without_pad_length_is_frame_size_error():
    """4.2 / 6.1: a PADDED DATA frame with no room for the Pad Length field is
    FRAME_SIZE_ERROR (stream or connection)."""
    peer = Peer()
    open_post(peer)
    assert_stream_or_connection_error(peer, 1, FRAME_SIZE_ERROR, 1, frame(DATA, PADDED, 1, b""))


# -- 4.3 field section compression --------------------------------------------------


def test_invalid_field_block_is_compression_error():
    """4.3: a field block that cannot be decoded MUST be a connection error of
    type COMPRESSION_ERROR (h2spec http2/4.3/1: a lone 0x40)."""
    peer = Peer()
    assert_connection_error(
        peer, COMPRESSION_ERROR, 0, frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x40")
    )


def test_field_block_split_over_continuations_is_one_block():
    """4.3: a field block is the concatenation of HEADERS and CONTINUATION
    fragments, even when a split falls inside one representation."""
    peer = Peer()
    block = peer.encode(request_block(b"/split", extra=[(b"x-long", b"v" * 300)]))
    cuts = [1, 7, 150, len(block)]
    frames = [headers(1, block[: cuts[0]], end_headers=False)]
    for a, b in itertools.pairwise(cuts):
        frames.append(continuation(1, block[a:b], end_headers=b == len(block)))
    assert peer.exchange(*frames) == []
    (started,) = peer.started()
    assert started.head.path == b"/split"
    assert started.head.headers == [(b"x-long", b"v" * 300)]


@pytest.mark.parametrize(
    "interloper",
    [
        priority(1, 0, 255),  # h2spec http2/4.3/2
        None,  # HEADERS on stream 3: h2spec http2/4.3/3
        data(1, b"test"),
        ping(),
        window_update(0, 1),
        settings(),
    ],
    ids=["PRIORITY", "HEADERS-other-stream", "DATA", "PING", "WINDOW_UPDATE", "SETTINGS"],
)
def test_frame_inside_field_block_is_protocol_error(interloper):
    """4.3: a field block MUST be a contiguous sequence of frames, with no
    interleaved frame of any other type or stream: connection error
    PROTOCOL_ERROR; stream 1's block never completed (last stream id 0)."""
    peer = Peer()
    if interloper is None:
        interloper = peer.request(3)
    first = peer.request(1, end_stream=False, end_headers=False)
    rest = continuation(1, peer.encode([(b"x-dummy", b"1")]))
    assert_connection_error(peer, PROTOCOL_ERROR, 0, first, interloper, rest)


def test_field_block_error_on_refused_stream_is_still_compression_error():
    """4.3: decoding errors are connection errors even on a stream the server
    refuses (5.1.2): the block is decoded to keep HPACK state in sync."""
    peer = Peer(H2Settings(max_concurrent_streams=1))
    peer.open(1, end_stream=False, block=request_block(method=b"POST"))
    assert_connection_error(
        peer, COMPRESSION_ERROR, 1, frame(HEADERS, END_HEADERS | END_STREAM, 3, b"\xff\xff")
    )


# -- over a socket: the worker's own path ---------------------------------------------


def test_wire_server_preface(wire_server):
    """3.4: over TCP (h2c) and TLS: the server's first frame is SETTINGS and
    it acknowledges ours; a PING is answered."""
    with wire_server.connect(start=False) as wire:
        got = wire.start()
        assert got[0][:3] == ("SETTINGS", 0, 0)
        assert SETTINGS_ACK in got
        wire.send(ping())
        assert wire.wait(lambda: wire.raw[-1].ftype == PING)
        assert wire.take() == [ping_ack()]


def test_wire_preface_in_pieces(wire_server):
    """3.4: a preface split over many TCP segments is read whole (the h2c
    port sniffs it before choosing HTTP/2)."""
    with wire_server.connect(start=False) as wire:
        for piece in (PREFACE[:3], PREFACE[3:10], PREFACE[10:23], PREFACE[23:]):
            wire.send(piece)
            time.sleep(0.02)
        wire.send(settings())
        assert wire.wait(lambda: any(f.ftype == SETTINGS and f.flags == ACK for f in wire.raw))
        wire.send(settings(ack=True), wire.request(1))
        assert wire.wait(lambda: wire.ended(1))
        assert wire.body(1) == b"Hello, world!\n"


def test_wire_invalid_preface(wire_server):
    """3.4: an invalid preface over TLS (ALPN h2) is a connection error
    PROTOCOL_ERROR, then the server closes. On the cleartext port, which
    serves HTTP/1.1 as well (README: "anything else as HTTP/1.1"), the bytes
    are an HTTP/1.1 request: 400 and close, no HTTP/2 frame."""
    with wire_server.connect(start=False) as wire:
        wire.send(b"INVALID CONNECTION PREFACE\r\n\r\n")
        assert wire.closed_after()
        if wire_server.name == "tls":
            got = wire.take()
            assert got[0][:3] == ("SETTINGS", 0, 0)
            assert got[-1] == goaway(PROTOCOL_ERROR, 0)
        else:
            assert wire.data.startswith(b"HTTP/1.1 400 ")


def test_wire_invalid_preface_on_h2_only_cleartext_port(server):
    """3.4: a cleartext port that offers only h2 (prior knowledge) MUST treat
    an invalid preface as a connection error PROTOCOL_ERROR: GOAWAY or a
    plain close, never an HTTP/1.1 response."""
    srv = server(
        tls=False,
        app="tests.conformance.app:app",
        config_text='http_protocols = "h2"\nhttp2_cleartext = "prior-knowledge"\n',
    )
    with Wire(srv.port) as wire:
        wire.send(b"INVALID CONNECTION PREFACE\r\n\r\n")
        assert wire.closed_after()
        assert not wire.data.startswith(b"HTTP/1.1")
        got = wire.take()
        assert got == [] or got[-1] == goaway(PROTOCOL_ERROR, 0)


def test_wire_unknown_frame_ignored(wire_server):
    """4.1 / 5.5: an unknown frame type is ignored over a real connection."""
    with wire_server.connect() as wire:
        wire.send(frame(0x16, 0, 0, b"\0" * 8), frame(0xFA, 0xFF, 1, b"x"), ping())
        assert wire.wait(lambda: wire.raw[-1].ftype == PING)
        assert wire.take() == [ping_ack()]


def test_wire_max_size_data_is_echoed(wire_server):
    """4.2: a 16384-octet DATA frame is received and processed."""
    with wire_server.connect() as wire:
        length = (b"content-length", b"16384")
        wire.send(wire.request(1, b"/echo", b"POST", [length], end_stream=False))
        wire.send(data(1, b"e" * DEFAULT_MAX_FRAME, end_stream=True))
        assert wire.wait(lambda: wire.ended(1))
        assert wire.body(1) == b"e" * DEFAULT_MAX_FRAME
        assert not any(f.ftype in (GOAWAY,) for f in wire.raw)


def test_wire_oversized_data_is_frame_size_error(wire_server):
    """4.2: a DATA frame over 16384 octets: FRAME_SIZE_ERROR (this server
    makes it a connection error: GOAWAY naming stream 1, then close)."""
    with wire_server.connect() as wire:
        wire.send(wire.request(1, b"/echo", b"POST", end_stream=False))
        wire_connection_error(wire, FRAME_SIZE_ERROR, 1, data(1, b"x" * 16_385, end_stream=True))


def test_wire_oversized_headers_is_connection_error(wire_server):
    """4.2: an oversized HEADERS frame: connection error FRAME_SIZE_ERROR."""
    with wire_server.connect() as wire:
        fields = request_block(b"/hello", extra=[(b"x-big", b"b" * 17_000)])
        block = wire.encoder.encode(fields, huffman=False)
        wire_connection_error(wire, FRAME_SIZE_ERROR, 0, headers(1, block))


def test_wire_invalid_field_block_is_compression_error(wire_server):
    """4.3: an undecodable field block: GOAWAY(COMPRESSION_ERROR), close."""
    with wire_server.connect() as wire:
        wire_connection_error(
            wire, COMPRESSION_ERROR, 0, frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x40")
        )


def test_wire_continuation_interleaved_is_protocol_error(wire_server):
    """4.3: a PRIORITY frame inside a field block over a socket."""
    with wire_server.connect() as wire:
        first = wire.request(1, end_stream=False, end_headers=False)
        wire_connection_error(
            wire, PROTOCOL_ERROR, 0, first, priority(1), frame(CONTINUATION, END_HEADERS, 1, b"")
        )
