"""RFC 9113 section 5: stream states (5.1), stream identifiers (5.1.1),
concurrency (5.1.2), priority (5.3), error handling (5.4) and extensions
(5.5), as h2spec's ``http2/5.*`` and ``generic/2`` check them, with the exact
frames asserted."""

from __future__ import annotations

import pytest

from h2workers.config import H2Settings
from h2workers.proto import events as ev
from h2workers.proto.priority import StreamPriority

from .util import (
    CANCEL,
    CONTINUATION,
    DEFAULT_MAX_FRAME,
    END_HEADERS,
    END_STREAM,
    FRAME_SIZE_ERROR,
    INITIAL_WINDOW_SIZE,
    NO_ERROR,
    PING,
    POST,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    STREAM_CLOSED,
    Peer,
    assert_alive,
    assert_connection_error,
    assert_stream_error,
    assert_stream_or_connection_error,
    continuation,
    data,
    frame,
    goaway,
    headers,
    ping,
    ping_ack,
    priority,
    rejected,
    request_block,
    resp_data,
    resp_headers,
    rst,
    rst_stream,
    settings,
    window_update,
    wire_connection_error,
)


def trailers(peer: Peer, sid: int, end_stream: bool = True) -> bytes:
    return headers(sid, peer.encode([(b"x-trailer", b"1")]), end_stream)


# -- 5.1 idle ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda p: data(1, b"test", end_stream=True),  # h2spec http2/5.1/1
        lambda p: rst_stream(1, CANCEL),  # http2/5.1/2, also 6.4
        lambda p: window_update(1, 100),  # http2/5.1/3
        lambda p: continuation(1, p.encode(request_block())),  # http2/5.1/4
    ],
    ids=["DATA", "RST_STREAM", "WINDOW_UPDATE", "CONTINUATION"],
)
def test_idle_stream_accepts_only_headers_and_priority(make):
    """5.1 idle: any frame other than HEADERS or PRIORITY on an idle stream
    MUST be a connection error PROTOCOL_ERROR."""
    peer = Peer()
    assert_connection_error(peer, PROTOCOL_ERROR, 0, make(peer))


def test_priority_on_idle_stream_leaves_it_idle():
    """5.1 idle / 6.3: PRIORITY may be sent on an idle stream (h2spec
    generic/2/1) and does not open it: a lower stream id can still be
    opened afterwards (generic/3.3/5), and then the idle one too."""
    peer = Peer()
    assert peer.exchange(priority(5, 0, 200)) == []
    peer.open(3)
    peer.open(5)
    assert peer.started()[-1].head.priority.weight == 201  # remembered from PRIORITY


# -- 5.1 open ------------------------------------------------------------------------


def test_open_stream_accepts_every_frame_type():
    """5.1 open: either peer can send frames of any type on an open stream:
    PRIORITY, WINDOW_UPDATE, DATA, then trailers ending the request."""
    peer = Peer()
    peer.open(1, end_stream=False, block=POST)
    got = peer.exchange(
        priority(1, 0, 99), window_update(1, 1000), data(1, b"body"), trailers(peer, 1)
    )
    assert got == []
    kinds = [type(e) for e in peer.events[-3:]]
    assert kinds == [ev.PriorityChanged, ev.RequestData, ev.RequestTrailers]
    assert peer.answer(1) == [resp_headers(1), resp_data(1, 2)]


# -- 5.1 half-closed (remote) -------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [lambda p: data(1, b"test", end_stream=True), lambda p: trailers(p, 1)],
    ids=["DATA", "HEADERS"],  # h2spec http2/5.1/5, http2/5.1/6
)
def test_half_closed_remote_rejects_data_and_headers(make):
    """5.1 half-closed (remote): frames other than WINDOW_UPDATE, PRIORITY and
    RST_STREAM MUST get a stream error STREAM_CLOSED; the application is told
    and its response is not sent."""
    peer = Peer()
    peer.open(1)
    assert_stream_error(peer, 1, STREAM_CLOSED, make(peer))
    assert rejected(peer) == [(1, STREAM_CLOSED)]
    assert peer.answer(1) == []


def test_half_closed_remote_continuation_is_protocol_error():
    """5.1 half-closed (remote) / 6.10: a CONTINUATION not preceded by a
    field block without END_HEADERS is a connection error PROTOCOL_ERROR
    (h2spec http2/5.1/7 accepts STREAM_CLOSED too)."""
    peer = Peer()
    peer.open(1)
    assert_connection_error(peer, PROTOCOL_ERROR, 1, continuation(1, peer.encode([(b"x-a", b"1")])))


def test_half_closed_remote_accepts_window_update_and_priority():
    """5.1 half-closed (remote): WINDOW_UPDATE and PRIORITY are allowed
    (h2spec generic/2/2, generic/2/3); the response completes."""
    peer = Peer(client_settings=[(INITIAL_WINDOW_SIZE, 1)])
    peer.open(1)
    peer.core.respond(1, 200, [])
    peer.core.send_body(1, b"abc", end_stream=True)
    assert peer.frames() == [resp_headers(1), resp_data(1, 1, end_stream=False)]
    assert peer.exchange(priority(1, 0, 7), window_update(1, 2)) == [resp_data(1, 2)]
    assert isinstance(peer.events[-1], ev.PriorityChanged)


def test_half_closed_remote_rst_stream_aborts_silently():
    """5.1 half-closed (remote) / 5.4.2: RST_STREAM from the client closes the
    stream (h2spec generic/2/4); the server MUST NOT answer a RST_STREAM with
    a RST_STREAM and sends nothing more on the stream."""
    peer = Peer()
    peer.open(1)
    assert peer.exchange(rst_stream(1, CANCEL)) == []
    assert peer.events[-1] == ev.StreamAborted(1, CANCEL, by_peer=True)
    assert peer.answer(1) == []
    assert_alive(peer)


# -- 5.1 half-closed (local) ----------------------------------------------------------------


def test_complete_response_before_request_ends_resets_with_no_error():
    """5.1 half-closed (local) / 8.1: a server that answers before the request
    body is complete MAY ask the client to stop with RST_STREAM(NO_ERROR)
    right after the complete response."""
    peer = Peer()
    peer.open(1, end_stream=False, block=POST)
    assert peer.answer(1) == [resp_headers(1), resp_data(1, 2), rst(1, NO_ERROR)]
    assert_alive(peer)


# -- 5.1 closed ------------------------------------------------------------------------


def _reset_by_client(peer: Peer) -> None:
    peer.open(1, end_stream=False, block=POST)
    assert peer.exchange(rst_stream(1, CANCEL)) == []


def _closed_by_end_stream(peer: Peer) -> None:
    peer.open(1)
    assert peer.answer(1) == [resp_headers(1), resp_data(1, 2)]


@pytest.mark.parametrize(
    "make",
    [lambda p: data(1, b"test", end_stream=True), lambda p: trailers(p, 1)],
    ids=["DATA", "HEADERS"],  # h2spec http2/5.1/8, http2/5.1/9
)
def test_frame_after_client_rst_stream_is_stream_closed(make):
    """5.1 closed: a frame other than PRIORITY on a stream the client reset is
    a stream error STREAM_CLOSED (6.1 for DATA); h2spec also accepts a
    connection error, which this server does not need."""
    peer = Peer()
    _reset_by_client(peer)
    assert_stream_error(peer, 1, STREAM_CLOSED, make(peer))


def test_continuation_after_client_rst_stream_is_protocol_error():
    """5.1 closed / 6.10: a CONTINUATION with no open field block is a
    connection error PROTOCOL_ERROR (h2spec http2/5.1/10)."""
    peer = Peer()
    _reset_by_client(peer)
    assert_connection_error(peer, PROTOCOL_ERROR, 1, continuation(1, peer.encode([(b"x", b"1")])))


def test_data_on_stream_closed_by_end_stream_is_stream_closed():
    """5.1 closed / 6.1: DATA on a closed stream is STREAM_CLOSED, as a stream
    error (6.1) or a connection error (5.1); h2spec http2/5.1/11."""
    peer = Peer()
    _closed_by_end_stream(peer)
    assert_stream_or_connection_error(peer, 1, STREAM_CLOSED, 1, data(1, b"test", end_stream=True))


def test_headers_on_stream_closed_by_end_stream_is_connection_error():
    """5.1 closed / 5.1.1: HEADERS reusing a closed stream is a connection error,
    STREAM_CLOSED (5.1, h2spec http2/5.1/12) or PROTOCOL_ERROR (5.1.1)."""
    peer = Peer()
    _closed_by_end_stream(peer)
    got = peer.exchange(peer.request(1))
    assert got in ([goaway(STREAM_CLOSED, 1)], [goaway(PROTOCOL_ERROR, 1)])
    assert peer.core.terminated


def test_continuation_on_stream_closed_by_end_stream_is_protocol_error():
    """5.1 closed / 6.10: h2spec http2/5.1/13."""
    peer = Peer()
    _closed_by_end_stream(peer)
    assert_connection_error(peer, PROTOCOL_ERROR, 1, continuation(1, peer.encode([(b"x", b"1")])))


@pytest.mark.parametrize(
    "late",
    [priority(1, 0, 1), window_update(1, 10), rst_stream(1, CANCEL)],
    ids=["PRIORITY", "WINDOW_UPDATE", "RST_STREAM"],
)
def test_late_frames_on_closed_stream_are_ignored(late):
    """5.1 closed: PRIORITY may always be sent (h2spec generic/2/5); after
    END_STREAM the peer may still send WINDOW_UPDATE or RST_STREAM before it
    sees the close. None of them is answered."""
    peer = Peer()
    _closed_by_end_stream(peer)
    assert peer.exchange(late) == []
    assert_alive(peer)


def _server_reset(kind: str) -> tuple[Peer, list[bytes]]:
    """A stream the server reset, and frames the client had in flight."""
    peer = Peer(H2Settings(max_concurrent_streams=1))
    if kind == "malformed":  # content-length exceeded: RST_STREAM(PROTOCOL_ERROR)
        block = request_block(method=b"POST", extra=[(b"content-length", b"1")])
        peer.open(1, end_stream=False, block=block)
        assert peer.exchange(data(1, b"four")) == [rst(1, PROTOCOL_ERROR)]
        return peer, [data(1, b"more"), trailers(peer, 1)]
    if kind == "early-response":  # RST_STREAM(NO_ERROR) after a complete response
        peer.open(1, end_stream=False, block=POST)
        assert peer.answer(1)[-1] == rst(1, NO_ERROR)
        return peer, [data(1, b"more"), trailers(peer, 1)]
    peer.open(1, end_stream=False, block=POST)  # refused: over the concurrency limit
    assert peer.exchange(peer.request(3, POST, end_stream=False)) == [rst(3, REFUSED_STREAM)]
    return peer, [data(3, b"more"), trailers(peer, 3)]


@pytest.mark.parametrize("kind", ["malformed", "early-response", "refused"])
def test_frames_after_server_rst_stream_are_discarded(kind):
    """5.1 closed: an endpoint that sent RST_STREAM "MUST minimally process and
    then discard any frames it receives" on that stream (the peer may have
    sent them before it saw the reset), and MUST NOT send frames other than
    PRIORITY on a closed stream."""
    peer, in_flight = _server_reset(kind)
    assert peer.exchange(*in_flight) == []
    assert_alive(peer)


@pytest.mark.parametrize("kind", ["malformed", "early-response", "refused"])
def test_data_after_server_rst_stream_still_counts_for_flow_control(kind):
    """5.1 closed: DATA discarded after our RST_STREAM still counts toward the
    connection window (6.9), so its credit comes back: a client that keeps
    sending never runs the connection window dry (no FLOW_CONTROL_ERROR)."""
    peer, _ = _server_reset(kind)
    sid = 3 if kind == "refused" else 1
    frames = [data(sid, b"d" * DEFAULT_MAX_FRAME) for _ in range(12)]  # 3 windows
    credited = 0
    for f in frames:
        got = peer.exchange(f)
        assert all(g[0] in ("WINDOW_UPDATE", "RST_STREAM") for g in got), got
        credited += sum(g[2] for g in got if g[:2] == ("WINDOW_UPDATE", 0))
    assert credited >= 12 * DEFAULT_MAX_FRAME - 65_535
    assert_alive(peer)


# -- 5.1.1 stream identifiers ---------------------------------------------------------


def test_even_stream_id_is_protocol_error():
    """5.1.1: streams initiated by a client MUST use odd identifiers; an even
    one is a connection error PROTOCOL_ERROR (h2spec http2/5.1.1/1)."""
    peer = Peer()
    assert_connection_error(peer, PROTOCOL_ERROR, 0, peer.request(2))


def test_decreasing_stream_id_is_protocol_error():
    """5.1.1: a new stream id MUST be greater than every one the client has
    opened; a smaller one is a connection error PROTOCOL_ERROR, naming the
    last stream processed (h2spec http2/5.1.1/2)."""
    peer = Peer()
    peer.open(5)
    assert_connection_error(peer, PROTOCOL_ERROR, 5, peer.request(3))


def test_skipped_stream_ids_are_closed():
    """5.1.1: opening stream 5 implicitly closes idle stream 3; HEADERS on 3
    afterwards is a connection error PROTOCOL_ERROR."""
    peer = Peer()
    peer.open(1)
    peer.open(5)
    assert_connection_error(peer, PROTOCOL_ERROR, 5, peer.request(3))


def test_wire_even_stream_id(wire_server):
    """5.1.1 over a socket: GOAWAY(PROTOCOL_ERROR, 0) and close."""
    with wire_server.connect() as wire:
        wire_connection_error(wire, PROTOCOL_ERROR, 0, wire.request(2))


def test_wire_idle_rst_stream(wire_server):
    """5.1 idle over a socket: RST_STREAM on an idle stream is a connection
    error PROTOCOL_ERROR."""
    with wire_server.connect() as wire:
        wire_connection_error(wire, PROTOCOL_ERROR, 0, rst_stream(1))


def test_wire_half_closed_remote_data(wire_server):
    """5.1 half-closed (remote) over a socket: DATA after END_STREAM gets
    RST_STREAM(STREAM_CLOSED); the connection goes on."""
    with wire_server.connect() as wire:
        wire.send(wire.request(1, b"/sleep?s=0.3"), data(1, b"late", end_stream=True))
        assert wire.wait(lambda: wire.ended(1))
        wire.send(ping())
        assert wire.wait(lambda: wire.raw[-1].ftype == PING)
        assert wire.take() == [rst(1, STREAM_CLOSED), ping_ack()]


# -- 5.1.2 stream concurrency -----------------------------------------------------------


def test_streams_over_the_limit_are_refused():
    """5.1.2: a HEADERS frame that would exceed the advertised
    SETTINGS_MAX_CONCURRENT_STREAMS is a stream error PROTOCOL_ERROR or
    REFUSED_STREAM (h2spec http2/5.1.2/1); this server refuses (retryable)
    and the other streams go on."""
    peer = Peer(H2Settings(max_concurrent_streams=2))
    peer.open(1)  # half-closed (remote) counts
    peer.open(3, end_stream=False, block=POST)  # open counts
    assert_stream_error(peer, 5, REFUSED_STREAM, peer.request(5))
    assert rejected(peer) == [(5, REFUSED_STREAM)]
    assert peer.answer(1) == [resp_headers(1), resp_data(1, 2)]
    peer.open(7)  # a closed stream no longer counts; a refused one never did


def test_default_limit_is_one_hundred():
    """5.1.2 / 6.5.2: the default advertised limit (100) is enforced exactly."""
    peer = Peer()
    first = [peer.request(1 + 2 * i, end_stream=False) for i in range(100)]
    assert peer.exchange(*first) == []
    assert_stream_error(peer, 201, REFUSED_STREAM, peer.request(201))


# -- 5.3 priority -------------------------------------------------------------------


def test_headers_depending_on_itself_is_stream_error():
    """5.3.1: a stream cannot depend on itself: stream error PROTOCOL_ERROR
    (h2spec http2/5.3.1/1)."""
    peer = Peer()
    assert_stream_error(peer, 1, PROTOCOL_ERROR, peer.request(1, priority=(1, 15, False)))
    peer.open(3)


def test_priority_depending_on_itself_is_protocol_error():
    """5.3.1: a PRIORITY frame making a stream depend on itself: stream error
    PROTOCOL_ERROR (h2spec http2/5.3.1/2); this server escalates it to a
    connection error, which 5.4.1 allows."""
    peer = Peer()
    assert_stream_or_connection_error(peer, 1, PROTOCOL_ERROR, 0, priority(1, 1, 15))


@pytest.mark.parametrize(
    "weight, depends_on, exclusive",
    [(0, 0, False), (255, 0, False), (15, 1, False), (15, 1, True)],
    ids=["weight-1", "weight-256", "dependency", "exclusive"],  # h2spec generic/3.3/1-4
)
def test_priority_values_are_reported(weight, depends_on, exclusive):
    """5.3.2 / 6.3: PRIORITY with any weight (1-256), a dependency and the
    exclusive flag is accepted and reported to the application (which sees
    the weight and the parent; the exclusive flag shapes the scheduler's
    dependency tree)."""
    peer = Peer()
    peer.open(1, end_stream=False, block=POST)
    peer.open(3, end_stream=False, block=POST)
    assert peer.exchange(priority(3, depends_on, weight, exclusive)) == []
    reported = StreamPriority(weight=weight + 1, depends_on=depends_on)
    assert peer.events[-1] == ev.PriorityChanged(3, reported)


def test_no_rfc7540_priorities_setting_other_than_0_or_1():
    """5.3.2: SETTINGS_NO_RFC7540_PRIORITIES "A value other than 0 or 1 MUST be
    treated as a connection error of type PROTOCOL_ERROR"."""
    assert_connection_error(Peer(), PROTOCOL_ERROR, 0, settings((0x9, 2)))


# -- 5.4 error handling ---------------------------------------------------------------------


def test_connection_error_names_last_processed_stream():
    """5.4.1: the GOAWAY of a connection error carries the last stream the
    server processed; nothing follows it (h2spec http2/5.4.1/1-2: an invalid
    PING, GOAWAY before the close)."""
    peer = Peer()
    peer.open(1, end_stream=False, block=POST)
    peer.open(7)
    assert_connection_error(peer, FRAME_SIZE_ERROR, 7, frame(PING, 0, 0, b"\0" * 6))
    kinds = [(type(e), getattr(e, "stream_id", None)) for e in peer.events[-3:]]
    assert kinds == [(ev.StreamAborted, 1), (ev.StreamAborted, 7), (ev.ConnectionEnded, None)]


def test_no_rst_stream_in_answer_to_rst_stream():
    """5.4.2: an endpoint MUST NOT send a RST_STREAM in response to a
    RST_STREAM, even a second one on a closed stream."""
    peer = Peer()
    peer.open(1, end_stream=False, block=POST)
    assert peer.exchange(rst_stream(1, CANCEL), rst_stream(1, PROTOCOL_ERROR)) == []
    assert_alive(peer)


# -- 5.5 extending HTTP/2 -------------------------------------------------------------------


@pytest.mark.parametrize(
    "extension",
    [
        frame(0x16, 0, 0, b"\0" * 8),  # h2spec http2/5.5/1
        frame(0x0A, 0, 0, b"\0\0"),  # ALTSVC, a server-to-client frame
        frame(0x0C, 0, 0, b""),  # ORIGIN
        frame(0x10, 0, 0, b"\0\0\0\1u=1"),  # PRIORITY_UPDATE (RFC 9218)
    ],
    ids=["unknown-0x16", "ALTSVC", "ORIGIN", "PRIORITY_UPDATE"],
)
def test_extension_frames_are_ignored(extension):
    """5.5: implementations MUST ignore unknown or unsupported values in all
    extensible protocol elements, frame types first of all."""
    peer = Peer()
    assert peer.exchange(extension, ping()) == [ping_ack()]


def test_extension_frame_inside_field_block_is_protocol_error():
    """5.5: extension frames cannot appear in the middle of a field block
    (6.10): connection error PROTOCOL_ERROR (h2spec http2/5.5/2)."""
    peer = Peer()
    first = headers(1, peer.encode(request_block()), end_headers=False)
    assert_connection_error(peer, PROTOCOL_ERROR, 0, first, frame(0x16, 0, 0, b"\0" * 8))


def test_unknown_flags_on_known_frames_in_a_field_block():
    """5.5 / 4.1: undefined flags on CONTINUATION are ignored too; only
    END_HEADERS ends the block."""
    peer = Peer()
    block = peer.encode(request_block(b"/flags"))
    first = headers(1, block[:2], end_headers=False)
    rest = frame(CONTINUATION, END_HEADERS | 0xF0 | END_STREAM, 1, block[2:])  # 0x1: undefined
    assert peer.exchange(first, rest) == []
    assert peer.started()[-1].head.path == b"/flags"
