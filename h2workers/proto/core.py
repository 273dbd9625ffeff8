"""The sans-I/O HTTP/2 connection core shared by every worker class.

Bytes and commands go in, bytes and events come out. No socket, thread, lock,
event loop or clock lives here (callers pass ``now``), so the same object
serves the thread pool, greenlets and asyncio, and tests drive it with a
client ``h2`` connection in memory.

It owns what is protocol state: the h2 connection, which streams the
application is serving, each stream's queued response body
(``outbound.Outbound``, sent under HTTP/2 flow control by ``flush``),
request-body credit (the receive window is reopened only by ``credit_upto``),
and the shutdown state (GOAWAY).

h2 is configured deliberately: inbound header validation is off and done by
``headers.parse_request`` in one pass that answers a malformed request with
RST_STREAM on that stream only; outbound normalisation and validation are off
because the response modules hand over lowercase, checked headers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import h2.events as h2e
from h2.connection import ConnectionState
from h2.errors import ErrorCodes
from h2.exceptions import DenialOfServiceError, ProtocolError
from hyperframe.frame import ExtensionFrame, GoAwayFrame

from h2workers.config import H2Settings
from h2workers.errors import ProtocolViolation, StreamViolation, UnknownStream
from h2workers.proto import events as ev
from h2workers.proto.flow import Credit, Inbound
from h2workers.proto.headers import Header, RequestHead, parse_request, parse_trailers
from h2workers.proto.machine import (
    NO_RFC7540_PRIORITIES,
    GracefulGoAway,
    ServerConnection,
    StreamMalformed,
    StreamRefused,
    configured_connection,
)
from h2workers.proto.outbound import Outbound
from h2workers.proto.priority import (
    DEFAULT_PRIORITY,
    PRIORITY_UPDATE_TYPE,
    StreamPriority,
    parse_update,
)
from h2workers.proto.reasons import plain_reason, received_code
from h2workers.proto.scheduler import Rank, Scheduler, Sent


@dataclass(slots=True)
class _Stream:
    """What the core remembers of a stream the application serves."""

    head: RequestHead
    request_open: bool
    inbound: Inbound = field(default_factory=Inbound)  # the request body's counts
    out: Outbound = field(default_factory=Outbound)  # the response body to frame
    rank: Rank = field(default_factory=Rank)  # how the scheduler orders its bytes
    priority: StreamPriority = DEFAULT_PRIORITY  # the latest the app was told of


class H2Core:
    """One HTTP/2 connection, server side, without I/O."""

    def __init__(self, settings: H2Settings) -> None:
        self.settings = settings
        self._h2: ServerConnection = configured_connection(settings)
        self._streams: dict[int, _Stream] = {}
        self._sending: dict[int, _Stream] = {}  # streams with queued output
        self._scheduler = Scheduler(settings.max_concurrent_streams)
        self._out = bytearray()
        self.last_stream_id: int | None = None  # set once GOAWAY is sent
        self.terminated = False  # connection error or peer GOAWAY: nothing more runs
        # Set by the driver while its transport is congested: bodies are
        # queued, not framed, until it clears the flag and flushes again.
        self.hold_output = False
        self.capped = False  # the last flush stopped at its budget with frames to go
        self._highest_request = 0  # highest stream id whose HEADERS arrived
        self._window = Credit(self._h2, settings)

    # -- setup ---------------------------------------------------------------

    def initiate(self) -> None:
        """Queue our SETTINGS (the one and only) and open the connection window."""
        self._h2.initiate_connection()
        self._window.open_connection_window()

    def initiate_upgrade(
        self, http2_settings: bytes, block: list[Header], body: bytes
    ) -> list[ev.Event]:
        """Take over a connection upgraded from HTTP/1.1 (``Upgrade: h2c``).

        The HTTP/1.1 request becomes stream 1, half-closed (remote), with its
        body already complete (RFC 9113 3.2 / RFC 7540 3.2).
        """
        padded = http2_settings + b"=" * (-len(http2_settings) % 4)
        self._h2.initiate_upgrade_connection(padded)
        self._window.open_connection_window()
        head = parse_request(block)
        # The body came over HTTP/1.1, outside HTTP/2 flow control: no credit owed.
        rank = self._scheduler.admit(1, head, None)
        self._streams[1] = _Stream(
            head, False, inbound=Inbound(flow_controlled=False), rank=rank, priority=head.priority
        )
        started: list[ev.Event] = [ev.RequestStarted(1, head, end_stream=not body)]
        if body:
            started.append(ev.RequestData(1, body, end_stream=True))
        return started

    # -- input ---------------------------------------------------------------

    def receive(self, data: bytes, now: float | None = None) -> list[ev.Event]:
        """Feed bytes read from the peer; returns what the driver must act on.

        ``now`` (optional) refills the flood budgets first, so that a steady
        client under the refill rate is never cut off between ticks.
        """
        if self.terminated:
            return []
        if now is not None:
            self._h2.refill(now)
        try:
            h2_events = self._h2.receive_data(data)
        except ProtocolError as exc:
            return self._terminate(ErrorCodes(exc.error_code), plain_reason(exc), by_peer=False)
        out: list[ev.Event] = []
        try:
            for event in h2_events:
                if self.terminated:  # a frame of this read ended the connection:
                    break  # what h2 parsed after it is not served
                self._translate(event, out)
        except DenialOfServiceError as exc:  # malformed streams past the reset budget
            out.extend(self._terminate(ErrorCodes.ENHANCE_YOUR_CALM, str(exc), by_peer=False))
        return out

    def _translate(self, event: h2e.Event, out: list[ev.Event]) -> None:
        if event.__class__ is h2e.StreamEnded:  # the event before it carries it
            return
        if isinstance(event, h2e.RequestReceived):
            self._on_request(event, out)
        elif isinstance(event, h2e.DataReceived):
            self._on_data(event, out)
        elif isinstance(event, h2e.TrailersReceived):
            self._on_trailers(event, out)
        elif isinstance(event, h2e.StreamReset):
            self._on_reset(event, out)
        elif isinstance(event, h2e.PriorityUpdated):
            self._on_priority(event, out)
        elif isinstance(event, h2e.UnknownFrameReceived):
            frame = event.frame
            if isinstance(frame, ExtensionFrame) and frame.type == PRIORITY_UPDATE_TYPE:
                self._on_priority_update(frame.stream_id, frame.body, out)
        elif isinstance(event, h2e.RemoteSettingsChanged):
            # RFC 9218 2.1: a client that says it sends no RFC 7540 signals
            # has them ignored (its first SETTINGS, before any request)
            self._scheduler.rfc7540 = self._h2.remote_settings.get(NO_RFC7540_PRIORITIES) != 1
        elif isinstance(event, (StreamRefused, StreamMalformed)):
            self._on_rejected_by_h2(event, out)
        elif isinstance(event, h2e.ConnectionTerminated):
            code = received_code(event.error_code, ErrorCodes.NO_ERROR)
            if isinstance(event, GracefulGoAway):
                self._peer_goaway(out)
            else:
                out.extend(self._terminate(code, "peer sent GOAWAY", by_peer=True))

    def _on_request(self, event: h2e.RequestReceived, out: list[ev.Event]) -> None:
        sid = event.stream_id
        self._highest_request = max(self._highest_request, sid)
        if self.last_stream_id is not None and sid > self.last_stream_id:
            self._reject(sid, ErrorCodes.REFUSED_STREAM, "connection is shutting down", out)
            return
        try:
            head = parse_request(event.headers, self.settings.enable_connect_protocol)
        except StreamViolation as exc:
            self._reject(sid, exc.error_code, str(exc), out)
            return
        ended = event.stream_ended is not None
        if ended and head.content_length:  # RFC 9113 8.1.1: no DATA, yet a length
            self._reject(sid, ErrorCodes.PROTOCOL_ERROR, "body shorter than content-length", out)
            return
        rank = self._scheduler.admit(sid, head, event.priority_updated)
        self._streams[sid] = _Stream(head, not ended, rank=rank, priority=head.priority)
        if head.list_size > self.settings.max_header_list_size:
            self.respond(sid, 431, [(b"content-length", b"0")], end_stream=True)
            reason = "431: header list over http2_max_header_list_size"
            out.append(ev.StreamRejected(sid, ErrorCodes.NO_ERROR, reason))
            return
        out.append(ev.RequestStarted(sid, head, ended))

    def _on_data(self, event: h2e.DataReceived, out: list[ev.Event]) -> None:
        sid = event.stream_id
        stream = self._streams.get(sid)
        data = event.data
        flow = event.flow_controlled_length
        if stream is None:  # e.g. the app finished; nobody reads this
            self._credit(sid, None, flow)
            return
        if flow > len(data):  # padding is never read by the app: credit it now
            self._credit(sid, stream, flow - len(data))
        ended = event.stream_ended is not None
        stream.inbound.received += len(data)
        stream.request_open = not ended
        out.append(ev.RequestData(sid, data, ended))

    def _on_trailers(self, event: h2e.TrailersReceived, out: list[ev.Event]) -> None:
        sid = event.stream_id
        stream = self._streams.get(sid)
        if stream is None:
            return
        stream.request_open = False
        length = stream.head.content_length
        if length is not None and stream.inbound.received != length:  # h2 checks DATA only
            self._abort(sid, ErrorCodes.PROTOCOL_ERROR, "body shorter than content-length", out)
            return
        try:
            trailers = parse_trailers(event.headers)
        except StreamViolation as exc:
            self._abort(sid, exc.error_code, str(exc), out)
            return
        out.append(ev.RequestTrailers(sid, trailers))

    def _on_reset(self, event: h2e.StreamReset, out: list[ev.Event]) -> None:
        stream = self._forget(event.stream_id)
        if stream is not None:
            code = received_code(event.error_code, ErrorCodes.CANCEL)
            out.append(ev.StreamAborted(event.stream_id, code, by_peer=event.remote_reset))

    def _on_priority(self, event: h2e.PriorityUpdated, out: list[ev.Event]) -> None:
        """RFC 7540 PRIORITY frame."""
        sid = event.stream_id or 0
        stream = self._streams.get(sid)
        if stream is None:
            if sid > self._highest_request:
                self._scheduler.early_weights(sid, event)
            return
        # The head is the application's now: the change goes out as an event.
        priority = self._scheduler.reweigh(sid, stream.priority, stream.rank, event)
        self._reprioritized(sid, stream, priority, out)

    def _on_priority_update(self, frame_sid: int, payload: bytes, out: list[ev.Event]) -> None:
        """RFC 9218 7.1 PRIORITY_UPDATE: a new ``priority`` field for a
        request stream, open or not opened yet (push streams are ours to
        order: ignored)."""
        try:
            sid, value = parse_update(frame_sid, payload)
        except ProtocolViolation as exc:
            out.extend(self._terminate(exc.error_code, str(exc), by_peer=False))
            return
        stream = self._streams.get(sid)
        if stream is not None:
            priority = self._scheduler.update(stream.priority, stream.rank, value)
            self._reprioritized(sid, stream, priority, out)
        elif sid % 2 and sid > self._highest_request:
            self._scheduler.early_field(sid, value)

    def _reprioritized(
        self, sid: int, stream: _Stream, priority: StreamPriority, out: list[ev.Event]
    ) -> None:
        if priority != stream.priority:
            stream.priority = priority
            out.append(ev.PriorityChanged(sid, priority))

    def _on_rejected_by_h2(
        self, event: StreamRefused | StreamMalformed, out: list[ev.Event]
    ) -> None:
        sid = event.stream_id
        if isinstance(event, StreamRefused):
            reason = "over http2_max_concurrent_streams"
            out.append(ev.StreamRejected(sid, ErrorCodes.REFUSED_STREAM, reason))
            return
        stream = self._forget(sid)
        if stream is None:
            out.append(ev.StreamRejected(sid, ErrorCodes.PROTOCOL_ERROR, event.reason))
        else:
            out.append(ev.StreamAborted(sid, ErrorCodes.PROTOCOL_ERROR, False, event.reason))
        self._h2.spend_reset()

    # -- output commands (from the driver, on behalf of the application) -----

    def respond(
        self, stream_id: int, status: int, headers: list[Header], end_stream: bool = False
    ) -> None:
        """Send the response head. ``headers`` must be lowercase and checked.

        A ``priority`` field among them orders the response's bytes from now
        on, until the client sends a newer signal (RFC 9218 8)."""
        stream = self._served(stream_id)
        block = [(b":status", str(status).encode()), *headers]
        if status >= 200:
            for name, value in headers:
                if name == b"priority":
                    self._scheduler.answer(stream.rank, value)
            self._h2.send_response_headers(stream_id, block, end_stream)
        else:  # h2 knows what a 1xx may and may not do
            self._h2.send_headers(stream_id, block, end_stream=end_stream)
        if end_stream:
            self._finish(stream_id)

    @property
    def can_push(self) -> bool:
        """The client allows push (SETTINGS_ENABLE_PUSH, which browsers set
        to 0) and the connection is not shutting down."""
        return bool(self._h2.remote_settings.enable_push) and self.last_stream_id is None

    def push(self, stream_id: int, block: list[Header]) -> tuple[int, RequestHead] | None:
        """PUSH_PROMISE on ``stream_id`` for the request ``block`` (a GET):
        the promised stream and its request head, which the application
        then answers like any request; None if the client takes no push
        now (disabled, or at its limit of concurrent streams)."""
        self._served(stream_id)
        if not self.can_push:
            return None
        head = parse_request(block)  # ours, but held to the client's rules
        promised = self._h2.get_next_available_stream_id()
        try:
            self._h2.push_stream(stream_id, promised, block)
        except ProtocolError:  # the client's concurrent-stream limit, or the stream's end
            return None
        # no request body on a promised stream: nothing to credit
        self._streams[promised] = _Stream(
            head=head, request_open=False, inbound=Inbound(flow_controlled=False)
        )
        return promised, head

    def informational(self, stream_id: int, status: int, headers: list[Header]) -> None:
        """Send a 1xx response (e.g. 103 Early Hints) ahead of the final one."""
        self._served(stream_id)
        block = [(b":status", str(status).encode()), *headers]
        self._h2.send_headers(stream_id, block, end_stream=False)

    def send_body(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Queue response body bytes; ``flush`` frames them under flow control.

        A last piece that fits in one frame and the window, with nothing
        queued before it, is framed at once (the common small response).
        Other pieces wait for ``flush``, which joins small ones into full
        frames.
        """
        stream = self._served(stream_id)
        if (
            end_stream
            and stream.out.empty
            and stream_id not in self._sending
            and not self.hold_output
        ):
            size = len(data)
            if size <= self._h2.max_outbound_frame_size and (
                size <= self._h2.local_flow_control_window(stream_id)
            ):
                self._h2.send_data_frame(stream_id, data, end_stream=True)
                stream.out.framed += size
                self._finish(stream_id)
                return
        stream.out.queue(data, end_stream)
        self._sending[stream_id] = stream

    def send_trailers(self, stream_id: int, trailers: list[Header]) -> None:
        """End the response with a trailer block once the body is out."""
        stream = self._served(stream_id)
        stream.out.end_with(trailers)
        self._sending[stream_id] = stream

    def reset(self, stream_id: int, error_code: ErrorCodes = ErrorCodes.INTERNAL_ERROR) -> None:
        """Reset a stream on the application's behalf (e.g. it failed mid-body)."""
        self._served(stream_id)
        self._forget(stream_id, reset=error_code)

    def credit_upto(self, stream_id: int, upto: int) -> None:
        """The application read (or is about to read) the first ``upto``
        bytes of the body: reopen the window for those not credited yet."""
        stream = self._served(stream_id)
        inbound = stream.inbound
        if self.terminated:
            return
        nbytes = min(upto, inbound.received) - inbound.acked
        if nbytes <= 0 or not inbound.flow_controlled:
            return
        inbound.acked += nbytes
        self._credit(stream_id, stream, nbytes)

    def _credit(self, sid: int, stream: _Stream | None, nbytes: int) -> None:
        """Give receive window back as the app reads (see ``flow.Credit``)."""
        if not self.terminated:
            open_request = stream.inbound if stream is not None and stream.request_open else None
            self._window.give(sid, open_request, nbytes)

    def counts(self, stream_id: int) -> tuple[Inbound, Outbound]:
        """A served stream's body counts, which a session may read (from any
        thread: only the core writes them) to feed and throttle the
        application. A stream already gone (reset later in the same read:
        its ``StreamAborted`` follows) gets detached ones."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return Inbound(), Outbound()
        return stream.inbound, stream.out

    def _served(self, stream_id: int) -> _Stream:
        """The stream a command is for; UnknownStream if it is not served."""
        stream = self._streams.get(stream_id)
        if stream is None:
            raise UnknownStream(stream_id)
        return stream

    def is_serving(self, stream_id: int) -> bool:
        return stream_id in self._streams

    # -- flow control --------------------------------------------------------

    def flush(self, now: float, budget: int | None = None) -> list[int]:
        """Frame queued bodies as far as flow control allows.

        Streams take turns a frame at a time so one large body cannot starve
        the rest. Returns the ids of streams that sent something, so the
        driver can wake applications waiting for buffer room.
        """
        self.capped = False
        if self.terminated or self.hold_output or not self._sending:
            return []
        sending = self._sending
        progressed: dict[int, None] = {}
        max_frame = self._h2.max_outbound_frame_size
        output = self._h2.output_buffer

        def send(sid: int) -> Sent:
            stream = sending[sid]
            sent = self._send_some(sid, stream, max_frame)
            if sent is None:
                if stream.out.blocked_since is None:
                    stream.out.blocked_since = now
            else:
                progressed[sid] = None
            return sent

        def full() -> bool:
            return budget is not None and len(output) >= budget

        ranks = {sid: stream.rank for sid, stream in sending.items()}
        self.capped = self._scheduler.run(ranks, send, full)  # the rest waits if capped
        return list(progressed)

    def _send_some(self, sid: int, stream: _Stream, max_frame: int) -> Sent:
        """Send one frame's worth for a stream: (body bytes, done), or None
        if its window is closed."""
        out = stream.out
        if out.chunks:
            window = self._h2.local_flow_control_window(sid)
            if window <= 0:
                return None
            out.blocked_since = None
            piece = out.take(min(window, max_frame))
            last = out.ends_on_data
            self._h2.send_data_frame(sid, piece, end_stream=last)
            if last:
                self._finish(sid)
                return len(piece), True
            if out.chunks:
                return len(piece), False
            size = len(piece)
        else:
            size = 0
        self._sending.pop(sid, None)
        if out.end_queued:
            if out.trailers is not None:
                self._h2.send_headers(sid, out.trailers, end_stream=True)
            else:
                self._h2.end_stream(sid)
            self._finish(sid)
        return size, True

    def _finish(self, sid: int) -> None:
        """Our side of the stream is complete; stop a client still uploading."""
        stream = self._streams.get(sid)
        if stream is not None:
            self._forget(sid, reset=ErrorCodes.NO_ERROR if stream.request_open else None)

    def expire(self, now: float, timeout: float) -> list[ev.Event]:
        """Reset streams that could not send for ``timeout`` seconds (CANCEL),
        and refill the flood budgets; the driver calls this about once a second."""
        self._h2.refill(now)
        out: list[ev.Event] = []
        for sid, stream in list(self._sending.items()):
            since = stream.out.blocked_since
            if since is not None and now - since >= timeout:
                self._abort(
                    sid, ErrorCodes.CANCEL, f"flow-control window closed for {timeout:g}s", out
                )
        return out

    # -- connection lifecycle ------------------------------------------------

    def start_shutdown(self) -> None:
        """Send GOAWAY(NO_ERROR) naming the last stream we accepted.

        Streams up to it finish; newer ones are refused with REFUSED_STREAM,
        which tells the client they are safe to retry. h2's own
        ``close_connection`` would forbid further frames on the accepted
        streams, so the GOAWAY frame is queued here directly.
        """
        if self.last_stream_id is not None or self.terminated:
            return
        self.last_stream_id = self._h2.highest_inbound_stream_id
        self._out += self._h2.data_to_send()
        frame = GoAwayFrame(0)
        frame.last_stream_id = self.last_stream_id
        frame.error_code = ErrorCodes.NO_ERROR
        self._out += frame.serialize()

    def close(self, error_code: ErrorCodes, reason: str = "") -> list[ev.Event]:
        """End the connection now with GOAWAY(error_code); aborts all streams."""
        return self._terminate(error_code, reason, by_peer=False)

    def _peer_goaway(self, out: list[ev.Event]) -> None:
        """The client said GOAWAY(NO_ERROR): it opens no more streams, and the
        ones it opened still get their responses (RFC 9113 6.8)."""
        if self.last_stream_id is None:
            self.last_stream_id = self._h2.highest_inbound_stream_id
        out.append(
            ev.ConnectionEnded(
                ErrorCodes.NO_ERROR, by_peer=True, graceful=True, reason="peer sent GOAWAY"
            )
        )

    def _terminate(self, code: ErrorCodes, reason: str, by_peer: bool) -> list[ev.Event]:
        if self.terminated:
            return []
        self.terminated = True
        if not by_peer and self._h2.state_machine.state is not ConnectionState.CLOSED:
            self._h2.close_connection(error_code=code)
        out: list[ev.Event] = [
            ev.StreamAborted(sid, code if code else ErrorCodes.CANCEL, by_peer, reason)
            for sid in list(self._streams)
        ]
        self._streams.clear()
        self._sending.clear()
        out.append(
            ev.ConnectionEnded(code, by_peer, graceful=code == ErrorCodes.NO_ERROR, reason=reason)
        )
        return out

    @property
    def open_streams(self) -> int:
        """Streams the application is still serving."""
        return len(self._streams)

    @property
    def finished(self) -> bool:
        """Nothing more to do: terminated, or shut down with no stream left."""
        return self.terminated or (self.last_stream_id is not None and not self._streams)

    def data_to_send(self) -> bytes:
        if self._out:
            data = bytes(self._out) + self._h2.data_to_send()
            self._out.clear()
            return data
        return self._h2.data_to_send()

    # -- helpers -------------------------------------------------------------

    def _reject(self, sid: int, code: ErrorCodes, reason: str, out: list[ev.Event]) -> None:
        self._reset_stream(sid, code)
        out.append(ev.StreamRejected(sid, code, reason))
        if code == ErrorCodes.PROTOCOL_ERROR:
            self._h2.spend_reset()  # malformed requests are rapid resets too

    def _abort(self, sid: int, code: ErrorCodes, reason: str, out: list[ev.Event]) -> None:
        if self._forget(sid, reset=code) is not None:
            out.append(ev.StreamAborted(sid, code, by_peer=False, reason=reason))

    def _reset_stream(self, sid: int, code: ErrorCodes) -> None:
        """RST_STREAM, unless h2 closed the stream or connection already:
        events are translated after h2 has read a whole batch, so a later
        frame of the same read (the peer's RST_STREAM or GOAWAY, a malformed
        frame) may have closed it."""
        try:
            self._h2.reset_stream(sid, code)
        except ProtocolError:  # StreamClosedError, or the connection is CLOSED
            pass

    def _forget(self, sid: int, reset: ErrorCodes | None = None) -> _Stream | None:
        """Drop a stream's state, RST_STREAM it with ``reset`` if given, and
        credit the body bytes nobody will read (after the reset, so that only
        the connection window is credited, without a useless stream
        WINDOW_UPDATE)."""
        stream = self._streams.pop(sid, None)
        if stream is None:
            return None
        self._sending.pop(sid, None)
        self._scheduler.forget(sid)
        if reset is not None and not self.terminated:
            self._reset_stream(sid, reset)
        # The stream is gone: only the connection window is owed.
        inbound = stream.inbound
        unread = inbound.unacknowledged
        inbound.acked = inbound.received
        self._credit(sid, None, unread)
        return stream
