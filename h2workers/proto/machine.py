"""h2's server connection, with two answers changed to what RFC 9113 prefers.

h2 treats both of these as connection errors (GOAWAY), which would drop every
other stream on the connection:

* a HEADERS frame that exceeds our SETTINGS_MAX_CONCURRENT_STREAMS: RFC 9113
  5.1.2 allows a stream error, and REFUSED_STREAM tells the client it may
  retry; the header block is still decoded so HPACK state stays in sync.
* a malformed message found by h2 itself (a bad or conflicting
  content-length, DATA that disagrees with it, trailers without END_STREAM):
  RFC 9113 8.1.1 says stream error PROTOCOL_ERROR.

Only private hooks of h2 4.x are overridden. Most call the original and change
nothing but the error path; four hot paths (response HEADERS, response DATA,
received DATA on an open stream, a request's HEADERS opening a new stream)
do h2's checks and state changes in h2's order without its generic frame
machinery, and tests compare their results with h2's own. How received
bytes become frames is ``framing.py``'s.
"""

from __future__ import annotations

import struct
from typing import Any

from h2.connection import (
    ConnectionInputs,
    ConnectionState,
    H2Connection,
    _decode_headers,  # HPACK errors mapped to h2's, as for any block
)
from h2.errors import ErrorCodes
from h2.events import ConnectionTerminated, DataReceived, Event, RequestReceived, StreamEnded
from h2.exceptions import (
    DenialOfServiceError,
    FlowControlError,
    FrameTooLargeError,
    InvalidBodyLengthError,
    ProtocolError,
    StreamClosedError,
    TooManyStreamsError,
)
from h2.settings import SettingCodes, Settings
from h2.stream import H2Stream, StreamClosedBy, StreamInputs, StreamState
from h2.utilities import is_informational_response
from hpack import HPACKError
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from h2workers.config import H2Settings
from h2workers.proto import hpack_paths
from h2workers.proto.framing import (
    END_HEADERS,
    END_STREAM,
    QUIET_FRAMES,
    EagerFrameBuffer,
    QuietDataFrame,
    QuietHeadersFrame,
)

_FRAME_HEADER = struct.Struct(">HBBBL")  # 24-bit length, type, flags, stream id
NO_RFC7540_PRIORITIES = 0x9
# Stream states in which h2 takes a DATA frame without changing state.
_RECEIVING = (StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL)
# The states h2 counts as open (h2.stream.STREAM_OPEN), compared by identity
_OPEN, _HALF_CLOSED_REMOTE = StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE
_HALF_CLOSED_LOCAL, _CLOSED = StreamState.HALF_CLOSED_LOCAL, StreamState.CLOSED
# What h2's _decode_headers wraps in a ProtocolError when a header block cannot be decoded.
_HPACK_ERRORS = (HPACKError, IndexError, TypeError, UnicodeDecodeError)


class StreamRefused(Event):
    """A new stream went over the concurrency limit and was refused."""

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class StreamMalformed(Event):
    """h2 found a stream's message malformed; the stream was reset."""

    def __init__(self, stream_id: int, reason: str) -> None:
        self.stream_id = stream_id
        self.reason = reason


class GracefulGoAway(ConnectionTerminated):
    """The peer sent GOAWAY(NO_ERROR); the connection stays usable."""


class CompressionError(ProtocolError):
    """A header block HPACK cannot decode (RFC 9113 4.3: COMPRESSION_ERROR)."""

    error_code = ErrorCodes.COMPRESSION_ERROR


def _raise_if_hpack_failed(exc: ProtocolError) -> None:
    """A failed HPACK decode leaves the decoder out of step with the peer's
    encoder: a connection error. h2 reports it as PROTOCOL_ERROR; RFC 9113
    4.3 asks for COMPRESSION_ERROR (an oversized list stays ENHANCE_YOUR_CALM)."""
    if isinstance(exc, DenialOfServiceError):
        raise exc
    if isinstance(exc.__cause__, _HPACK_ERRORS):
        raise CompressionError(str(exc)) from exc


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` a second (time is passed in)."""

    __slots__ = ("burst", "rate", "stamp", "tokens", "what")

    def __init__(self, what: str, burst: int, rate: float) -> None:
        self.what = what
        self.burst = float(burst)
        self.rate = float(rate)
        self.tokens = float(burst)
        self.stamp: float | None = None

    def spend(self, cost: float) -> None:
        """Take ``cost`` tokens; raise DenialOfServiceError when none are left."""
        self.tokens -= cost
        if self.tokens < 0:
            raise DenialOfServiceError(
                f"{self.what} flood: over {self.burst:g} plus {self.rate:g} a second"
            )

    def refill(self, now: float) -> None:
        if self.stamp is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def refund(self, amount: float) -> None:
        self.tokens = min(self.burst, self.tokens + amount)


# What a DATA frame we send pays back to the control-frame budget: one token
# (the WINDOW_UPDATE that let it go out: a client with a tiny window credits
# every frame, and is slow, not hostile) plus one per 4 KiB it carries.
DATA_REFUND = 4096


class ServerConnection(H2Connection):
    """H2Connection whose per-stream failures stay per-stream, and which
    meters what a peer can make it do (rapid reset, control-frame floods)."""

    # h2 remembers how every closed stream closed, 65,536 of them per
    # connection (8-16 MiB on a long-lived one); only recent ones can still
    # see late frames.
    MAX_CLOSED_STREAMS = 512
    _settings_seen = False  # the client's first frame was its SETTINGS
    resets: TokenBucket | None = None  # RST_STREAM and refused/malformed streams
    controls: TokenBucket | None = None  # SETTINGS, PING, PRIORITY, WINDOW_UPDATE...

    def _receive_frame(self, frame: Frame) -> list[Event]:
        if frame.__class__ is QuietDataFrame:
            received = self._receive_body_data(frame)
            if received is not None:
                return [received]
        elif frame.__class__ is QuietHeadersFrame and frame.plain_end_stream is not None:
            opened = self._open_request_stream(frame, frame.plain_end_stream)
            if opened is not None:
                return opened
        self._screen(frame)
        if self._closed_by_our_reset(frame.stream_id):
            return self._discard(frame)
        return super()._receive_frame(frame)

    def _screen(self, frame: Frame) -> None:
        """Checks h2 lacks, and what the frame costs the flood budgets."""
        if not self._settings_seen:  # RFC 9113 3.4: the preface ends with SETTINGS
            if not isinstance(frame, SettingsFrame) or "ACK" in frame.flags:
                raise ProtocolError("the client preface is not followed by SETTINGS")
            self._settings_seen = True
        if isinstance(frame, DataFrame):
            if not frame.data and "END_STREAM" not in frame.flags:
                self._spend_control(1)  # an empty DATA frame that ends nothing
        elif isinstance(frame, RstStreamFrame):
            if self.resets is not None:
                self.resets.spend(1)
        elif isinstance(frame, SettingsFrame):
            if frame.settings.get(NO_RFC7540_PRIORITIES, 0) not in (0, 1):  # RFC 9113 5.3.2
                raise ProtocolError("SETTINGS_NO_RFC7540_PRIORITIES other than 0 or 1")
            self._spend_control(1 + len(frame.settings) // 8)
        elif not isinstance(frame, (HeadersFrame, GoAwayFrame)):
            self._spend_control(1)  # PING, PRIORITY, WINDOW_UPDATE, unknown types

    def _receive_body_data(self, frame: QuietDataFrame) -> DataReceived | None:
        """h2's handling of the usual DATA frame, or None to let h2 handle it.

        The usual frame carries body bytes (an empty one is charged to the
        flood budget), no padding, no END_STREAM, on a stream that h2 has
        open for receiving and whose content-length it does not overrun. For
        it h2's answer is always the same (no state change, both windows
        charged, one DataReceived); reaching it through h2's dispatch costs
        ~5x what it does here. Every other frame takes h2's path; an overrun
        window raises FlowControlError here as it does in h2.
        """
        size = len(frame.data)
        if not size or "END_STREAM" in frame.flags:
            return None
        if "PADDED" in frame.flags or self.state_machine.state is not ConnectionState.SERVER_OPEN:
            return None
        stream = self.streams.get(frame.stream_id)
        if stream is None:
            return None
        if stream.state_machine.state not in _RECEIVING:  # (both follow the request head)
            return None
        expected = stream._expected_content_length
        if expected is not None and stream._actual_content_length + size > expected:
            return None  # h2 makes it a malformed stream, see _receive_data_frame
        self._inbound_flow_control_window_manager.window_consumed(size)
        stream._inbound_window_manager.window_consumed(size)
        stream._actual_content_length += size
        event = DataReceived.__new__(DataReceived)  # all four fields set below
        event.stream_id = frame.stream_id
        event.data = frame.data
        event.flow_controlled_length = size
        event.stream_ended = None
        return event

    def _open_request_stream(
        self, frame: QuietHeadersFrame, end_stream: bool
    ) -> list[Event] | None:
        """h2's handling of a request's usual first HEADERS frame, or None to
        let h2 handle it.

        The usual frame opens the next stream (odd, above every stream the
        client opened, under our concurrency limit) with a whole header block
        and no padding or priority fields, on an open connection. h2 then
        always makes the stream and runs it through two or three state
        machine inputs with a known outcome: open, or half-closed by
        END_STREAM, and one RequestReceived (with its StreamEnded). Through
        h2's dispatch that is a sixth of a small request. Every other HEADERS
        frame takes h2's path. Once the block is decoded the stream is made
        here, and what can still go wrong is h2's own code on it (an
        informational ``:status``, a bad content-length), its errors handled
        as ``_receive_headers_frame`` handles them.
        """
        sid = frame.stream_id
        if not sid & 1 or sid <= self.highest_inbound_stream_id or not self._bare_headers:
            return None
        if self.state_machine.state is not ConnectionState.SERVER_OPEN or not self._settings_seen:
            return None
        if self.open_inbound_streams >= self.local_settings.max_concurrent_streams:
            return None  # h2's path refuses it
        try:
            headers = _decode_headers(self.decoder, frame.data)
        except ProtocolError as exc:
            _raise_if_hpack_failed(exc)
            raise
        stream = H2Stream(
            sid,
            config=self.config,
            inbound_window_size=self.local_settings.initial_window_size,
            outbound_window_size=self.remote_settings.initial_window_size,
        )
        stream.max_outbound_frame_size = self.max_outbound_frame_size
        self.streams[sid] = stream
        self.highest_inbound_stream_id = sid
        try:
            if is_informational_response(headers):  # not a request: h2's error
                return stream.receive_headers(headers, end_stream, None)[1]
            machine = stream.state_machine
            machine.client, machine.headers_received = False, True
            machine.state = StreamState.HALF_CLOSED_REMOTE if end_stream else StreamState.OPEN
            stream._initialize_content_length(headers)
        except ProtocolError as exc:
            return self._malformed(sid, exc)[1]
        request = RequestReceived(stream_id=sid)
        request.headers = list(headers)
        if not end_stream:
            return [request]
        request.stream_ended = StreamEnded(stream_id=sid)
        return [request, request.stream_ended]

    def _open_streams(self, remainder: int) -> int:
        """h2's count of the open streams of one parity, which also moves
        closed streams to ``_closed_streams``; h2 runs it for every new
        stream and reads two properties a stream, here its state once."""
        count = 0
        closed = []
        for sid, stream in self.streams.items():
            state = stream.state_machine.state
            if state is _CLOSED:
                closed.append(sid)
            elif (
                state is _HALF_CLOSED_REMOTE or state is _OPEN or state is _HALF_CLOSED_LOCAL
            ) and (sid & 1 == remainder):
                count += 1
        for sid in closed:
            self._closed_streams[sid] = self.streams.pop(sid).closed_by
        return count

    def _closed_by_our_reset(self, stream_id: int) -> bool:
        if stream_id == 0 or self.state_machine.state is ConnectionState.CLOSED:
            return False
        stream = self.streams.get(stream_id)
        if stream is None:
            closed_by = self._closed_streams.get(stream_id)
        else:
            closed_by = stream.closed_by if stream.closed else None
        return closed_by is StreamClosedBy.SEND_RST_STREAM

    def _discard(self, frame: Frame) -> list[Event]:
        """RFC 9113 5.1: frames on a stream we reset are processed minimally
        and ignored (h2 answers each with RST_STREAM(STREAM_CLOSED)). A
        header block is still decoded, to keep HPACK in step; DATA still
        counts against, and is credited back to, the connection window."""
        if isinstance(frame, (HeadersFrame, ContinuationFrame)):
            self._decode_unused(frame.data)
        elif isinstance(frame, DataFrame):
            flow = frame.flow_controlled_length
            manager = self._inbound_flow_control_window_manager
            manager.window_consumed(flow)
            increment = manager.process_bytes(flow)
            if increment:
                update = WindowUpdateFrame(0)
                update.window_increment = increment
                self._prepare_for_sending([update])
        return []

    def _decode_unused(self, block: bytes) -> None:
        """Decode a header block nobody will read, to keep HPACK in step."""
        try:
            _decode_headers(self.decoder, block)
        except ProtocolError as exc:
            _raise_if_hpack_failed(exc)
            raise

    def _spend_control(self, cost: int) -> None:
        if self.controls is not None:
            self.controls.spend(cost)

    def spend_reset(self) -> None:
        """A stream was refused or reset as malformed: the rapid-reset budget."""
        if self.resets is not None:
            self.resets.spend(1)

    def refill(self, now: float) -> None:
        for bucket in (self.resets, self.controls):
            if bucket is not None:
                bucket.refill(now)

    incoming_buffer: EagerFrameBuffer

    def __init__(self, config: Any) -> None:
        super().__init__(config=config)
        # h2 hands received headers over as decoded: no checks, no
        # normalisation, no conversion to str (the new-stream path needs it)
        self._bare_headers = not (
            config.validate_inbound_headers
            or config.normalize_inbound_headers
            or isinstance(config.header_encoding, str)
        )
        self.incoming_buffer = EagerFrameBuffer(server=True)
        table = self._frame_dispatch_table
        for original, quiet in QUIET_FRAMES.items():
            table[quiet] = table[original]

    def _receive_headers_frame(self, frame: HeadersFrame) -> tuple[list[Frame], list[Event]]:
        try:
            return super()._receive_headers_frame(frame)
        except TooManyStreamsError:
            return self._refuse_stream(frame)
        except ProtocolError as exc:
            _raise_if_hpack_failed(exc)
            return self._malformed(frame.stream_id, exc)

    def _receive_data_frame(self, frame: DataFrame) -> tuple[list[Frame], list[Event]]:
        try:
            return super()._receive_data_frame(frame)
        except InvalidBodyLengthError as exc:
            frames, events = self._malformed(frame.stream_id, exc)
            # The connection window was charged for this frame; nobody will
            # read the data, so give the credit back now.
            self.acknowledge_received_data(frame.flow_controlled_length, frame.stream_id)
            return frames, events

    def send_response_headers(
        self, stream_id: int, block: list[tuple[bytes, bytes]], end_stream: bool
    ) -> None:
        """``send_headers`` for a final response head (not 1xx, not trailers).

        h2's path re-encodes every header to bytes, builds validation flags
        that are not used with validation off, and builds frame objects to
        serialise them: a sixth of a small request's time. The state changes
        are h2's, in h2's order; HPACK is h2's encoder (tests compare the
        bytes with h2's own).
        """
        self.state_machine.process_input(ConnectionInputs.SEND_HEADERS)
        stream = self.streams[stream_id]
        stream.state_machine.process_input(StreamInputs.SEND_HEADERS)
        encoded = self.encoder.encode(block)
        if end_stream:
            stream.state_machine.process_input(StreamInputs.SEND_END_STREAM)
        self._write_header_block(stream_id, encoded, END_STREAM if end_stream else 0)

    def _write_header_block(self, stream_id: int, encoded: bytes, flags: int) -> None:
        """HEADERS, then CONTINUATION frames if the block exceeds a frame."""
        limit = self.max_outbound_frame_size
        out = self._data_to_send
        first, rest = encoded[:limit], encoded[limit:]
        kind = 0x1  # HEADERS
        while True:
            last = not rest
            size = len(first)
            frame_flags = flags | (END_HEADERS if last else 0)
            out += _FRAME_HEADER.pack(size >> 8, size & 0xFF, kind, frame_flags, stream_id)
            out += first
            if last:
                return
            first, rest = rest[:limit], rest[limit:]
            kind, flags = 0x9, 0  # CONTINUATION carries no END_STREAM

    def send_data_frame(self, stream_id: int, data: bytes | memoryview, end_stream: bool) -> None:
        """``send_data`` for one unpadded DATA frame, with one copy of the body.

        h2's own path serialises a DataFrame and joins it twice before the
        bytes reach ``data_to_send``: a quarter of the worker's time on a
        large download. The checks and state changes are h2's, in h2's
        order; only the serialisation differs (tests compare the bytes).
        """
        size = len(data)
        if size > self.local_flow_control_window(stream_id):
            raise FlowControlError(f"cannot send {size} bytes on stream {stream_id}")
        if size > self.max_outbound_frame_size:
            raise FrameTooLargeError(f"cannot send a {size}-byte frame")
        self.state_machine.process_input(ConnectionInputs.SEND_DATA)
        stream = self.streams[stream_id]
        stream.state_machine.process_input(StreamInputs.SEND_DATA)
        if end_stream:
            stream.state_machine.process_input(StreamInputs.SEND_END_STREAM)
        stream.outbound_flow_control_window -= size
        self.outbound_flow_control_window -= size
        if self.controls is not None and size:
            self.controls.refund(1 + size / DATA_REFUND)  # a download earns its WINDOW_UPDATEs
        out = self._data_to_send
        out += _FRAME_HEADER.pack(
            size >> 8, size & 0xFF, 0, END_STREAM if end_stream else 0, stream_id
        )
        out += data

    @property
    def output_buffer(self) -> bytearray:
        """The bytes queued for the peer (h2's own buffer, not a copy)."""
        return self._data_to_send

    def _prepare_for_sending(self, frames: list[Frame]) -> None:
        """h2's method without its per-frame ``assert`` over the frame sizes
        (5% of a small request's time): every frame here comes from h2's own
        builders, which already enforce the peer's maximum frame size."""
        if frames:
            self._data_to_send += b"".join([f.serialize() for f in frames])

    def _receive_goaway_frame(self, frame: GoAwayFrame) -> tuple[list[Frame], list[Event]]:
        """A client's GOAWAY(NO_ERROR) only says it opens no more streams
        (RFC 9113 6.8); h2 would close the connection and drop the responses
        still owed to the streams it did open."""
        if frame.error_code != ErrorCodes.NO_ERROR:
            return super()._receive_goaway_frame(frame)
        event = GracefulGoAway()
        event.error_code = ErrorCodes.NO_ERROR
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]

    def _malformed(self, stream_id: int, exc: ProtocolError) -> tuple[list[Frame], list[Event]]:
        stream = self.streams.get(stream_id)
        if (
            isinstance(exc, StreamClosedError)
            or stream is None
            or stream.closed
            or self.state_machine.state is ConnectionState.CLOSED
        ):
            raise exc
        self.reset_stream(stream_id, ErrorCodes.PROTOCOL_ERROR)
        return [], [StreamMalformed(stream_id, str(exc))]

    def _refuse_stream(self, frame: HeadersFrame) -> tuple[list[Frame], list[Event]]:
        stream_id = frame.stream_id
        if stream_id % 2 == 0 or stream_id <= self.highest_inbound_stream_id:
            raise ProtocolError(f"unexpected stream id {stream_id}")
        self.spend_reset()
        self.state_machine.process_input(ConnectionInputs.RECV_HEADERS)
        self._decode_unused(frame.data)
        self.highest_inbound_stream_id = stream_id
        # Later frames on this stream are answered as for any reset stream.
        self._closed_streams[stream_id] = StreamClosedBy.SEND_RST_STREAM
        rst = RstStreamFrame(stream_id)
        rst.error_code = ErrorCodes.REFUSED_STREAM
        return [rst], [StreamRefused(stream_id)]


def new_server_connection(**config: Any) -> ServerConnection:
    from h2.config import H2Configuration

    return ServerConnection(config=H2Configuration(client_side=False, **config))


def configured_connection(settings: H2Settings) -> ServerConnection:
    """The core's h2 connection: our SETTINGS and limits from ``settings``.

    Inbound header validation is off (``headers.parse_request`` does it per
    stream), outbound too (the response modules hand over checked
    headers)."""
    conn = new_server_connection(
        header_encoding=None,
        validate_inbound_headers=False,
        normalize_inbound_headers=False,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )
    ours: dict[SettingCodes | int, int] = {
        SettingCodes.MAX_CONCURRENT_STREAMS: settings.max_concurrent_streams,
        SettingCodes.INITIAL_WINDOW_SIZE: settings.initial_window_size,
        SettingCodes.MAX_FRAME_SIZE: settings.max_frame_size,
        SettingCodes.MAX_HEADER_LIST_SIZE: settings.max_header_list_size,
        # RFC 9218 2.1: we schedule by RFC 9218 signals (RFC 7540 ones from
        # clients that still send them count where no RFC 9218 one does)
        NO_RFC7540_PRIORITIES: 1,
    }
    if settings.enable_connect_protocol:  # RFC 8441, for a driver that serves WebSockets
        ours[SettingCodes.ENABLE_CONNECT_PROTOCOL] = 1
    conn.local_settings = Settings(client=False, initial_values=ours)  # type: ignore[arg-type]
    hpack_paths.install(conn)
    # HPACK bomb guard: past twice the advertised limit decoding stops and
    # the connection ends (GOAWAY ENHANCE_YOUR_CALM); between the two the
    # block is decoded (HPACK state stays in sync) and the one request is
    # answered 431, RFC 9113 10.5.1.
    conn.decoder.max_header_list_size = 2 * settings.max_header_list_size
    conn.incoming_buffer.max_header_block = 2 * settings.max_header_list_size
    conn.resets = TokenBucket(
        "stream reset", settings.max_reset_streams, settings.reset_streams_per_second
    )
    conn.controls = TokenBucket(
        "control frame", settings.max_control_frames, settings.control_frames_per_second
    )
    # h2 reads this from local_settings only in __init__ or on a SETTINGS ACK
    # that changes it; initial values change nothing, so set it here.
    conn.max_inbound_frame_size = settings.max_frame_size
    return conn
