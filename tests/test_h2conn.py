"""h2workers.proto.machine's and framing's hot paths give h2's results: same bytes out, same events,
same state, same errors.

Each hot path does h2's checks and state changes without h2's generic frame
machinery; these tests run it beside h2's own path on the same input.
"""

from __future__ import annotations

import itertools
import struct
from typing import Any

import hpack
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.exceptions import FlowControlError, FrameTooLargeError, ProtocolError
from h2.settings import SettingCodes, Settings
from hyperframe.frame import Frame
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from h2workers.proto.framing import EagerFrameBuffer
from h2workers.proto.machine import ServerConnection, TokenBucket, new_server_connection
from tests.frames import PREFACE, raw_frame

REQUEST = [(":method", "GET"), (":scheme", "https"), (":authority", "a"), (":path", "/")]


def _server_with_request(max_frame: int = 16_384, respond: bool = False) -> ServerConnection:
    """A server connection that received a GET on stream 1 (and, with
    ``respond``, sent its response head)."""
    client = H2Connection(H2Configuration(client_side=True))
    client.initiate_connection()
    client.send_headers(1, REQUEST, end_stream=True)
    server = new_server_connection(
        header_encoding=None, validate_outbound_headers=False, normalize_outbound_headers=False
    )
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    server.max_outbound_frame_size = max_frame
    if respond:
        server.send_headers(1, [(b":status", b"200")])
    server.data_to_send()
    return server


# -- send_response_headers matches h2's send_headers -----------------------------


@pytest.mark.parametrize("end_stream", [False, True])
@pytest.mark.parametrize("extra", [0, 1, 40_000])  # 40 kB of header: CONTINUATION frames
def test_send_response_headers_writes_what_h2_writes(end_stream, extra):
    block = [(b":status", b"200"), (b"content-type", b"text/plain")]
    if extra:
        block.append((b"x-big", b"v" * extra))
    ours, theirs = _server_with_request(), _server_with_request()
    ours.send_response_headers(1, list(block), end_stream)
    theirs.send_headers(1, list(block), end_stream=end_stream)
    assert ours.data_to_send() == theirs.data_to_send()
    assert ours.streams[1].state_machine.state == theirs.streams[1].state_machine.state
    assert ours.encoder.header_table_size == theirs.encoder.header_table_size
    assert list(ours.encoder.header_table.dynamic_entries) == list(
        theirs.encoder.header_table.dynamic_entries
    )


# -- send_data_frame matches h2's send_data --------------------------------------


@pytest.mark.parametrize("end_stream", [False, True])
@pytest.mark.parametrize("size", [0, 1, 13, 16_384])
def test_send_data_frame_writes_what_h2_writes(size, end_stream):
    ours, theirs = _server_with_request(respond=True), _server_with_request(respond=True)
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    ours.send_data_frame(1, memoryview(payload), end_stream)
    theirs.send_data(1, payload, end_stream=end_stream)
    assert ours.data_to_send() == theirs.data_to_send()
    assert ours.local_flow_control_window(1) == theirs.local_flow_control_window(1)
    assert ours.outbound_flow_control_window == theirs.outbound_flow_control_window
    assert ours.streams[1].state_machine.state == theirs.streams[1].state_machine.state


def test_send_data_frame_refuses_what_h2_refuses():
    server = _server_with_request(respond=True)
    with pytest.raises(FrameTooLargeError):
        server.send_data_frame(1, b"x" * 16_385, False)
    server.outbound_flow_control_window = 10
    with pytest.raises(FlowControlError):
        server.send_data_frame(1, b"x" * 11, False)


# -- received DATA: the plain-frame path against h2's generic one ------------------


class _GenericBuffer(EagerFrameBuffer):
    def _plain_data(self, data: Any, length: int) -> None:
        return None

    def _plain_headers(self, data: Any, length: int) -> None:
        return None


class _GenericServer(ServerConnection):
    """ServerConnection with the received-frame hot paths turned off."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.incoming_buffer = _GenericBuffer(server=True)

    def _receive_body_data(self, frame: Any) -> None:
        return None

    def _open_request_stream(self, frame: Any, end_stream: bool) -> None:
        return None

    def _open_streams(self, remainder: int) -> int:
        return H2Connection._open_streams(self, remainder)


def _pair(max_streams: int | None = None) -> list[ServerConnection]:
    """The hot paths and h2's, configured as the core configures h2 (received
    headers handed over as decoded), at most ``max_streams`` open streams."""
    config = dict(
        client_side=False,
        header_encoding=None,
        validate_inbound_headers=False,
        normalize_inbound_headers=False,
    )
    servers = [
        ServerConnection(H2Configuration(**config)),
        _GenericServer(H2Configuration(**config)),
    ]
    for server in servers:
        if max_streams is not None:
            limit = {SettingCodes.MAX_CONCURRENT_STREAMS: max_streams}
            server.local_settings = Settings(client=False, initial_values=limit)  # type: ignore[arg-type]
        server.initiate_connection()
        server.data_to_send()
        server.controls = TokenBucket("control frames", 3, 0)  # empty DATA costs one
        server.resets = TokenBucket("resets", 3, 0)
    return servers


def _outcome(server: ServerConnection, data: bytes, cuts: list[int]) -> list[Any]:
    """Everything observable after feeding ``data`` in pieces cut at ``cuts``."""
    seen: list[Any] = []
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    for start, end in itertools.pairwise(bounds):
        try:
            events = server.receive_data(data[start:end])
        except ProtocolError as exc:
            seen.append(("error", type(exc).__name__, getattr(exc, "error_code", None)))
            break
        for e in events:
            ended = getattr(e, "stream_ended", None)
            seen.append(
                (
                    type(e).__name__,
                    getattr(e, "stream_id", None),
                    getattr(e, "data", None),
                    getattr(e, "flow_controlled_length", None),
                    None if ended is None else type(ended).__name__,
                    getattr(e, "error_code", None),
                    getattr(e, "headers", None),
                )
            )
    seen.append(server.data_to_send())
    seen.append(server._inbound_flow_control_window_manager.current_window_size)
    seen.append(server.state_machine.state)
    seen.append((server.controls.tokens, server.resets.tokens))  # type: ignore[union-attr]
    for sid, stream in sorted(server.streams.items()):
        seen.append(
            (
                sid,
                stream.state_machine.state,
                stream._actual_content_length,
                stream._inbound_window_manager.current_window_size,
            )
        )
    return seen


def _request(encoder: hpack.Encoder, sid: int, length: int | None, end: bool) -> bytes:
    headers = [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":authority", b"a"),
        (b":path", b"/"),
    ]
    if length is not None:
        headers.append((b"content-length", b"%d" % length))
    return raw_frame(0x1, 0x4 | (0x1 if end else 0), sid, encoder.encode(headers))


def _data(sid: int, size: int, end: bool, pad: int | None) -> bytes:
    payload = b"\xab" * size
    if pad is None:
        return raw_frame(0x0, 0x1 if end else 0, sid, payload)
    return raw_frame(0x0, 0x8 | (0x1 if end else 0), sid, bytes([pad]) + payload + bytes(pad))


STREAM_IDS = st.sampled_from([1, 1, 1, 3, 3, 5, 0, 2, 7])
DATA = st.tuples(
    STREAM_IDS, st.integers(0, 20_000), st.booleans(), st.one_of(st.none(), st.integers(0, 40))
)
OTHER = st.sampled_from(
    ["rst1", "rst3", "window", "ping", "trailers1", "headers5", "open5", "goaway0", "goaway1"]
)
# A HEADERS frame of any flags (END_STREAM, END_HEADERS, PADDED, PRIORITY and
# undefined bits), padded or not, and a CONTINUATION that may end its block;
# the block a request, one with a content-length (good, bad or two that
# disagree), or an informational response head.
HEADERS = st.tuples(
    st.sampled_from(["headers", "continuation"]),
    st.sampled_from([1, 3, 5, 7, 9, 11, 13, 0, 2]),
    st.integers(0, 255),
    st.integers(0, 30),
    st.sampled_from(["request", "length", "badlength", "twolengths", "informational"]),
)
_EXTRA_FIELDS = {
    "request": [],
    "length": [(b"content-length", b"5")],
    "badlength": [(b"content-length", b"5x")],
    "twolengths": [(b"content-length", b"5"), (b"content-length", b"6")],
}


def _headers(
    kind: str, sid: int, flags: int, pad: int, fields: str, encoder: hpack.Encoder
) -> bytes:
    if fields == "informational":
        block = encoder.encode([(b":status", b"103"), (b"link", b"</a>")])
    else:
        head = [(b":method", b"GET"), (b":path", b"/%d" % sid), (b"x-a", b"b")]
        block = encoder.encode(head + _EXTRA_FIELDS[fields])
    if kind == "continuation":
        return raw_frame(0x9, flags & 0x4, sid, block)
    payload = block
    if flags & 0x20:  # PRIORITY: exclusive bit, stream dependency, weight
        payload = struct.pack(">IB", 0x80000000 | 1, 15) + payload
    if flags & 0x8:
        payload = bytes([pad]) + payload + bytes(pad)
    return raw_frame(0x1, flags, sid, payload)


def _other(kind: str, encoder: hpack.Encoder) -> bytes:
    if kind.startswith("rst"):
        return raw_frame(0x3, 0, int(kind[3:]), struct.pack(">I", 8))
    if kind == "window":
        return raw_frame(0x8, 0, 0, struct.pack(">I", 1000))
    if kind == "ping":
        return raw_frame(0x6, 0, 0, bytes(8))
    if kind == "trailers1":
        return raw_frame(0x1, 0x5, 1, encoder.encode([(b"x-t", b"1")]))
    if kind.startswith("goaway"):  # NO_ERROR keeps the connection open, an error closes it
        return raw_frame(0x7, 0, 0, struct.pack(">II", 7, int(kind[6:])))
    if kind == "open5":  # a header block left open: only CONTINUATION may follow
        return raw_frame(0x1, 0x1, 5, encoder.encode([(b":method", b"GET")]))
    return _request(encoder, 5, None, end=False)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(
    None, True, False, ["goaway1", (1, 10, False, None)], [], None
)  # DATA on a closed connection
@example(None, True, False, [(1, 0, False, None)] * 4, [], None)  # empty DATA spends control tokens
@example(150, True, False, [(1, 100, False, None), (1, 100, False, None)], [], None)  # overrun
@example(None, True, False, ["open5", (1, 10, False, None)], [], None)  # DATA inside a header block
@example(None, True, True, [(1, 10, False, None)], [], None)  # stream 1 half-closed (local)
@example(None, True, False, [(1, 16_384, False, None)] * 5, [9, 70_000], None)  # window overrun
@example(None, True, False, [("headers", 5, 0x5, 0, "request")], [], None)  # a new stream
@example(None, True, False, [("headers", 5, 0x4, 0, "badlength")], [], None)  # malformed
@example(None, True, False, [("headers", 5, 0x5, 0, "informational")], [], None)  # not a request
@example(None, True, False, [("headers", 5, 0x4, 0, "request")] * 2, [], None)  # opened twice
@example(None, True, False, [("headers", 5, 0x5, 0, "request")], [], 2)  # one too many
@given(
    st.sampled_from([None, 0, 1, 150, 20_000, 70_000]),  # stream 1's content-length
    st.booleans(),
    st.booleans(),
    st.lists(st.one_of(DATA, OTHER, HEADERS), max_size=12),
    st.lists(st.integers(0, 1 << 20), max_size=4),
    st.sampled_from([None, 2, 3]),
)
def test_received_data_gives_what_h2_gives(
    length, settings_first, responded, frames, cuts, max_streams
):
    """Content-length overruns, closed and unknown streams, stream 0,
    padding, END_STREAM, empty frames, windows overrun (frames up to 20 kB
    against 64 KiB windows), frames split across reads, DATA inside a
    header block, a response already sent, no SETTINGS first, and HEADERS
    of every flag and stream with CONTINUATIONs, blocks h2 finds malformed,
    more streams than SETTINGS_MAX_CONCURRENT_STREAMS allows: the hot paths
    (DATA, HEADERS, a new stream) must match h2's generic path."""
    encoder = hpack.Encoder()
    head = PREFACE + (raw_frame(0x4, 0, 0, b"") if settings_first else b"")
    head += _request(encoder, 1, length, end=False) + _request(encoder, 3, None, end=False)
    body = b"".join(_frame(i, encoder) for i in frames)
    outcomes = []
    for server in _pair(max_streams):
        if settings_first:
            server.receive_data(head)
            if responded:  # stream 1 half-closed (local)
                server.send_headers(1, [(b":status", b"200")], end_stream=True)
            outcomes.append(_outcome(server, body, cuts))
        else:
            outcomes.append(_outcome(server, head + body, cuts))
    assert outcomes[0] == outcomes[1]


def test_pushed_streams_do_not_count_against_the_clients_limit():
    """SETTINGS_MAX_CONCURRENT_STREAMS limits the streams the client opens:
    a stream we pushed (even, open once its head is sent) leaves the count
    of the client's open streams as h2 counts it."""
    outcomes = []
    for server in _pair(max_streams=2):
        encoder = hpack.Encoder()
        server.receive_data(PREFACE + raw_frame(0x4, 0, 0, b"") + _request(encoder, 1, None, True))
        server.push_stream(
            1,
            2,
            [
                (b":method", b"GET"),
                (b":path", b"/p"),
                (b":scheme", b"https"),
                (b":authority", b"a"),
            ],
        )
        server.send_headers(2, [(b":status", b"200")])
        server.push_stream(
            1,
            4,
            [
                (b":method", b"GET"),
                (b":path", b"/q"),
                (b":scheme", b"https"),
                (b":authority", b"a"),
            ],
        )
        server.send_headers(4, [(b":status", b"200")])
        server.data_to_send()
        outcomes.append(_outcome(server, _request(encoder, 3, None, True), []))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0][0] == "RequestReceived"


def _frame(item: Any, encoder: hpack.Encoder) -> bytes:
    if isinstance(item, str):
        return _other(item, encoder)
    if isinstance(item[0], str):
        return _headers(*item, encoder)
    return _data(*item)


def test_the_plain_path_is_taken():
    """The usual frame does not reach hyperframe's parser or h2's dispatch."""
    server, _ = _pair()
    encoder = hpack.Encoder()
    server.receive_data(PREFACE + raw_frame(0x4, 0, 0, b"") + _request(encoder, 1, None, False))
    calls: list[str] = []
    server.incoming_buffer.__class__ = type(
        "Watched",
        (EagerFrameBuffer,),
        {
            "_plain_data": lambda self, *a: (
                calls.append("plain") or EagerFrameBuffer._plain_data(self, *a)
            )
        },
    )
    server._receive_data_frame = lambda frame: calls.append("generic")  # type: ignore[assignment]
    events = server.receive_data(_data(1, 100, False, None) * 3)
    assert calls == ["plain"] * 3
    assert [len(e.data) for e in events] == [100] * 3


def test_a_request_head_takes_the_plain_path():
    """A request's usual HEADERS frame (whole block, no padding or priority)
    is not parsed by hyperframe."""
    server, _ = _pair()
    encoder = hpack.Encoder()
    server.receive_data(PREFACE + raw_frame(0x4, 0, 0, b""))
    parsed: list[str] = []
    original = Frame.parse_frame_header
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Frame, "parse_frame_header", lambda *a: parsed.append("x") or original(*a))
        events = server.receive_data(_request(encoder, 1, None, end=True))
    assert parsed == []
    assert [type(e).__name__ for e in events] == ["RequestReceived", "StreamEnded"]
    assert events[0].headers[3] == (b":path", b"/")
