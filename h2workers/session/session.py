"""One HTTP/2 connection's policy, without I/O: the layer every driver shares.

A ``Session`` sits between the protocol core (``proto/core.py``) and a
driver. It takes bytes read from the peer, commands from the streams'
applications and clock ticks; it owns the stream table (``Stream`` objects
with one explicit state), the bytes framed but not yet sent, and every
connection policy: which streams to start, when to wake an application
waiting for body bytes or buffer room, how much a writer may queue (the
high-water mark), write back-pressure and the sliced flush, keep-alive and
idle closes, closing a connection whose peer reads nothing, graceful
shutdown and the lingering close.

It reaches the outside through two small interfaces a driver implements:
``Transport`` (send bytes, ask for write readiness, half-close, close) and
``Host`` (run a stream's application somewhere, wake a waiting one after
this turn's output, flush at the end of the turn, forget a closed
session). A driver keeps only its sockets and loop, where application code
runs, and how a stream waits. All of a session's methods run on the one
thread (or greenlet, or event loop) that owns its connection.
"""

from __future__ import annotations

from typing import Any, Protocol

from h2.errors import ErrorCodes

from h2workers.config import H2Settings
from h2workers.metrics import NO_METRICS, Metrics
from h2workers.peerlog import PeerLog
from h2workers.proto import events as ev
from h2workers.proto.core import H2Core
from h2workers.proto.headers import Header
from h2workers.session.stream import OPEN, Stream, StreamEvent

HIGH_WATER_MIN, HIGH_WATER_MAX, OUT_BUDGET = 65536, 1 << 20, 4 << 20
OUT_HELD = 256 * 1024  # unsent bytes past which no more body is framed
FLUSH_SLICE = 256 * 1024  # framed per step of a flush
LINGER, LINGER_BYTES = 1.0, 4 << 20  # reading on after GOAWAY: at most this long, this much
# Server push: promises per request and per connection (each is a request
# the application serves, and bytes the client may not want).
PUSHES_PER_STREAM, PUSHES_PER_CONNECTION = 16, 256


class Transport(Protocol):
    """The byte stream under a session (a driver's socket)."""

    def send(self, data: bytes | bytearray | memoryview) -> int:
        """Write what the peer will take now; bytes taken (0 if none).
        Raises OSError when the connection is broken."""

    def want_write(self, want: bool) -> None:
        """Call ``Session.write`` once the transport can take more."""

    def shutdown_write(self) -> bool:
        """Half-close (TCP FIN after what was sent); False if it failed."""

    def close(self) -> None: ...


class Host(Protocol):
    """What a session asks of its driver."""

    log: Any
    peer_log: PeerLog  # lines about what a client did (bounded under floods)

    def start(self, session: Session, stream: Stream) -> None:
        """Run the application for a new stream (a thread, greenlet, task)."""

    def wake(self, stream: Stream) -> None:
        """Wake the stream's waiting application once this turn's output is
        written (a reader woken earlier would race the WINDOW_UPDATE)."""

    def dirty(self, session: Session) -> None:
        """Call ``session.flush`` before the loop waits again."""

    def closed(self, session: Session) -> None:
        """The session is closed: forget it."""


class Session:
    """The policy of one HTTP/2 connection (see the module docstring)."""

    def __init__(
        self,
        settings: H2Settings,
        host: Host,
        transport: Transport,
        peer: Any,
        server: Any,
        secure: bool,
        timeout: float,
        keepalive: float,
        now: float,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.core = H2Core(settings)
        self.metrics = metrics  # the worker's statsd figures
        metrics.h2_connections += 1
        self.host = host
        self.transport = transport
        self.peer = peer  # the client's address; ``server``: ours
        self.server = server
        self.secure = secure  # TLS (the scheme a request gets by default)
        self.peer_ip = peer[0] if isinstance(peer, tuple) else str(peer or "-")
        self.timeout = timeout  # flow-control and write waits, as Gunicorn's ``timeout``
        self.keepalive = keepalive
        self.streams: dict[int, Stream] = {}  # the streams an application serves
        self.out = bytearray()  # framed, not yet taken by the transport
        self.ack_threshold = max(16384, settings.initial_window_size // 2)
        self.idle_since = self.last_sent = now
        self.busy = False  # a stream started since the last flush
        self.closed = False
        self.stopping = False
        self.lingering_until: float | None = None  # set once GOAWAY is out, see linger()
        self.lingered = 0
        self.wants_write = False
        self.pushed = 0  # PUSH_PROMISEs sent (see PUSHES_PER_CONNECTION)
        # What the app layer keeps per connection (the WSGI environ's
        # connection part), made by the first stream that needs it.
        self.app_context: Any = None

    def start(self, initial: bytes, now: float) -> None:
        self.core.initiate()
        if initial:
            self.receive(initial, now)
        self.host.dirty(self)

    def start_upgraded(
        self, http2_settings: bytes, block: list[Header], body: bytes, pending: bytes, now: float
    ) -> None:
        """Take over a connection upgraded from HTTP/1.1 (request = stream 1)."""
        self.dispatch(self.core.initiate_upgrade(http2_settings, block, body))
        if pending:
            self.receive(pending, now)
        self.host.dirty(self)

    # -- input -----------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> None:
        """Bytes read from the peer (after GOAWAY and FIN: counted, dropped)."""
        if self.lingering_until is not None:
            self.lingered += len(data)
            if self.lingered >= LINGER_BYTES:
                self.close()
            return
        self.dispatch(self.core.receive(data, now))
        self.host.dirty(self)

    def dispatch(self, events: list[ev.Event]) -> None:
        fed: dict[Stream, None] = {}  # woken once per read, not per frame
        started: list[Stream] = []  # run once the whole read is dispatched
        streams = self.streams
        for event in events:
            if isinstance(event, ev.RequestData):
                stream = streams.get(event.stream_id)
                if stream is not None:
                    if event.data:
                        stream.chunks.append(event.data)
                    if event.end_stream:
                        stream.body_done = True
                    fed[stream] = None
            elif isinstance(event, ev.RequestStarted):
                started.append(self._new_stream(event))
            elif isinstance(event, ev.RequestTrailers):
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream.body_done = True
                    fed[stream] = None
            elif isinstance(event, ev.StreamAborted):
                self._aborted(event)
            elif isinstance(event, ev.StreamRejected):
                self._rejected(event)
            elif isinstance(event, ev.ConnectionEnded):
                self._ended(event)
            elif isinstance(event, ev.PriorityChanged):
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream.reprioritize(event.priority)
        for stream in started:
            # A stream reset by a later frame of the same read never runs its
            # app, and an app that runs at once (a direct driver) never sees
            # a stream the core has already dropped.
            if stream.state is OPEN:
                self.host.start(self, stream)
        for stream in fed:
            if stream.state is not OPEN:
                continue
            # bytes the app's reads are after count as read already: one
            # WINDOW_UPDATE for all the frames that came in this read
            self.core.credit_upto(stream.stream_id, stream.asked)
            if stream.body_done or stream.inbound.received >= stream.needed:
                self.host.wake(stream)  # enough for the read(), or its end

    def _new_stream(self, event: ev.RequestStarted) -> Stream:
        sid = event.stream_id
        inbound, outbound = self.core.counts(sid)
        stream = Stream(sid, event.head, event.end_stream, inbound, outbound)
        self.streams[sid] = stream
        self.metrics.streams += 1
        self.busy = True  # not idle, even if it ends before the next flush
        return stream

    def _rejected(self, event: ev.StreamRejected) -> None:
        # A refused stream is ordinary flow control a client retries; a
        # malformed one is worth a line.
        refused = event.error_code == ErrorCodes.REFUSED_STREAM
        if refused:
            self.metrics.count("streams.refused")
        else:
            self.metrics.count_code("streams.rejected", event.error_code)
        (self.host.log.debug if refused else self.host.log.info)(
            "HTTP/2 stream %d from %s rejected: %s (%s)",
            event.stream_id,
            self.peer_ip,
            event.reason,
            event.error_code.name,
        )

    def _aborted(self, event: ev.StreamAborted) -> None:
        if event.by_peer:
            self.metrics.count_code("streams.reset_by_client", event.error_code)
        elif event.error_code != ErrorCodes.NO_ERROR:
            self.metrics.count_code("streams.reset", event.error_code)
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            self._abort(stream, event.error_code)
        if not event.by_peer and event.error_code != ErrorCodes.NO_ERROR and event.reason:
            self.host.peer_log.info(
                "HTTP/2 stream %d from %s reset: %s (%s)",
                event.stream_id,
                self.peer_ip,
                event.reason,
                event.error_code.name,
            )

    def _ended(self, event: ev.ConnectionEnded) -> None:
        if not event.by_peer:
            self.metrics.count_code("goaway", event.error_code)
            if event.error_code == ErrorCodes.ENHANCE_YOUR_CALM:
                self.metrics.count("flood_limit")
        if event.graceful:
            return  # no new streams; the open ones finish, then flush() lingers
        if not event.by_peer:
            self.host.peer_log.info(
                "HTTP/2 connection from %s closed: %s (%s)",
                self.peer_ip,
                event.reason,
                event.error_code.name,
            )
        self._abort_all(event.error_code or ErrorCodes.CANCEL)

    def _abort(self, stream: Stream, code: ErrorCodes) -> None:
        if stream.move(StreamEvent.ABORT):
            stream.abort_code = code
            self._release(stream)

    def _release(self, stream: Stream) -> None:
        """The stream left OPEN: out of the table, its priority listener
        dropped (it holds the environ, which holds the stream: a cycle only
        the garbage collector frees), its waiting app woken."""
        del self.streams[stream.stream_id]
        self.metrics.streams -= 1
        stream.priority_listener = None
        stream.wake()

    def _abort_all(self, code: ErrorCodes) -> None:
        for stream in list(self.streams.values()):
            self._abort(stream, code)

    # -- commands from the streams' applications --------------------------------
    #
    # A command for a stream no longer live (reset meanwhile) is a race the
    # application learns of at its next call, and is dropped here. For a live
    # stream the core must know it: if not, UnknownStream shows the bug.

    def high_water(self) -> int:
        """How much unframed response a stream may queue before its app waits.

        A lone stream gets 1 MiB (fewer hand-offs on a large download); many
        share a 4 MiB connection budget, 64 KiB at least.
        """
        return max(HIGH_WATER_MIN, min(HIGH_WATER_MAX, OUT_BUDGET // max(1, len(self.streams))))

    def send_head(
        self, stream: Stream, status: int, headers: list[Header], body: bytes, end: bool
    ) -> None:
        if stream.state is OPEN:
            self.core.respond(stream.stream_id, status, headers, end_stream=end and not body)
            if body:
                self.core.send_body(stream.stream_id, body, end)
            if end:
                self._done(stream)
            self.host.dirty(self)

    def send_body(self, stream: Stream, data: bytes, end: bool) -> None:
        # A piece that does not end the stream is only queued: ``flush``
        # frames it and wakes a writer waiting for room.
        if stream.state is OPEN:
            self.core.send_body(stream.stream_id, data, end)
            if end:
                self._done(stream)
            self.host.dirty(self)

    def push(self, stream: Stream, block: list[Header]) -> bool:
        """Promise the request ``block`` on ``stream`` and start its app on
        the promised stream; False when nothing was promised (push refused
        by the client, a cap reached, or the stream no longer open)."""
        if stream.state is not OPEN or stream.pushes >= PUSHES_PER_STREAM:
            return False
        if self.pushed >= PUSHES_PER_CONNECTION:
            return False
        promised = self.core.push(stream.stream_id, block)
        if promised is None:
            return False
        stream.pushes += 1
        self.pushed += 1
        sid, head = promised
        inbound, outbound = self.core.counts(sid)
        pushed = Stream(sid, head, True, inbound, outbound)
        self.streams[sid] = pushed
        self.metrics.streams += 1
        self.busy = True
        self.host.start(self, pushed)
        self.host.dirty(self)
        return True

    def send_informational(self, stream: Stream, status: int, headers: list[Header]) -> None:
        if stream.state is OPEN:
            self.core.informational(stream.stream_id, status, headers)
            self.host.dirty(self)

    def send_trailers(self, stream: Stream, headers: list[Header]) -> None:
        if stream.state is OPEN:
            self.core.send_trailers(stream.stream_id, headers)
            self._done(stream)
            self.host.dirty(self)

    def reset(self, stream: Stream, code: ErrorCodes) -> None:
        if stream.state is OPEN:
            self.core.reset(stream.stream_id, code)
            self._abort(stream, code)
            self.host.dirty(self)

    def read_upto(self, stream: Stream, taken: int) -> None:
        """The app has read ``taken`` bytes of the body: reopen the window."""
        if stream.state is OPEN:
            self.core.credit_upto(stream.stream_id, taken)
            self.host.dirty(self)

    def app_done(self, stream: Stream) -> None:
        """The application returned without ending the stream itself."""
        if stream.state is OPEN:
            self._done(stream)
            self.host.dirty(self)

    def _done(self, stream: Stream) -> None:
        """The app is done with the stream: the core finishes sending alone.
        A read after this sees the body end where it stands."""
        stream.move(StreamEvent.APP_DONE)
        stream.body_done = True
        self._release(stream)

    # -- output ----------------------------------------------------------------

    def flush(self, now: float) -> None:
        """Frame what is queued and write it: once per loop turn."""
        if self.closed or self.lingering_until is not None:
            return
        core = self.core
        while True:  # a slice at a time: framing more than the transport takes only copies
            for sid in core.flush(now, FLUSH_SLICE):
                stream = self.streams.get(sid)
                if stream is not None:
                    stream.wake()  # room below its high-water mark, perhaps
            data = core.data_to_send()
            if self.out:
                self.out += data
                self.write(now)
            elif data:
                self.write(now, data)  # nothing waiting: send without copying into ``out``
            if not core.capped or self.out or self.closed:
                break
        if self.streams or core.open_streams or self.busy:
            self.idle_since = now
            self.busy = False
        elif core.finished and not self.out:
            self.linger(now)

    def write(self, now: float, fresh: bytes | None = None) -> None:
        """Send ``out`` (or ``fresh`` bytes when ``out`` is empty); what the
        transport does not take waits in ``out`` until it asks again. A retry
        after a TLS want-write starts with the same bytes, as OpenSSL requires."""
        if self.closed:
            return
        try:
            sent = self.transport.send(self.out if fresh is None else fresh)
        except OSError as exc:
            self.host.log.debug("HTTP/2 write to %s failed: %s", self.peer, exc)
            self.close()
            return
        if fresh is None:
            del self.out[:sent]
        elif sent < len(fresh):
            self.out += memoryview(fresh)[sent:]
        if sent:
            self.last_sent = now
        self._back_pressure()

    def _back_pressure(self) -> None:
        """While the peer does not read, frame no more bodies (their apps
        then wait at the high-water mark) instead of piling bytes up here."""
        held = len(self.out) >= OUT_HELD
        core = self.core
        if held != core.hold_output:
            core.hold_output = held
            if not held:
                self.host.dirty(self)
        elif not self.out and core.capped:
            self.host.dirty(self)  # frames left unframed by the last flush
        want = bool(self.out)
        if want != self.wants_write:
            self.wants_write = want
            self.transport.want_write(want)

    # -- lifecycle -------------------------------------------------------------

    def tick(self, now: float) -> None:
        """About once a second: flow-control timeouts, flood-budget refills,
        a peer that reads nothing, keep-alive, shutdown, the end of lingering."""
        if self.closed:
            return
        if self.lingering_until is not None:
            if now >= self.lingering_until or self.stopping:
                self.close()
            return
        self.dispatch(self.core.expire(now, self.timeout))
        if self.out and now - self.last_sent >= self.timeout:
            self.host.peer_log.info(
                "HTTP/2 connection from %s read nothing for %gs: closed",
                self.peer_ip,
                self.timeout,
            )
            self.close()
            return
        idle = not self.streams and not self.core.open_streams
        if self.stopping or (idle and now - self.idle_since >= self.keepalive):
            if self.core.last_stream_id is None and not self.core.terminated:
                self.metrics.count_code("goaway", ErrorCodes.NO_ERROR)
            self.core.start_shutdown()  # GOAWAY; open streams finish first
        self.host.dirty(self)

    def stop(self, now: float) -> None:
        """The worker is stopping: GOAWAY now, streams finish, no lingering."""
        self.stopping = True
        self.tick(now)

    def linger(self, now: float) -> None:
        """The connection is done and its last bytes (GOAWAY) are with the
        transport: half-close, but read on for a moment before closing.

        Closing a socket that still has unread input makes the kernel send
        a TCP reset, and a peer that was still sending (a flood, a request
        racing our GOAWAY) may then lose our GOAWAY before reading it. A
        stopping worker closes at once."""
        if self.stopping or not self.transport.shutdown_write():
            self.close()
            return
        self.lingering_until = now + LINGER

    def close(self) -> None:
        """Close the connection now; applications still serving are aborted."""
        if self.closed:
            return
        self.closed = True
        self.metrics.h2_connections -= 1
        self._abort_all(ErrorCodes.CANCEL)
        self.host.closed(self)
        self.transport.close()
