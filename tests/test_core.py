"""Socket-free tests of the sans-I/O HTTP/2 core (h2workers.proto.core.H2Core)."""

from __future__ import annotations

from typing import Any

import h2.events as h2e
import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import (
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from h2workers.config import MAX_WINDOW, H2Settings
from h2workers.errors import StreamViolation, UnknownStream
from h2workers.proto import events as ev
from h2workers.proto import headers
from h2workers.proto.priority import StreamPriority
from tests.frames import (
    APP_ACTIONS,
    CONNECTION_ERRORS,
    GARBAGE_FRAMES,
    MALFORMED,
    PREFACE,
    SCRIPTED_FRAMES,
    Client,
    RawClient,
    assert_stream_completes,
    blocked_response,
    body_of,
    brief,
    encode_item,
    get_request,
    h2_events,
    kinds,
    of_type,
    open_window,
    raw_frame,
    rst,
    summary,
    upload,
)

NO_ERROR, PROTOCOL_ERROR = ErrorCodes.NO_ERROR, ErrorCodes.PROTOCOL_ERROR
CANCEL, REFUSED = ErrorCodes.CANCEL, ErrorCodes.REFUSED_STREAM
GOAWAY, HEADERS, DATA = GoAwayFrame.type, HeadersFrame.type, DataFrame.type
END_HEADERS = frozenset({"END_HEADERS"})
POST = get_request(method=b"POST")


# -- connection setup --------------------------------------------------------


@pytest.mark.parametrize(
    ("streams", "window"), [(7, 100_000), (100, 65_535), (1000, 2**24), (1, 65_535)]
)
def test_one_settings_frame_and_connection_window(streams, window):
    cfg = H2Settings(streams, window, max_frame_size=32_768, max_header_list_size=8_000)
    raw = RawClient(cfg)
    settings_frames = of_type(raw.handshake_frames, SettingsFrame)
    ours = [f for f in settings_frames if "ACK" not in f.flags]
    assert len(ours) == 1 and len(settings_frames) == 2  # ours + the ACK of the client's
    assert {k: ours[0].settings[k] for k in (3, 4, 5, 6)} == {
        SettingCodes.MAX_CONCURRENT_STREAMS: streams,
        SettingCodes.INITIAL_WINDOW_SIZE: window,
        SettingCodes.MAX_FRAME_SIZE: 32_768,
        SettingCodes.MAX_HEADER_LIST_SIZE: 8_000,
    }
    increment = min(MAX_WINDOW, (streams + 1) * window) - 65_535
    updates = [
        (u.stream_id, u.window_increment) for u in of_type(raw.handshake_frames, WindowUpdateFrame)
    ]
    assert updates == ([(0, increment)] if increment > 0 else [])
    assert raw.handshake_events == []
    assert_stream_completes(raw, 1)
    assert [f for f in of_type(raw.received, SettingsFrame) if "ACK" not in f.flags] == ours


def test_larger_max_frame_size_is_accepted_inbound():
    raw = RawClient(H2Settings(max_frame_size=32_768))
    raw.send(raw.headers(1, POST, end_stream=False))
    events = raw.send(raw.data(1, b"x" * 30_000, end_stream=True))
    assert [(type(e), len(e.data)) for e in events] == [(ev.RequestData, 30_000)]
    assert not of_type(raw.read(), GoAwayFrame)


@pytest.mark.xfail(strict=True, reason="h2 enforces a smaller window before SETTINGS is ACKed")
def test_smaller_initial_window_applies_only_once_acknowledged():
    raw = RawClient(H2Settings(initial_window_size=1000), handshake=False)
    raw.core.initiate()
    raw.send_bytes(PREFACE + SettingsFrame(0).serialize())
    # RFC 9113 6.9.2: until the client ACKs our SETTINGS, 65535 still applies.
    events = raw.send(raw.headers(1, POST, end_stream=False), raw.data(1, b"x" * 5000))
    assert kinds(events) == [ev.RequestStarted, ev.RequestData]


# -- requests and responses --------------------------------------------------


def test_get_request_head_and_response():
    raw = RawClient()
    block = get_request(b"/a?b=c", [(b"cookie", b"a=1"), (b"accept", b"*/*"), (b"cookie", b"b=2")])
    (started,) = raw.send(raw.headers(1, block))
    assert isinstance(started, ev.RequestStarted)
    assert (started.stream_id, started.end_stream) == (1, True)
    head = started.head
    assert (head.method, head.scheme, head.authority, head.path, head.content_length) == (
        (b"GET", b"https", b"example.com", b"/a?b=c", None)
    )
    assert head.headers == [(b"accept", b"*/*"), (b"cookie", b"a=1; b=2")]

    client = Client()
    sid = client.request(get_request(b"/hello"))
    assert kinds(client.exchange()[0]) == [ev.RequestStarted]
    client.core.respond(sid, 200, [(b"content-type", b"text/plain")])
    client.core.send_body(sid, b"hello ")
    client.core.send_body(sid, b"world", end_stream=True)
    _, events = client.exchange()
    (resp,) = h2_events(events, h2e.ResponseReceived)
    assert resp.headers == [(b":status", b"200"), (b"content-type", b"text/plain")]
    assert body_of(events, sid) == b"hello world"
    assert [e.stream_id for e in h2_events(events, h2e.StreamEnded)] == [sid]
    assert not client.core.is_serving(sid)


def test_request_body_window_reopened_only_by_credit():
    client = Client()
    sid = client.request(POST, body=b"b" * 40_000, end=False)
    events, _ = client.exchange()
    assert kinds(events) == [ev.RequestStarted, *[ev.RequestData] * 3]
    assert b"".join(e.data for e in events[1:]) == b"b" * 40_000
    assert not any(e.end_stream for e in events[1:])
    assert of_type(client.frames, WindowUpdateFrame, sid) == []
    assert client.conn.local_flow_control_window(sid) == 65_535 - 40_000
    client.core.credit_upto(sid, 40_000)
    client.exchange()
    assert [u.window_increment for u in of_type(client.frames, WindowUpdateFrame, sid)] == [40_000]
    assert client.conn.local_flow_control_window(sid) == 65_535


def test_padding_is_credited_without_a_read():
    raw = RawClient(H2Settings(initial_window_size=400))
    raw.send(raw.headers(1, POST, end_stream=False))
    (data,) = raw.send(raw.data(1, b"0123456789", pad=255))
    assert data.data == b"0123456789"
    updates = of_type(raw.read(), WindowUpdateFrame)
    assert [(u.stream_id, u.window_increment) for u in updates] == [(0, 256), (1, 256)]


def test_stream_over_limit_is_refused_and_hpack_stays_in_sync():
    raw = RawClient(H2Settings(max_concurrent_streams=2))
    for sid in (1, 3):
        assert kinds(raw.send(raw.headers(sid, get_request(), end_stream=False))) == [
            ev.RequestStarted
        ]
    extra = [(b"x-only-in-refused", b"dynamic-table-entry")]
    events = raw.send(raw.headers(5, get_request(b"/refused", extra), end_stream=False))
    assert brief(events) == [(ev.StreamRejected, 5, REFUSED)]
    assert summary(raw.read()) == [rst(5, REFUSED)]
    raw.send(raw.data(5, b"late", end_stream=True))  # in flight when refused
    raw.core.respond(1, 204, [], end_stream=True)
    raw.send(raw.data(1, b"", end_stream=True))
    events = raw.send(raw.headers(7, get_request(b"/again", extra)))
    assert kinds(events) == [ev.RequestStarted]
    assert events[0].head.headers == extra  # decoded via the table entry made by stream 5
    raw.core.respond(3, 200, [], end_stream=True)
    assert raw.response(raw.read(), 3)[2] is True
    assert not of_type(raw.received, GoAwayFrame)


def test_client_graceful_goaway_lets_open_streams_finish():
    raw = RawClient()
    raw.send(raw.headers(1, get_request(b"/slow")))
    events = raw.send(GoAwayFrame(0, last_stream_id=0, error_code=NO_ERROR))
    assert [(type(e), e.graceful) for e in events] == [(ev.ConnectionEnded, True)]
    assert not raw.core.finished
    raw.core.respond(1, 200, [])
    raw.core.send_body(1, b"still delivered", end_stream=True)
    _, body, ended = raw.response(raw.read(), 1)
    assert (body, ended) == (b"still delivered", True)
    assert raw.core.finished
    refused = raw.send(raw.headers(3, get_request()))
    assert brief(refused) == [(ev.StreamRejected, 3, REFUSED)]


def test_header_list_over_the_limit_gets_431_and_the_connection_lives():
    raw = RawClient(H2Settings(max_header_list_size=1_000))
    big = [(b"x-big", b"a" * 1_200)]
    events = raw.send(raw.headers(1, get_request(b"/big", big)))
    assert [(type(e), e.stream_id) for e in events] == [(ev.StreamRejected, 1)]
    blocks, body, ended = raw.response(raw.read(), 1)
    assert blocks == [[(b":status", b"431"), (b"content-length", b"0")]]
    assert (body, ended) == (b"", True)
    assert_stream_completes(raw, 3)


def test_header_list_past_twice_the_limit_ends_the_connection():
    raw = RawClient(H2Settings(max_header_list_size=1_000))
    events = raw.send(raw.headers(1, get_request(b"/bomb", [(b"x-big", b"a" * 2_500)])))
    assert [type(e) for e in events] == [ev.ConnectionEnded]
    assert events[0].error_code == ErrorCodes.ENHANCE_YOUR_CALM
    goaway = of_type(raw.read(), GoAwayFrame)
    assert [f.error_code for f in goaway] == [ErrorCodes.ENHANCE_YOUR_CALM]


# -- malformed requests: stream errors only ---------------------------------


@pytest.mark.parametrize("block", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_request_resets_that_stream_only(block):
    raw = RawClient()
    assert kinds(raw.send(raw.headers(1, get_request(), end_stream=False))) == [ev.RequestStarted]
    assert brief(raw.send(raw.headers(3, block))) == [(ev.StreamRejected, 3, PROTOCOL_ERROR)]
    assert summary(raw.read()) == [rst(3)]
    assert raw.core.is_serving(1)
    assert_stream_completes(raw, 5)


@pytest.mark.parametrize(
    "block",
    [
        get_request(b"*", method=b"OPTIONS"),
        [(b":method", b"CONNECT"), (b":authority", b"example.com:443")],
        get_request(extra=[(b"te", b"trailers"), (b"content-length", b"0")]),
    ],
    ids=["OPTIONS *", "CONNECT", "te trailers"],
)
def test_unusual_but_valid_requests_are_accepted(block):
    raw = RawClient()
    assert kinds(raw.send(raw.headers(1, block))) == [ev.RequestStarted]
    assert raw.read() == []


@pytest.mark.parametrize(
    "frames",
    [
        [RawClient.data(1, b"abcd")],
        [RawClient.data(1, b"ab"), RawClient.data(1, b"cd", end_stream=True)],
        [RawClient.data(1, b"ab", end_stream=True)],
        [RawClient.data(1, b"", end_stream=True)],
        [RawClient.data(1, b"ab"), lambda r: r.headers(1, [(b"x-t", b"1")])],
    ],
    ids=["DATA beyond", "beyond at end", "short at END_STREAM", "empty", "short at trailers"],
)
def test_body_disagreeing_with_content_length(frames):
    raw = RawClient()
    events = [e for e in upload(raw, b"3", *frames) if not isinstance(e, ev.RequestData)]
    assert [(type(e), e.stream_id, e.error_code, e.by_peer) for e in events] == [
        (ev.StreamAborted, 1, PROTOCOL_ERROR, False)
    ]
    assert summary(of_type(raw.read(), RstStreamFrame)) == [rst(1)]
    assert not raw.core.is_serving(1)
    assert_stream_completes(raw, 3)


def test_headers_end_stream_with_nonzero_content_length_is_malformed():
    raw = RawClient()
    block = get_request(method=b"POST", extra=[(b"content-length", b"5")])
    assert brief(raw.send(raw.headers(1, block))) == [(ev.StreamRejected, 1, PROTOCOL_ERROR)]
    assert summary(raw.read()) == [rst(1)]
    assert_stream_completes(raw, 3)


@pytest.mark.parametrize(
    ("trailers", "end_stream"),
    [([(b":path", b"/x")], True), ([(b"X-Up", b"1")], True), ([(b"x-t", b"1")], False)],
    ids=["pseudo-header", "uppercase", "no END_STREAM"],
)
def test_bad_request_trailers_reset_the_stream(trailers, end_stream):
    raw = RawClient()
    events = upload(raw, b"2", raw.data(1, b"ab"), lambda r: r.headers(1, trailers, end_stream))
    assert brief(events) == [(ev.RequestData, 1, None), (ev.StreamAborted, 1, PROTOCOL_ERROR)]
    assert summary(raw.read()) == [rst(1)]
    assert_stream_completes(raw, 3)


@pytest.mark.parametrize("in_trailers", [True, False])
def test_hpack_error_is_a_connection_error(in_trailers):
    raw = RawClient()
    raw.send(raw.headers(1, POST, end_stream=False))
    sid = 1 if in_trailers else 3
    events = raw.send(HeadersFrame(sid, b"\xff" * 6, flags=["END_HEADERS", "END_STREAM"]))
    assert kinds(events) == [ev.StreamAborted, ev.ConnectionEnded]
    (goaway,) = of_type(raw.read(), GoAwayFrame)
    assert goaway.error_code in (PROTOCOL_ERROR, ErrorCodes.COMPRESSION_ERROR)


# -- request trailers, response trailers, informational, priority -------------


def test_request_trailers():
    client = Client()
    sid = client.request(POST, body=b"abc", end=False)
    client.conn.send_headers(sid, [(b"x-checksum", b"42")], end_stream=True)
    events, _ = client.exchange()
    assert kinds(events) == [ev.RequestStarted, ev.RequestData, ev.RequestTrailers]
    assert events[1] == ev.RequestData(sid, b"abc", end_stream=False)
    assert events[2] == ev.RequestTrailers(sid, [(b"x-checksum", b"42")])


def test_response_trailers_follow_the_body():
    raw = RawClient()
    raw.send(raw.headers(1, get_request()))
    raw.core.respond(1, 200, [(b"trailer", b"x-checksum")])
    raw.core.send_body(1, b"abc")
    raw.core.send_trailers(1, [(b"x-checksum", b"42")])
    frames = raw.read()
    assert summary(frames) == [
        (HEADERS, 1, END_HEADERS),
        (DATA, 1, frozenset()),
        (HEADERS, 1, END_HEADERS | {"END_STREAM"}),
    ]
    assert raw.decode(frames[0]) == [(b":status", b"200"), (b"trailer", b"x-checksum")]
    assert frames[1].data == b"abc"
    assert raw.decode(frames[2]) == [(b"x-checksum", b"42")]
    assert not raw.core.is_serving(1)


def test_informational_response_precedes_final():
    client = Client()
    sid = client.request()
    client.exchange()
    client.core.informational(sid, 103, [(b"link", b"</s.css>; rel=preload")])
    client.core.respond(sid, 200, [], end_stream=True)
    _, events = client.exchange()
    heads = h2_events(events, (h2e.InformationalResponseReceived, h2e.ResponseReceived))
    assert [type(e) for e in heads] == [h2e.InformationalResponseReceived, h2e.ResponseReceived]
    assert heads[0].headers == [(b":status", b"103"), (b"link", b"</s.css>; rel=preload")]
    assert summary(client.frames) == [
        (HEADERS, sid, END_HEADERS),
        (HEADERS, sid, END_HEADERS | {"END_STREAM"}),
    ]


def test_priority_from_headers_and_priority_frame():
    raw = RawClient()
    (started, *rest) = raw.send(raw.headers(1, get_request(), False, priority=(32, 0, True)))
    assert started.head.priority == StreamPriority(weight=32, depends_on=0)
    assert rest == []
    raw.send(raw.headers(3, get_request(), end_stream=False))
    assert raw.send(raw.priority(3, 200, 1, False)) == [
        ev.PriorityChanged(3, StreamPriority(weight=200, depends_on=1))
    ]
    assert raw.read() == []


# -- flow control, expiry, fairness ------------------------------------------


def test_response_waits_for_window_and_resumes():
    client, sid = blocked_response(100_000)
    data = of_type(client.frames, DataFrame, sid)
    assert [len(f.data) for f in data] == [16_384] * 3 + [16_383]
    assert not any("END_STREAM" in f.flags for f in data)
    assert client.core.counts(sid)[1].buffered == 100_000 - 65_535
    assert client.core.flush(1.0) == []
    client.exchange(now=1.0)
    assert client.frames == []
    assert [len(f.data) for f in open_window(client, sid, 20_000, 2.0)] == [16_384, 3_616]
    data = open_window(client, sid, 40_000, 3.0)
    assert sum(len(f.data) for f in data) == 100_000 - 85_535
    assert ["END_STREAM" in f.flags for f in data] == [False] * (len(data) - 1) + [True]
    assert client.core.counts(sid)[1].buffered == 0
    assert not client.core.is_serving(sid)


def test_flush_budget_frames_a_slice_at_a_time():
    """flush(now, budget) stops once ``budget`` bytes are framed and says so
    (``capped``); the next flush goes on where it stopped, in order."""
    raw = RawClient()
    raw.send(raw.window_update(0, 1 << 20), raw.headers(1, get_request()))
    raw.send(raw.window_update(1, 1 << 20))
    raw.read()
    body = bytes(range(256)) * 400  # 102,400 bytes: 7 frames
    raw.core.respond(1, 200, [])
    raw.core.send_body(1, body[:16_384])  # queued: only a last piece is framed at once
    raw.core.send_body(1, body[16_384:], end_stream=True)
    slices: list[list[DataFrame]] = []
    capped = []
    while not slices or capped[-1]:  # a slice stops at the first frame past the budget
        raw.core.flush(0.0, budget=40_000)
        capped.append(raw.core.capped)
        slices.append(of_type(raw.read(flush=False), DataFrame, 1))
    assert capped == [True, True, False]
    assert [[len(f.data) for f in s] for s in slices] == [[16_384] * 3, [16_384] * 3, [4_096]]
    got = [f for s in slices for f in s]
    assert b"".join(f.data for f in got) == body
    assert "END_STREAM" in got[-1].flags


def test_expire_resets_only_streams_blocked_long_enough():
    client, sid = blocked_response(70_000, now=10.0, spare=1_000)
    other = client.request()
    client.exchange(now=10.0)
    client.core.respond(other, 200, [])
    client.core.send_body(other, b"queued")  # fits its window: never blocked
    client.core.flush(10.0)
    assert client.core.expire(14.9, 5.0) == []
    events = client.core.expire(15.0, 5.0)
    assert [(type(e), e.stream_id, e.error_code, e.by_peer) for e in events] == [
        (ev.StreamAborted, sid, CANCEL, False)
    ]
    assert client.core.expire(1000.0, 5.0) == []
    assert not client.core.is_serving(sid)
    assert client.core.is_serving(other)
    client.exchange(now=1000.0)
    assert summary(client.frames) == [
        (HEADERS, other, END_HEADERS),
        (DATA, other, frozenset()),
        rst(sid, CANCEL),
    ]
    assert client.core.expire(2000.0, 5.0) == []


def test_block_timer_restarts_when_the_stream_makes_progress():
    client, sid = blocked_response(100_000, now=0.0)
    assert len(open_window(client, sid, 1_000, now=4.0)) == 1  # blocked again from t=4
    assert client.core.expire(8.0, 5.0) == []
    assert [e.stream_id for e in client.core.expire(9.0, 5.0)] == [sid]


@pytest.mark.parametrize(
    ("field", "order"),
    [
        (None, [1] * 3 + [3] * 3),  # RFC 9218's default: u=3, one after the other
        (b"u=3, i", [1, 3] * 3),  # incremental: they share
    ],
)
def test_two_large_responses_follow_rfc9218_defaults(field, order):
    client = Client(client_settings={SettingCodes.INITIAL_WINDOW_SIZE: 2**20})
    client.conn.increment_flow_control_window(2**20)
    extra = [(b"priority", field)] if field else []
    first, second = (
        client.request(get_request(extra=extra)),
        client.request(get_request(extra=extra)),
    )
    client.exchange()
    for sid in (first, second):
        client.core.respond(sid, 200, [])
        client.core.send_body(sid, b"z" * 40_000, end_stream=True)
    client.exchange()
    assert [f.stream_id for f in of_type(client.frames, DataFrame)] == order


# -- aborts ------------------------------------------------------------------


def test_client_reset_aborts_only_that_stream():
    client = Client()
    doomed, other = client.request(), client.request()
    client.exchange()
    client.core.respond(doomed, 200, [])
    client.conn.reset_stream(doomed, CANCEL)
    events, _ = client.exchange()
    assert events == [ev.StreamAborted(doomed, CANCEL, by_peer=True)]
    with pytest.raises(UnknownStream):  # a session checks the stream's state first
        client.core.send_body(doomed, b"ignored", end_stream=True)
    client.core.respond(other, 200, [])
    client.core.send_body(other, b"ok", end_stream=True)
    _, events = client.exchange()
    assert of_type(client.frames, DataFrame, doomed) == []
    assert body_of(events, other) == b"ok"


def test_unread_body_of_aborted_stream_is_credited_to_connection():
    raw = RawClient(H2Settings(max_concurrent_streams=1))  # connection window stays 65535
    raw.send(raw.headers(1, POST, end_stream=False))
    for _ in range(4):
        raw.send(raw.data(1, b"u" * 15_000))
    assert of_type(raw.read(), WindowUpdateFrame) == []
    assert raw.send(raw.rst(1, CANCEL)) == [ev.StreamAborted(1, CANCEL, by_peer=True)]
    updates = of_type(raw.read(), WindowUpdateFrame)
    assert [(u.stream_id, u.window_increment) for u in updates] == [(0, 60_000)]
    raw.send(raw.headers(3, POST, end_stream=False))
    for _ in range(4):
        assert kinds(raw.send(raw.data(3, b"v" * 15_000))) == [ev.RequestData]
    assert not of_type(raw.read(), GoAwayFrame)


def test_response_before_upload_finished_resets_with_no_error():
    raw = RawClient(H2Settings(max_concurrent_streams=1))
    raw.send(raw.headers(1, POST, end_stream=False))
    for _ in range(3):
        raw.send(raw.data(1, b"p" * 13_000))
    assert raw.read() == []
    raw.core.respond(1, 413, [])
    raw.core.send_body(1, b"too big", end_stream=True)
    frames = raw.read()
    assert summary(f for f in frames if not isinstance(f, WindowUpdateFrame)) == [
        (HEADERS, 1, END_HEADERS),
        (DATA, 1, frozenset({"END_STREAM"})),
        rst(1, NO_ERROR),
    ]
    # the unread 39000 bytes go back to the connection window
    assert [u.window_increment for u in of_type(frames, WindowUpdateFrame, 0)] == [39_000]
    assert raw.send(raw.data(1, b"late", end_stream=True)) == []
    assert not of_type(raw.read(), GoAwayFrame)


# -- shutdown and connection errors ------------------------------------------


def test_graceful_shutdown():
    raw = RawClient()
    raw.send(raw.headers(1, get_request(), end_stream=True))
    raw.send(raw.headers(3, POST, end_stream=False))
    raw.core.start_shutdown()
    raw.core.start_shutdown()
    (goaway,) = raw.read()
    assert isinstance(goaway, GoAwayFrame)
    assert (goaway.last_stream_id, goaway.error_code) == (3, NO_ERROR)
    assert not raw.core.finished
    assert brief(raw.send(raw.headers(5, get_request()))) == [(ev.StreamRejected, 5, REFUSED)]
    assert summary(raw.read()) == [rst(5, REFUSED)]
    assert kinds(raw.send(raw.data(3, b"body", end_stream=True))) == [ev.RequestData]
    raw.core.respond(1, 200, [], end_stream=True)
    assert not raw.core.finished
    raw.core.respond(3, 201, [])
    raw.core.send_body(3, b"made", end_stream=True)
    assert raw.response(raw.read(), 3)[1:] == (b"made", True)
    assert raw.core.finished
    assert len(of_type(raw.received, GoAwayFrame)) == 1


def test_shutdown_with_no_streams_is_finished_at_once():
    raw = RawClient()
    raw.core.start_shutdown()
    assert raw.core.finished
    assert summary(raw.read()) == [(GOAWAY, 0, frozenset(), NO_ERROR)]


def test_bad_preface_ends_the_connection():
    raw = RawClient(handshake=False)
    raw.core.initiate()
    events = raw.send_bytes(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert events == [ev.ConnectionEnded(PROTOCOL_ERROR, False, False, events[0].reason)]
    assert summary(of_type(raw.read(), GoAwayFrame)) == [(GOAWAY, 0, frozenset(), PROTOCOL_ERROR)]
    assert raw.core.finished
    assert raw.send_bytes(PREFACE) == []


@pytest.mark.parametrize("frame_and_code", CONNECTION_ERRORS.values(), ids=CONNECTION_ERRORS)
def test_connection_error_sends_goaway_and_aborts_streams(frame_and_code):
    bad, code = frame_and_code
    raw = RawClient()
    raw.send(raw.headers(1, get_request(), end_stream=False))
    raw.send(raw.headers(3, get_request()))
    events = raw.send(bad)
    assert brief(events) == [
        (ev.StreamAborted, 1, code),
        (ev.StreamAborted, 3, code),
        (ev.ConnectionEnded, None, code),
    ]
    assert not any(e.by_peer for e in events) and events[-1].graceful is False
    (goaway,) = of_type(raw.read(), GoAwayFrame)
    assert (goaway.error_code, goaway.last_stream_id) == (code, 3)
    assert raw.core.finished
    with pytest.raises(UnknownStream):
        raw.core.respond(1, 200, [], end_stream=True)
    assert raw.read() == []


@pytest.mark.parametrize("code", [ErrorCodes.INTERNAL_ERROR, 0x77, 0xFFFFFFFF])
def test_peer_reset_and_goaway_codes(code):
    """Unknown error codes count as INTERNAL_ERROR (RFC 9113 section 7)."""
    raw = RawClient()
    raw.send(raw.headers(1, get_request()), raw.headers(3, get_request()))
    internal = ErrorCodes.INTERNAL_ERROR
    assert raw.send(raw.rst(1, code)) == [ev.StreamAborted(1, internal, by_peer=True)]
    events = raw.send(GoAwayFrame(0, last_stream_id=0, error_code=code))
    assert brief(events) == [(ev.StreamAborted, 3, internal), (ev.ConnectionEnded, None, internal)]
    assert all(e.by_peer for e in events)
    assert raw.core.finished
    assert of_type(raw.read(), GoAwayFrame) == []


def test_malformed_request_then_peer_reset_in_one_read():
    raw = RawClient()
    bad = raw.headers(1, MALFORMED["uppercase name"], end_stream=False)
    assert brief(raw.send(bad, raw.rst(1, CANCEL))) == [(ev.StreamRejected, 1, PROTOCOL_ERROR)]
    assert_stream_completes(raw, 3)


def test_bad_trailers_then_peer_reset_in_one_read():
    raw = RawClient()
    raw.send(raw.headers(1, POST, end_stream=False))
    events = raw.send(raw.headers(1, [(b":path", b"/")]), raw.rst(1, CANCEL))
    assert brief(events) == [(ev.StreamAborted, 1, PROTOCOL_ERROR)]
    assert_stream_completes(raw, 3)


def test_malformed_request_then_goaway_in_one_read():
    raw = RawClient()
    events = raw.send(raw.headers(1, MALFORMED["missing :method"]), GoAwayFrame(0))
    assert kinds(events) == [ev.StreamRejected, ev.ConnectionEnded]
    assert events[1].by_peer and events[1].graceful
    assert raw.core.finished


# -- h2c upgrade --------------------------------------------------------------


def test_h2c_upgrade_serves_stream_one():
    client = Client(upgrade=(get_request(b"/up", method=b"POST"), b"form=1"))
    events = client.upgrade_events
    assert kinds(events) == [ev.RequestStarted, ev.RequestData]
    assert (events[0].stream_id, events[0].end_stream, events[0].head.path) == (1, False, b"/up")
    assert events[1] == ev.RequestData(1, b"form=1", end_stream=True)
    client.core.credit_upto(1, 6)  # no credit is owed for an HTTP/1.1 body
    client.core.respond(1, 200, [(b"x-up", b"1")])
    client.core.send_body(1, b"upgraded", end_stream=True)
    core_events, events = client.exchange()
    assert core_events == []
    (resp,) = h2_events(events, h2e.ResponseReceived)
    assert (resp.stream_id, resp.headers) == (1, [(b":status", b"200"), (b"x-up", b"1")])
    assert body_of(events, 1) == b"upgraded"
    assert of_type(client.frames, RstStreamFrame) == []
    assert of_type(client.frames, WindowUpdateFrame, 1) == []
    assert client.request() == 3
    assert kinds(client.exchange()[0]) == [ev.RequestStarted]


def test_h2c_upgrade_without_body():
    client = Client(upgrade=(get_request(), b""))
    assert [(type(e), e.end_stream) for e in client.upgrade_events] == [(ev.RequestStarted, True)]


# -- fuzzing -----------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.one_of(GARBAGE_FRAMES, SCRIPTED_FRAMES), max_size=14),
    st.integers(1, 64),
    st.lists(st.sampled_from(APP_ACTIONS), min_size=1, max_size=6),
)
def test_garbled_frames_never_raise(items, chunk, app):
    raw = RawClient(H2Settings(max_concurrent_streams=2, initial_window_size=1000))
    stream = b"".join(i if isinstance(i, bytes) else encode_item(raw, i) for i in items)
    core, turn = raw.core, 0
    for start in range(0, len(stream), chunk):
        events = core.receive(stream[start : start + chunk])
        assert all(isinstance(event, ev.Event) for event in events)
        # As a session does: act once the read is dispatched, on streams the
        # core still serves (a later frame of the same read may have reset one).
        for event in events:
            if not core.is_serving(event.stream_id if hasattr(event, "stream_id") else 0):
                continue
            if isinstance(event, ev.RequestData):
                core.credit_upto(event.stream_id, core.counts(event.stream_id)[0].received)
            if not isinstance(event, ev.RequestStarted):
                continue
            sid, action, turn = event.stream_id, app[turn % len(app)], turn + 1
            if action == "informational":
                core.informational(sid, 103, [])
            if action == "shutdown":
                core.start_shutdown()
            if action == "reset":
                core.reset(sid)
            elif action == "respond_end":
                core.respond(sid, 204, [], end_stream=True)
            elif action != "nothing":
                core.respond(sid, 200, [])
                core.send_body(sid, b"r" * 3000, end_stream=action == "body")
                if action == "trailers":
                    core.send_trailers(sid, [(b"x-done", b"1")])
        core.flush(float(start))
        assert all(isinstance(e, ev.StreamAborted) for e in core.expire(float(start), 10.0))
        assert isinstance(core.data_to_send(), bytes)
    core.start_shutdown()
    assert isinstance(core.data_to_send(), bytes)
    assert all(isinstance(e, ev.Event) for e in core.close(NO_ERROR))
    assert core.finished


# -- flood budgets (docs/security.md) ------------------------------------------

from hyperframe.frame import PingFrame, PriorityFrame  # noqa: E402

CALM = ErrorCodes.ENHANCE_YOUR_CALM
# The handshake spends 2 control tokens (the client's SETTINGS and its ACK).
SMALL_BUDGETS = H2Settings(
    max_reset_streams=10,
    reset_streams_per_second=5,
    max_control_frames=20,
    control_frames_per_second=10,
)


def _goaway_codes(raw: RawClient) -> list:
    return [f.error_code for f in of_type(raw.received, GoAwayFrame)]


def _flood(raw: RawClient, make, count: int) -> list:
    events: list = []
    for i in range(count):
        events += raw.send(make(i))
        raw.read()
    return events


@pytest.mark.parametrize("kind", ["ping", "settings", "priority", "window_update", "empty_data"])
def test_control_frame_flood_ends_in_enhance_your_calm(kind):
    raw = RawClient(SMALL_BUDGETS)
    raw.send(raw.headers(1, POST, end_stream=False))
    make = {
        "ping": lambda i: PingFrame(0, opaque_data=i.to_bytes(8, "big")),
        "settings": lambda i: SettingsFrame(0, settings={SettingCodes.ENABLE_PUSH: 0}),
        "priority": lambda i: PriorityFrame(1, depends_on=0, stream_weight=i % 200),
        "window_update": lambda i: WindowUpdateFrame(0, window_increment=1),
        "empty_data": lambda i: raw.data(1, b""),
    }[kind]
    events = _flood(raw, make, 18)
    assert _goaway_codes(raw) == [] and not raw.core.terminated
    events = _flood(raw, make, 1)
    assert _goaway_codes(raw) == [CALM]
    assert [type(e) for e in events][-1] is ev.ConnectionEnded
    assert (ev.StreamAborted, 1, CALM) in brief(events)


def test_budget_refills_with_time():
    raw = RawClient(SMALL_BUDGETS)
    ping = lambda i: PingFrame(0, opaque_data=bytes(8))  # noqa: E731
    raw.core.expire(100.0, 30.0)
    _flood(raw, ping, 18)
    raw.core.expire(101.0, 30.0)  # one second: 10 more
    _flood(raw, ping, 10)
    assert _goaway_codes(raw) == []
    _flood(raw, ping, 1)
    assert _goaway_codes(raw) == [CALM]


def test_rapid_reset_ends_in_enhance_your_calm_and_aborts_in_flight_streams():
    raw = RawClient(SMALL_BUDGETS)
    events = []
    for n in range(10):
        sid = 1 + 2 * n
        events += raw.send(raw.headers(sid, get_request()), raw.rst(sid, CANCEL))
    assert _goaway_codes(raw) == [] and not raw.core.terminated
    assert sum(isinstance(e, ev.StreamAborted) and e.by_peer for e in events) == 10
    events = raw.send(raw.headers(21, get_request()), raw.rst(21, CANCEL))
    raw.read()
    assert _goaway_codes(raw) == [CALM]


def test_refused_and_malformed_streams_spend_the_reset_budget():
    raw = RawClient(
        H2Settings(max_concurrent_streams=1, max_reset_streams=5, reset_streams_per_second=0)
    )
    raw.send(raw.headers(1, get_request(), end_stream=False))  # holds the only slot
    for sid in (3, 5, 7):
        raw.send(raw.headers(sid, get_request()))  # refused
    raw.send(raw.headers(9, [(b":method", b"GET")]))  # malformed
    raw.read()
    assert _goaway_codes(raw) == []
    raw.send(raw.headers(11, get_request()))
    raw.send(raw.headers(13, get_request()))
    raw.read()
    assert _goaway_codes(raw) == [CALM]


def test_a_download_pays_for_its_window_updates():
    raw = RawClient(SMALL_BUDGETS)
    raw.send(raw.headers(1, get_request()))
    raw.core.respond(1, 200, [])
    body = b"d" * 16_384
    for _ in range(60):  # each frame earns the WINDOW_UPDATE that reopens it
        raw.core.send_body(1, body)
        raw.read()
        raw.send(raw.window_update(0, 16_384), raw.window_update(1, 16_384))
    assert _goaway_codes(raw) == []


def test_continuation_flood_is_stopped_while_it_arrives():
    from hyperframe.frame import ContinuationFrame

    raw = RawClient(H2Settings(max_header_list_size=4_000))
    block = raw.encode(get_request())
    first = HeadersFrame(1, block, flags=["END_STREAM"])  # no END_HEADERS
    raw.send(first)
    events = []
    for _ in range(9):  # 9 x 1000 bytes: past twice the list size
        events += raw.send(ContinuationFrame(1, b"x" * 1_000))
    raw.read()
    assert _goaway_codes(raw) == [CALM]
    assert [type(e) for e in events] == [ev.ConnectionEnded]


def test_many_tiny_continuation_frames_are_a_flood():
    from hyperframe.frame import ContinuationFrame

    raw = RawClient()
    raw.send(HeadersFrame(1, raw.encode(get_request()), flags=["END_STREAM"]))
    for _ in range(40):
        raw.send(ContinuationFrame(1, b""))
    raw.read()
    assert _goaway_codes(raw) == [CALM]


def test_host_header_matching_authority_or_standing_in_for_it_is_accepted():
    from h2workers.proto.headers import parse_request

    same = parse_request([*get_request(), (b"host", b"EXAMPLE.com")])
    assert same.authority == b"example.com"
    no_authority = [h for h in get_request() if h[0] != b":authority"]
    assert parse_request([*no_authority, (b"host", b"h.example")]).authority == b"h.example"


def test_padding_credit_on_a_stream_reset_later_in_the_same_read():
    """Events are translated after h2 read the whole batch: by the time the
    padding of the first frames is credited, the client's RST_STREAM at the
    end of the same read has closed the stream. No stream WINDOW_UPDATE
    then, and no crash (it killed the worker)."""
    raw = RawClient()
    raw.send(raw.headers(1, POST, end_stream=False))
    frames = [raw.data(1, b"p", pad=255) for _ in range(65)]  # 16,640 bytes of credit
    events = raw.send(*frames, RstStreamFrame(1, error_code=CANCEL))
    assert [type(e) for e in events] == [ev.RequestData] * 65 + [ev.StreamAborted]
    assert of_type(raw.read(), WindowUpdateFrame, 1) == []


def test_a_frame_on_an_idle_stream_is_logged_in_plain_words():
    """HAProxy sends RST_STREAM on a stream it never opened: the GOAWAY is
    PROTOCOL_ERROR, and the reason says what the peer did, not h2's state
    machine input."""
    raw = RawClient()
    events = raw.send(RstStreamFrame(1, error_code=CANCEL))
    ended = [e for e in events if isinstance(e, ev.ConnectionEnded)]
    assert [(e.error_code, e.reason) for e in ended] == [
        (PROTOCOL_ERROR, "the client sent RST_STREAM on a stream it never opened")
    ]


# -- RFC 8441 extended CONNECT --------------------------------------------------------

EXTENDED = [(b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":scheme", b"https"),
            (b":path", b"/chat?room=1"), (b":authority", b"example.com")]  # fmt: skip


def test_extended_connect_parses_only_when_advertised() -> None:
    from h2workers.proto.headers import parse_request

    head = parse_request(EXTENDED, extended_connect=True)
    assert (head.method, head.protocol, head.path) == (b"CONNECT", b"websocket", b"/chat?room=1")
    with pytest.raises(StreamViolation, match="unknown pseudo-header"):
        parse_request(EXTENDED)  # not advertised: :protocol is unknown


@pytest.mark.parametrize(
    ("block", "why"),
    [
        ([(b":method", b"GET"), *EXTENDED[1:]], ":protocol outside a CONNECT"),
        ([p for p in EXTENDED if p[0] != b":path"], "missing :scheme or :path"),
        ([p for p in EXTENDED if p[0] != b":authority"], "needs :authority"),
    ],
)
def test_malformed_extended_connect_is_a_stream_error(block: list, why: str) -> None:
    from h2workers.proto.headers import parse_request

    with pytest.raises(StreamViolation, match=why):
        parse_request(block, extended_connect=True)


def test_plain_connect_still_needs_no_scheme_or_path() -> None:
    from h2workers.proto.headers import parse_request

    head = parse_request([(b":method", b"CONNECT"), (b":authority", b"example.com:443")],
                         extended_connect=True)  # fmt: skip
    assert head.protocol is None and head.path == b""


# -- server push ------------------------------------------------------------------------


def test_push_promises_a_get_and_the_promised_stream_is_served():
    client = Client()
    sid = client.request(get_request(b"/page"))
    client.exchange()
    promised = client.core.push(sid, get_request(b"/style.css"))
    assert promised is not None
    pushed, head = promised
    assert pushed == 2 and (head.method, head.path) == (b"GET", b"/style.css")
    client.core.respond(pushed, 200, [(b"content-type", b"text/css")])
    client.core.send_body(pushed, b"h1 {}", end_stream=True)
    client.core.respond(sid, 200, [], end_stream=True)
    _, events = client.exchange()
    (promise,) = h2_events(events, h2e.PushedStreamReceived)
    assert (promise.parent_stream_id, promise.pushed_stream_id) == (sid, pushed)
    assert dict(promise.headers)[b":path"] == b"/style.css"
    assert body_of(events, pushed) == b"h1 {}"
    assert not client.core.is_serving(pushed) and not client.core.is_serving(sid)


def test_no_push_when_the_client_disabled_it():
    from h2.settings import SettingCodes

    client = Client(client_settings={SettingCodes.ENABLE_PUSH: 0})
    sid = client.request(get_request(b"/page"))
    client.exchange()
    assert not client.core.can_push
    assert client.core.push(sid, get_request(b"/style.css")) is None
    with pytest.raises(UnknownStream):
        client.core.push(99, get_request(b"/x"))  # a stream not served: a bug shows


def test_no_push_once_shutting_down():
    client = Client()
    sid = client.request(get_request(b"/page"))
    client.exchange()
    client.core.start_shutdown()
    assert client.core.push(sid, get_request(b"/style.css")) is None


def test_fields_seen_before_are_still_refused_where_they_do_not_belong():
    """parse_request remembers fields that passed their checks; a field
    that passed as a regular header is still refused among the pseudo-headers'
    rules (order, unknown names) and a bad one is never remembered."""
    from h2workers.proto.headers import parse_request

    good = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"), (b"x-a", b"1")]
    for _ in range(2):
        assert parse_request(list(good)).headers == [(b"x-a", b"1")]
    with pytest.raises(StreamViolation):  # remembered, but after a regular field
        parse_request([(b"x-a", b"1"), *good[:3]])
    for bad in [(b"x-a", b"1\r\n"), (b"connection", b"close"), (b"te", b"gzip")]:
        for _ in range(2):  # refused again: never remembered
            with pytest.raises(StreamViolation):
                parse_request([*good[:3], bad])
    parse_request([*good, (b"authorization", b"Bearer s3cret"), (b"cookie", b"a=b")])
    assert not any(value in (b"Bearer s3cret", b"a=b") for _, value in headers._CHECKED.known)


_PSEUDO = [
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":scheme", b"https"),
    (b":path", b"/a"),
    (b":path", b"/b?q=1"),
    (b":authority", b"h"),
    (b":protocol", b"x"),
]
_REGULAR = [
    (b"x-a", b"1"),
    (b"content-length", b"3"),
    (b"content-length", b"4"),
    (b"priority", b"u=1"),
    (b"host", b"h"),
    (b"host", b"other"),
    (b"cookie", b"a=b"),
    (b"authorization", b"Bearer s3cret"),
    (b"te", b"gzip"),
    (b"x-b", b"\r"),
    (b"X-C", b"1"),
]
_REQUESTS = [
    [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/a")],
    [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"h"), (b":path", b"/")],
    [(b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":scheme", b"https"),
     (b":path", b"/chat"), (b":authority", b"h")],  # RFC 8441: only with extended CONNECT
]  # fmt: skip
# mostly well-formed requests, some with one pseudo-header too many; each
# parsed with extended CONNECT on or off
_BLOCK = st.tuples(
    st.sampled_from(_REQUESTS), st.lists(st.sampled_from(_PSEUDO), max_size=1),
    st.lists(st.sampled_from(_REGULAR), max_size=4), st.booleans(),
)  # fmt: skip
_BLOCKS = st.lists(_BLOCK.map(lambda p: (p[0] + p[1] + p[2], p[3])), min_size=1, max_size=6)


def _head_or_error(parse: Any, block: list[Any], extended: bool) -> Any:
    try:
        return parse(list(block), extended)
    except StreamViolation as exc:
        return str(exc)


@settings(max_examples=300, deadline=None)
@example(blocks=[(_REQUESTS[2], True), (_REQUESTS[2], False)], repeats=[])  # the same, not allowed
@given(blocks=_BLOCKS, repeats=st.lists(st.integers(0, 5), max_size=6))
def test_a_block_seen_before_gives_the_head_checking_gives(blocks, repeats):
    """parse_request remembers the head of a block seen whole before: each
    time the same head (or error) as checking the block, a head of its
    own, and never a block with credentials kept."""
    from h2workers.proto.headers import check_request, parse_request

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(headers, "_HEADS", {})
        order = blocks + [blocks[r % len(blocks)] for r in repeats]
        for block, extended in order:
            got = _head_or_error(parse_request, block, extended)
            assert got == _head_or_error(check_request, block, extended)
            if not isinstance(got, str):
                got.headers.append((b"x-mutated", b"1"))  # the app side's own copy
                got.priority = None
        for key in headers._HEADS:
            assert not any(name in headers.SECRET_FIELDS for name, _ in key[1:])


def test_nothing_after_a_connection_error_in_the_same_read_is_served():
    """A malformed PRIORITY_UPDATE (a connection error the core finds, not
    h2) followed by a request in the same read: the connection ends and the
    request is not started (found by test_garbled_frames_never_raise: the
    app then answered on a closed connection)."""
    raw = RawClient(H2Settings())
    request = encode_item(raw, ("headers", 3, False))
    events = raw.core.receive(raw_frame(0x10, 0, 0, b"") + request)
    assert [type(e) for e in events] == [ev.ConnectionEnded]
    assert events[0].error_code == ErrorCodes.FRAME_SIZE_ERROR
    assert not raw.core.is_serving(3)
